"""`KafkaTopicProvider` driven directly against the live broker (no mock, no Pulumi engine), and the
broker setting that makes it needed: no topic is created on demand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from providers.kafka_topic import KafkaTopicProvider
from testkit.kafka import delete_topic, wait_for_topic_listed
from testkit.names import unique_name
from tests.support.stack import StackOutputs


@pytest.fixture
def topic_props(stack: StackOutputs, kafka_admin: AdminClient) -> Iterator[dict[str, Any]]:
    """Props for a topic of this test's own (3 partitions); deleted afterwards."""
    topic = unique_name("provider_topic")
    try:
        yield {"topic": topic, "bootstrap_servers": stack.kafka_bootstrap, "partitions": 3}
    finally:
        delete_topic(kafka_admin, topic)


def partitions_of(admin: AdminClient, topic: str) -> int:
    return len(admin.list_topics(topic, timeout=10).topics[topic].partitions)


def test_create_makes_the_topic_with_its_partitions_and_adopts_it_when_run_again(kafka_admin: AdminClient, topic_props: dict[str, Any]) -> None:
    provider = KafkaTopicProvider()
    created = provider.create(topic_props)
    assert created.id == topic_props["topic"] and created.outs == topic_props
    wait_for_topic_listed(kafka_admin, topic_props["topic"], listed=True)
    assert partitions_of(kafka_admin, topic_props["topic"]) == 3

    again = provider.create(topic_props)
    assert again.id == created.id
    assert partitions_of(kafka_admin, topic_props["topic"]) == 3


def test_read_reports_the_live_partitions_and_a_deleted_topic_as_gone(kafka_admin: AdminClient, topic_props: dict[str, Any]) -> None:
    provider = KafkaTopicProvider()
    provider.create(topic_props)
    wait_for_topic_listed(kafka_admin, topic_props["topic"], listed=True)
    read = provider.read(topic_props["topic"], {**topic_props, "partitions": 1})
    assert read.id == topic_props["topic"] and read.outs["partitions"] == 3

    provider.delete(topic_props["topic"], topic_props)
    wait_for_topic_listed(kafka_admin, topic_props["topic"], listed=False)
    assert provider.read(topic_props["topic"], topic_props).id is None
    provider.delete(topic_props["topic"], topic_props)  # already gone: success


def test_a_new_partition_count_is_a_new_topic_and_a_new_address_no_change(topic_props: dict[str, Any]) -> None:
    provider = KafkaTopicProvider()
    more = provider.diff(topic_props["topic"], topic_props, {**topic_props, "partitions": 6})
    assert more.changes and more.replaces == ["partitions"] and more.delete_before_replace
    moved = provider.diff(topic_props["topic"], topic_props, {**topic_props, "bootstrap_servers": "127.0.0.1:1"})
    assert not moved.changes


def test_the_broker_creates_no_topic_a_producer_writes_to(stack: StackOutputs, kafka_admin: AdminClient) -> None:
    # What brought deleted test topics back: a producer's metadata request for a topic it still knew.
    topic = unique_name("not_created")
    failures: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "message.timeout.ms": 3000})
    producer.produce(topic, value=b"x", on_delivery=lambda error, _message: error and failures.append(error))
    assert producer.flush(15) == 0
    assert [error.code() for error in failures] in ([KafkaError.UNKNOWN_TOPIC_OR_PART], [KafkaError._MSG_TIMED_OUT]), failures
    assert topic not in kafka_admin.list_topics(timeout=10).topics

