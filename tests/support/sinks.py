"""Sink test kit: Debezium-shaped records for a topic a test owns, and a table writer whose failures
the test scripts (the consumer core's contract is tested against real Kafka with it; the
destinations themselves are tested against the live catalog and store)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer

from pipelines.debezium import ChangeEvent
from pipelines.sinks.batch import plan_batch
from pipelines.sinks.core import Commit, DeadLetter, DeadLetterQueue
from testkit.names import unique_name

ROW_SCHEMA = {
    "type": "struct",
    "optional": True,
    "fields": [
        {"field": "id", "type": "int32", "optional": False},
        {"field": "name", "type": "string", "optional": True},
    ],
}
KEY_SCHEMA = {"type": "struct", "optional": False, "fields": [{"field": "id", "type": "int32", "optional": False}]}


def debezium_key(row_id: int) -> bytes:
    return json.dumps({"schema": KEY_SCHEMA, "payload": {"id": row_id}}).encode()


def debezium_value(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, source_ts_ms: int = 0) -> bytes:
    """A change event as the JSON converter writes it; `source_ts_ms` is its commit time at the source."""
    envelope = {
        "type": "struct",
        "fields": [{**ROW_SCHEMA, "field": "before"}, {**ROW_SCHEMA, "field": "after"}, {"field": "op", "type": "string"}],
    }
    source = {"connector": "postgresql", "db": "inventory", "schema": "inventory", "table": "items", "ts_ms": source_ts_ms, "snapshot": "false"}
    return json.dumps({"schema": envelope, "payload": {"op": op, "before": before, "after": after, "source": source, "ts_ms": 0}}).encode()


def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    """Writes (key, value) records to `topic` in order and waits until Kafka has them all."""
    failures: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=lambda error, _m: error and failures.append(str(error)))
    remaining = producer.flush(30)
    assert remaining == 0 and not failures, f"kafka: {remaining} records not delivered to {topic} ({failures[:3]})"


def inserts(first: int, last: int) -> list[tuple[bytes, bytes]]:
    """Create events for ids first..last (inclusive), named `row <id>`."""
    return [(debezium_key(n), debezium_value("c", None, {"id": n, "name": f"row {n}"})) for n in range(first, last + 1)]


def group_offsets(bootstrap: str, group: str, topic: str) -> int | None:
    """The offset `group` committed for partition 0 of `topic` (None when it committed none)."""
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        [committed] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    return committed.offset if committed.offset >= 0 else None


@dataclass
class ScriptedWriter:
    """An in-memory table keyed by `id` that commits like a real writer (all or nothing, offsets
    recorded with the commit) and fails when the test's `fail` says so."""

    identifier: str = field(default_factory=lambda: unique_name("scripted"))
    rows: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)
    commits: list[tuple[list[int], dict[str, int]]] = field(default_factory=list)
    """(source offsets of the events, offsets recorded) per commit."""
    attempts: int = 0
    fail: Callable[[int, Sequence[ChangeEvent]], Exception | None] = lambda _attempt, _events: None
    """Given the attempt number (from 1) and the events, the error to raise, or None to commit."""

    def committed_offsets(self) -> dict[str, int]:
        return dict(self.commits[-1][1]) if self.commits else {}

    def apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        self.attempts += 1
        error = self.fail(self.attempts, events)
        if error is not None:
            raise error
        plan = plan_batch(events, ["id"])
        for key in plan.touched:
            self.rows.pop(key, None)
        self.rows.update(plan.upserts)
        self.commits.append(([event.offset for event in events], dict(offsets)))
        return Commit(rows=len(plan.upserts), version=len(self.commits))

    @property
    def applied_offsets(self) -> list[int]:
        """Every source offset committed, in commit order (a duplicate means an event applied twice)."""
        return [offset for offsets, _ in self.commits for offset in offsets]


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by the OS, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RecordingDeadLetters(DeadLetterQueue):
    """Keeps the letters instead of publishing them (its producer points at a closed port)."""

    def __init__(self) -> None:
        super().__init__(f"127.0.0.1:{closed_port()}")
        self.sent: list[DeadLetter] = []

    def send(self, letters: Sequence[DeadLetter], table: str) -> None:
        self.sent.extend(letters)
