"""CDC test helpers: tables a test owns in the captured schemas, and reading their change events."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pymysql
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.debezium import ChangeEvent, Tombstone, decode_message
from tests.support.names import unique_name

ADMIN_TIMEOUT_SECONDS = 30.0
EVENT_TIMEOUT_SECONDS = 60.0

Event = ChangeEvent | Tombstone


def ensure_topic(admin: AdminClient, topic: str) -> None:
    """Creates the topic Debezium will write a new table's events to, so a consumer can subscribe first."""
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        futures[topic].result(ADMIN_TIMEOUT_SECONDS)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def delete_topic(admin: AdminClient, topic: str) -> None:
    try:
        admin.delete_topics([topic])[topic].result(ADMIN_TIMEOUT_SECONDS)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise


class EventReader:
    """Reads a Debezium topic from its beginning, decoding as it goes; every wait is bounded."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.events: list[Event] = []
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique_name("cdc_test"),
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self._consumer.subscribe([topic])

    def close(self) -> None:
        self._consumer.close()

    def _poll_once(self, timeout: float) -> None:
        message = self._consumer.poll(timeout)
        if message is None:
            return
        if message.error():
            if message.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return
            raise KafkaException(message.error())
        self.events.append(decode_message(message))

    def wait_until(self, done: Callable[[list[Event]], bool], what: str, timeout: float = EVENT_TIMEOUT_SECONDS) -> list[Event]:
        deadline = time.monotonic() + timeout
        while not done(self.events):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"kafka: {what} did not arrive on {self.topic} within {timeout:.0f}s; "
                    f"{len(self.events)} events arrived: {[getattr(e, 'op', 'tombstone') for e in self.events][-20:]}"
                )
            self._poll_once(0.2)
        return self.events

    def wait_for_changes(self, count: int, timeout: float = EVENT_TIMEOUT_SECONDS) -> list[ChangeEvent]:
        """Waits for `count` change events (tombstones not counted) and returns them."""
        self.wait_until(lambda events: len(changes(events)) >= count, f"{count} change events", timeout)
        return changes(self.events)

    def drain(self, quiet_seconds: float = 1.0) -> list[Event]:
        """Reads until nothing new arrived for `quiet_seconds` (used to show nothing extra came)."""
        last = len(self.events)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_seconds:
            self._poll_once(0.1)
            if len(self.events) != last:
                last, quiet_since = len(self.events), time.monotonic()
        return self.events


def changes(events: list[Event]) -> list[ChangeEvent]:
    return [event for event in events if isinstance(event, ChangeEvent)]


@dataclass
class CapturedTable:
    """A table a test created in a captured schema, with the reader of its topic."""

    name: str
    qualified: str
    topic: str
    reader: EventReader


@contextmanager
def captured_postgres_table(
    pg: psycopg.Connection, admin: AdminClient, bootstrap: str, topic_prefix: str, columns_sql: str
) -> Iterator[CapturedTable]:
    """`inventory.<unique>` in Postgres, captured by the stack's connector; dropped with its topic afterwards."""
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
        pg.execute(f"DROP TABLE IF EXISTS inventory.{name}")
        delete_topic(admin, topic)


@contextmanager
def captured_mysql_table(
    mysql: pymysql.connections.Connection, admin: AdminClient, bootstrap: str, topic_prefix: str, columns_sql: str
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
        with mysql.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS inventory.{name}")
        delete_topic(admin, topic)


def rows_of(events: list[ChangeEvent], op: str) -> list[dict[str, Any]]:
    return [event.after if op != "d" else event.before for event in events if event.op == op]
