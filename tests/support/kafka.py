"""Kafka helpers for tests: topics a test owns, and bounded consumption."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from confluent_kafka import Consumer, KafkaException, Message
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support.names import unique_name

ADMIN_TIMEOUT_SECONDS = 30.0


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


def wait_for_topic_listed(admin: AdminClient, topic: str, listed: bool, timeout_seconds: float = 15.0) -> None:
    """Topic creation and deletion reach the metadata a client sees asynchronously: poll, within a bound."""
    deadline = time.monotonic() + timeout_seconds
    while (topic in admin.list_topics(timeout=10).topics) != listed:
        if time.monotonic() >= deadline:
            raise AssertionError(f"kafka: topic {topic} still {'missing from' if listed else 'in'} metadata after {timeout_seconds}s")
        time.sleep(0.2)


def consume_exactly(bootstrap: str, topic: str, count: int, timeout_seconds: float = 30.0) -> list[Message]:
    """Reads `count` messages from the start of `topic`; fails naming how many arrived by the deadline."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("test_group"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    messages: list[Message] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout_seconds
        while len(messages) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            messages.append(message)
    finally:
        consumer.close()
    assert len(messages) == count, f"kafka: {len(messages)} of {count} messages arrived on {topic} within {timeout_seconds}s"
    return messages
