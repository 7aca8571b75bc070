"""`KafkaConnect`: a distributed Kafka Connect worker with the Debezium connector plugins.

Healthy means its REST API answers and lists the Debezium connectors the stack uses, on both
runtimes; the connectors themselves are `DebeziumConnector` resources registered on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.jvm import (
    KAFKA_LOGS_DIR_PROPERTY,
    LOG4J2_FILE,
    jmx_exporter_option,
    jvm_argv,
    log4j2_properties,
    properties_text,
)
from components.kafka import Kafka
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition
from pipelines import kafka_limits
from pipelines.connectors import AVRO_CONVERTER, DEBEZIUM_CONNECTORS
from pipelines.monitoring import JMX_EXPORTER_CONFIG_FILE, jmx_exporter_config

HEAP = ["-Xms128m", "-Xmx512m"]
GROUP_ID = "cdcstack-connect"
INTERNAL_TOPICS = {"config": "connect-configs", "offset": "connect-offsets", "status": "connect-status"}
JMX_RULES = "connect"
"""The worker's JMX exporter rules: monitoring/jmx/connect.yml (connector and task status, source task rates, Debezium's own)."""

# Shared by both runtimes: JSON with schemas (typed events), single-replica internal topics, and
# short flush/commit intervals so a test never waits long for offsets.
WORKER_SETTINGS: dict[str, str] = {
    "group.id": GROUP_ID,
    "key.converter": "org.apache.kafka.connect.json.JsonConverter",
    "value.converter": "org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable": "true",
    "value.converter.schemas.enable": "true",
    "config.storage.topic": INTERNAL_TOPICS["config"],
    "offset.storage.topic": INTERNAL_TOPICS["offset"],
    "status.storage.topic": INTERNAL_TOPICS["status"],
    "config.storage.replication.factor": "1",
    "offset.storage.replication.factor": "1",
    "status.storage.replication.factor": "1",
    "offset.flush.interval.ms": "1000",
    "producer.linger.ms": "0",
    "topic.creation.enable": "true",
    # Without these a large row fails its source task with RecordTooLargeException (producer default: 1 MB).
    **kafka_limits.CONNECT_PRODUCER_SETTINGS,
}


@dataclass(frozen=True)
class KafkaConnectArgs(ServiceArgs):
    """Its ports: the REST API (main) and the JMX exporter Prometheus scrapes ("metrics"; a handle
    without it runs no exporter)."""

    kafka: Kafka
    """The broker it stores configs, offsets and status in; the worker starts after it is healthy."""
    plugins: Sequence[str] = (*DEBEZIUM_CONNECTORS, AVRO_CONVERTER)
    """Plugin classes (connectors, converters) the worker must list to count as healthy."""


class KafkaConnect(ServiceComponent):
    """A Kafka Connect worker (distributed mode, one node) with Debezium's connectors."""

    url: pulumi.Output[str]
    metrics_address: pulumi.Output[str]
    """`host:port` of its JMX exporter as Prometheus reaches it ("" when its ports leave out "metrics")."""

    def __init__(self, name: str, args: KafkaConnectArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:KafkaConnect", name, service_catalogue.CONNECT, opts)
        url = f"http://{LOOPBACK}:{args.ports.main}"
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "connect", "url": url, "plugins": list(args.plugins)},
                process=lambda workdir: self._process_worker(name, args, workdir),
                depends_on=(args.kafka,),
            ),
        )
        self.url = pulumi.Output.from_input(url)
        self.metrics_address = pulumi.Output.from_input(
            self._internal_address_of(metrics_port) if (metrics_port := args.ports.get("metrics")) else ""
        )
        self._register({"url": self.url, "metrics_address": self.metrics_address})

    @staticmethod
    def _process_worker(name: str, args: KafkaConnectArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        listen_host = args.placement.listen_host
        classpath = f"{toolchain.require_jars(toolchain.connect_lib_dir, 'Kafka Connect')}/*"
        settings = {
            **WORKER_SETTINGS,
            "listeners": f"http://{listen_host}:{args.ports.main}",
            "rest.advertised.host.name": LOOPBACK if listen_host == LOOPBACK else name,
            "rest.advertised.port": str(args.ports.main),
            "plugin.path": ",".join(
                [
                    str(toolchain.require_plugins(toolchain.debezium_plugin_dir, "Debezium connector")),
                    str(toolchain.require_plugins(toolchain.converter_plugin_dir, "Apicurio Avro converter")),
                ]
            ),
            # Reads each plugin's service manifests instead of scanning every class: seconds, not minutes.
            "plugin.discovery": "service_load",
        }
        agents, exporter_files = [], {}
        if metrics_port := args.ports.get("metrics"):
            agents = [jmx_exporter_option(toolchain.jmx_exporter_agent, metrics_port, workdir / JMX_EXPORTER_CONFIG_FILE, listen_host)]
            exporter_files = {JMX_EXPORTER_CONFIG_FILE: jmx_exporter_config(JMX_RULES)}
        return ProcessLaunch(
            argv=jvm_argv(
                toolchain.executable("java"),
                HEAP,
                classpath,
                workdir,
                "org.apache.kafka.connect.cli.ConnectDistributed",
                str(workdir / "connect-distributed.properties"),
                logs_dir_property=KAFKA_LOGS_DIR_PROPERTY,
                agents=agents,
            ),
            files=args.kafka.internal_bootstrap_servers.apply(
                lambda bootstrap: {
                    "connect-distributed.properties": properties_text({"bootstrap.servers": bootstrap, **settings}),
                    LOG4J2_FILE: log4j2_properties(KAFKA_LOGS_DIR_PROPERTY),
                    **exporter_files,
                }
            ),
        )
