"""`IcebergSinkJob`: the CDC → Iceberg sink running as a service of the stack.

It consumes the Debezium topics of the stack's connectors for the tables it is given and keeps one
Iceberg table per source table in its namespace. It runs as a native process on both runtimes (it talks to the other
services through their published loopback ports); healthy once its /health answers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi

from components.change_capture import ChangeCapture
from components.iceberg_catalog import IcebergRestCatalog
from components.kafka import Kafka
from components.runtime import LOOPBACK, Placement
from providers.local_service import LocalService, LocalServiceArgs

PROPERTIES_FILE = "catalog.json"


@dataclass(frozen=True)
class IcebergSinkJobArgs:
    placement: Placement
    """Runtime, state dir and toolchain of the stack."""
    python: str
    """The interpreter of the project's venv (it has the pipeline package and its dependencies)."""
    kafka: Kafka
    """Where the Debezium topics are."""
    change_capture: ChangeCapture
    """The connectors whose topics it consumes (their topic prefixes)."""
    catalog: IcebergRestCatalog
    """Where it keeps the tables."""
    port: int
    """Health port on 127.0.0.1."""
    namespace: str = "cdc"
    """Iceberg namespace of the replicated tables."""
    tables: tuple[str, ...] = ("customers", "products", "orders")
    """Source tables (of the `inventory` schema/database) to replicate: the seeded ones, so tables
    that tests create and drop are not replicated behind their backs."""
    replicated_prefix: str = "lake_"
    """Tables whose name starts with it are replicated too: create one to have the job keep it."""
    group: str = "cdcstack-iceberg-sink"
    """Consumer groups are `<group>.<topic>`."""


class IcebergSinkJob(pulumi.ComponentResource):
    health_url: pulumi.Output[str]
    namespace: pulumi.Output[str]
    log_path: pulumi.Output[str]

    def __init__(self, name: str, args: IcebergSinkJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:IcebergSinkJob", name, None, opts)
        workdir = args.placement.service_dir(name)
        health_url = f"http://{LOOPBACK}:{args.port}/health"
        capture = args.change_capture
        topics_regex = pulumi.Output.all(capture.postgres_topic_prefix, capture.mysql_topic_prefix).apply(
            lambda prefixes: (
                rf"^({'|'.join(re.escape(prefix) for prefix in prefixes)})\.inventory\."
                rf"({'|'.join(args.tables)}|{re.escape(args.replicated_prefix)}[A-Za-z0-9_]+)$"
            )
        )
        job = LocalService(
            f"{name}-process",
            LocalServiceArgs(
                service=name,
                argv=pulumi.Output.all(args.kafka.bootstrap_servers, topics_regex).apply(
                    lambda values: [
                        args.python,
                        "-m",
                        "pipelines.sinks.iceberg.job",
                        "--bootstrap",
                        values[0],
                        "--topics-regex",
                        values[1],
                        "--namespace",
                        args.namespace,
                        "--catalog-properties",
                        str(workdir / PROPERTIES_FILE),
                        "--group",
                        args.group,
                        "--health-port",
                        str(args.port),
                    ]
                ),
                workdir=str(workdir),
                ports=[args.port],
                health={"kind": "http", "url": health_url},
                secret_files=args.catalog.catalog_properties.apply(lambda properties: {PROPERTIES_FILE: json.dumps(properties)}),
                start_timeout=60.0,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.catalog, capture]),
        )
        self.health_url = pulumi.Output.from_input(health_url)
        self.namespace = pulumi.Output.from_input(args.namespace)
        self.log_path = job.log_path
        self.register_outputs({"health_url": self.health_url, "namespace": self.namespace, "log_path": self.log_path})
