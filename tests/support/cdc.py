"""CDC test helpers: tables a test owns in the captured schemas, each with the reader of its topic."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql
from confluent_kafka.admin import AdminClient

from pipelines.debezium import ChangeEvent
from testkit.connectors import drop_captured_mysql_table, drop_captured_postgres_table
from testkit.kafka import EventReader, delete_topic, ensure_topic
from testkit.names import unique_name


@dataclass
class CapturedTable:
    """A table a test created in a captured schema, with the reader of its topic."""

    name: str
    qualified: str
    topic: str
    reader: EventReader


@contextmanager
def captured_postgres_table(
    pg: psycopg.Connection, admin: AdminClient, bootstrap: str, topic_prefix: str, columns_sql: str, connect_url: str, connector: str
) -> Iterator[CapturedTable]:
    """`inventory.<unique>` in Postgres, captured by the stack's `connector`; dropped with its topic
    afterwards, once the connector has streamed its last change."""
    name = unique_name("cdc")
    topic = f"{topic_prefix}.inventory.{name}"
    ensure_topic(admin, topic)
    pg.execute(f"CREATE TABLE inventory.{name} ({columns_sql})")
    pg.execute(f"ALTER TABLE inventory.{name} REPLICA IDENTITY FULL")
    reader = EventReader(bootstrap, topic)
    try:
        yield CapturedTable(name, f"inventory.{name}", topic, reader)
    finally:
        reader.close()
        drop_captured_postgres_table(pg, f"inventory.{name}", connect_url, connector)
        delete_topic(admin, topic)


@contextmanager
def captured_mysql_table(
    mysql: pymysql.connections.Connection, admin: AdminClient, bootstrap: str, topic_prefix: str, columns_sql: str, connect_url: str, connector: str
) -> Iterator[CapturedTable]:
    """`inventory.<unique>` in MySQL/MariaDB, captured by the stack's connector; dropped afterwards."""
    name = unique_name("cdc")
    topic = f"{topic_prefix}.inventory.{name}"
    ensure_topic(admin, topic)
    with mysql.cursor() as cursor:
        cursor.execute(f"CREATE TABLE inventory.{name} ({columns_sql}) ENGINE=InnoDB")
    reader = EventReader(bootstrap, topic)
    try:
        yield CapturedTable(name, f"inventory.{name}", topic, reader)
    finally:
        reader.close()
        drop_captured_mysql_table(mysql, f"inventory.{name}", connect_url, connector)
        delete_topic(admin, topic)


def rows_of(events: list[ChangeEvent], op: str) -> list[dict[str, Any]]:
    return [event.after if op != "d" else event.before for event in events if event.op == op]
