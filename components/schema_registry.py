"""`SchemaRegistry`: a schema registry speaking the Confluent REST API, for Avro change events.

Apicurio Registry (Confluent's registry is on no registry reachable here) serves the Confluent API at
`/apis/ccompat/v7` (what `url` points at: confluent-kafka's `SchemaRegistryClient`, the sinks'
`AvroDeserializer`, `SchemaSubject`) and its own at `/apis/registry/v2` (what Debezium's Avro
converter registers through: `converter_url`). Subjects and versions are kept in an H2 database file
in the data dir, so they survive a restart. It publishes a CloudEvent for every artifact, version and
rule change on the Kafka topic `events_topic`: the schema change notifications downstream consumers
subscribe to. Healthy once `GET /apis/ccompat/v7/subjects` answers.

The pinned Quarkus runner on Java 17, bound to 127.0.0.1 (process) or its container's interfaces (docker).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.kafka import Kafka
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition
from providers.kafka_topic import KafkaTopic, KafkaTopicArgs

HEAP = ["-Xms64m", "-Xmx384m"]
CONFLUENT_API = "/apis/ccompat/v7"
REGISTRY_API = "/apis/registry/v2"
EVENTS_TOPIC = "registry-events"
DATABASE = "data/registry"


@dataclass(frozen=True)
class SchemaRegistryArgs(ServiceArgs):
    kafka: Kafka
    """Where it publishes schema change events; the registry starts once the broker is healthy."""


def registry_environment(database_file: str, port: int, host: str, kafka_bootstrap: str) -> dict[str, str]:
    """Apicurio's settings, the same on both runtimes."""
    return {
        "HTTP_PORT": str(port),
        "QUARKUS_HTTP_HOST": host,
        # A file, not the default in-memory database: subjects outlive a restart of the registry.
        "REGISTRY_DATASOURCE_URL": f"jdbc:h2:file:{database_file}",
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REGISTRY_EVENTS_KAFKA_TOPIC": EVENTS_TOPIC,
        # The ccompat API returns content ids as schema ids, the ids the converter writes
        # (apicurio.registry.use-id=contentId), so both APIs agree on what a record's id means.
        "ENABLE_CCOMPAT_LEGACY_ID_MODE": "false",
    }


class SchemaRegistry(ServiceComponent):
    """A Confluent-compatible schema registry; `url` is the base confluent-kafka clients take."""

    url: pulumi.Output[str]
    """The Confluent API base (`…/apis/ccompat/v7`) on 127.0.0.1."""
    internal_url: pulumi.Output[str]
    """The Confluent API base as the stack's services reach it (container alias on docker)."""
    converter_url: pulumi.Output[str]
    """Apicurio's own API base, as the Connect worker reaches it: `apicurio.registry.url` of the converter."""
    events_topic: pulumi.Output[str]

    def __init__(self, name: str, args: SchemaRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:SchemaRegistry", name, service_catalogue.SCHEMA_REGISTRY, opts)
        base = f"http://{LOOPBACK}:{args.ports.main}"
        # Apicurio only produces to it, and the broker creates no topic on demand.
        events_topic = KafkaTopic(
            f"{name}-events-topic",
            KafkaTopicArgs(topic=EVENTS_TOPIC, bootstrap_servers=args.kafka.bootstrap_servers),
            pulumi.ResourceOptions(parent=self, depends_on=[args.kafka]),
        )
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": f"{base}{CONFLUENT_API}/subjects"},
                process=lambda workdir: self._process_registry(args, workdir),
                depends_on=(args.kafka, events_topic),
                memory_mb=768,
            ),
        )
        internal_base = f"http://{self._internal_address()}"
        self.url = self._once_ready(f"{base}{CONFLUENT_API}")
        self.internal_url = self._once_ready(f"{internal_base}{CONFLUENT_API}")
        self.converter_url = self._once_ready(f"{internal_base}{REGISTRY_API}")
        self.events_topic = pulumi.Output.from_input(EVENTS_TOPIC)
        self._register(
            {
                "url": self.url,
                "internal_url": self.internal_url,
                "converter_url": self.converter_url,
                "events_topic": self.events_topic,
            }
        )

    @staticmethod
    def _process_registry(args: SchemaRegistryArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        return ProcessLaunch(
            argv=[toolchain.executable("java"), *HEAP, "-jar", str(toolchain.schema_registry_jar)],
            init=[["mkdir", "-p", "data"]],
            env=pulumi.Output.from_input(args.kafka.internal_bootstrap_servers).apply(
                lambda bootstrap: registry_environment(str(workdir / DATABASE), args.ports.main, args.placement.listen_host, bootstrap)
            ),
        )
