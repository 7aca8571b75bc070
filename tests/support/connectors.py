"""Connectors a test owns: configs for the stack's databases, and clean-up of the topics they make
(their slots and publications: `testkit.connectors`)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

import stack_outputs as out
from pipelines.connectors import postgres_source_config
from providers.connect_client import ConnectClient, ConnectorStatus
from testkit.kafka import ADMIN_TIMEOUT_SECONDS, delete_topic
from tests.support.stack import StackOutputs


def postgres_config(stack: StackOutputs, topic_prefix: str, slot: str, tables: str) -> dict[str, str]:
    """A Postgres connector of the test's own, on the stack's database, limited to `tables`."""
    url = urlparse(stack.postgres_dsn)
    host, port = stack.internal_address("postgres")
    config = postgres_source_config(host, port, url.username, url.password, url.path.lstrip("/"), topic_prefix, slot)
    config.update({"publication.autocreate.mode": "filtered", "table.include.list": tables})
    return config


def delete_connector_topics(admin: AdminClient, topic_prefix: str) -> None:
    """Deletes every topic a test's own connector made: `<prefix>.<schema>.<table>`, its schema
    history and its heartbeat topic. The prefix is the test's unique name, so nothing else matches."""
    made = [
        topic
        for topic in admin.list_topics(timeout=ADMIN_TIMEOUT_SECONDS).topics
        if topic == topic_prefix or topic.startswith(f"{topic_prefix}.") or topic == f"__debezium-heartbeat.{topic_prefix}"
    ]
    for topic in made:
        delete_topic(admin, topic)


def set_topic_max_message_bytes(admin: AdminClient, topic: str, limit: int, timeout_seconds: float = ADMIN_TIMEOUT_SECONDS) -> None:
    """Sets `topic`'s record size limit; returns once the broker describes the new value (it applies asynchronously)."""
    entry = ConfigEntry("max.message.bytes", str(limit), incremental_operation=AlterConfigOpType.SET)
    change = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    admin.incremental_alter_configs([change])[change].result(timeout_seconds)
    deadline = time.monotonic() + timeout_seconds
    while True:
        described = ConfigResource(ResourceType.TOPIC, topic)
        current = admin.describe_configs([described])[described].result(timeout_seconds)["max.message.bytes"].value
        if current == str(limit):
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"kafka: topic {topic} still has max.message.bytes={current} {timeout_seconds:.0f}s after setting {limit}")
        time.sleep(0.2)


def wait_for_failed_task(client: ConnectClient, name: str, timeout_seconds: float = 60.0) -> ConnectorStatus:
    """Waits until connector `name` or one of its tasks reports FAILED; fails naming its last status."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        status = client.status(name)
        if status.failed:
            return status
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"connector {name} did not fail within {timeout_seconds:.0f}s: {status.problem or 'still running'}"
                f" ({client.where()})"
            )
        time.sleep(0.25)


def stack_connector_names(stack: StackOutputs) -> set[Any]:
    return {stack[out.POSTGRES_CONNECTOR], stack[out.MYSQL_CONNECTOR]}
