"""Faults on the live stack while thousands of rows are written, each landing while a batch is in
flight (held at a failpoint of the sink job, see `pipelines.sinks.failpoints`) and each ending with
the stack's own sink job holding exactly the source: no row lost, no key twice, within a bounded time.

A stopped service is started again in `finally` (`pulumi up --refresh --target` of its process, as
`make up` would); a killed one comes back by itself. Each test appends its figures to
reports/faults.tsv, the seconds counted from the fault to parity (outage and restore included).
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import string
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from pyiceberg.catalog import Catalog

import stack_outputs as out
from pipelines.sinks.failpoints import AFTER_TABLE_COMMIT, BEFORE_TABLE_COMMIT
from testkit.kafka import consume_exactly
from testkit.sinks import consumer_group
from tests.support.delta import DELTA_SINK, DeltaLake, DeltaSourceTable
from tests.support.iceberg import catalog_of
from tests.support.lake import (
    SINK_HEALTH_URLS,
    LakeTable,
    LoadWriter,
    dead_letter_headers,
    duplicate_keys,
    failpoint,
    iceberg_rows,
    job_status,
    json_text,
    lake_postgres_table,
    record_fault,
    wait_for_job,
    wait_for_parity,
)
from tests.support.services import kill_service_process, restore_stack, service_stopped, wait_until_restarted
from tests.support.sinks import group_offsets, produce
from tests.support.stack import StackOutputs

ITEMS = "id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL"
CONVERGE_SECONDS = 180.0
CONNECTOR_SETTLE_SECONDS = 120.0
KAFKA_ERROR_SECONDS = 10.0
"""A stopped broker is on the table's /health within this, every time."""
NAMED_IN_ERROR = {"object-store": "object store", "iceberg-catalog": "catalog"}
DELTA_FLOWING_SECONDS = 180.0
"""The first rows of a new table reach Delta within a few commits of a few seconds each."""
DELTA_CONVERGE_SECONDS = 360.0
"""A new Spark driver and its first executor take about a minute on two cores, then the rest of the load."""
SINK_BACK_SECONDS = 180.0
JOB_HEALTHY_SECONDS = 60.0


@pytest.fixture
def catalog(stack: StackOutputs) -> Catalog:
    return catalog_of(stack)


@pytest.fixture
def lake_table(stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient, catalog: Catalog) -> Iterator[Callable[..., LakeTable]]:
    with ExitStack() as tables:

        def create(columns_sql: str = ITEMS) -> LakeTable:
            return tables.enter_context(lake_postgres_table(stack, pg, kafka_admin, catalog, columns_sql))

        yield create


def source_rows(pg: psycopg.Connection, table: LakeTable | DeltaSourceTable) -> Callable[[], list[dict[str, Any]]]:
    def read() -> list[dict[str, Any]]:
        with pg.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            return cursor.execute(f"SELECT * FROM {table.qualified}").fetchall()

    return read


def converge(
    stack: StackOutputs,
    pg: psycopg.Connection,
    catalog: Catalog,
    table: LakeTable,
    fault: str,
    written: int,
    fault_at: float | None = None,
    **options: Any,
) -> None:
    """Waits for multiset parity between the source and the job's table, checks the job is healthy
    again, and records the figures: seconds from the fault (`fault_at`, monotonic) to parity, or
    from the end of the load when there was no fault."""
    result = wait_for_parity(source_rows(pg, table), lambda: iceberg_rows(catalog, table.identifier), ["id"], f"{fault}: {table.identifier}", CONVERGE_SECONDS, **options)
    status = wait_for_job(stack, lambda code, _status: code == 200, "the sink job healthy again")
    assert status["tables"][table.topic]["last_error"] is None
    seconds = result.seconds if fault_at is None else time.monotonic() - fault_at
    record_fault(fault, written, len(result.source), len(result.rows), duplicate_keys(result.rows, ["id"]), seconds)


def retrying(table: LakeTable) -> Callable[[int, dict[str, Any]], bool]:
    def check(code: int, status: dict[str, Any]) -> bool:
        entry = status.get("tables", {}).get(table.topic, {})
        return code == 503 and entry.get("state") == "retrying"

    return check


def kafka_errors_seen(table: LakeTable, before: int) -> Callable[[int, dict[str, Any]], bool]:
    def check(_code: int, status: dict[str, Any]) -> bool:
        return status.get("tables", {}).get(table.topic, {}).get("kafka_errors", 0) > before

    return check


def load_into(stack: StackOutputs, table: LakeTable | DeltaSourceTable, **options: Any) -> LoadWriter:
    return LoadWriter(stack.postgres_dsn, table.qualified, **options).start()


def wait_until_flowing(
    stack: StackOutputs, load: LoadWriter, table: LakeTable | DeltaSourceTable, sink: str = "iceberg-sink", timeout: float = 60.0
) -> None:
    """The load's first rows are in the lake: a fault from now on lands on a table mid-stream."""
    load.wait_paused()
    wait_for_job(
        stack,
        lambda _code, status: status.get("tables", {}).get(table.topic, {}).get("applied", 0) >= load.pause_after,
        f"the first {load.pause_after} rows of {table.qualified} applied",
        timeout,
        sink,
    )


@pytest.mark.parametrize("service", ["object-store", "iceberg-catalog", "kafka"])
def test_a_service_stopped_mid_batch_loses_and_duplicates_nothing(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, lake_table, service: str
) -> None:
    table = lake_table()
    load = load_into(stack, table)
    wait_until_flowing(stack, load, table)
    kafka_errors_before = job_status(stack)[1]["tables"][table.topic]["kafka_errors"]
    fault = f"{service} stopped mid-batch"
    with failpoint(stack, "iceberg-sink", BEFORE_TABLE_COMMIT, table.topic) as held:
        load.resume()
        # A batch of the resumed load is read and decoded, nothing of it written: the fault lands on it.
        held.wait()
        fault_at = time.monotonic()
        with service_stopped(stack, service):
            held.release()
            if service in NAMED_IN_ERROR:
                # The batch in hand fails on the service that is away.
                status = wait_for_job(stack, retrying(table), f"the job retrying {table.identifier} while {service} is down")
                assert NAMED_IN_ERROR[service] in status["tables"][table.topic]["last_error"], status["tables"][table.topic]
            else:
                # The batch in hand lands in Iceberg; its group commit, and every fetch after it, meet no broker.
                what = f"the job reporting Kafka errors for {table.topic}"
                status = wait_for_job(stack, kafka_errors_seen(table, kafka_errors_before), what, KAFKA_ERROR_SECONDS)
                assert status["tables"][table.topic]["last_kafka_error"], status["tables"][table.topic]
                fault += f" (on the table's /health after {time.monotonic() - fault_at:.1f}s)"
            load.join_checked()
    # A worker whose broker went away rejoins its group by itself; give it the time that takes.
    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR], settle_seconds=CONNECTOR_SETTLE_SECONDS)
    converge(stack, pg, catalog, table, f"{fault}, restored", load.rows, fault_at)


def test_a_connect_killed_while_it_streams_comes_back_by_itself_and_loses_nothing(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, lake_table
) -> None:
    table = lake_table()
    load = load_into(stack, table)
    wait_until_flowing(stack, load, table)
    load.resume()
    # Rows of the resumed load are on their way through Connect when it dies.
    wait_for_job(
        stack,
        lambda _code, status: status.get("tables", {}).get(table.topic, {}).get("applied", 0) > load.pause_after,
        f"rows of {table.qualified} past the first {load.pause_after} applied",
    )
    killed, restarts = kill_service_process(stack, "connect")
    fault_at = time.monotonic()
    try:
        seconds = wait_until_restarted(stack, "connect", killed, restarts, {"kind": "connect", "url": stack[out.CONNECT_URL], "plugins": []})
        load.join_checked()
        stack.require_connector_running(stack[out.POSTGRES_CONNECTOR], settle_seconds=CONNECTOR_SETTLE_SECONDS)
        converge(stack, pg, catalog, table, f"connect kill -9 while streaming (back by itself in {seconds:.1f}s)", load.rows, fault_at)
    except BaseException:
        restore_stack(stack)
        raise


@pytest.mark.parametrize("sink", ["iceberg-sink", DELTA_SINK])
def test_a_sink_killed_between_its_table_commit_and_its_group_commit_applies_nothing_twice(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, lake_table, request: pytest.FixtureRequest, sink: str
) -> None:
    if sink == DELTA_SINK:
        # Asked for here, not in the signature: the Iceberg case needs no Spark session.
        table = request.getfixturevalue("delta_postgres_table")(ITEMS)
        delta_lake: DeltaLake = request.getfixturevalue("delta_lake")
        read_lake = lambda: delta_lake.rows(table.table)  # noqa: E731
        flowing_seconds, converge_seconds = DELTA_FLOWING_SECONDS, DELTA_CONVERGE_SECONDS
    else:
        table = lake_table()
        read_lake = lambda: iceberg_rows(catalog, table.identifier)  # noqa: E731
        flowing_seconds, converge_seconds = 60.0, CONVERGE_SECONDS
    load = load_into(stack, table)
    wait_until_flowing(stack, load, table, sink, flowing_seconds)
    with failpoint(stack, sink, AFTER_TABLE_COMMIT, table.topic) as held:
        load.resume()
        offsets = held.wait(flowing_seconds)
        status = job_status(stack, sink)[1]
        [(partition, table_offset)] = offsets.items()
        group_offset = group_offsets(stack.kafka_bootstrap, consumer_group(status, table.topic), table.topic)
        # The window: the table holds the batch, the consumer group has not been told.
        assert group_offset is not None and group_offset < table_offset, (partition, group_offset, table_offset)
        killed, restarts = kill_service_process(stack, sink)
        fault_at = time.monotonic()
    try:
        health_spec = {"kind": "http", "url": stack[SINK_HEALTH_URLS[sink]], "status": 200}
        seconds = wait_until_restarted(stack, sink, killed, restarts, health_spec, SINK_BACK_SECONDS)
        load.join_checked()
        result = wait_for_parity(source_rows(pg, table), read_lake, ["id"], f"{sink} killed at the window: {table.identifier}", converge_seconds)
        status = wait_for_job(stack, lambda code, _status: code == 200, "the sink job healthy again", JOB_HEALTHY_SECONDS, sink)
    except BaseException:
        restore_stack(stack)
        raise
    assert status["tables"][table.topic]["last_error"] is None, status["tables"][table.topic]
    assert duplicate_keys(result.rows, ["id"]) == 0 and result.diff.equal
    assert len(result.rows) == load.rows - load.rows // 11
    fault = f"{sink} kill -9 between table commit and group commit (back by itself in {seconds:.1f}s)"
    record_fault(fault, load.rows, len(result.source), len(result.rows), duplicate_keys(result.rows, ["id"]), time.monotonic() - fault_at)


def test_records_that_are_not_debezium_json_are_dead_lettered_and_the_rest_replicates(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, lake_table
) -> None:
    table = lake_table()
    load = load_into(stack, table)
    load.wait_paused()
    produce(stack.kafka_bootstrap, table.topic, [(b"\x00\xffnot-json-key", b'{"payload": {"op": "c"'), (b'{"id": 1}', b"\xde\xad\xbe\xef")])
    load.resume()
    load.join_checked()
    converge(stack, pg, catalog, table, "non-JSON key and value", load.rows)
    _, status = job_status(stack)
    entry = status["tables"][table.topic]
    assert entry["dead_letters"] == 2 and "value is not UTF-8" in entry["last_dead_letter_error"], entry
    letters = consume_exactly(stack.kafka_bootstrap, f"{table.topic}.dlq", 2)
    assert [letter.key() for letter in letters] == [b"\x00\xffnot-json-key", b'{"id": 1}']
    assert [dead_letter_headers(letter)["cdcstack.error.class"] for letter in letters] == ["DecodeError", "DecodeError"]
    # It starts with a zero byte, as Avro does, but carries no schema id a registry gives.
    assert "key is neither JSON nor Avro" in dead_letter_headers(letters[0])["cdcstack.error"]
    assert [letter.value() for letter in letters] == [b'{"payload": {"op": "c"', b"\xde\xad\xbe\xef"], "a dead letter keeps the record as it was"
    assert {dead_letter_headers(letter)["cdcstack.sink.table"] for letter in letters} == {table.identifier}


def big_text(megabytes: int) -> str:
    generator = random.Random(megabytes)
    return "".join(generator.choices(string.ascii_letters, k=megabytes * 1024 * 1024))


def test_rows_of_5_and_10_mb_replicate_and_the_connector_stays_running(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, lake_table
) -> None:
    table = lake_table("id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL, doc text")
    load = load_into(stack, table, rows=2000, insert_sql="INSERT INTO {table} (id, name, qty) VALUES (%s, %s, %s)")
    load.wait_paused()
    # 100002 is among the rows the load updates later: its unchanged 10 MB value is not in that event.
    pg.execute(f"INSERT INTO {table.qualified} VALUES (100002, 'ten', 10, %s), (100003, 'five', 5, %s)", [big_text(10), big_text(5)])
    load.resume()
    load.join_checked()
    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR])
    converge(stack, pg, catalog, table, "5 MB and 10 MB rows", load.rows + 2)
    [ten, five] = sorted((row for row in iceberg_rows(catalog, table.identifier) if row["id"] > 100000), key=lambda row: row["id"])
    assert len(five["doc"]) == 5 * 1024 * 1024 and len(ten["doc"]) == 10 * 1024 * 1024
    assert ten["qty"] == 1010, "the update that did not carry the 10 MB value was applied"


EXOTIC = (
    "id integer PRIMARY KEY, exact numeric(38,10), unscaled numeric, doc jsonb, ref uuid, "
    "counts integer[], tags text[], blob bytea, seen timestamptz"
)


def exotic_row(n: int) -> tuple[Any, ...]:
    if n % 10 == 0:
        return (n, None, None, None, None, None, None, None, None)
    minus = "-" if n % 3 == 0 else ""
    return (
        n,
        decimal.Decimal(f"{minus}9{n:027d}.{n:010d}"),
        decimal.Decimal(f"{minus}{n}.{'5' * (n % 20)}{'1' * 20}"),
        psycopg.types.json.Jsonb({"n": n, "nested": {"list": [n, None, "x"]}, "text": f"é{n}"}),
        uuid.UUID(int=n * 7919),
        [n, None, -n] if n % 4 else [],
        [f"t{n}", None, "with,comma"] if n % 4 else [],
        bytes([n % 256, 0, 255]) * (n % 5),
        dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=n % 5))) + dt.timedelta(microseconds=n * 123457),
    )


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """Iceberg keeps `numeric` without a scale as its exact text and JSON as text: read both back."""
    return {
        **row,
        "unscaled": decimal.Decimal(row["unscaled"]) if isinstance(row["unscaled"], str) else row["unscaled"],
        "doc": json_text(row["doc"]),
        "ref": uuid.UUID(row["ref"]) if isinstance(row["ref"], str) else row["ref"],
    }


def test_exotic_types_are_equal_end_to_end(stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, lake_table) -> None:
    table = lake_table(EXOTIC)
    load = load_into(stack, table, rows=1000, pause_after=10**9, make_row=exotic_row, insert_sql="INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", update_sql="tags = array_append(tags, 'updated')")
    load.join_checked()
    converge(stack, pg, catalog, table, "exotic types", load.rows, normalize=comparable)
    by_id = {row["id"]: row for row in iceberg_rows(catalog, table.identifier)}
    assert str(by_id[1]["exact"]) == "9000000000000000000000000001.0000000001", "numeric(38,10) keeps all 38 digits"
    assert str(by_id[3]["exact"]) == "-9000000000000000000000000003.0000000003"
    assert by_id[19]["unscaled"] == f"19.{'5' * 19}{'1' * 20}", "numeric without a scale keeps all its 41 digits"
    assert by_id[1]["counts"] == [1, None, -1] and by_id[1]["tags"] == ["t1", None, "with,comma"]
