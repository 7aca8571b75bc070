"""Faults on the live stack while thousands of rows are written, each ending with the stack's own
sink job holding exactly the source: no row lost, no key twice, within a bounded time.

Every test restores what it broke in `finally` (`pulumi up --refresh`, as `make up` does), and
appends its figures to reports/faults.tsv.
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
from testkit.kafka import consume_exactly
from tests.support.iceberg import catalog_of
from tests.support.lake import (
    LakeTable,
    LoadWriter,
    dead_letter_headers,
    duplicate_keys,
    iceberg_rows,
    job_status,
    json_text,
    lake_postgres_table,
    record_fault,
    wait_for_job,
    wait_for_parity,
)
from tests.support.services import kill_service_process, restore_stack, service_stopped, wait_until_restarted
from tests.support.sinks import produce
from tests.support.stack import StackOutputs

ITEMS = "id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL"
CONVERGE_SECONDS = 180.0
CONNECTOR_SETTLE_SECONDS = 120.0
KAFKA_ERROR_SECONDS = 10.0
"""A stopped broker is on the table's /health within this, every time."""
NAMED_IN_ERROR = {"object-store": "object store", "iceberg-catalog": "catalog"}


@pytest.fixture
def catalog(stack: StackOutputs) -> Catalog:
    return catalog_of(stack)


@pytest.fixture
def lake_table(stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient, catalog: Catalog) -> Iterator[Callable[..., LakeTable]]:
    with ExitStack() as tables:

        def create(columns_sql: str = ITEMS) -> LakeTable:
            return tables.enter_context(lake_postgres_table(stack, pg, kafka_admin, catalog, columns_sql))

        yield create


def source_rows(pg: psycopg.Connection, table: LakeTable) -> Callable[[], list[dict[str, Any]]]:
    def read() -> list[dict[str, Any]]:
        with pg.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            return cursor.execute(f"SELECT * FROM {table.qualified}").fetchall()

    return read


def converge(stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, table: LakeTable, fault: str, written: int, **options: Any) -> None:
    """Waits for multiset parity between the source and the job's table, checks the job is healthy
    again, and records the figures."""
    result = wait_for_parity(source_rows(pg, table), lambda: iceberg_rows(catalog, table.identifier), ["id"], f"{fault}: {table.identifier}", CONVERGE_SECONDS, **options)
    status = wait_for_job(stack, lambda code, _status: code == 200, "the sink job healthy again")
    assert status["tables"][table.topic]["last_error"] is None
    record_fault(fault, written, len(result.source), len(result.rows), duplicate_keys(result.rows, ["id"]), result.seconds)


def retrying(table: LakeTable) -> Callable[[int, dict[str, Any]], bool]:
    def check(code: int, status: dict[str, Any]) -> bool:
        entry = status.get("tables", {}).get(table.topic, {})
        return code == 503 and entry.get("state") == "retrying"

    return check


def kafka_errors_seen(table: LakeTable, before: int) -> Callable[[int, dict[str, Any]], bool]:
    def check(_code: int, status: dict[str, Any]) -> bool:
        return status.get("tables", {}).get(table.topic, {}).get("kafka_errors", 0) > before

    return check


def load_into(stack: StackOutputs, table: LakeTable, **options: Any) -> LoadWriter:
    return LoadWriter(stack.postgres_dsn, table.qualified, **options).start()


def wait_until_flowing(stack: StackOutputs, load: LoadWriter, table: LakeTable) -> None:
    """The load's first rows are in the lake: a fault from now on lands on a table mid-stream."""
    load.wait_paused()
    wait_for_job(
        stack,
        lambda _code, status: status.get("tables", {}).get(table.topic, {}).get("applied", 0) >= load.pause_after,
        f"the first {load.pause_after} rows of {table.qualified} applied",
    )


@pytest.mark.parametrize("service", ["object-store", "iceberg-catalog", "kafka"])
def test_a_service_stopped_mid_load_loses_and_duplicates_nothing(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, lake_table, service: str
) -> None:
    table = lake_table()
    load = load_into(stack, table)
    wait_until_flowing(stack, load, table)
    kafka_errors_before = job_status(stack)[1]["tables"][table.topic]["kafka_errors"]
    fault = f"{service} stopped"
    with service_stopped(stack, service):
        stopped_at = time.monotonic()
        load.resume()
        if service in NAMED_IN_ERROR:
            # Kafka away means no records to fail on; a lake service away fails the batch in hand.
            status = wait_for_job(stack, retrying(table), f"the job retrying {table.identifier} while {service} is down")
            assert NAMED_IN_ERROR[service] in status["tables"][table.topic]["last_error"], status["tables"][table.topic]
        else:
            what = f"the job reporting Kafka errors for {table.topic}"
            status = wait_for_job(stack, kafka_errors_seen(table, kafka_errors_before), what, KAFKA_ERROR_SECONDS)
            assert status["tables"][table.topic]["last_kafka_error"], status["tables"][table.topic]
            fault += f" (on the table's /health after {time.monotonic() - stopped_at:.1f}s)"
        load.join_checked()
    # A worker whose broker went away rejoins its group by itself; give it the time that takes.
    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR], settle_seconds=CONNECTOR_SETTLE_SECONDS)
    converge(stack, pg, catalog, table, fault, load.rows)


@pytest.mark.parametrize("service", ["connect", "iceberg-sink"])
def test_a_killed_pipeline_process_comes_back_by_itself_and_loses_nothing(
    stack: StackOutputs, pg: psycopg.Connection, catalog: Catalog, lake_table, service: str
) -> None:
    table = lake_table()
    load = load_into(stack, table)
    wait_until_flowing(stack, load, table)
    health_spec = {"kind": "http", "url": stack[out.ICEBERG_SINK_HEALTH_URL], "status": 200}
    if service == "connect":
        health_spec = {"kind": "connect", "url": stack[out.CONNECT_URL], "plugins": []}
    killed, restarts = kill_service_process(stack, service)
    try:
        load.resume()
        seconds = wait_until_restarted(stack, service, killed, restarts, health_spec)
        load.join_checked()
        if service == "connect":
            stack.require_connector_running(stack[out.POSTGRES_CONNECTOR], settle_seconds=CONNECTOR_SETTLE_SECONDS)
        converge(stack, pg, catalog, table, f"{service} kill -9 (back by itself in {seconds:.1f}s)", load.rows)
    except BaseException:
        restore_stack(stack)
        raise


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
