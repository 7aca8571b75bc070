"""`Kafka`: a single-node KRaft Kafka 4.x (broker and controller in one process)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from components.jvm import (
    KAFKA_LOGS_DIR_PROPERTY,
    LOG4J2_FILE,
    jmx_exporter_option,
    jvm_argv,
    log4j2_properties,
    properties_text,
)
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition
from pipelines import kafka_limits
from pipelines.monitoring import JMX_EXPORTER_CONFIG_FILE, jmx_exporter_config
import service_catalogue

# Any fixed base64 UUID works for a single-node cluster; fixing it keeps restarts on the same data dir valid.
CLUSTER_ID = "Y2Rjc3RhY2stZGV2LWtmaw"
NODE_ID = 1
HEAP = ["-Xms256m", "-Xmx512m"]
INTERNAL_PORT = 19092
"""The container-to-container listener on docker: a broker advertises one address per listener, and
the host's clients need 127.0.0.1 where the other containers need the broker's alias. Not published."""

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


def server_properties(port: int, controller_port: int, log_dir: str, internal_alias: str = "") -> str:
    """The broker's config; with `internal_alias` (docker) also an INTERNAL listener the other
    containers reach at `<alias>:INTERNAL_PORT`, the host's clients keeping 127.0.0.1:`port`."""
    if internal_alias:
        listeners = {
            "listeners": f"PLAINTEXT://0.0.0.0:{port},INTERNAL://0.0.0.0:{INTERNAL_PORT},CONTROLLER://{LOOPBACK}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port},INTERNAL://{internal_alias}:{INTERNAL_PORT}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
        }
    else:
        listeners = {
            "listeners": f"PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOOPBACK}:{port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
        }
    settings = {
        "node.id": str(NODE_ID),
        "process.roles": "broker,controller",
        "listeners": listeners["listeners"],
        "advertised.listeners": listeners["advertised.listeners"],
        "listener.security.protocol.map": listeners["listener.security.protocol.map"],
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": listeners["inter.broker.listener.name"],
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
                process=lambda workdir: self._process_broker(name, args, workdir),
                start_timeout=90.0,
            ),
        )
        self.bootstrap_servers = pulumi.Output.from_input(bootstrap)
        self.internal_bootstrap_servers = pulumi.Output.from_input(
            self._internal_address() if args.placement.listen_host == LOOPBACK else f"{name}:{INTERNAL_PORT}"
        )
        self.metrics_address = pulumi.Output.from_input(
            self._internal_address_of(metrics_port) if (metrics_port := args.ports.get("metrics")) else ""
        )
        self._register(
            {
                "bootstrap_servers": self.bootstrap_servers,
                "internal_bootstrap_servers": self.internal_bootstrap_servers,
                "metrics_address": self.metrics_address,
            }
        )

    @staticmethod
    def _process_broker(name: str, args: KafkaArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        classpath = f"{toolchain.require_jars(toolchain.kafka_lib_dir, 'Kafka broker')}/*"
        java = toolchain.executable("java")
        agents, exporter_files = [], {}
        if metrics_port := args.ports.get("metrics"):
            agents = [
                jmx_exporter_option(toolchain.jmx_exporter_agent, metrics_port, workdir / JMX_EXPORTER_CONFIG_FILE, args.placement.listen_host)
            ]
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
                "server.properties": server_properties(
                    args.ports.main,
                    args.ports.of("controller"),
                    str(workdir / "data"),
                    "" if args.placement.listen_host == LOOPBACK else name,
                ),
                LOG4J2_FILE: log4j2_properties(KAFKA_LOGS_DIR_PROPERTY),
                **exporter_files,
            },
        )
