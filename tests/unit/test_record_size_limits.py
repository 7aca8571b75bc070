"""One record size limit on every hop (broker, topics Connect creates, Connect's producer), both runtimes.

A hop left at Kafka's 1 MB default fails the source task on a large row with RecordTooLargeException.
"""

from __future__ import annotations

import service_catalogue
from components.runtime import Placement
from pipelines.connectors import MARIADB_CONNECTOR, mysql_source_config, postgres_source_config
from pipelines.kafka_limits import MAX_RECORD_BYTES
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import UNIT_SETTINGS, service_graph

LIMIT = str(MAX_RECORD_BYTES)
TEN_MB_ROW_UPDATE_BYTES = 2 * 10 * 1000 * 1000
"""An update of a 10 MB value under REPLICA IDENTITY FULL carries it twice (before and after)."""
POSTGRES_PORTS = UNIT_SETTINGS.ports[service_catalogue.POSTGRES]
MYSQL_PORTS = UNIT_SETTINGS.ports[service_catalogue.MYSQL]
KAFKA_PORTS = UNIT_SETTINGS.ports[service_catalogue.KAFKA]


def test_the_limit_leaves_room_for_a_ten_megabyte_row_updated_with_its_before_image() -> None:
    assert MAX_RECORD_BYTES >= 1.5 * TEN_MB_ROW_UPDATE_BYTES


def test_process_broker_and_worker_take_the_limit(process_placement: Placement) -> None:
    broker = service_graph("kafka", process_placement).inputs_of(":LocalService")["files"]["server.properties"]
    assert f"message.max.bytes={LIMIT}\n" in broker and f"replica.fetch.max.bytes={LIMIT}\n" in broker
    worker_properties = settle(service_graph("connect", process_placement).named("connect-process").props["files"])[0][
        "connect-distributed.properties"
    ]
    assert f"producer.max.request.size={LIMIT}\n" in worker_properties
    assert f"producer.buffer.memory={2 * MAX_RECORD_BYTES}\n" in worker_properties


def test_topics_connect_creates_take_the_limit() -> None:
    postgres = postgres_source_config("127.0.0.1", POSTGRES_PORTS.main, "postgres", "pw", "inventory", "pg", "slot")
    mysql = mysql_source_config(MARIADB_CONNECTOR, "127.0.0.1", MYSQL_PORTS.main, "root", "pw", "inventory", "my", f"127.0.0.1:{KAFKA_PORTS.main}")
    for config in (postgres, mysql):
        assert config["topic.creation.default.max.message.bytes"] == LIMIT
