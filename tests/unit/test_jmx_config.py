"""Prometheus' JMX exporter on Kafka and Connect: the agent's option on both runtimes, and its rules.

The option's shape is the 1.0.1 agent's own (`[host:]<port>:<config>`, its default host being every
interface); the rules are checked against MBean attribute lines as the agent writes them for its
patterns (`domain<key=value, ...><>attribute: value`), taken from a live Connect worker with a
Debezium Postgres connector running, paused and with a failed task, and from a live broker.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

import service_catalogue
from components.jvm import jmx_exporter_option
from components.kafka import Kafka, KafkaArgs
from components.kafka_connect import KafkaConnect, KafkaConnectArgs
from components.network import StackNetwork, StackNetworkArgs
from components.runtime import Placement
from pipelines.monitoring import JMX_DIR, JMX_EXPORTER_CONFIG_FILE
from service_catalogue import ServicePorts
from tests.support.pulumi_mocks import Graph, build
from tests.support.stack_graphs import UNIT_SETTINGS
from toolchain.layout import Toolchain

SERVICE = ":LocalService"
AGENT_ARGUMENTS = re.compile(r"^(?:((?:[\w.-]+)|(?:\[.+])):)?(\d{1,5}):(.+)")
"""How the 1.0.1 agent parses what follows `=` (JavaAgent.CONFIGURATION_REGEX)."""
KAFKA_PORTS, CONNECT_PORTS = UNIT_SETTINGS.ports[service_catalogue.KAFKA], UNIT_SETTINGS.ports[service_catalogue.CONNECT]
KAFKA_METRICS_PORT, CONNECT_METRICS_PORT = KAFKA_PORTS.of("metrics"), CONNECT_PORTS.of("metrics")


def with_metrics(ports: ServicePorts, metrics_port: int | None) -> ServicePorts:
    """`ports` with its exporter on `metrics_port`, or without one."""
    without = ports.without("metrics")
    return without if metrics_port is None else ServicePorts(ports.service, (*without.numbers, metrics_port))


def with_agent(placement: Placement, tmp_path: Path) -> Placement:
    """The placement with a toolchain that has the agent's jar: the real toolchain's folders, linked,
    and an empty jar (nothing runs it here)."""
    real = placement.toolchain
    cache = tmp_path / "toolchain"
    cache.mkdir()
    for entry in real.cache_dir.iterdir():
        if entry.name != "jmx-exporter":
            (cache / entry.name).symlink_to(entry.resolve())
    jar = cache / "jmx-exporter" / f"jmx_prometheus_javaagent-{real.versions['JMX_EXPORTER_VERSION']}.jar"
    jar.parent.mkdir()
    jar.write_bytes(b"")
    return replace(placement, toolchain=Toolchain(versions=real.versions, cache_dir=cache))


@pytest.fixture
def process_with_agent(process_placement: Placement, tmp_path: Path) -> Placement:
    return with_agent(process_placement, tmp_path)


def broker_graph(placement: Placement, metrics_port: int | None) -> Graph[Kafka]:
    """The broker alone, its exporter on `metrics_port` or none (test-only wiring: the stack always has one)."""

    def stack(opts: pulumi.ResourceOptions) -> Kafka:
        network = StackNetwork("network", StackNetworkArgs(placement=placement), opts=opts)
        return Kafka("kafka", KafkaArgs(placement=placement, network=network, ports=with_metrics(KAFKA_PORTS, metrics_port)), opts=opts)

    return build(stack)


def worker_graph(placement: Placement, metrics_port: int | None) -> Graph[KafkaConnect]:
    """A Connect worker and its broker (neither with an exporter but the worker's on `metrics_port`)."""

    def stack(opts: pulumi.ResourceOptions) -> KafkaConnect:
        network = StackNetwork("network", StackNetworkArgs(placement=placement), opts=opts)
        kafka = Kafka("kafka", KafkaArgs(placement=placement, network=network, ports=with_metrics(KAFKA_PORTS, None)), opts=opts)
        args = KafkaConnectArgs(placement=placement, network=network, ports=with_metrics(CONNECT_PORTS, metrics_port), kafka=kafka)
        return KafkaConnect("connect", args, opts=opts)

    return build(stack)


def launched(graph: Graph[Any], service: str) -> dict[str, Any]:
    [inputs] = [args.inputs for args in graph.mocks.registered if args.typ.endswith(SERVICE) and args.inputs["service"] == service]
    return inputs


def agent_options(argv: list[str]) -> list[str]:
    return [option for option in argv if option.startswith("-javaagent:")]


def test_the_option_is_the_agents_host_port_config_form() -> None:
    option = jmx_exporter_option(Path("/tc/jmx.jar"), KAFKA_METRICS_PORT, Path("/state/kafka/jmx-exporter.yml"))
    assert option == f"-javaagent:/tc/jmx.jar=127.0.0.1:{KAFKA_METRICS_PORT}:/state/kafka/jmx-exporter.yml"
    host, port, config = AGENT_ARGUMENTS.match(option.split("=", 1)[1]).groups()  # type: ignore[union-attr]
    assert (host, port, config) == ("127.0.0.1", str(KAFKA_METRICS_PORT), "/state/kafka/jmx-exporter.yml")


@pytest.mark.parametrize(("service", "rules", "metrics_port"), [("kafka", "kafka", KAFKA_METRICS_PORT), ("connect", "connect", CONNECT_METRICS_PORT)])
def test_a_process_runs_the_agent_on_loopback_with_its_rules_in_its_work_dir(
    process_with_agent: Placement, service: str, rules: str, metrics_port: int
) -> None:
    placement = process_with_agent
    graph = broker_graph(placement, metrics_port) if service == "kafka" else worker_graph(placement, metrics_port)
    inputs = launched(graph, service)
    workdir = Path(inputs["workdir"])
    [option] = agent_options(inputs["argv"])
    jar = placement.toolchain.jmx_exporter_agent
    assert option == f"-javaagent:{jar}=127.0.0.1:{metrics_port}:{workdir / JMX_EXPORTER_CONFIG_FILE}"
    # Before the main class, or the JVM would hand it to Kafka as an argument.
    assert inputs["argv"].index(option) < inputs["argv"].index("-cp")
    assert inputs["files"][JMX_EXPORTER_CONFIG_FILE] == (JMX_DIR / f"{rules}.yml").read_text()
    assert inputs["ports"][-1] == metrics_port


@pytest.mark.parametrize("service", ["kafka", "connect"])
def test_without_a_metrics_port_a_process_has_no_agent(process_placement: Placement, service: str) -> None:
    graph = broker_graph(process_placement, None) if service == "kafka" else worker_graph(process_placement, None)
    inputs = launched(graph, service)
    assert not agent_options(inputs["argv"]) and JMX_EXPORTER_CONFIG_FILE not in inputs["files"]
    assert inputs["ports"] == list(with_metrics(KAFKA_PORTS if service == "kafka" else CONNECT_PORTS, None).numbers)


# --- The rules -----------------------------------------------------------------------------------

def exported(service: str, bean_line: str) -> tuple[str, dict[str, str], str] | None:
    """The (name, labels, value) the first rule matching `bean_line` exports, as the agent does: the
    pattern matched as `^.*(?:pattern).*$`, `$n` replaced in name and labels, the name made safe and
    lowercased, a fixed `value` kept."""
    config = yaml.safe_load((JMX_DIR / f"{service}.yml").read_text())
    for rule in config["rules"]:
        matched = re.match(rf"^.*(?:{rule['pattern']}).*$", bean_line)  # the agent's anchoring
        if matched:
            expand = lambda text: re.sub(r"\$(\d+)", lambda group: matched.group(int(group.group(1))) or "", text)  # noqa: E731
            name = re.sub(r"[^a-zA-Z0-9:_]", "_", expand(rule["name"])).lower()
            labels = {key: expand(value) for key, value in rule.get("labels", {}).items()}
            return name, labels, str(rule.get("value", bean_line.rsplit(": ", 1)[1]))
    return None


def test_the_configs_are_lowercase_and_read_only_the_beans_their_rules_match() -> None:
    for service in ("kafka", "connect"):
        config = yaml.safe_load((JMX_DIR / f"{service}.yml").read_text())
        assert config["lowercaseOutputName"] is True and config["lowercaseOutputLabelNames"] is True
        assert config["includeObjectNames"] and config["rules"]
        for rule in config["rules"]:
            re.compile(rule["pattern"])
            assert rule["type"] in ("GAUGE", "COUNTER"), rule


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("kafka.connect<type=connector-metrics, connector=cdcstack-postgres><>status: running",
         ("kafka_connect_connector_status", {"connector": "cdcstack-postgres", "status": "running"}, "1")),
        ("kafka.connect<type=connector-metrics, connector=cdcstack-mysql><>status: paused",
         ("kafka_connect_connector_status", {"connector": "cdcstack-mysql", "status": "paused"}, "1")),
        # A name with a character JMX reserves is quoted in the MBean name; the label is the name.
        ('kafka.connect<type=connector-metrics, connector="jmx:quoted"><>status: running',
         ("kafka_connect_connector_status", {"connector": "jmx:quoted", "status": "running"}, "1")),
        ("kafka.connect<type=connector-task-metrics, connector=cdcstack-postgres, task=0><>status: failed",
         ("kafka_connect_task_status", {"connector": "cdcstack-postgres", "task": "0", "status": "failed"}, "1")),
        ("kafka.connect<type=connector-task-metrics, connector=cdcstack-postgres, task=0><>running-ratio: 1.0",
         ("kafka_connect_task_running_ratio", {"connector": "cdcstack-postgres", "task": "0"}, "1.0")),
        ("kafka.connect<type=source-task-metrics, connector=cdcstack-postgres, task=0><>source-record-poll-rate: 0.0244",
         ("kafka_connect_source_task_source_record_poll_rate", {"connector": "cdcstack-postgres", "task": "0"}, "0.0244")),
        ("kafka.connect<type=source-task-metrics, connector=cdcstack-postgres, task=0><>source-record-write-total: 3.0",
         ("kafka_connect_source_task_source_record_write_total", {"connector": "cdcstack-postgres", "task": "0"}, "3.0")),
        ("kafka.connect<type=source-task-metrics, connector=cdcstack-postgres, task=0><>source-record-active-count: 0.0",
         ("kafka_connect_source_task_source_record_active_count", {"connector": "cdcstack-postgres", "task": "0"}, "0.0")),
        ("kafka.connect<type=connect-worker-metrics, connector=cdcstack-postgres><>connector-failed-task-count: 1.0",
         ("kafka_connect_worker_connector_failed_task_count", {"connector": "cdcstack-postgres"}, "1.0")),
        ("debezium.postgres<type=connector-metrics, context=streaming, server=pg><>milli_seconds_behind_source: 82",
         ("debezium_streaming_milli_seconds_behind_source", {"plugin": "postgres", "server": "pg"}, "82")),
    ],
)
def test_connect_rules_export_status_as_a_label_and_rates_per_task(line: str, expected: tuple[str, dict[str, str], str]) -> None:
    assert exported("connect", line) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec, topic=pg.inventory.orders><>Count: 3",
         ("kafka_topic_messages_in_total", {"topic": "pg.inventory.orders"}, "3")),
        ("kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec, topic=pg.inventory.orders><>OneMinuteRate: 0.05",
         ("kafka_topic_messages_in_per_second", {"topic": "pg.inventory.orders"}, "0.05")),
        ("kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec><>Count: 45",
         ("kafka_broker_messages_in_total", {}, "45")),
        ("kafka.log<type=Log, name=LogEndOffset, topic=pg.inventory.orders, partition=0><>Value: 3",
         ("kafka_log_end_offset", {"topic": "pg.inventory.orders", "partition": "0"}, "3")),
        ("kafka.server<type=ReplicaManager, name=UnderReplicatedPartitions><>Value: 0",
         ("kafka_server_under_replicated_partitions", {}, "0")),
    ],
)
def test_broker_rules_export_topic_rates_offsets_and_replication(line: str, expected: tuple[str, dict[str, str], str]) -> None:
    assert exported("kafka", line) == expected
