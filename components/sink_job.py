"""What the sink-job services share: which topics they take, and how the docker runtime runs the
project's Python in a container.

A sink job consumes the Debezium topics of the stack's connectors for the seeded tables it is given,
plus every source table whose name starts with one of its prefixes (create one to have the job keep
it), so tables that tests create and drop under other names are not replicated behind their backs.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.change_capture import ChangeCapture
from components.docker_service import DockerServiceSpec
from components.kafka import Kafka
from components.runtime import LOOPBACK
from components.schema_registry import SchemaRegistry
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition

SEEDED_TABLES = ("customers", "products", "orders")
"""The tables the databases are seeded with (components/seeds)."""
PROJECT_MOUNT = "/project"
CONTAINER_VENV = "/data/venv"


@dataclass(frozen=True)
class SinkJobArgs(ServiceArgs):
    python: str
    """The interpreter of the project's venv (it has the pipeline package and its dependencies)."""
    project_dir: str
    """The project checkout: mounted read-only into the docker runtime's container."""
    kafka: Kafka
    """Where the Debezium topics are."""
    change_capture: ChangeCapture
    """The connectors whose topics it consumes (their topic prefixes)."""
    schema_registry: SchemaRegistry
    """Where it looks up the writer schema of an Avro record (JSON records need none)."""


class SinkJobComponent(ServiceComponent):
    """A sink job as a service: healthy once its /health answers 200."""

    health_url: pulumi.Output[str]
    metrics_address: pulumi.Output[str]
    """`host:port` of its /metrics (the health port) as Prometheus reaches it."""

    def _serve_job(
        self,
        args: SinkJobArgs,
        container_port: int,
        process: Callable[[Path], ProcessLaunch],
        docker: Callable[[], DockerServiceSpec],
        depends_on: Sequence[pulumi.Resource],
        start_timeout: float,
    ) -> None:
        health_url = f"http://{LOOPBACK}:{args.ports.main}/health"
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": health_url},
                container_port=container_port,
                process=process,
                docker=docker,
                depends_on=depends_on,
                start_timeout=start_timeout,
            ),
        )
        self.health_url = pulumi.Output.from_input(health_url)
        self.metrics_address = pulumi.Output.from_input(self._internal_address())


def sink_argv(
    python: str,
    module: str,
    bootstrap: str,
    topics: str,
    namespace: str,
    destination_options: Sequence[str],
    group: str,
    port: int,
    schema_registry_url: str,
) -> list[str]:
    """A sink job's command line: the options every job takes (`pipelines.sinks.job.job_arguments`)
    around its destination's own."""
    return [
        python,
        "-m",
        module,
        "--bootstrap",
        bootstrap,
        "--topics-regex",
        topics,
        "--namespace",
        namespace,
        *destination_options,
        "--group",
        group,
        "--health-port",
        str(port),
        "--schema-registry-url",
        schema_registry_url,
    ]


def topics_regex(change_capture: ChangeCapture, tables: Sequence[str], prefixes: Sequence[str]) -> pulumi.Output[str]:
    """Topics of `inventory.<table>` for the given tables, and of every table starting with a prefix."""
    prefixed = "|".join(f"{re.escape(prefix)}[A-Za-z0-9_]+" for prefix in prefixes)
    return pulumi.Output.all(*change_capture.topic_prefixes.values()).apply(
        lambda values: (
            rf"^({'|'.join(re.escape(prefix) for prefix in values)})\.inventory\."
            rf"({'|'.join([*tables, *([prefixed] if prefixed else [])])})$"
        )
    )


def container_script(requirements: str, secret_files: Mapping[str, str], argv: Sequence[str]) -> str:
    """`sh -c` text for the pinned image: a venv on the volume with the project's requirements
    (installed at first start, reused later), each secret file written from its environment
    variable (so the command holds no secret), then the job from the project mounted read-only."""
    lines = [
        "set -e",
        f"[ -x {CONTAINER_VENV}/bin/python ] || python3 -m venv {CONTAINER_VENV}",
        f"{CONTAINER_VENV}/bin/pip install --quiet --disable-pip-version-check -r {PROJECT_MOUNT}/{requirements}",
        "umask 077",
        *[f'printf %s "${variable}" > {path}' for path, variable in secret_files.items()],
        f"cd {PROJECT_MOUNT}",
        "exec " + " ".join(shell_word(word) for word in [*argv, "--health-host", "0.0.0.0"]),
    ]
    return "; ".join(lines)


def shell_word(word: str) -> str:
    """A word for `sh -c`: `$VARIABLE` expands (quoted, so a regex stays one word), anything else is literal."""
    if re.fullmatch(r"\$[A-Z_]+", word):
        return f'"{word}"'
    return shlex.quote(word)
