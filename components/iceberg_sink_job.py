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
from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.docker_service import DockerServiceSpec
from components.iceberg_catalog import IcebergRestCatalog
from components.service import ProcessLaunch
from components.sink_job import CONTAINER_VENV, PROJECT_MOUNT, SEEDED_TABLES, SinkJobArgs, SinkJobComponent, container_script, sink_argv, topics_regex
from pipelines.connectors import AVRO_TABLE_PREFIX

PROPERTIES_FILE = "catalog.json"
CONTAINER_PORT = 8190
# Installing pyarrow and pyiceberg on a first start takes minutes; later starts reuse the venv.
CONTAINER_START_SECONDS = 900


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
        python, "pipelines.sinks.iceberg.job", bootstrap, topics, args.namespace, ["--catalog-properties", properties], args.group, port, registry_url
    )


class IcebergSinkJob(SinkJobComponent):
    """The sink job as a service: its health URL and the namespace its tables are in."""

    namespace: pulumi.Output[str]

    def __init__(self, name: str, args: IcebergSinkJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:IcebergSinkJob", name, service_catalogue.ICEBERG_SINK, opts)
        topics = topics_regex(args.change_capture, args.tables, args.replicated_prefixes)
        self._serve_job(
            args,
            CONTAINER_PORT,
            lambda workdir: self._process_job(args, topics, workdir),
            lambda: self._docker_job(args, topics),
            (args.catalog, args.change_capture),
            60.0,
        )
        self.namespace = pulumi.Output.from_input(args.namespace)
        self._register({"health_url": self.health_url, "metrics_address": self.metrics_address, "namespace": self.namespace})

    @staticmethod
    def _process_job(args: IcebergSinkJobArgs, topics: pulumi.Output[str], workdir: Path) -> ProcessLaunch:
        return ProcessLaunch(
            argv=pulumi.Output.all(args.kafka.internal_bootstrap_servers, topics, args.schema_registry.internal_url).apply(
                lambda values: job_argv(args.python, args, values[0], values[1], str(workdir / PROPERTIES_FILE), args.ports.main, values[2])
            ),
            secret_files=args.catalog.internal_catalog_properties.apply(
                lambda properties: {PROPERTIES_FILE: json.dumps(properties)}
            ),
        )

    @staticmethod
    def _docker_job(args: IcebergSinkJobArgs, topics: pulumi.Output[str]) -> DockerServiceSpec:
        properties = f"/tmp/{PROPERTIES_FILE}"
        # The options come from the environment, so the command is fixed and holds no secret.
        argv = job_argv(f"{CONTAINER_VENV}/bin/python", args, "$BOOTSTRAP", "$TOPICS_REGEX", properties, CONTAINER_PORT, "$SCHEMA_REGISTRY_URL")
        script = container_script("requirements.txt", {properties: "CATALOG_PROPERTIES"}, argv)
        envs = pulumi.Output.secret(
            pulumi.Output.all(
                args.kafka.internal_bootstrap_servers, topics, args.catalog.internal_catalog_properties, args.schema_registry.internal_url
            ).apply(
                lambda values: [
                    f"BOOTSTRAP={values[0]}",
                    f"TOPICS_REGEX={values[1]}",
                    f"CATALOG_PROPERTIES={json.dumps(values[2])}",
                    f"SCHEMA_REGISTRY_URL={values[3]}",
                    # The project is mounted read-only.
                    "PYTHONDONTWRITEBYTECODE=1",
                ]
            )
        )
        probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{CONTAINER_PORT}/health', timeout=3)"
        return DockerServiceSpec(
            image=args.placement.toolchain.image("PYTHON_IMAGE"),
            ports={CONTAINER_PORT: args.ports.main},
            health_test=["CMD", f"{CONTAINER_VENV}/bin/python", "-c", probe],
            volume_path="/data",
            binds={args.project_dir: PROJECT_MOUNT},
            envs=envs,
            command=["sh", "-c", script],
            memory_mb=1024,
            start_timeout_seconds=CONTAINER_START_SECONDS,
            health_start_period_seconds=CONTAINER_START_SECONDS,
        )
