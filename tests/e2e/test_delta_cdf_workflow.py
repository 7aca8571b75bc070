"""Change Data Feed of the tables the stack's Delta sink keeps (DQ-002): the feed replays the source's
history in commit order, the same through Spark and delta-rs, next to time travel and history. The
tests that only read a table's history share one (`history`); those that shape their own make theirs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from pyspark.sql import SparkSession

from tests.conftest import SparkSessions, delta_postgres_tables
from tests.support.delta import DeltaLake, DeltaSourceTable, change_feed, postgres_rows, wait_for_delta_parity
from tests.support.lake import job_status
from tests.support.stack import StackOutputs

ITEMS = "id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL"


def step(pg: psycopg.Connection, lake: DeltaLake, table: DeltaSourceTable, *statements: str) -> int:
    """Runs the statements in one source transaction, waits until Delta equals the source, and
    returns the Delta version that holds them."""
    with pg.transaction():
        for statement in statements:
            pg.execute(statement.format(table=table.qualified))
    wait_for_delta_parity(lake, table, postgres_rows(pg, table.qualified))
    version = lake.version(table.table)
    assert version is not None
    return version


@dataclass(frozen=True)
class HistoryStep:
    statements: tuple[str, ...]
    """One source transaction."""
    changes: tuple[tuple[str, int, str, int], ...]
    """What the Change Data Feed holds for it: (change type, id, name, qty)."""


HISTORY = (
    HistoryStep(("INSERT INTO {table} VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",), (("insert", 1, "a", 1), ("insert", 2, "b", 2), ("insert", 3, "c", 3))),
    HistoryStep(("UPDATE {table} SET qty = 10 WHERE id = 1",), (("update_postimage", 1, "a", 10), ("update_preimage", 1, "a", 1))),
    HistoryStep(
        ("UPDATE {table} SET name = 'renamed' WHERE id = 2", "INSERT INTO {table} VALUES (4, 'd', 4)"),
        (("update_postimage", 2, "renamed", 2), ("update_preimage", 2, "b", 2), ("insert", 4, "d", 4)),
    ),
    HistoryStep(("DELETE FROM {table} WHERE id = 2",), (("delete", 2, "renamed", 2),)),
    HistoryStep(("UPDATE {table} SET name = 'c2' WHERE id = 3",), (("update_postimage", 3, "c2", 3), ("update_preimage", 3, "c", 3))),
)
"""The source history the read-only tests (feed, time travel, history, version ranges) look at."""


@dataclass(frozen=True)
class History:
    table: DeltaSourceTable
    versions: list[int]
    """The Delta version holding each step of HISTORY."""
    states: list[list[dict[str, Any]]]
    """The source's rows (by id) after each step."""


@pytest.fixture(scope="module")
def history(stack: StackOutputs, kafka_admin: AdminClient, spark_sessions: SparkSessions, delta_lake: DeltaLake) -> Iterator[History]:
    """One replicated table that went through HISTORY, shared by the tests that only read it (each
    step is a source transaction waited through to parity: making it costs a table and five sink
    rounds, once per module instead of once per test)."""
    with psycopg.connect(stack.postgres_dsn, autocommit=True) as pg:
        with delta_postgres_tables(stack, pg, kafka_admin, spark_sessions.get(), delta_lake) as create:
            table = create(ITEMS)
            versions: list[int] = []
            states: list[list[dict[str, Any]]] = []
            for step_made in HISTORY:
                versions.append(step(pg, delta_lake, table, *step_made.statements))
                states.append(sorted(postgres_rows(pg, table.qualified)(), key=lambda row: row["id"]))
            yield History(table, versions, states)


def by_version(feed: list[tuple[int, str, dict[str, Any]]]) -> dict[int, list[tuple[str, int, str, int]]]:
    grouped: dict[int, list[tuple[str, int, str, int]]] = {}
    for version, kind, row in feed:
        grouped.setdefault(version, []).append((kind, row["id"], row["name"], row["qty"]))
    return {version: sorted(changes) for version, changes in grouped.items()}


def test_the_change_feed_replays_the_source_history_in_commit_order(history: History, spark: SparkSession) -> None:
    feed = by_version(change_feed(spark, history.table.identifier))
    # Each source transaction's changes sit in the commits after the previous step's and up to its
    # own (a sink batch may split a transaction, never reorder it).
    starts = [0, *history.versions[:-1]]
    for step_made, start, end in zip(HISTORY, starts, history.versions):
        found = sorted(change for version, changes in feed.items() if start < version <= end or (start == 0 and version == 0) for change in changes)
        assert found == sorted(step_made.changes), f"{step_made.statements}: versions {start}..{end} hold {found}"
    assert sum(len(changes) for changes in feed.values()) == sum(len(step_made.changes) for step_made in HISTORY)


def test_the_change_feed_read_by_delta_rs_equals_spark(
    pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake, spark: SparkSession
) -> None:
    table = delta_postgres_table(ITEMS)
    step(pg, delta_lake, table, "INSERT INTO {table} SELECT n, 'item ' || n, n FROM generate_series(1, 200) AS n")
    step(pg, delta_lake, table, "UPDATE {table} SET qty = qty + 1000 WHERE id % 3 = 0", "DELETE FROM {table} WHERE id % 5 = 0")
    from_spark = by_version(change_feed(spark, table.identifier, 1))
    from_delta_rs: dict[int, list[tuple[str, int, str, int]]] = {}
    for row in delta_lake.changes(table.table, 1):
        from_delta_rs.setdefault(row["_commit_version"], []).append((row["_change_type"], row["id"], row["name"], row["qty"]))
    assert {version: sorted(changes) for version, changes in from_delta_rs.items()} == from_spark
    changes = [change for batch in from_spark.values() for change in batch]
    assert sorted(row_id for kind, row_id, *_ in changes if kind == "insert") == list(range(1, 201))
    assert sorted(row_id for kind, row_id, *_ in changes if kind == "delete") == list(range(5, 201, 5))
    # 66 multiples of 3; the 13 that are also multiples of 5 are deleted in the same transaction,
    # so their update shows only when the sink's batch ended between the two statements.
    updated = {row_id for kind, row_id, *_ in changes if kind == "update_postimage"}
    assert {n for n in range(3, 201, 3) if n % 5} <= updated <= set(range(3, 201, 3))


def test_time_travel_on_a_replicated_table_returns_each_source_state(history: History, delta_lake: DeltaLake, spark: SparkSession) -> None:
    identifier = history.table.identifier
    for version, source in zip(history.versions, history.states):
        in_spark = [row.asDict() for row in spark.sql(f"SELECT * FROM {identifier} VERSION AS OF {version} ORDER BY id").collect()]
        assert in_spark == source, f"version {version}"
        assert sorted(delta_lake.rows(history.table.table, version=version), key=lambda row: row["id"]) == source
    first = history.versions[0]
    committed = spark.sql(f"DESCRIBE HISTORY {identifier}").where(f"version = {first}").first()["timestamp"]
    at_time = spark.sql(f"SELECT * FROM {identifier} TIMESTAMP AS OF '{committed.isoformat(sep=' ')}' ORDER BY id").collect()
    assert [row.asDict() for row in at_time] == history.states[0]


def test_a_source_truncate_is_one_commit_deleting_every_row(
    pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake, spark: SparkSession
) -> None:
    table = delta_postgres_table(ITEMS)
    step(pg, delta_lake, table, "INSERT INTO {table} SELECT n, 'item ' || n, n FROM generate_series(1, 50) AS n")
    truncated = step(pg, delta_lake, table, "TRUNCATE {table}")
    assert delta_lake.rows(table.table) == []
    feed = by_version(change_feed(spark, table.identifier, truncated))
    assert feed == {truncated: sorted(("delete", n, f"item {n}", n) for n in range(1, 51))}


def test_history_records_each_sink_commit_with_the_offsets_it_applied(stack: StackOutputs, history: History, spark: SparkSession) -> None:
    table = history.table
    commits = spark.sql(f"DESCRIBE HISTORY {table.identifier}").orderBy("version").collect()
    assert commits[0]["operation"] == "CREATE TABLE"
    merges = [commit for commit in commits if commit["operation"] == "MERGE"]
    recorded = [json.loads(commit["userMetadata"])[f"{table.topic}:0"] for commit in merges]
    assert len(merges) >= len(HISTORY) and recorded == sorted(recorded) and len(set(recorded)) == len(recorded)
    _, status = job_status(stack, "delta-sink")
    assert status["tables"][table.topic]["committed_offsets"] == json.loads(merges[-1]["userMetadata"])
    assert status["tables"][table.topic]["last_commit_version"] == merges[-1]["version"] == history.versions[-1]


def test_the_change_feed_of_a_version_range_holds_only_those_commits(history: History, spark: SparkSession) -> None:
    identifier = history.table.identifier
    middle = history.versions[1]
    rows = spark.sql(f"SELECT * FROM table_changes('{identifier}', {middle}, {middle})").collect()
    assert sorted((row["_change_type"], row["id"], row["qty"]) for row in rows) == [("update_postimage", 1, 10), ("update_preimage", 1, 1)]
    streamed = spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", middle).table(identifier)
    assert sorted((row["_change_type"], row["id"]) for row in streamed.collect()) == sorted(
        (kind, row_id) for step_made in HISTORY[1:] for kind, row_id, *_ in step_made.changes
    )
