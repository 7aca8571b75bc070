"""`IcebergSinkJob`: the CDC → Iceberg sink running as a service of the stack.

It consumes the Debezium topics of the stack's connectors for the tables it is given and keeps one
Iceberg table per source table in its namespace; healthy once its /health answers 200.

Process runtime: the project's venv runs `pipelines.sinks.iceberg.job`. Docker runtime: the pinned
Python image runs the same module from the project mounted read-only, with the project's
requirements installed into a venv on its volume at first start, reaching the other services at
their container addresses (checked only with Pulumi mocks, like the rest of the docker runtime).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.change_capture import ChangeCapture
from components.docker_service import DockerServiceSpec
from components.iceberg_catalog import IcebergRestCatalog
from components.kafka import Kafka
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition

PROPERTIES_FILE = "catalog.json"
CONTAINER_PORT = 8190
PROJECT_MOUNT = "/project"
CONTAINER_VENV = "/data/venv"
# Installing pyarrow and pyiceberg on a first start takes minutes; later starts reuse the venv.
CONTAINER_START_SECONDS = 900


@dataclass(frozen=True)
class IcebergSinkJobArgs(ServiceArgs):
    python: str
    """The interpreter of the project's venv (it has the pipeline package and its dependencies)."""
    project_dir: str
    """The project checkout: mounted read-only into the docker runtime's container."""
    kafka: Kafka
    """Where the Debezium topics are."""
    change_capture: ChangeCapture
    """The connectors whose topics it consumes (their topic prefixes)."""
    catalog: IcebergRestCatalog
    """Where it keeps the tables."""
    namespace: str = "cdc"
    """Iceberg namespace of the replicated tables."""
    tables: tuple[str, ...] = ("customers", "products", "orders")
    """Source tables (of the `inventory` schema/database) to replicate: the seeded ones, so tables
    that tests create and drop are not replicated behind their backs."""
    replicated_prefix: str = "lake_"
    """Tables whose name starts with it are replicated too: create one to have the job keep it."""
    group: str = "cdcstack-iceberg-sink"
    """Consumer groups are `<group>.<topic>`."""


def job_argv(python: str, args: IcebergSinkJobArgs, bootstrap: str, topics_regex: str, properties: str, port: int) -> list[str]:
    """The job's command line: the same module and options on both runtimes."""
    return [
        python,
        "-m",
        "pipelines.sinks.iceberg.job",
        "--bootstrap",
        bootstrap,
        "--topics-regex",
        topics_regex,
        "--namespace",
        args.namespace,
        "--catalog-properties",
        properties,
        "--group",
        args.group,
        "--health-port",
        str(port),
    ]


class IcebergSinkJob(ServiceComponent):
    """The sink job as a service: its health URL and the namespace its tables are in."""

    health_url: pulumi.Output[str]
    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: IcebergSinkJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:IcebergSinkJob", name, service_catalogue.service("iceberg-sink"), opts)
        health_url = f"http://{LOOPBACK}:{args.port}/health"
        prefixes = pulumi.Output.all(*args.change_capture.topic_prefixes.values())
        topics_regex = prefixes.apply(
            lambda values: (
                rf"^({'|'.join(re.escape(prefix) for prefix in values)})\.inventory\."
                rf"({'|'.join(args.tables)}|{re.escape(args.replicated_prefix)}[A-Za-z0-9_]+)$"
            )
        )
        self._serve(
            args.placement,
            args.network,
            ServiceDefinition(
                ports=(args.port,),
                health={"kind": "http", "url": health_url},
                container_port=CONTAINER_PORT,
                process=lambda workdir: self._process_job(args, topics_regex, workdir),
                docker=lambda: self._docker_job(args, topics_regex),
                depends_on=(args.catalog, args.change_capture),
                start_timeout=60.0,
            ),
        )
        self.health_url = pulumi.Output.from_input(health_url)
        self.namespace = pulumi.Output.from_input(args.namespace)
        self._register({"health_url": self.health_url, "namespace": self.namespace})

    @staticmethod
    def _process_job(args: IcebergSinkJobArgs, topics_regex: pulumi.Output[str], workdir: Path) -> ProcessLaunch:
        return ProcessLaunch(
            argv=pulumi.Output.all(args.kafka.internal_bootstrap_servers, topics_regex).apply(
                lambda values: job_argv(args.python, args, values[0], values[1], str(workdir / PROPERTIES_FILE), args.port)
            ),
            secret_files=args.catalog.internal_catalog_properties.apply(
                lambda properties: {PROPERTIES_FILE: json.dumps(properties)}
            ),
        )

    @staticmethod
    def _docker_job(args: IcebergSinkJobArgs, topics_regex: pulumi.Output[str]) -> DockerServiceSpec:
        properties = f"/tmp/{PROPERTIES_FILE}"
        # The options come from the environment, so the command is fixed and holds no secret.
        argv = job_argv(f"{CONTAINER_VENV}/bin/python", args, "$BOOTSTRAP", "$TOPICS_REGEX", properties, CONTAINER_PORT)
        script = "; ".join(
            [
                "set -e",
                f"[ -x {CONTAINER_VENV}/bin/python ] || python -m venv {CONTAINER_VENV}",
                f"{CONTAINER_VENV}/bin/pip install --quiet --disable-pip-version-check -r {PROJECT_MOUNT}/requirements.txt",
                "umask 077",
                f'printf %s "$CATALOG_PROPERTIES" > {properties}',
                f"cd {PROJECT_MOUNT}",
                "exec " + " ".join(_shell_word(word) for word in [*argv, "--health-host", "0.0.0.0"]),
            ]
        )
        envs = pulumi.Output.secret(
            pulumi.Output.all(args.kafka.internal_bootstrap_servers, topics_regex, args.catalog.internal_catalog_properties).apply(
                lambda values: [
                    f"BOOTSTRAP={values[0]}",
                    f"TOPICS_REGEX={values[1]}",
                    f"CATALOG_PROPERTIES={json.dumps(values[2])}",
                    # The project is mounted read-only.
                    "PYTHONDONTWRITEBYTECODE=1",
                ]
            )
        )
        probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{CONTAINER_PORT}/health', timeout=3)"
        return DockerServiceSpec(
            image=args.placement.toolchain.image("PYTHON_IMAGE"),
            ports={CONTAINER_PORT: args.port},
            health_test=["CMD", f"{CONTAINER_VENV}/bin/python", "-c", probe],
            volume_path="/data",
            binds={args.project_dir: PROJECT_MOUNT},
            envs=envs,
            command=["sh", "-c", script],
            memory_mb=1024,
            start_timeout_seconds=CONTAINER_START_SECONDS,
            health_start_period_seconds=CONTAINER_START_SECONDS,
        )


def _shell_word(word: str) -> str:
    """A word for `sh -c`: `$VARIABLE` expands (quoted, so a regex stays one word), anything else is literal."""
    if re.fullmatch(r"\$[A-Z_]+", word):
        return f'"{word}"'
    return shlex.quote(word)

