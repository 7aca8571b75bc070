"""One record size limit on every hop (broker, topics Connect creates, Connect's producer), both runtimes.

A hop left at Kafka's 1 MB default fails the source task on a large row with RecordTooLargeException.
"""

from __future__ import annotations

import pulumi

from components.change_capture import mysql_source_config, postgres_source_config
from components.kafka import Kafka, KafkaArgs
from components.kafka_connect import MARIADB_CONNECTOR, KafkaConnect, KafkaConnectArgs
from components.network import StackNetwork, StackNetworkArgs
from components.runtime import Placement
from pipelines.kafka_limits import MAX_RECORD_BYTES
from tests.support.pulumi_mocks import Graph, build, settle
from tests.support.stack_graphs import kafka_graph

LIMIT = str(MAX_RECORD_BYTES)
TEN_MB_ROW_UPDATE_BYTES = 2 * 10 * 1000 * 1000
"""An update of a 10 MB value under REPLICA IDENTITY FULL carries it twice (before and after)."""


def connect_graph(placement: Placement) -> Graph[KafkaConnect]:
    def stack(opts: pulumi.ResourceOptions) -> KafkaConnect:
        network = StackNetwork("network", StackNetworkArgs(placement=placement), opts=opts)
        kafka = Kafka("kafka", KafkaArgs(placement=placement, network=network, port=29092, controller_port=29093), opts=opts)
        return KafkaConnect("connect", KafkaConnectArgs(placement=placement, network=network, kafka=kafka, port=28083), opts=opts)

    return build(stack)


def test_the_limit_leaves_room_for_a_ten_megabyte_row_updated_with_its_before_image() -> None:
    assert MAX_RECORD_BYTES >= 1.5 * TEN_MB_ROW_UPDATE_BYTES


def test_process_broker_and_worker_take_the_limit(process_placement: Placement) -> None:
    broker = kafka_graph(process_placement).inputs_of(":LocalService")["files"]["server.properties"]
    assert f"message.max.bytes={LIMIT}\n" in broker and f"replica.fetch.max.bytes={LIMIT}\n" in broker
    graph = connect_graph(process_placement)
    [worker] = [child for child in graph.children if child.name == "connect-process"]
    worker_properties = settle(worker.props["files"])[0]["connect-distributed.properties"]
    assert f"producer.max.request.size={LIMIT}\n" in worker_properties
    assert f"producer.buffer.memory={2 * MAX_RECORD_BYTES}\n" in worker_properties


def test_docker_broker_and_worker_take_the_limit(docker_placement: Placement) -> None:
    broker = dict(entry.split("=", 1) for entry in kafka_graph(docker_placement).inputs_of("docker:index/container:Container")["envs"])
    assert broker["KAFKA_MESSAGE_MAX_BYTES"] == LIMIT and broker["KAFKA_REPLICA_FETCH_MAX_BYTES"] == LIMIT
    [worker] = [args.inputs for args in connect_graph(docker_placement).mocks.registered if args.name == "connect-container"]
    envs = dict(entry.split("=", 1) for entry in worker["envs"])
    assert envs["CONNECT_PRODUCER_MAX_REQUEST_SIZE"] == LIMIT
    assert envs["CONNECT_PRODUCER_BUFFER_MEMORY"] == str(2 * MAX_RECORD_BYTES)


def test_topics_connect_creates_take_the_limit() -> None:
    postgres = postgres_source_config("127.0.0.1", 25432, "postgres", "pw", "inventory", "pg", "slot")
    mysql = mysql_source_config(MARIADB_CONNECTOR, "127.0.0.1", 23306, "root", "pw", "inventory", "my", "127.0.0.1:29092")
    for config in (postgres, mysql):
        assert config["topic.creation.default.max.message.bytes"] == LIMIT
