"""`Kafka`: a single-node KRaft Kafka 4.x (broker and controller in one process)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

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
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition
from pipelines import kafka_limits
from pipelines.monitoring import JMX_DIR, JMX_EXPORTER_CONFIG_FILE, jmx_exporter_config
import service_catalogue

# Any fixed base64 UUID works for a single-node cluster; fixing it keeps restarts on the same data dir valid.
CLUSTER_ID = "Y2Rjc3RhY2stZGV2LWtmaw"
NODE_ID = 1
HEAP = ["-Xms256m", "-Xmx512m"]
INTERNAL_PORT = 19092
"""Container-to-container listener (docker runtime)."""
CONTAINER_PORT = 9092

# Single-node settings shared by both runtimes: every internal topic with one replica.
BROKER_SETTINGS: dict[str, str] = {
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # Off: a producer's metadata refresh would bring back a topic deleted under it (Connect's
    # producer keeps every topic it wrote to for 5 minutes), so a test's deleted topic returned
    # empty minutes later. Connectors create theirs (topic.creation), the sinks their dead-letter
    # topics, the stack the registry's events topic, tests their own.
    "auto.create.topics.enable": "false",
    # The pipeline's one record size limit (a 10 MB row must replicate); see pipelines/kafka_limits.py.
    **kafka_limits.BROKER_SETTINGS,
}


JMX_RULES = "kafka"
"""The broker's JMX exporter rules: monitoring/jmx/kafka.yml."""


@dataclass(frozen=True)
class KafkaArgs(ServiceArgs):
    """Its ports: the broker (main), the KRaft controller (process runtime) and the JMX exporter
    Prometheus scrapes ("metrics"; a handle without it runs no exporter)."""


def server_properties(port: int, controller_port: int, log_dir: str) -> str:
    settings = {
        "node.id": str(NODE_ID),
        "process.roles": "broker,controller",
        "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.quorum.voters": f"{NODE_ID}@{LOOPBACK}:{controller_port}",
        "log.dirs": log_dir,
        **BROKER_SETTINGS,
    }
    return properties_text(settings)


class Kafka(ServiceComponent):
    """Kafka in KRaft mode; healthy once a metadata request lists the broker."""

    bootstrap_servers: pulumi.Output[str]
    internal_bootstrap_servers: pulumi.Output[str]
    """How other services of the stack reach the broker (its INTERNAL listener on docker)."""
    metrics_address: pulumi.Output[str]
    """`host:port` of its JMX exporter as Prometheus reaches it ("" when its ports leave out "metrics")."""

    def __init__(self, name: str, args: KafkaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:Kafka", name, service_catalogue.KAFKA, opts)
        bootstrap = f"{LOOPBACK}:{args.ports.main}"
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "kafka", "bootstrap_servers": bootstrap},
                container_port=INTERNAL_PORT,
                process=lambda workdir: self._process_broker(args, workdir),
                docker=lambda: self._docker_broker(name, args),
                start_timeout=90.0,
            ),
        )
        self.bootstrap_servers = pulumi.Output.from_input(bootstrap)
        self.internal_bootstrap_servers = pulumi.Output.from_input(self._internal_address())
        self.metrics_address = pulumi.Output.from_input(
            self._internal_address_of(metrics_port, JMX_EXPORTER_CONTAINER_PORT) if (metrics_port := args.ports.get("metrics")) else ""
        )
        self._register(
            {
                "bootstrap_servers": self.bootstrap_servers,
                "internal_bootstrap_servers": self.internal_bootstrap_servers,
                "metrics_address": self.metrics_address,
            }
        )

    @staticmethod
    def _process_broker(args: KafkaArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        classpath = f"{toolchain.require_jars(toolchain.kafka_lib_dir, 'Kafka broker')}/*"
        java = toolchain.executable("java")
        agents, exporter_files = [], {}
        if metrics_port := args.ports.get("metrics"):
            agents = [jmx_exporter_option(toolchain.jmx_exporter_agent, metrics_port, workdir / JMX_EXPORTER_CONFIG_FILE)]
            exporter_files = {JMX_EXPORTER_CONFIG_FILE: jmx_exporter_config(JMX_RULES)}
        return ProcessLaunch(
            argv=jvm_argv(
                java,
                HEAP,
                classpath,
                workdir,
                "kafka.Kafka",
                str(workdir / "server.properties"),
                logs_dir_property=KAFKA_LOGS_DIR_PROPERTY,
                agents=agents,
            ),
            init=[[java, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c", "server.properties"]],
            files={
                "server.properties": server_properties(args.ports.main, args.ports.of("controller"), str(workdir / "data")),
                LOG4J2_FILE: log4j2_properties(KAFKA_LOGS_DIR_PROPERTY),
                **exporter_files,
            },
        )

    @staticmethod
    def _docker_broker(name: str, args: KafkaArgs) -> DockerServiceSpec:
        envs = {
            "KAFKA_NODE_ID": str(NODE_ID),
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_LISTENERS": f"PLAINTEXT://:{CONTAINER_PORT},INTERNAL://:{INTERNAL_PORT},CONTROLLER://:9093",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{LOOPBACK}:{args.ports.main},INTERNAL://{name}:{INTERNAL_PORT}",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_INTER_BROKER_LISTENER_NAME": "INTERNAL",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": f"{NODE_ID}@localhost:9093",
            "CLUSTER_ID": CLUSTER_ID,
            "KAFKA_HEAP_OPTS": " ".join(HEAP),
            **{f"KAFKA_{key.upper().replace('.', '_')}": value for key, value in BROKER_SETTINGS.items()},
        }
        ports, binds = {CONTAINER_PORT: args.ports.main}, {}
        if metrics_port := args.ports.get("metrics"):
            # The image's launcher adds KAFKA_OPTS to the broker's JVM options.
            binds, envs["KAFKA_OPTS"] = jmx_exporter_container_mounts(args.placement.toolchain.jmx_exporter_agent, JMX_DIR / f"{JMX_RULES}.yml")
            ports[JMX_EXPORTER_CONTAINER_PORT] = metrics_port
        return DockerServiceSpec(
            image=args.placement.toolchain.image("KAFKA_IMAGE"),
            ports=ports,
            binds=binds,
            health_test=[
                "CMD-SHELL",
                # Without KAFKA_OPTS: the tool's JVM would start the exporter again, on the port the
                # broker's holds, and exit for it.
                f"KAFKA_OPTS= /opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:{CONTAINER_PORT} >/dev/null",
            ],
            volume_path="/var/lib/kafka/data",
            envs=[f"{key}={value}" for key, value in envs.items()],
            memory_mb=1024,
        )
