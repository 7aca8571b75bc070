"""The sink job's Prometheus metrics, as the consumer core updates them and as GET /metrics serves them.

Kafka is a scripted consumer (one partition whose records the core reads in order, with the end
offset of the last fetch as librdkafka caches it); the core's loop, decoding, retries, dead letters
and commits are the real ones. Against real Kafka: tests/integration/test_sink_core.py.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from confluent_kafka import Message, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from pipelines.debezium import ChangeEvent
from pipelines.sinks.core import CdcSink, RetryPolicy
from pipelines.sinks.errors import TerminalSinkError, TransientSinkError
from pipelines.sinks.job import SinkJob, serve_health
from pipelines.sinks.metrics import sink_job_registry
from tests.support.sinks import RecordingDeadLetters, ScriptedWriter, closed_port, debezium_key, debezium_value

TOPIC = "unit.inventory.metrics"
LABELS = {"sink": "iceberg", "table": TOPIC}


class ScriptedConsumer:
    """One partition of `records`, handed out in order; its end offset is known once fetched, as
    librdkafka's cached high watermark is."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.log: list[Message] = []
        self.position = 0
        self.fetched_end = -1001  # librdkafka's "no offset" until the first fetch
        self.commits: list[list[tuple[str, int, int]]] = []

    def append(self, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
        for key, value in records:
            self.log.append(Message(topic=self.topic, partition=0, offset=len(self.log), key=key, value=value))

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        batch = self.log[self.position : self.position + num_messages]
        self.position += len(batch)
        self.fetched_end = len(self.log)
        return batch

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, 0)]

    def get_watermark_offsets(self, partition: TopicPartition, cached: bool = False) -> tuple[int, int]:
        assert cached, "the core must not ask the broker for watermarks on every poll"
        return (0, self.fetched_end)

    def commit(self, offsets: Sequence[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(partition.topic, partition.partition, partition.offset) for partition in offsets])

    def close(self) -> None:
        return None


def changes(first: int, last: int, seconds_ago: float) -> list[tuple[bytes, bytes]]:
    """Create events for ids first..last, committed at the source `seconds_ago` (the last one newest)."""
    now_ms = int(time.time() * 1000)
    span = last - first
    return [
        (debezium_key(n), debezium_value("c", None, {"id": n, "name": f"row {n}"}, source_ts_ms=now_ms - int(seconds_ago * 1000) - (span - i) * 1000))
        for i, n in enumerate(range(first, last + 1))
    ]


class Harness:
    """A sink on a scripted consumer with a registry over its stats, and a clock the test moves."""

    def __init__(self, writer: ScriptedWriter, batch_max_events: int = 1000) -> None:
        self.now = 0.0
        self.writer = writer
        self.letters = RecordingDeadLetters()
        self.sink = CdcSink(
            f"127.0.0.1:{closed_port()}",
            [TOPIC],
            writer,
            "unit-metrics",
            batch_max_events=batch_max_events,
            dead_letters=self.letters,
            retry=RetryPolicy(0.5, 1.0),
            clock=lambda: self.now,
        )
        self.sink.consumer.close()
        self.kafka = ScriptedConsumer(TOPIC)
        self.sink.consumer = self.kafka  # type: ignore[assignment]
        self.registry: CollectorRegistry = sink_job_registry("iceberg", lambda: {TOPIC: self.sink.stats})

    def value(self, name: str) -> float | None:
        return self.registry.get_sample_value(name, LABELS)


@pytest.fixture
def harness() -> Iterator[Harness]:
    yield Harness(ScriptedWriter())


def test_a_committed_batch_counts_its_records_and_how_late_it_landed(harness: Harness) -> None:
    harness.kafka.append(changes(1, 3, seconds_ago=7.0))
    assert harness.value("cdc_sink_batches_committed_total") == 0
    assert harness.value("cdc_sink_last_commit_timestamp_seconds") is None and harness.value("cdc_sink_lag_seconds") is None

    before = time.time()
    assert harness.sink.step() == 3
    assert harness.value("cdc_sink_batches_committed_total") == 1
    assert harness.value("cdc_sink_records_applied_total") == 3
    assert harness.value("cdc_sink_dead_letters_total") == 0 and harness.value("cdc_sink_failed_attempts_total") == 0
    assert before <= harness.value("cdc_sink_last_commit_timestamp_seconds") <= time.time()  # type: ignore[operator]
    # The newest change of the batch was committed at the source 7 s before the table commit.
    assert 7.0 <= harness.value("cdc_sink_lag_seconds") < 8.0  # type: ignore[operator]
    assert harness.value("cdc_sink_consumer_lag_records") == 0


def test_records_read_but_not_committed_are_consumer_lag_while_the_batch_is_retried() -> None:
    attempts_to_fail = {1, 2}
    writer = ScriptedWriter(fail=lambda attempt, _events: TransientSinkError("catalog away") if attempt in attempts_to_fail else None)
    harness = Harness(writer, batch_max_events=2)
    harness.kafka.append(changes(1, 5, seconds_ago=1.0))

    assert harness.value("cdc_sink_consumer_lag_records") is None  # nothing fetched yet
    for _ in attempts_to_fail:
        assert harness.sink.step() == 0
        harness.now += 1.0
    # Five records in Kafka, none in the table: the pending two are lag as much as the unread three.
    assert harness.value("cdc_sink_consumer_lag_records") == 5
    assert harness.value("cdc_sink_failed_attempts_total") == 2
    assert harness.value("cdc_sink_batches_committed_total") == 0 and harness.value("cdc_sink_last_commit_timestamp_seconds") is None

    assert harness.sink.step() == 2
    assert harness.value("cdc_sink_consumer_lag_records") == 3
    assert harness.sink.step() == 2 and harness.sink.step() == 1
    assert harness.value("cdc_sink_consumer_lag_records") == 0
    assert harness.value("cdc_sink_batches_committed_total") == 3 and harness.value("cdc_sink_records_applied_total") == 5
    # A record that arrives later is lag from the poll that fetches it until its commit.
    during_commit: list[float | None] = []
    harness.writer.fail = lambda _attempt, _events: during_commit.append(harness.value("cdc_sink_consumer_lag_records"))
    harness.kafka.append(changes(6, 6, seconds_ago=0.0))
    assert harness.sink.step() == 1
    assert during_commit == [1] and harness.value("cdc_sink_consumer_lag_records") == 0


def test_dead_letters_are_counted_and_the_rest_of_the_batch_commits() -> None:
    def refuse_row_two(_attempt: int, events: Sequence[ChangeEvent]) -> Exception | None:
        return TerminalSinkError("no column for it") if any(event.after and event.after["id"] == 2 for event in events) else None

    harness = Harness(ScriptedWriter(fail=refuse_row_two))
    harness.kafka.append([*changes(1, 3, seconds_ago=3.0), (b"not json", b"not json either")])
    assert harness.sink.step() == 2
    assert harness.value("cdc_sink_dead_letters_total") == 2 and len(harness.letters.sent) == 2
    assert harness.value("cdc_sink_records_applied_total") == 2
    assert harness.value("cdc_sink_batches_committed_total") == 1 and harness.value("cdc_sink_consumer_lag_records") == 0
    # Row 3, the newest applied, sets the lag (row 2, refused, is 1 s newer than row 1 and older than 3).
    assert 3.0 <= harness.value("cdc_sink_lag_seconds") < 4.0  # type: ignore[operator]


def test_changes_without_a_source_time_leave_the_lag_unknown(harness: Harness) -> None:
    harness.kafka.append([(debezium_key(1), debezium_value("c", None, {"id": 1, "name": "a"}))])
    assert harness.sink.step() == 1
    assert harness.value("cdc_sink_batches_committed_total") == 1 and harness.value("cdc_sink_lag_seconds") is None


def test_a_transient_failure_counts_an_attempt_and_no_commit(harness: Harness) -> None:
    harness.writer.fail = lambda attempt, _events: TransientSinkError("store away") if attempt == 1 else None
    harness.kafka.append(changes(1, 1, seconds_ago=0.0))
    assert harness.sink.step() == 0
    assert harness.value("cdc_sink_failed_attempts_total") == 1 and harness.value("cdc_sink_batches_committed_total") == 0
    harness.now += 1.0
    assert harness.sink.step() == 1
    assert harness.value("cdc_sink_failed_attempts_total") == 1 and harness.value("cdc_sink_batches_committed_total") == 1


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_the_job_serves_its_tables_metrics_beside_health(harness: Harness) -> None:
    job = SinkJob(f"127.0.0.1:{closed_port()}", "^unit\\.", "cdc", lambda _identifier: harness.writer, "unit-metrics", destination="iceberg")
    job.sinks[TOPIC] = harness.sink
    harness.kafka.append(changes(1, 4, seconds_ago=2.0))
    harness.sink.step()
    server = serve_health(job, 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, content_type, body = get(f"{base}/metrics")
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        scraped = samples(body.decode())
        labels = tuple(sorted(LABELS.items()))
        assert scraped[("cdc_sink_batches_committed_total", labels)] == 1
        assert scraped[("cdc_sink_records_applied_total", labels)] == 4
        assert scraped[("cdc_sink_dead_letters_total", labels)] == 0
        assert scraped[("cdc_sink_failed_attempts_total", labels)] == 0
        assert scraped[("cdc_sink_consumer_lag_records", labels)] == 0
        assert 2.0 <= scraped[("cdc_sink_lag_seconds", labels)] < 3.0
        assert ("cdc_sink_last_commit_timestamp_seconds", labels) in scraped
        assert any(name == "process_resident_memory_bytes" for name, _ in scraped)

        status, content_type, body = get(f"{base}/health")
        table: dict[str, Any] = json.loads(body)["tables"][TOPIC]
        assert status == 200 and content_type == "application/json"
        assert table["applied"] == 4 and table["consumer_lag"] == {f"{TOPIC}:0": 0} and 2.0 <= table["last_commit_lag_seconds"] < 3.0

        # A table whose topic is gone leaves no series behind.
        job.sinks.clear()
        _, _, body = get(f"{base}/metrics")
        assert not [name for name, _ in samples(body.decode()) if name.startswith("cdc_sink_")]
        assert get(f"{base}/nothing")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
