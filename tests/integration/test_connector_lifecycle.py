"""A Debezium connector's life cycle through Pulumi (Automation API, inline program) on the live worker.

The tests run in file order on one throwaway stack that declares one connector of its own.
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from pulumi import automation as auto

import stack_outputs as out
from pipelines.kafka_limits import MAX_RECORD_BYTES
from providers.connect_client import ConnectClient
from providers.debezium_connector import DebeziumConnector, DebeziumConnectorArgs
from testkit.connectors import drop_captured_postgres_table, drop_slot_and_publication
from testkit.kafka import EventReader, delete_topic, ensure_topic
from testkit.names import unique_name
from testkit.stack import toolchain_env
from tests.support.connectors import (
    delete_connector_topics,
    postgres_config,
    set_topic_max_message_bytes,
    wait_for_failed_task,
)
from tests.support.stack import StackOutputs
from tests.support.threads import CheckedThread, join_all, start_all

PROJECT = "cdcstack-connector-tests"
SMALL_TOPIC_LIMIT = 64 * 1024
"""A topic record limit below one large row's event and above the seed rows'."""


@dataclass
class DeclaredConnector:
    """The throwaway stack and the one connector it declares (its config is what the next `up` applies)."""

    name: str
    table: str
    topic: str
    password: str
    config: dict[str, str]
    client: ConnectClient
    stack: auto.Stack = field(init=False)

    def program(self) -> None:
        DebeziumConnector(
            "connector",
            DebeziumConnectorArgs(
                name=self.name,
                connect_url=self.client.url,
                config=dict(self.config),
                worker_log=self.client.log_hint,
                running_timeout=60.0,
            ),
        )

    def workspace_options(self) -> auto.LocalWorkspaceOptions:
        env = toolchain_env()
        return auto.LocalWorkspaceOptions(
            env_vars=env,
            secrets_provider="passphrase",
            project_settings=auto.ProjectSettings(
                name=PROJECT, runtime="python", backend=auto.ProjectBackend(url=env["PULUMI_BACKEND_URL"])
            ),
        )

    def new_stack(self, stack_name: str) -> auto.Stack:
        return auto.create_stack(stack_name, project_name=PROJECT, program=self.program, opts=self.workspace_options())


@pytest.fixture(scope="module")
def declared(stack: StackOutputs, kafka_admin) -> Iterator[DeclaredConnector]:
    name = unique_name("lifecycle")
    table = f"inventory.{name}"
    with psycopg.connect(stack.postgres_dsn, autocommit=True) as pg:
        pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text NOT NULL)")
        pg.execute(f"INSERT INTO {table} SELECT n, 'seed ' || n FROM generate_series(1, 10) AS n")
    config = postgres_config(stack, topic_prefix=name, slot=name, tables=table.replace(".", r"\."))
    topic = f"{name}.{table}"
    ensure_topic(kafka_admin, topic)
    declared = DeclaredConnector(name, table, topic, config["database.password"], config, ConnectClient(stack.connect_url, stack.log_of("connect")))
    declared.stack = declared.new_stack(unique_name("connectors").replace("_", "-"))
    try:
        yield declared
    finally:
        declared.stack.destroy()
        declared.stack.workspace.remove_stack(declared.stack.name)
        declared.client.delete_if_present(name)
        drop_slot_and_publication(stack.postgres_dsn, name)
        with psycopg.connect(stack.postgres_dsn, autocommit=True) as pg:
            # Once the stack's own connector streamed its rows: none in flight recreates its topic below.
            drop_captured_postgres_table(pg, table, stack.connect_url, stack[out.POSTGRES_CONNECTOR], f"log: {stack.log_of('connect')}")
        delete_connector_topics(kafka_admin, name)
        # The stack's own connector captures all of `inventory`: its topic for this table is the test's too.
        delete_topic(kafka_admin, f"{stack[out.POSTGRES_TOPIC_PREFIX]}.{table}")


def changes_of(result: Any) -> dict[str, int]:
    return {kind: count for kind, count in (result.summary.resource_changes or {}).items() if kind != "same"}


def test_pulumi_up_registers_the_connector_running(declared: DeclaredConnector) -> None:
    result = declared.stack.up()
    assert changes_of(result) == {"create": 2}
    status = declared.client.status(declared.name)
    assert status.running and status.state == "RUNNING"
    listed = httpx.get(f"{declared.client.url}/connectors", params={"expand": "status"}, timeout=10).json()
    assert listed[declared.name]["status"]["connector"]["state"] == "RUNNING"


def test_a_second_up_changes_nothing(declared: DeclaredConnector) -> None:
    assert changes_of(declared.stack.up()) == {}


def test_registering_the_same_connector_again_adopts_it(declared: DeclaredConnector) -> None:
    """FR-020: a connector that already exists is taken over, not a conflict."""
    second = declared.new_stack(unique_name("adopter").replace("_", "-"))
    try:
        assert changes_of(second.up()) == {"create": 2}
        assert declared.client.status(declared.name).running
    finally:
        # Forget the adopted connector without deleting it: it still belongs to the first stack.
        subprocess.run(
            ["pulumi", "stack", "rm", "--force", "--yes", "--stack", second.name],
            cwd=second.workspace.work_dir,
            env=toolchain_env(),
            capture_output=True,
            check=True,
        )


def test_a_config_change_updates_the_connector_in_place(declared: DeclaredConnector) -> None:
    declared.config["heartbeat.interval.ms"] = "7000"
    assert changes_of(declared.stack.up()) == {"update": 1}
    assert declared.client.get_config(declared.name)["heartbeat.interval.ms"] == "7000"
    assert declared.client.status(declared.name).running


def test_a_config_changed_behind_pulumis_back_is_found_and_put_back(declared: DeclaredConnector) -> None:
    declared.client.put_config(declared.name, {**declared.config, "heartbeat.interval.ms": "1234"})
    refresh = declared.stack.refresh()
    assert changes_of(refresh) == {"update": 1}
    assert declared.stack.preview().change_summary.get("update") == 1
    declared.stack.up()
    assert declared.client.get_config(declared.name)["heartbeat.interval.ms"] == "7000"


def test_a_connector_deleted_behind_pulumis_back_is_found_and_recreated(declared: DeclaredConnector) -> None:
    declared.client.delete(declared.name)
    assert changes_of(declared.stack.refresh()) == {"delete": 1}
    assert changes_of(declared.stack.up()) == {"create": 1}
    assert declared.client.status(declared.name).running


def test_a_broken_config_fails_up_with_connects_message_and_keeps_the_old_one(declared: DeclaredConnector) -> None:
    declared.config["database.password"] = "wrong-password"
    try:
        with pytest.raises(auto.CommandError, match="password authentication failed"):
            declared.stack.up()
    finally:
        declared.config["database.password"] = declared.password
    assert declared.client.get_config(declared.name)["database.password"] == declared.password
    assert declared.client.status(declared.name).running


def test_a_failed_task_is_found_by_refresh_and_up_restarts_it_or_fails_naming_it(
    stack: StackOutputs, declared: DeclaredConnector, kafka_admin: AdminClient
) -> None:
    """A row over the topic's record limit fails the task (RecordTooLargeException): `up` must not call that unchanged."""
    declared.stack.up()
    set_topic_max_message_bytes(kafka_admin, declared.topic, SMALL_TOPIC_LIMIT)
    try:
        with psycopg.connect(stack.postgres_dsn, autocommit=True) as pg:
            pg.execute(f"INSERT INTO {declared.table} VALUES (900, %s)", ["x" * (4 * SMALL_TOPIC_LIMIT)])
        wait_for_failed_task(declared.client, declared.name)
        assert changes_of(declared.stack.refresh()) == {"update": 1}
        assert declared.stack.preview().change_summary.get("update") == 1
        # The restart reads the same row again, which the topic still refuses.
        with pytest.raises(auto.CommandError) as failure:
            declared.stack.up()
        assert re.search(
            rf"connector {declared.name}: task 0 FAILED again after a restart: .*RecordTooLargeException.*"
            rf"worker log: {re.escape(declared.client.log_hint)}",
            str(failure.value),
        ), str(failure.value)
    finally:
        set_topic_max_message_bytes(kafka_admin, declared.topic, MAX_RECORD_BYTES)
    # The failed update kept the recorded problem, so this `up` (no refresh) restarts the task again.
    assert changes_of(declared.stack.up()) == {"update": 1}
    assert declared.client.status(declared.name).running
    assert changes_of(declared.stack.up()) == {}


def test_passwords_never_appear_in_plain_state(declared: DeclaredConnector) -> None:
    # The checkpoint file itself: the Automation API's export_stack decrypts secrets for display.
    backend = Path(toolchain_env()["PULUMI_BACKEND_URL"].removeprefix("file://"))
    checkpoint = (backend / ".pulumi" / "stacks" / PROJECT / f"{declared.stack.name}.json").read_text()
    assert declared.name in checkpoint
    assert declared.password not in checkpoint
    assert '"ciphertext"' in checkpoint


def test_connector_and_task_restarts_lose_no_change(stack: StackOutputs, declared: DeclaredConnector) -> None:
    declared.stack.up()
    stop = threading.Event()
    inserted: list[int] = []

    def write_continuously() -> None:
        with psycopg.connect(stack.postgres_dsn, autocommit=True) as pg:
            next_id = 1000
            while not stop.is_set() and next_id < 1400:
                pg.execute(f"INSERT INTO {declared.table} VALUES (%s, %s)", [next_id, f"during restarts {next_id}"])
                inserted.append(next_id)
                next_id += 1
                stop.wait(0.01)

    writer = CheckedThread(write_continuously, "writer-during-restarts")
    start_all([writer])
    try:
        declared.client.restart(declared.name, include_tasks=True)
        declared.client.wait_running(declared.name, 60)
        declared.client.restart_task(declared.name, 0)
        declared.client.wait_running(declared.name, 60)
    finally:
        stop.set()
        join_all([writer], timeout_seconds=30)
    reader = EventReader(stack.kafka_bootstrap, declared.topic)
    try:
        expected = set(range(1, 11)) | set(inserted)
        reader.wait_until(
            lambda events: expected <= {e.after["id"] for e in events if getattr(e, "after", None)},
            f"all {len(expected)} rows",
        )
    finally:
        reader.close()
    assert len(inserted) > 20, "the writer should have been busy across both restarts"


def test_destroy_removes_the_connector_and_a_second_destroy_succeeds(declared: DeclaredConnector) -> None:
    declared.stack.destroy()
    assert declared.name not in declared.client.connectors()
    declared.stack.destroy()
