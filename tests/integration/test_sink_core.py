"""The consumer core's contract, against the live Kafka: offsets move only with a commit, a failed
batch is retried from its first offset, undecodable or refused records are dead-lettered with why,
and a replayed batch is a no-op."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.sinks.core import CdcSink, RetryPolicy
from pipelines.sinks.errors import StorageError, TerminalSinkError
from testkit.kafka import consume_exactly, owned_sink_topic
from testkit.names import unique_name
from tests.support.sinks import ScriptedWriter, debezium_key, debezium_value, group_offsets, inserts, produce
from tests.support.stack import StackOutputs

FAST_RETRY = RetryPolicy(first_delay_seconds=0.05, max_delay_seconds=0.2)


@pytest.fixture
def topic(kafka_admin: AdminClient) -> Iterator[str]:
    with owned_sink_topic(kafka_admin, "core") as name:
        yield name


def sink_over(stack: StackOutputs, topic: str, writer: ScriptedWriter, group: str | None = None, **options) -> CdcSink:
    return CdcSink(stack.kafka_bootstrap, [topic], writer, group or unique_name("core"), retry=FAST_RETRY, **options)


def test_a_failed_batch_is_retried_from_its_first_offset_and_nothing_is_lost(stack: StackOutputs, topic: str) -> None:
    """Defect 1: the store away for three attempts used to lose the batch; now it commits once, whole."""
    produce(stack.kafka_bootstrap, topic, inserts(1, 300))
    writer = ScriptedWriter(fail=lambda attempt, _events: StorageError("store stopped") if attempt <= 3 else None)
    sink = sink_over(stack, topic, writer, batch_max_events=1000, batch_max_seconds=1.0)
    try:
        sink.run_until(lambda: sink.applied_events >= 300, timeout_seconds=60)
    finally:
        sink.close()
    assert sorted(writer.applied_offsets) == list(range(300)), "an event was lost or applied twice"
    assert sorted(writer.rows) == [(n,) for n in range(1, 301)]
    assert sink.stats.attempts_failed == 3 and sink.stats.last_error is None
    assert writer.committed_offsets() == {f"{topic}:0": 300}


def test_offsets_stay_put_while_the_batch_keeps_failing(stack: StackOutputs, topic: str) -> None:
    produce(stack.kafka_bootstrap, topic, inserts(1, 50))
    group = unique_name("core")
    writer = ScriptedWriter(fail=lambda _attempt, _events: StorageError("store stopped"))
    sink = sink_over(stack, topic, writer, group)
    try:
        while writer.attempts < 5:
            assert sink.step() == 0
    finally:
        sink.close()
    assert sink.offsets == {} and writer.commits == []
    assert group_offsets(stack.kafka_bootstrap, group, topic) is None, "the group committed offsets nothing was written for"
    assert not sink.stats.healthy and "store stopped" in sink.stats.last_error
    assert sink.stats.failing_since is not None


def test_undecodable_keys_and_values_are_dead_lettered_and_the_rest_commits(stack: StackOutputs, topic: str) -> None:
    """Defect 2: a non-JSON key used to end the sink."""
    records = inserts(1, 10) + [(b"\xff not json", debezium_value("c", None, {"id": 11, "name": "x"})), (debezium_key(12), b"{oops")]
    records += inserts(13, 20)
    produce(stack.kafka_bootstrap, topic, records)
    writer = ScriptedWriter()
    sink = sink_over(stack, topic, writer)
    try:
        sink.run_until(lambda: sink.offsets.get(f"{topic}:0") == 20, timeout_seconds=60)
    finally:
        sink.close()
    assert sorted(writer.rows) == [(n,) for n in [*range(1, 11), *range(13, 21)]]
    assert sink.stats.dead_letters == 2
    letters = consume_exactly(stack.kafka_bootstrap, f"{topic}.dlq", 2)
    assert [letter.key() for letter in letters] == [b"\xff not json", debezium_key(12)]
    assert letters[1].value() == b"{oops"
    headers = [dict(letter.headers()) for letter in letters]
    assert [h["cdcstack.source.offset"] for h in headers] == [b"10", b"11"]
    assert all(h["cdcstack.error.class"] == b"DecodeError" and h["cdcstack.source.topic"] == topic.encode() for h in headers)
    assert b"not JSON" in headers[1]["cdcstack.error"]


def test_a_record_the_table_refuses_is_isolated_and_dead_lettered(stack: StackOutputs, topic: str) -> None:
    produce(stack.kafka_bootstrap, topic, inserts(1, 40))

    def refuse_13(_attempt: int, events) -> Exception | None:
        if any(event.after["id"] == 13 for event in events):
            return TerminalSinkError("id 13: value does not fit its column")
        return None

    writer = ScriptedWriter(fail=refuse_13)
    sink = sink_over(stack, topic, writer)
    try:
        sink.run_until(lambda: sink.offsets.get(f"{topic}:0") == 40, timeout_seconds=60)
    finally:
        sink.close()
    assert sorted(writer.rows) == [(n,) for n in range(1, 41) if n != 13]
    assert sorted(writer.applied_offsets) == [n for n in range(40) if n != 12]
    assert sink.stats.dead_letters == 1 and "id 13" in sink.stats.last_dead_letter_error
    [letter] = consume_exactly(stack.kafka_bootstrap, f"{topic}.dlq", 1)
    assert letter.key() == debezium_key(13)
    assert dict(letter.headers())["cdcstack.error.class"] == b"TerminalSinkError"


def test_a_restarted_sink_replays_nothing_the_table_holds(stack: StackOutputs, topic: str) -> None:
    produce(stack.kafka_bootstrap, topic, inserts(1, 30))
    writer = ScriptedWriter()
    first = sink_over(stack, topic, writer)
    try:
        first.run_until(lambda: first.applied_events >= 30, timeout_seconds=60)
    finally:
        # A crash right after the table commit: the consumer group never hears of it.
        first.consumer.close()
    produce(stack.kafka_bootstrap, topic, inserts(31, 35))
    second = sink_over(stack, topic, writer, unique_name("core_other_group"))
    try:
        second.run_until(lambda: second.applied_events >= 5, timeout_seconds=60)
        assert second.step() == 0
    finally:
        second.close()
    assert sorted(writer.applied_offsets) == list(range(35)), "an event was applied twice"


def test_the_timeout_message_names_the_last_failure(stack: StackOutputs, topic: str) -> None:
    produce(stack.kafka_bootstrap, topic, inserts(1, 3))
    writer = ScriptedWriter(fail=lambda _attempt, _events: StorageError("s3 at 127.0.0.1:1 refused"))
    sink = sink_over(stack, topic, writer)
    try:
        with pytest.raises(Exception, match=r"not caught up within 2s \(0 events applied; last error: StorageError: s3 at 127.0.0.1:1 refused"):
            sink.run_until(lambda: sink.applied_events >= 3, timeout_seconds=2)
    finally:
        sink.close()
