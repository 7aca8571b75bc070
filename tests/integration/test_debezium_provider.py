"""`DebeziumConnectorProvider` driven directly against the live Connect worker (no mock, no Pulumi engine)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

import stack_outputs as out
from pipelines.connectors import MARIADB_CONNECTOR, mysql_source_config
from pipelines.kafka_limits import MAX_RECORD_BYTES
from providers.connect_client import ConnectClient
from providers.debezium_connector import DebeziumConnectorProvider
from providers.errors import ConnectorConfigInvalidError, ConnectorFailedError, ConnectUnavailableError
from testkit.connectors import drop_captured_postgres_table, drop_slot_and_publication
from testkit.kafka import EventReader, delete_topic, ensure_topic
from testkit.names import unique_name
from tests.support.connectors import (
    delete_connector_topics,
    postgres_config,
    set_topic_max_message_bytes,
    wait_for_failed_task,
)
from tests.support.stack import StackOutputs


@dataclass
class OwnedConnector:
    name: str
    props: dict[str, Any]
    client: ConnectClient


@pytest.fixture
def provider() -> DebeziumConnectorProvider:
    return DebeziumConnectorProvider()


@pytest.fixture
def owned(stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient) -> Iterator[OwnedConnector]:
    """Props for a Postgres connector of this test's own on a table of its own; all removed afterwards, topics included."""
    name = unique_name("provider_test")
    table = f"inventory.{name}"
    pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
    pg.execute(f"INSERT INTO {table} VALUES (1, 'one'), (2, 'two')")
    client = ConnectClient(stack.connect_url, stack.log_of("connect"))
    props = {
        "name": name,
        "connect_url": stack.connect_url,
        "config": postgres_config(stack, topic_prefix=name, slot=name, tables=table.replace(".", r"\.")),
        "worker_log": stack.log_of("connect"),
        "source_address": f"{urlparse(stack.postgres_dsn).hostname}:{urlparse(stack.postgres_dsn).port}",
        "running_timeout": 60.0,
    }
    try:
        yield OwnedConnector(name, props, client)
    finally:
        client.delete_if_present(name)
        drop_slot_and_publication(stack.postgres_dsn, name)
        # Dropped once the stack's own connector (it captures all of `inventory`) streamed its rows:
        # none of them in flight can create its topic again after the delete below.
        drop_captured_postgres_table(pg, table, stack.connect_url, stack[out.POSTGRES_CONNECTOR], f"log: {stack.log_of('connect')}")
        delete_connector_topics(kafka_admin, name)
        # The stack's own connector captures all of `inventory`: its topic for this table is the test's too.
        delete_topic(kafka_admin, f"{stack[out.POSTGRES_TOPIC_PREFIX]}.{table}")


def test_create_returns_once_the_connector_and_its_task_run(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    result = provider.create(owned.props)
    assert result.id == owned.name
    assert (result.outs["state"], result.outs["task_count"]) == ("RUNNING", 1)
    assert owned.client.status(owned.name).running
    assert owned.name in owned.client.connectors()


def test_create_adopts_a_connector_that_already_exists(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    owned.client.put_config(owned.name, {**owned.props["config"], "poll.interval.ms": "500"})
    result = provider.create(owned.props)
    assert result.outs["state"] == "RUNNING"
    assert owned.client.get_config(owned.name)["poll.interval.ms"] == owned.props["config"]["poll.interval.ms"]


def test_wrong_credentials_fail_with_connects_message_and_register_nothing(
    provider: DebeziumConnectorProvider, owned: OwnedConnector
) -> None:
    props = {**owned.props, "config": {**owned.props["config"], "database.password": "not-the-password"}}
    with pytest.raises(ConnectorConfigInvalidError, match="password authentication failed"):
        provider.create(props)
    assert owned.name not in owned.client.connectors()


def test_an_unknown_connector_class_fails_with_connects_message(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    props = {**owned.props, "config": {**owned.props["config"], "connector.class": "io.debezium.connector.NoSuchConnector"}}
    with pytest.raises(ConnectorConfigInvalidError, match="connector.class: .*NoSuchConnector"):
        provider.create(props)
    assert owned.name not in owned.client.connectors()


def test_an_include_list_matching_no_table_fails_early(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    props = {**owned.props, "config": {**owned.props["config"], "table.include.list": r"inventory\.no_such_table"}}
    with pytest.raises(ConnectorConfigInvalidError, match=r"'inventory\\\\.no_such_table' matches no table"):
        provider.create(props)
    assert owned.name not in owned.client.connectors()


def test_a_failed_task_is_an_error_with_its_trace_and_is_removed(
    provider: DebeziumConnectorProvider, stack: StackOutputs, owned: OwnedConnector
) -> None:
    mysql, (host, port) = stack.mysql, stack.internal_address("mysql")
    kafka_host, kafka_port = stack.internal_address("kafka")
    config = mysql_source_config(
        MARIADB_CONNECTOR, host, port, mysql["user"], mysql["password"], "inventory", owned.name, f"{kafka_host}:{kafka_port}"
    )
    # Without schema history settings validation passes, but the task fails as soon as it starts.
    for key in ("schema.history.internal.kafka.bootstrap.servers", "schema.history.internal.kafka.topic"):
        config.pop(key)
    config["database.server.id"] = "184999"
    with pytest.raises(ConnectorFailedError, match="task 0 FAILED") as failure:
        provider.create({**owned.props, "config": config})
    assert "SchemaHistory" in str(failure.value)
    assert owned.name not in owned.client.connectors()


def test_update_changes_the_live_config_in_place(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    created = provider.create(owned.props).outs
    news = {**owned.props, "config": {**owned.props["config"], "heartbeat.interval.ms": "5000"}}
    assert provider.diff(owned.name, created, news).replaces == []
    updated = provider.update(owned.name, created, news).outs
    assert updated["state"] == "RUNNING"
    assert owned.client.get_config(owned.name)["heartbeat.interval.ms"] == "5000"


def test_delete_removes_it_and_deleting_again_succeeds(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    created = provider.create(owned.props).outs
    provider.delete(owned.name, created)
    assert owned.name not in owned.client.connectors()
    provider.delete(owned.name, created)


def test_read_reports_drift_made_behind_pulumis_back(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    created = provider.create(owned.props).outs
    owned.client.put_config(owned.name, {**owned.props["config"], "poll.interval.ms": "750"})
    live = provider.read(owned.name, created)
    assert live.id == owned.name and live.outs["config"]["poll.interval.ms"] == "750"
    assert provider.diff(owned.name, live.outs, owned.props).changes is True


def test_read_reports_a_connector_deleted_behind_pulumis_back_as_gone(
    provider: DebeziumConnectorProvider, owned: OwnedConnector
) -> None:
    created = provider.create(owned.props).outs
    owned.client.delete(owned.name)
    assert provider.read(owned.name, created).id is None


def test_diff_has_no_side_effects(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    created = provider.create(owned.props).outs
    news = {**owned.props, "config": {**owned.props["config"], "poll.interval.ms": "999"}}
    assert provider.diff(owned.name, created, news).changes is True
    assert provider.diff(owned.name, created, owned.props).changes is False
    assert owned.client.get_config(owned.name)["poll.interval.ms"] == owned.props["config"]["poll.interval.ms"]


def test_check_reports_connects_own_messages(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    bad = {**owned.props, "config": {**owned.props["config"], "database.port": "1"}}
    [failure] = provider.check({}, bad).failures
    assert failure.property == "config" and "database.hostname" in failure.reason and "refused" in failure.reason
    assert provider.check({}, owned.props).failures == []


def test_connect_down_fails_create_naming_the_worker_and_its_log(provider: DebeziumConnectorProvider, owned: OwnedConnector) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    props = {**owned.props, "connect_url": f"http://127.0.0.1:{closed}"}
    with pytest.raises(ConnectUnavailableError, match=rf"Kafka Connect at http://127.0.0.1:{closed} \(log: .*\) did not answer"):
        provider.create(props)
    assert provider.check({}, props).failures == [], "check defers validation while the worker is not up yet"


def test_read_keeps_the_recorded_state_while_the_worker_cannot_answer(
    provider: DebeziumConnectorProvider, owned: OwnedConnector
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    props = {**owned.props, "connect_url": f"http://127.0.0.1:{closed}", "state": "RUNNING"}
    result = provider.read(owned.name, props)
    assert result.id == owned.name and result.outs == props


SMALL_TOPIC_LIMIT = 64 * 1024
"""Below one large row's event, well above the small seed rows' (schema included, about 2 KB)."""
LARGE_NOTE = "x" * (4 * SMALL_TOPIC_LIMIT)


@dataclass
class FailedByALargeRow:
    """A connector whose task FAILED on a row larger than its topic accepts, and the state Pulumi recorded before."""

    created: dict[str, Any]
    topic: str


@pytest.fixture
def failed_by_a_large_row(
    provider: DebeziumConnectorProvider, owned: OwnedConnector, pg: psycopg.Connection, kafka_admin: AdminClient
) -> FailedByALargeRow:
    """The broker refuses the row (RecordTooLargeException), which fails the task; deterministic, and
    the row is read again after every restart until the topic's limit is raised."""
    table = f"inventory.{owned.name}"
    topic = f"{owned.name}.{table}"
    ensure_topic(kafka_admin, topic)
    set_topic_max_message_bytes(kafka_admin, topic, SMALL_TOPIC_LIMIT)
    created = provider.create(owned.props).outs
    assert created["problem"] == "" and created["tasks"] == [{"id": 0, "state": "RUNNING", "trace": ""}]
    pg.execute(f"INSERT INTO {table} VALUES (3, %s)", [LARGE_NOTE])
    wait_for_failed_task(owned.client, owned.name)
    return FailedByALargeRow(created, topic)


def test_a_failed_task_reads_as_failed_and_update_restarts_it(
    provider: DebeziumConnectorProvider,
    owned: OwnedConnector,
    failed_by_a_large_row: FailedByALargeRow,
    stack: StackOutputs,
    kafka_admin: AdminClient,
) -> None:
    live = provider.read(owned.name, failed_by_a_large_row.created)
    assert live.outs["config"] == owned.props["config"], "the config did not drift; only the task failed"
    assert live.outs["tasks"][0]["state"] == "FAILED"
    assert live.outs["problem"].startswith("task 0 FAILED: ") and "RecordTooLargeException" in live.outs["problem"]
    assert provider.diff(owned.name, live.outs, owned.props).changes is True
    assert provider.diff(owned.name, failed_by_a_large_row.created, owned.props).changes is False

    set_topic_max_message_bytes(kafka_admin, failed_by_a_large_row.topic, MAX_RECORD_BYTES)
    updated = provider.update(owned.name, live.outs, owned.props).outs
    assert updated["problem"] == "" and updated["tasks"] == [{"id": 0, "state": "RUNNING", "trace": ""}]
    assert owned.client.status(owned.name).running
    reader = EventReader(stack.kafka_bootstrap, failed_by_a_large_row.topic)
    try:
        reader.wait_until(
            lambda events: any((getattr(e, "after", None) or {}).get("note") == LARGE_NOTE for e in events),
            "the large row, after the restart",
        )
    finally:
        reader.close()
    assert provider.diff(owned.name, provider.read(owned.name, updated).outs, owned.props).changes is False


def test_a_task_that_fails_again_after_the_restart_fails_update_naming_task_trace_and_log(
    provider: DebeziumConnectorProvider, owned: OwnedConnector, failed_by_a_large_row: FailedByALargeRow
) -> None:
    live = provider.read(owned.name, failed_by_a_large_row.created)
    with pytest.raises(ConnectorFailedError) as failure:
        provider.update(owned.name, live.outs, owned.props)
    message = str(failure.value)
    assert re.fullmatch(
        rf"connector {owned.name}: task 0 FAILED again after a restart: .*RecordTooLargeException.*"
        rf"worker log: {re.escape(owned.props['worker_log'])}\)",
        message,
    ), message
    assert owned.client.status(owned.name).failed
