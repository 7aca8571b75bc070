"""What the sink-job services share: which topics they take, their command line and their health check.

A sink job consumes the Debezium topics of the stack's connectors for the seeded tables it is given,
plus every source table whose name starts with one of its prefixes (create one to have the job keep
it), so tables that tests create and drop under other names are not replicated behind their backs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.change_capture import ChangeCapture
from components.kafka import Kafka
from components.runtime import LOOPBACK
from components.schema_registry import SchemaRegistry
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition

SEEDED_TABLES = ("customers", "products", "orders")
"""The tables the databases are seeded with (components/seeds)."""


@dataclass(frozen=True)
class SinkJobArgs(ServiceArgs):
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
        process: Callable[[Path], ProcessLaunch],
        depends_on: Sequence[pulumi.Resource],
        start_timeout: float,
        memory_mb: int,
    ) -> None:
        health_url = f"http://{LOOPBACK}:{args.ports.main}/health"
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": health_url},
                process=process,
                depends_on=depends_on,
                start_timeout=start_timeout,
                memory_mb=memory_mb,
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
    health_host: str = LOOPBACK,
) -> list[str]:
    """A sink job's command line: the options every job takes (`pipelines.sinks.job.job_arguments`)
    around its destination's own; the health server binds `health_host` (the job's own default is loopback)."""
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
        *([] if health_host == LOOPBACK else ["--health-host", health_host]),
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
