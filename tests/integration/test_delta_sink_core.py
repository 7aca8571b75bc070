"""The Delta sink (consumer core and writer) against the live stack on what a user's tables send
besides keyed changes: a Postgres table without a primary key through the stack's Delta sink job,
and an exception no writer foresaw for one event of a batch. Neither may leave a table stuck."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from pyspark.sql import DataFrame, SparkSession

import stack_outputs as out
from pipelines.sinks.batch import BatchPlan
from pipelines.sinks.core import CdcSink, RetryPolicy
from pipelines.sinks.delta.writer import DeltaTableWriter, LoadedTable
from pipelines.spark import bucket_of
from testkit.kafka import consume_exactly, owned_sink_topic
from testkit.names import unique_name
from tests.support.delta import DeltaLake, owned_database
from tests.support.lake import dead_letter_headers, job_status, wait_for_job
from tests.support.sinks import debezium_key, debezium_value, produce
from tests.support.stack import StackOutputs

FAST_RETRY = RetryPolicy(first_delay_seconds=0.05, max_delay_seconds=0.2)
POISONED_ID = 4


def by_content(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda item: (item["id"], item["name"] or ""))


def test_a_postgres_table_without_a_primary_key_replicates_through_the_stack(
    stack: StackOutputs, pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake
) -> None:
    """Debezium's own null keys (the creator sets REPLICA IDENTITY FULL): identical rows, one updated."""
    table = delta_postgres_table("id integer NOT NULL, name text")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, 'a'), (1, 'a'), (2, 'b'), (3, 'c'), (4, NULL)")
    pg.execute(f"UPDATE {table.qualified} SET name = 'a2' WHERE ctid = (SELECT min(ctid) FROM {table.qualified} WHERE id = 1)")
    pg.execute(f"DELETE FROM {table.qualified} WHERE id = 3")
    pg.execute(f"UPDATE {table.qualified} SET name = 'd' WHERE id = 4")
    expected = [{"id": 1, "name": "a"}, {"id": 1, "name": "a2"}, {"id": 2, "name": "b"}, {"id": 4, "name": "d"}]

    def in_lake(_code: int, status: dict[str, Any]) -> bool:
        # The commit is visible before the job counts it: wait for both.
        applied = status.get("tables", {}).get(table.topic, {}).get("applied", 0) >= 8
        return applied and by_content(delta_lake.rows(table.table)) == expected

    wait_for_job(stack, in_lake, f"{table.identifier} equal to {table.qualified} as multisets {expected}", 240, "delta-sink")
    with pg.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        assert by_content(cursor.execute(f"SELECT id, name FROM {table.qualified}").fetchall()) == expected
    status = job_status(stack, "delta-sink")[1]["tables"][table.topic]
    assert status["state"] == "ok" and status["dead_letters"] == 0 and status["applied"] == 8, status


class FailingOnOneRow(DeltaTableWriter):
    """The real writer, with a bug only one row's values reach (a KeyError, as a programming error
    raises), inside the writer where its own failures are mapped."""

    def _source(self, table: LoadedTable, plan: BatchPlan) -> DataFrame:
        if any(row.get("id") == POISONED_ID for row in plan.upserts.values()):
            raise KeyError("no column for this value")
        return super()._source(table, plan)


@pytest.fixture
def topic(kafka_admin: AdminClient) -> Iterator[str]:
    with owned_sink_topic(kafka_admin, "delta_core") as name:
        yield name


def test_an_unexpected_exception_for_one_event_dead_letters_it_and_the_rest_lands(
    stack: StackOutputs, topic: str, spark: SparkSession, delta_lake: DeltaLake
) -> None:
    records = [(debezium_key(n), debezium_value("c", None, {"id": n, "name": f"row {n}"})) for n in range(1, 7)]
    produce(stack.kafka_bootstrap, topic, records)
    with owned_database(spark, delta_lake, stack.s3_client()) as (database, location):
        writer = FailingOnOneRow(spark, f"{database}.items", bucket_of(stack[out.WAREHOUSE]), location_root=location)
        sink = CdcSink(stack.kafka_bootstrap, [topic], writer, unique_name("delta_core"), retry=FAST_RETRY)
        try:
            sink.run_until(lambda: sink.offsets.get(f"{topic}:0") == len(records), timeout_seconds=240)
        finally:
            sink.close()
        rows = sorted((row.asDict() for row in spark.table(f"{database}.items").collect()), key=lambda row: row["id"])
    assert rows == [{"id": n, "name": f"row {n}"} for n in range(1, 7) if n != POISONED_ID]
    assert sink.stats.healthy and sink.stats.as_dict()["state"] == "ok" and sink.stats.dead_letters == 1
    [letter] = [dead_letter_headers(message) for message in consume_exactly(stack.kafka_bootstrap, f"{topic}.dlq", 1)]
    assert letter["cdcstack.source.offset"] == str(POISONED_ID - 1)
    assert letter["cdcstack.error.class"] == "UnexpectedSinkError" and "KeyError" in letter["cdcstack.error"], letter
