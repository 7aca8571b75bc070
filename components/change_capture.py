"""`ChangeCapture`: the Debezium source connectors of the stack, registered on its Connect worker.

One connector per source database, each built by the source itself (`debezium_config`, from
pipelines/connectors.py): the whole `inventory` schema captured (tables created later included),
with truncates and delete tombstones passed through so consumers see every operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi

from components.kafka import Kafka
from components.kafka_connect import KafkaConnect
from providers.debezium_connector import DebeziumConnector, DebeziumConnectorArgs
from service_catalogue import ServiceSpec


class CaptureSource(Protocol):
    """What Debezium captures: a database (`Postgres`, `MySql`: components.database.SqlDatabase), or
    part of one through another connector (`PostgresAvroCapture`)."""

    service: ServiceSpec
    connector_name: str
    topic_prefix: str

    @property
    def capture_key(self) -> str:
        """Unique among the sources: the key of its outputs and of its connector's Pulumi name."""
        ...

    def debezium_config(self, kafka_bootstrap: pulumi.Input[str]) -> pulumi.Output[dict[str, str]]:
        """The connector config (secret), resolved once the source is ready."""
        ...

    @property
    def host_address(self) -> pulumi.Output[str]:
        """`host:port` of the database as this program reaches it (the config names it as Connect does)."""
        ...


@dataclass(frozen=True)
class ChangeCaptureArgs:
    connect: KafkaConnect
    """The worker the connectors run on."""
    kafka: Kafka
    """Where a source may keep its schema history (MySQL's connector does)."""
    sources: Sequence[CaptureSource]
    """One connector each, named `<name>-<capture_key>` in Pulumi and `connector_name` on the worker."""


class ChangeCapture(pulumi.ComponentResource):
    """Registers one Debezium connector per source once the source is seeded."""

    connectors: dict[str, pulumi.Output[str]]
    """Connector name on the worker, by capture key."""
    topic_prefixes: dict[str, pulumi.Output[str]]
    """Topic prefix, by capture key, in the order of the sources."""
    connector_names: pulumi.Output[list[str]]
    """Every connector's name on the worker, in the order of the sources (what monitoring expects to run)."""
    status_url: pulumi.Output[str]

    def __init__(self, name: str, args: ChangeCaptureArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:ChangeCapture", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, depends_on=[args.connect])
        self.connectors = {}
        self.topic_prefixes = {}
        for source in args.sources:
            connector = DebeziumConnector(
                f"{name}-{source.capture_key}",
                DebeziumConnectorArgs(
                    name=source.connector_name,
                    connect_url=args.connect.url,
                    config=source.debezium_config(args.kafka.internal_bootstrap_servers),
                    worker_log=args.connect.log_path,
                    source_address=source.host_address,
                ),
                opts=child,
            )
            self.connectors[source.capture_key] = connector.id
            self.topic_prefixes[source.capture_key] = pulumi.Output.from_input(source.topic_prefix)
        self.connector_names = pulumi.Output.all(*self.connectors.values())
        self.status_url = args.connect.url.apply(lambda url: f"{url}/connectors?expand=status")
        self.register_outputs(
            {
                "connectors": self.connectors,
                "topic_prefixes": self.topic_prefixes,
                "connector_names": self.connector_names,
                "status_url": self.status_url,
            }
        )
