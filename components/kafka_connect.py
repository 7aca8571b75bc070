"""`KafkaConnect`: a distributed Kafka Connect worker with the Debezium connector plugins.

Healthy means its REST API answers and lists the Debezium connectors the stack uses, on both
runtimes; the connectors themselves are `DebeziumConnector` resources registered on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.docker_service import DockerServiceSpec
from components.jvm import (
    JMX_EXPORTER_CONTAINER_PORT,
    KAFKA_LOGS_DIR_PROPERTY,
    LOG4J2_FILE,
    jmx_exporter_container_mounts,
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
from pipelines.monitoring import JMX_DIR, JMX_EXPORTER_CONFIG_FILE, jmx_exporter_config

CONTAINER_PORT = 8083
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


def connect_image_env(settings: Mapping[str, str]) -> list[str]:
    """Worker properties as the Debezium image's `CONNECT_*` variables (`producer.max.request.size` →
    `CONNECT_PRODUCER_MAX_REQUEST_SIZE`), which its entrypoint writes back into the worker's properties."""
    return [f"CONNECT_{key.upper().replace('.', '_')}={value}" for key, value in settings.items()]


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
                container_port=CONTAINER_PORT,
                process=lambda workdir: self._process_worker(args, url, workdir),
                docker=lambda: self._docker_worker(args),
                depends_on=(args.kafka,),
            ),
        )
        self.url = pulumi.Output.from_input(url)
        self.metrics_address = pulumi.Output.from_input(
            self._internal_address_of(metrics_port, JMX_EXPORTER_CONTAINER_PORT) if (metrics_port := args.ports.get("metrics")) else ""
        )
        self._register({"url": self.url, "metrics_address": self.metrics_address})

    @staticmethod
    def _process_worker(args: KafkaConnectArgs, url: str, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        classpath = f"{toolchain.require_jars(toolchain.connect_lib_dir, 'Kafka Connect')}/*"
        settings = {
            **WORKER_SETTINGS,
            "listeners": url,
            "rest.advertised.host.name": LOOPBACK,
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
            agents = [jmx_exporter_option(toolchain.jmx_exporter_agent, metrics_port, workdir / JMX_EXPORTER_CONFIG_FILE)]
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
            files=args.kafka.bootstrap_servers.apply(
                lambda bootstrap: {
                    "connect-distributed.properties": properties_text({"bootstrap.servers": bootstrap, **settings}),
                    LOG4J2_FILE: log4j2_properties(KAFKA_LOGS_DIR_PROPERTY),
                    **exporter_files,
                }
            ),
        )

    @staticmethod
    def _docker_worker(args: KafkaConnectArgs) -> DockerServiceSpec:
        ports, binds, exporter_env = {CONTAINER_PORT: args.ports.main}, {}, []
        if metrics_port := args.ports.get("metrics"):
            # The image's entrypoint starts the worker through Kafka's launcher, which adds KAFKA_OPTS.
            binds, agent = jmx_exporter_container_mounts(args.placement.toolchain.jmx_exporter_agent, JMX_DIR / f"{JMX_RULES}.yml")
            exporter_env = [f"KAFKA_OPTS={agent}"]
            ports[JMX_EXPORTER_CONTAINER_PORT] = metrics_port
        envs = args.kafka.internal_bootstrap_servers.apply(
            lambda bootstrap: [
                f"BOOTSTRAP_SERVERS={bootstrap}",
                f"GROUP_ID={GROUP_ID}",
                f"CONFIG_STORAGE_TOPIC={INTERNAL_TOPICS['config']}",
                f"OFFSET_STORAGE_TOPIC={INTERNAL_TOPICS['offset']}",
                f"STATUS_STORAGE_TOPIC={INTERNAL_TOPICS['status']}",
                "CONFIG_STORAGE_REPLICATION_FACTOR=1",
                "OFFSET_STORAGE_REPLICATION_FACTOR=1",
                "STATUS_STORAGE_REPLICATION_FACTOR=1",
                f"HEAP_OPTS={' '.join(HEAP)}",
                "CONNECT_OFFSET_FLUSH_INTERVAL_MS=1000",
                "CONNECT_PRODUCER_LINGER_MS=0",
                # The image's copy of Apicurio's converters (the Avro connector's), off by default.
                "ENABLE_APICURIO_CONVERTERS=true",
                *connect_image_env(kafka_limits.CONNECT_PRODUCER_SETTINGS),
                *exporter_env,
            ]
        )
        return DockerServiceSpec(
            image=args.placement.toolchain.image("DEBEZIUM_CONNECT_IMAGE"),
            ports=ports,
            binds=binds,
            health_test=["CMD-SHELL", f"curl -fs http://localhost:{CONTAINER_PORT}/connectors >/dev/null"],
            volume_path="/kafka/data",
            envs=envs,
            memory_mb=1024,
        )
