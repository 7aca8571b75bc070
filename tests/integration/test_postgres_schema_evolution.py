"""Schema evolution through the live pipeline: Postgres DDL → Debezium (Avro) → schema registry →
Kafka → the Iceberg sink (spec user story 3: FR-014..FR-016, DQ-003, SC-004).

Each test owns an `inventory.avro_*` table, which the stack's Avro connector captures, registering
each new schema under `<topic>-value`. Data is compared with the source before and after every
change (multisets, so a duplicated row counts), and each subject is removed (soft, then hard) at the
end.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from pyiceberg.catalog import Catalog
from pyiceberg.types import LongType

import stack_outputs as out
from providers.connect_client import ConnectClient
from testkit.names import unique_name
from tests.support.connectors import wait_for_failed_task
from tests.support.iceberg import catalog_of
from tests.support.lake import LakeTable, wait_for_parity
from tests.support.schema_registry import (
    Registry,
    avro_table,
    compatible_with_latest,
    delete_subject,
    events_end,
    latest_schema,
    lake_rows,
    level_of,
    register,
    register_answer,
    register_refused,
    registry_of,
    row_fields,
    row_record,
    schema_events,
    set_level,
    source_rows,
    topic_records,
    version_id,
    version_schema,
    versions,
    wait_for_versions,
    value_subject,
    with_row_record,
)
from tests.support.stack import StackOutputs
from tests.support.threads import CheckedThread, join_all, start_all

KEY = ("id",)
CONNECTOR_FAILS_WITHIN_SECONDS = 60.0


@pytest.fixture
def catalog(stack: StackOutputs) -> Catalog:
    return catalog_of(stack)


@pytest.fixture
def registry(stack: StackOutputs) -> Registry:
    return registry_of(stack)


@pytest.fixture
def table_factory(
    stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient, catalog: Catalog, registry: Registry
) -> Iterator[Callable[[str], LakeTable]]:
    with ExitStack() as tables:
        yield lambda columns_sql: tables.enter_context(avro_table(stack, pg, kafka_admin, catalog, registry, columns_sql))


def converged(pg: psycopg.Connection, catalog: Catalog, table: LakeTable, what: str) -> list[dict[str, Any]]:
    """Waits until the Iceberg table equals the source (on the source's columns) and returns its rows."""
    return wait_for_parity(lambda: source_rows(pg, table), lake_rows(catalog, table), KEY, f"{table.qualified} {what}").rows


def test_an_added_column_is_a_new_version_that_reaches_the_lake_with_old_rows_null(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, registry: Registry, table_factory: Callable[[str], LakeTable]
) -> None:
    table = table_factory("id integer PRIMARY KEY, name text NOT NULL")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger')")
    before = converged(pg, catalog, table, "before the change")
    assert wait_for_versions(registry, value_subject(table), 1) == [1]
    assert row_fields(latest_schema(registry, value_subject(table))) == ["id", "name"]
    events_from = events_end(stack)

    pg.execute(f"ALTER TABLE {table.qualified} ADD COLUMN email text")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (4, 'barbara', 'barbara@example.org')")
    after = converged(pg, catalog, table, "after ADD COLUMN email")

    assert wait_for_versions(registry, value_subject(table), 2) == [1, 2]
    added = row_record(latest_schema(registry, value_subject(table)))["fields"][-1]
    assert added == {"name": "email", "type": ["null", "string"], "default": None}
    # Downstream is told: the registry announced the new version on its events topic.
    announced = schema_events(stack, value_subject(table), events_from)
    assert announced[0]["version"] == "2" and announced[0]["event"] == "io.apicurio.registry.artifact-updated"
    assert {row["id"]: row["email"] for row in after} == {1: None, 2: None, 3: None, 4: "barbara@example.org"}
    # DQ-003: the rows from before the change are unchanged by it.
    unchanged = {row["id"]: row["name"] for row in before}
    assert {row["id"]: row["name"] for row in after if row["id"] in unchanged} == unchanged
    # Each record names the version it was written with: the old rows version 1, the new one version 2.
    ids = {version: version_id(registry, value_subject(table), version) for version in (1, 2)}
    assert [(record.value["after"]["id"], record.schema_id) for record in topic_records(stack, table.topic)] == [
        (1, ids[1]),
        (2, ids[1]),
        (3, ids[1]),
        (4, ids[2]),
    ]


def test_a_widened_type_is_accepted_and_a_narrowed_one_refused_under_backward(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, registry: Registry, table_factory: Callable[[str], LakeTable]
) -> None:
    table = table_factory("id integer PRIMARY KEY, quantity integer NOT NULL")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 10), (2, 20)")
    converged(pg, catalog, table, "before the change")
    wait_for_versions(registry, value_subject(table), 1)
    set_level(registry, value_subject(table), "BACKWARD")

    pg.execute(f"ALTER TABLE {table.qualified} ALTER COLUMN quantity TYPE bigint")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (3, 5000000000)")
    pg.execute(f"UPDATE {table.qualified} SET quantity = 21 WHERE id = 2")
    after = converged(pg, catalog, table, "after widening quantity to bigint")

    assert wait_for_versions(registry, value_subject(table), 2) == [1, 2]
    quantity = next(field for field in row_record(latest_schema(registry, value_subject(table)))["fields"] if field["name"] == "quantity")
    assert quantity["type"] == "long"
    assert isinstance(catalog.load_table(table.identifier).schema().find_field("quantity").field_type, LongType)
    assert {row["id"]: row["quantity"] for row in after} == {1: 10, 2: 21, 3: 5_000_000_000}

    # Narrowing back to int (and a new column, so it is not version 1 again, which the registry would
    # just return): a BACKWARD reader of int cannot read the long data already written.
    narrow = with_row_record(
        latest_schema(registry, value_subject(table)),
        lambda fields: [
            *({**field, "type": "int"} if field["name"] == "quantity" else field for field in fields),
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    )
    compatible, reason = compatible_with_latest(registry, value_subject(table), narrow)
    assert not compatible and reason.startswith(f"Incompatible artifact: {value_subject(table)}"), reason
    status, message = register_refused(registry, value_subject(table), narrow)
    assert status == 409 and "Incompatible artifact" in message, message
    assert versions(registry, value_subject(table)) == [1, 2]
    assert converged(pg, catalog, table, "after the refused narrowing") == after


def test_a_dropped_column_is_a_new_version_that_readers_of_the_old_one_still_decode(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, registry: Registry, table_factory: Callable[[str], LakeTable]
) -> None:
    table = table_factory("id integer PRIMARY KEY, name text NOT NULL, legacy_code text")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'ada', 'A1'), (2, 'grace', 'G2')")
    before = converged(pg, catalog, table, "before the change")
    wait_for_versions(registry, value_subject(table), 1)
    old_reader = version_schema(registry, value_subject(table), 1)

    pg.execute(f"ALTER TABLE {table.qualified} DROP COLUMN legacy_code")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (3, 'edsger')")
    pg.execute(f"UPDATE {table.qualified} SET name = 'ada lovelace' WHERE id = 1")
    after = converged(pg, catalog, table, "after DROP COLUMN legacy_code")

    assert wait_for_versions(registry, value_subject(table), 2) == [1, 2]
    assert row_fields(latest_schema(registry, value_subject(table))) == ["id", "name"]
    # A consumer still on version 1 decodes every record, old and new: the dropped column is its default.
    as_old_reader = topic_records(stack, table.topic, reader_schema=old_reader)
    assert [(record.value["after"]["id"], record.value["after"]["legacy_code"]) for record in as_old_reader] == [
        (1, "A1"),
        (2, "G2"),
        (3, None),
        (1, None),
    ]
    # The lake keeps the column for the rows written before the drop; it is null after.
    lake = {row["id"]: row for row in after}
    assert lake[2]["legacy_code"] == "G2" and lake[3]["legacy_code"] is None and lake[1]["legacy_code"] is None
    assert {row["id"]: row["name"] for row in before} == {1: "ada", 2: "grace"}
    assert {row["id"]: row["name"] for row in after} == {1: "ada lovelace", 2: "grace", 3: "edsger"}


def test_concurrent_schema_changes_on_two_tables_are_versioned_in_order(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, registry: Registry, table_factory: Callable[[str], LakeTable]
) -> None:
    tables = [table_factory("id integer PRIMARY KEY, step integer NOT NULL") for _ in range(2)]
    for table in tables:
        pg.execute(f"INSERT INTO {table.qualified} VALUES (0, 0)")
        converged(pg, catalog, table, "before the changes")
    added = ["col_a", "col_b", "col_c"]
    start = threading.Barrier(len(tables))

    def evolve(table: LakeTable) -> None:
        with psycopg.connect(stack.postgres_dsn, autocommit=True) as connection:
            start.wait(timeout=30)
            for step, column in enumerate(added, start=1):
                connection.execute(f"ALTER TABLE {table.qualified} ADD COLUMN {column} integer")
                connection.execute(f"INSERT INTO {table.qualified} (id, step, {column}) VALUES (%s, %s, %s)", (step, step, step))

    threads = [CheckedThread(target=evolve, name=f"evolve {table.name}", args=(table,)) for table in tables]
    start_all(threads)
    join_all(threads, timeout_seconds=60)

    for table in tables:
        after = converged(pg, catalog, table, "after three concurrent ADD COLUMNs")
        assert wait_for_versions(registry, value_subject(table), 4) == [1, 2, 3, 4]
        fields_by_version = [row_fields(json.loads(version_schema(registry, value_subject(table), version))) for version in (1, 2, 3, 4)]
        assert fields_by_version == [["id", "step"], ["id", "step", "col_a"], ["id", "step", "col_a", "col_b"], ["id", "step", "col_a", "col_b", "col_c"]]
        # In topic order, each record carries the version of its change: ids never go back.
        records = topic_records(stack, table.topic)
        ids = [record.schema_id for record in records]
        assert ids == sorted(ids) and len(set(ids)) == 4
        assert [record.value["after"]["step"] for record in records] == [0, 1, 2, 3]
        assert {row["id"]: (row["col_a"], row["col_b"], row["col_c"]) for row in after} == {
            0: (None, None, None),
            1: (1, None, None),
            2: (None, 2, None),
            3: (None, None, 3),
        }


LEVELS = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE")


def test_compatibility_rules_are_enforced_per_level(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, registry: Registry, table_factory: Callable[[str], LakeTable]
) -> None:
    table = table_factory("id integer PRIMARY KEY, name text, quantity bigint")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'ada', 10)")
    converged(pg, catalog, table, "version 1")
    wait_for_versions(registry, value_subject(table), 1)
    # Version 2 narrows quantity to int, which the subject's NONE allows: version 1 records hold longs.
    set_level(registry, value_subject(table), "NONE")
    pg.execute(f"ALTER TABLE {table.qualified} ALTER COLUMN quantity TYPE integer")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (2, 'grace', 20)")
    data = converged(pg, catalog, table, "version 2")
    assert wait_for_versions(registry, value_subject(table), 2) == [1, 2]
    latest = latest_schema(registry, value_subject(table))

    candidates = {
        # A nullable column with a default: readers and writers of version 2 resolve either way; a
        # reader of int quantity still cannot read version 1's longs, which only transitive levels check.
        "add optional": with_row_record(latest, lambda fields: [*fields, {"name": "phone", "type": ["null", "string"], "default": None}]),
        # New readers need a value old records lack: not backward; old readers ignore it: forward.
        "add required": with_row_record(latest, lambda fields: [*fields, {"name": "phone", "type": "string"}]),
        # Old readers need `id`, which new records lack: not forward; new readers ignore it: backward.
        "drop required": with_row_record(latest, lambda fields: [field for field in fields if field["name"] != "id"]),
    }
    expected = {
        "NONE": {"add optional", "add required", "drop required"},
        "BACKWARD": {"add optional", "drop required"},
        "BACKWARD_TRANSITIVE": set(),
        "FORWARD": {"add optional", "add required"},
        "FORWARD_TRANSITIVE": {"add optional", "add required"},
        "FULL": {"add optional"},
        "FULL_TRANSITIVE": set(),
    }
    # Each candidate is registered for real, on a subject of the test's own holding the table's two
    # versions under the level: the registry alone decides which versions the level checks.
    first = version_schema(registry, value_subject(table), 1)
    second = version_schema(registry, value_subject(table), 2)
    scratch = unique_name("compat")
    accepted_by_level: dict[str, set[str]] = {}
    refusals: dict[tuple[str, str], tuple[int, str]] = {}
    subjects: list[str] = []
    try:
        for level in LEVELS:
            accepted_by_level[level] = set()
            for name, candidate in candidates.items():
                subject = f"{scratch}-{level.lower()}-{name.replace(' ', '-')}"
                subjects.append(subject)
                register(registry, subject, first)
                set_level(registry, subject, "NONE")
                register(registry, subject, second)
                set_level(registry, subject, level)
                assert level_of(registry, subject) == level
                status, body = register_answer(registry, subject, candidate)
                if status == 200:
                    accepted_by_level[level].add(name)
                    assert versions(registry, subject) == [1, 2, 3], f"{subject}: {body}"
                else:
                    refusals[(level, name)] = (status, body)
                    assert versions(registry, subject) == [1, 2], f"{subject}: refused ({status}) but holds a new version"
    finally:
        for subject in subjects:
            delete_subject(registry, subject)
    assert accepted_by_level == expected
    assert all(status == 409 and "Incompatible artifact" in body for status, body in refusals.values()), refusals
    # The checks changed nothing: still two versions and the same rows.
    assert versions(registry, value_subject(table)) == [1, 2]
    assert converged(pg, catalog, table, "after the checks") == data


def test_an_incompatible_change_is_refused_with_the_reason_and_nothing_changes_until_it_is_allowed(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, registry: Registry, table_factory: Callable[[str], LakeTable]
) -> None:
    connect = ConnectClient(stack.connect_url, log_hint=stack.log_of("connect"))
    connector = stack[out.AVRO_CONNECTOR]
    table = table_factory("id integer PRIMARY KEY, name text NOT NULL, code text NOT NULL")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'ada', 'A'), (2, 'grace', 'G')")
    before = converged(pg, catalog, table, "before the change")
    wait_for_versions(registry, value_subject(table), 1)
    set_level(registry, value_subject(table), "FORWARD")
    latest_before = latest_schema(registry, value_subject(table))

    # Consumers still on version 1 need `code`, which has no default: FORWARD refuses its removal.
    pg.execute(f"ALTER TABLE {table.qualified} DROP COLUMN code")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (3, 'edsger')")
    try:
        failure = wait_for_failed_task(connect, connector, CONNECTOR_FAILS_WITHIN_SECONDS).failure or ""
        assert f"Incompatible artifact: {value_subject(table)}" in failure, failure
        # Nothing changed: no new version, and the lake holds exactly the rows from before.
        assert versions(registry, value_subject(table)) == [1]
        assert latest_schema(registry, value_subject(table)) == latest_before
        assert wait_for_parity(lambda: before, lake_rows(catalog, table), KEY, f"{table.qualified} while refused").rows == before

        # The owner accepts the change (NONE for this subject) and restarts the task: the change
        # is registered and the row that was refused arrives, nothing lost or doubled.
        set_level(registry, value_subject(table), "NONE")
        connect.restart_failed(connector, timeout_seconds=60, stable_seconds=2)
    finally:
        if connect.status(connector).failed:
            set_level(registry, value_subject(table), "NONE")
            connect.restart_failed(connector, timeout_seconds=60, stable_seconds=2)
    after = converged(pg, catalog, table, "after the change was allowed")
    assert wait_for_versions(registry, value_subject(table), 2) == [1, 2]
    assert {row["id"]: (row["name"], row["code"]) for row in after} == {1: ("ada", "A"), 2: ("grace", "G"), 3: ("edsger", None)}
