"""The MySQL-protocol service writes the row-based binlog Debezium reads, and holds the seed data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from confluent_kafka.admin import AdminClient

import stack_outputs as out
from testkit.connectors import drop_captured_mysql_table, mysql_binlog_position
from testkit.kafka import delete_topic
from testkit.names import unique_name
from tests.support.stack import StackOutputs


def variables(connection: pymysql.connections.Connection, *names: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + ", ".join(["%s"] * len(names)) + ")", names)
        return {name: value for name, value in cursor.fetchall()}


@pytest.fixture
def scratch_table(stack: StackOutputs, mysql: pymysql.connections.Connection, kafka_admin: AdminClient) -> Iterator[str]:
    table = unique_name("binlog")
    with mysql.cursor() as cursor:
        cursor.execute(f"CREATE TABLE inventory.{table} (id int PRIMARY KEY, name varchar(64) NOT NULL, amount decimal(10,2))")
    yield table
    drop_captured_mysql_table(mysql, f"inventory.{table}", stack.connect_url, stack[out.MYSQL_CONNECTOR], f"log: {stack.log_of('connect')}")
    # The stack's connector captures `inventory`: its topic for this table is the test's too.
    delete_topic(kafka_admin, f"{stack[out.MYSQL_TOPIC_PREFIX]}.inventory.{table}")


def binlog_events_since(connection: pymysql.connections.Connection, position: tuple[str, int]) -> list[tuple[str, str]]:
    """(event type, info) of every binlog event after `position`, across rotated files."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW BINARY LOGS")
        files = [row[0] for row in cursor.fetchall() if row[0] >= position[0]]
        events: list[tuple[str, str]] = []
        for log_file in files:
            start = position[1] if log_file == position[0] else 4
            cursor.execute(f"SHOW BINLOG EVENTS IN '{log_file}' FROM {start}")
            events.extend((row[2], row[5]) for row in cursor.fetchall())
        return events


def test_binlog_is_on_row_based_with_full_images(mysql: pymysql.connections.Connection) -> None:
    assert variables(mysql, "log_bin", "binlog_format", "binlog_row_image", "server_id") == {
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "server_id": "1",
    }


def test_server_listens_on_loopback_only(mysql: pymysql.connections.Connection, mysql_settings: dict[str, Any]) -> None:
    assert variables(mysql, "bind_address", "port") == {"bind_address": "127.0.0.1", "port": str(mysql_settings["port"])}


def test_seeded_inventory_tables_have_the_sample_rows(mysql: pymysql.connections.Connection) -> None:
    with mysql.cursor() as cursor:
        cursor.execute("SELECT id, name, CAST(price AS CHAR) FROM inventory.products WHERE id BETWEEN 101 AND 105 ORDER BY id")
        assert cursor.fetchall() == (
            (101, "scooter", "49.99"),
            (102, "car battery", "89.00"),
            (103, "12-pack drill bits", "12.50"),
            (104, "hammer", "15.00"),
            (105, "rocks", "7.25"),
        )
        cursor.execute("SELECT COUNT(*) FROM inventory.orders WHERE id BETWEEN 10001 AND 10004")
        assert cursor.fetchone() == (4,)


def test_row_changes_appear_in_the_binlog_as_row_events(mysql: pymysql.connections.Connection, scratch_table: str) -> None:
    start = mysql_binlog_position(mysql)
    with mysql.cursor() as cursor:
        cursor.execute(f"INSERT INTO inventory.{scratch_table} VALUES (1, 'one', 1.10), (2, 'two', 2.20)")
        cursor.execute(f"UPDATE inventory.{scratch_table} SET amount = 9.99 WHERE id = 2")
        cursor.execute(f"DELETE FROM inventory.{scratch_table} WHERE id = 1")
    events = binlog_events_since(mysql, start)
    table_maps = [info for kind, info in events if kind == "Table_map"]
    assert table_maps and all(info.endswith(f"(inventory.{scratch_table})") for info in table_maps)
    row_kinds = {"Write_rows", "Update_rows", "Delete_rows"}
    row_events = [kind.removesuffix("_v1") for kind, _ in events if kind.removesuffix("_v1") in row_kinds]
    assert row_events == ["Write_rows", "Update_rows", "Delete_rows"]


def test_a_replication_client_can_read_the_binlog_position(mysql: pymysql.connections.Connection) -> None:
    log_file, position = mysql_binlog_position(mysql)
    assert log_file.startswith("binlog.") and position > 4
