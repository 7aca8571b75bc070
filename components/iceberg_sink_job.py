"""`IcebergSinkJob`: the CDC → Iceberg sink running as a service of the stack.

It consumes the Debezium topics of the stack's connectors for the tables it is given and keeps one
Iceberg table per source table in its namespace; healthy once its /health answers 200.

The project's venv runs `pipelines.sinks.iceberg.job` (on docker, the runtime image's copy of it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.iceberg_catalog import IcebergRestCatalog
from components.service import ProcessLaunch
from components.sink_job import SEEDED_TABLES, SinkJobArgs, SinkJobComponent, sink_argv, topics_regex
from pipelines.connectors import AVRO_TABLE_PREFIX

PROPERTIES_FILE = "catalog.json"


@dataclass(frozen=True)
class IcebergSinkJobArgs(SinkJobArgs):
    catalog: IcebergRestCatalog
    """Where it keeps the tables."""
    namespace: str = "cdc"
    """Iceberg namespace of the replicated tables."""
    tables: tuple[str, ...] = SEEDED_TABLES
    """Source tables (of the `inventory` schema/database) to replicate."""
    replicated_prefixes: tuple[str, ...] = ("lake_", "both_", AVRO_TABLE_PREFIX)
    """Tables whose name starts with one of them are replicated too (`both_`: into Delta as well;
    `avro_`: the Avro connector's tables)."""
    group: str = "cdcstack-iceberg-sink"
    """Consumer groups are `<group>.<topic>`."""


def job_argv(
    python: str, args: IcebergSinkJobArgs, bootstrap: str, topics: str, properties: str, port: int, registry_url: str
) -> list[str]:
    """The job's command line: the same module and options on both runtimes."""
    return sink_argv(
        python,
        "pipelines.sinks.iceberg.job",
        bootstrap,
        topics,
        args.namespace,
        ["--catalog-properties", properties],
        args.group,
        port,
        registry_url,
        args.placement.listen_host,
    )


class IcebergSinkJob(SinkJobComponent):
    """The sink job as a service: its health URL and the namespace its tables are in."""

    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: IcebergSinkJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:IcebergSinkJob", name, service_catalogue.ICEBERG_SINK, opts)
        topics = topics_regex(args.change_capture, args.tables, args.replicated_prefixes)
        self._serve_job(
            args,
            lambda workdir: self._process_job(args, topics, workdir),
            (args.catalog, args.change_capture),
            60.0,
            1024,
        )
        self.namespace = pulumi.Output.from_input(args.namespace)
        self._register({"health_url": self.health_url, "metrics_address": self.metrics_address, "namespace": self.namespace})

    @staticmethod
    def _process_job(args: IcebergSinkJobArgs, topics: pulumi.Output[str], workdir: Path) -> ProcessLaunch:
        return ProcessLaunch(
            argv=pulumi.Output.all(args.kafka.internal_bootstrap_servers, topics, args.schema_registry.internal_url).apply(
                lambda values: job_argv(args.placement.toolchain.python, args, values[0], values[1], str(workdir / PROPERTIES_FILE), args.ports.main, values[2])
            ),
            secret_files=args.catalog.internal_catalog_properties.apply(
                lambda properties: {PROPERTIES_FILE: json.dumps(properties)}
            ),
        )
