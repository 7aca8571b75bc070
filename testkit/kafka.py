"""Kafka for tests and the bench: topics a caller owns, bounded consumption, and reading a Debezium
topic decoded, every wait with its own timeout."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.debezium import ChangeEvent, Tombstone, decode_message
from pipelines.sinks.core import DEAD_LETTER_SUFFIX
from testkit.names import unique_name

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
    """Deletes `topic`; one already gone is fine."""
    try:
        admin.delete_topics([topic])[topic].result(ADMIN_TIMEOUT_SECONDS)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise


@contextmanager
def owned_topic(admin: AdminClient, prefix: str, partitions: int = 1) -> Iterator[str]:
    """Creates a uniquely named topic and deletes it afterwards."""
    topic = unique_name(prefix)
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(
        ADMIN_TIMEOUT_SECONDS
    )
    try:
        yield topic
    finally:
        admin.delete_topics([topic])[topic].result(ADMIN_TIMEOUT_SECONDS)


@contextmanager
def owned_sink_topic(admin: AdminClient, prefix: str) -> Iterator[str]:
    """A topic of the caller's own for a sink to read; it and the dead-letter topic the sink made
    for it are deleted afterwards."""
    with owned_topic(admin, prefix) as topic:
        try:
            yield topic
        finally:
            delete_topic(admin, f"{topic}{DEAD_LETTER_SUFFIX}")


def wait_for_topic_listed(admin: AdminClient, topic: str, listed: bool, timeout_seconds: float = 15.0) -> None:
    """Topic creation and deletion reach the metadata a client sees asynchronously: poll, within a bound."""
    deadline = time.monotonic() + timeout_seconds
    while (topic in admin.list_topics(timeout=10).topics) != listed:
        if time.monotonic() >= deadline:
            raise AssertionError(f"kafka: topic {topic} still {'missing from' if listed else 'in'} metadata after {timeout_seconds}s")
        time.sleep(0.2)


def read_up_to_end(consumer: Consumer, poll: Callable[[float], None], what: str, timeout_seconds: float) -> None:
    """Polls until the consumer has read every assigned partition up to the end offset it had when
    this was called, so a caller that counts what it read sees extras already written, not only the
    first N."""
    deadline = time.monotonic() + timeout_seconds
    ends: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        low, high = consumer.get_watermark_offsets(tp, timeout=ADMIN_TIMEOUT_SECONDS)
        if high > low:
            ends[(tp.topic, tp.partition)] = high
    while ends:
        behind = [
            (position.topic, position.partition)
            for position in consumer.position([TopicPartition(topic, partition) for topic, partition in ends])
            if position.offset == OFFSET_INVALID or position.offset < ends[(position.topic, position.partition)]
        ]
        if not behind:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"kafka: {what}: partitions {behind} not read up to their end offsets {ends} within {timeout_seconds}s")
        poll(0.2)


def consume_exactly(bootstrap: str, topic: str, count: int, timeout_seconds: float = 30.0) -> list[Message]:
    """Reads `count` messages from the start of `topic`, then on to its end offsets: fails naming how
    many arrived by the deadline, or how many there are when there are more than `count`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("test_group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    messages: list[Message] = []

    def poll(timeout: float) -> None:
        message = consumer.poll(timeout)
        if message is None:
            return
        if message.error():
            raise KafkaException(message.error())
        messages.append(message)

    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_seconds
        while len(messages) < count and time.monotonic() < deadline:
            poll(0.5)
        if len(messages) == count:
            read_up_to_end(consumer, poll, f"reading {topic} after {count} messages", timeout_seconds)
    finally:
        consumer.close()
    if len(messages) < count:
        raise AssertionError(f"kafka: {len(messages)} of {count} messages arrived on {topic} within {timeout_seconds}s")
    if len(messages) > count:
        raise AssertionError(f"kafka: {len(messages)} messages on {topic}, expected exactly {count}")
    return messages


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

    def wait_for_exactly_changes(self, count: int, timeout: float = EVENT_TIMEOUT_SECONDS) -> list[ChangeEvent]:
        """Waits for `count` change events, then reads on to the topic's end offsets: fails when the
        topic holds more (a duplicate or an extra event), not only when it holds fewer."""
        self.wait_for_changes(count, timeout)
        read_up_to_end(self._consumer, self._poll_once, f"reading {self.topic} after {count} change events", timeout)
        found = changes(self.events)
        if len(found) != count:
            raise AssertionError(
                f"kafka: {len(found)} change events on {self.topic}, expected exactly {count}: "
                f"{[event.op for event in found][-20:]}"
            )
        return found

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
