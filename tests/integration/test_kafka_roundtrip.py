"""The Kafka service: metadata, topic admin, and exact produce/consume round trips."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from testkit.kafka import consume_exactly, owned_topic, wait_for_topic_listed
from tests.support.stack import StackOutputs


def produce_all(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    failures: list[str] = []
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers, on_delivery=lambda error, _: error and failures.append(str(error)))
    remaining = producer.flush(30)
    assert remaining == 0 and not failures, f"kafka: {remaining} undelivered, errors {failures}"


def test_metadata_lists_one_broker_on_the_bootstrap_address(kafka_admin: AdminClient, stack: StackOutputs) -> None:
    metadata = kafka_admin.list_topics(timeout=10)
    assert [f"{broker.host}:{broker.port}" for broker in metadata.brokers.values()] == [stack.kafka_bootstrap]
    assert metadata.cluster_id


def test_round_trip_keeps_payloads_keys_and_headers_exactly(kafka_admin: AdminClient, stack: StackOutputs) -> None:
    records = [
        (f"key-{n}".encode(), json.dumps({"id": n, "name": f"row {n}", "amount": n * 1.25}).encode(), [("source", b"test")])
        for n in range(50)
    ]
    with owned_topic(kafka_admin, "roundtrip") as topic:
        produce_all(stack.kafka_bootstrap, topic, records)
        messages = consume_exactly(stack.kafka_bootstrap, topic, len(records))
    assert [(m.key(), m.value(), m.headers()) for m in messages] == records


def test_order_is_kept_per_key_across_partitions(kafka_admin: AdminClient, stack: StackOutputs) -> None:
    records = [(f"customer-{n % 4}".encode(), f"version-{n // 4}".encode(), []) for n in range(40)]
    with owned_topic(kafka_admin, "ordered", partitions=3) as topic:
        produce_all(stack.kafka_bootstrap, topic, records)
        messages = consume_exactly(stack.kafka_bootstrap, topic, len(records))
    versions_by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for message in messages:
        versions_by_key[message.key()].append(message.value())
    assert versions_by_key == {f"customer-{k}".encode(): [f"version-{v}".encode() for v in range(10)] for k in range(4)}
    assert len({message.partition() for message in messages}) > 1, "keys should spread over partitions"


def test_a_created_topic_is_listed_and_gone_once_deleted(kafka_admin: AdminClient) -> None:
    with owned_topic(kafka_admin, "ephemeral", partitions=2) as topic:
        wait_for_topic_listed(kafka_admin, topic, listed=True)
        assert len(kafka_admin.list_topics(topic, timeout=10).topics[topic].partitions) == 2
    wait_for_topic_listed(kafka_admin, topic, listed=False)


def test_consume_exactly_fails_when_the_topic_holds_one_more(kafka_admin: AdminClient, stack: StackOutputs) -> None:
    """A count of "exactly N" that stops reading at N would pass with a duplicate behind it."""
    records = [(f"key-{n}".encode(), f"value-{n}".encode(), []) for n in range(3)]
    with owned_topic(kafka_admin, "one_more") as topic:
        produce_all(stack.kafka_bootstrap, topic, records)
        with pytest.raises(AssertionError, match=f"3 messages on {topic}, expected exactly 2"):
            consume_exactly(stack.kafka_bootstrap, topic, 2)
        assert [(m.key(), m.value()) for m in consume_exactly(stack.kafka_bootstrap, topic, 3)] == [(k, v) for k, v, _ in records]
