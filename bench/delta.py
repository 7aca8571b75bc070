"""Delta Lake figures on a running stack: a cold Spark driver, 1,000-row MERGEs, Change Data Feed
and full reads through Spark and delta-rs, source commit to visible in Delta through the stack's
own sink, and the stack's memory with Spark's applications up.

    python -m bench.delta    # only these figures, against $STACK (else the dev stack)

The worker has room for three applications and the stack's Delta sink holds one: the bench runs one
driver at a time (the cold one in its own process, then its session).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pyarrow as pa
from confluent_kafka.admin import AdminClient
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pyspark.sql import SparkSession

import stack_outputs as out
from bench import print_figures
from bench.memory import memory_kib, stack_pids, with_descendants
from pipelines.lag import LagReport
from pipelines.object_store import S3Access
from pipelines.sinks.delta.job import APP_NAME as DELTA_SINK_APP
from pipelines.sinks.delta.writer import DeltaTableWriter
from pipelines.sinks.job import table_identifier
from pipelines.spark import DELTA_PREFIX, bucket_of, open_session
from providers.s3_bucket import s3_client
from testkit.delta import delete_objects, owned_database
from testkit.iceberg import ITEM_SCHEMA, change
from testkit.kafka import ensure_topic
from testkit.names import unique_name
from testkit.sinks import forget_topic, wait_for_table_sink
from testkit.stack import PROJECT_ROOT, read_outputs, stack_name, toolchain_env

T = TypeVar("T")

ROWS = 1000
WARM_BATCHES = 4
LAG_CHANGES = 20
LAG_RATE_PER_SECOND = 1.0
SINK_APP_TIMEOUT_SECONDS = 180.0
"""The sink opens its driver with its first batch, after the seeded tables' snapshot arrives."""
SINK_TABLE_TIMEOUT_SECONDS = 90.0
"""Topic discovery (5 s) plus the sink's CREATE TABLE."""
VISIBLE_TIMEOUT_SECONDS = 120.0
COLD_START_TIMEOUT_SECONDS = 300.0
COLD_START_SCRIPT = """
import json, sys, time
from pathlib import Path
started = time.monotonic()
from pipelines.spark import open_session
spark = open_session(json.load(sys.stdin), "cdcstack-bench-cold", Path(sys.argv[1]))
opened = time.monotonic()
spark.range(1).count()
print(json.dumps({"session": opened - started, "first_job": time.monotonic() - opened}))
spark.stop()
"""
"""Timed from the first import: pyspark's, the driver JVM's and the executor's start are all cold."""


@dataclass(frozen=True)
class Lake:
    """Where the bench finds the stack's Delta tables, from its outputs."""

    bucket: str
    database: str
    storage_options: dict[str, str]
    s3: Any

    @classmethod
    def of(cls, outputs: dict[str, Any]) -> Lake:
        access = S3Access.from_outputs(outputs)
        return cls(bucket_of(outputs[out.WAREHOUSE]), outputs[out.DELTA_DATABASE], access.delta_rs_storage_options(), s3_client(access))

    def open(self, location: str) -> DeltaTable:
        """The table at a location, `s3a://` (as Spark names it) or `s3://` (as delta-rs does)."""
        return DeltaTable(location.replace("s3a://", "s3://", 1), storage_options=self.storage_options)


def master_status(outputs: dict[str, Any]) -> dict[str, Any]:
    return httpx.get(f"{outputs[out.SPARK_UI_URL]}/json/", timeout=10).json()


def wait_for_application(outputs: dict[str, Any], name: str, timeout: float = SINK_APP_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not any(app["name"] == name and app["state"] == "RUNNING" for app in master_status(outputs)["activeapps"]):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the Spark master lists no RUNNING application {name} after {timeout:.0f} s")
        time.sleep(1)


def require_free_slot(outputs: dict[str, Any]) -> None:
    """A driver beyond the worker's room waits for a core without a word: fail instead."""
    status = master_status(outputs)
    if status["coresused"] >= status["cores"]:
        running = [app["name"] for app in status["activeapps"]]
        raise RuntimeError(f"every Spark application slot of the worker is taken ({running}); end one of them first")


def stack_memory(outputs: dict[str, Any], driver_of: int | None = None) -> str:
    """RSS and PSS sums of the stack's processes, and of the Spark driver JVM that process
    `driver_of` started (not that process itself)."""
    pids = stack_pids(Path(outputs[out.STATE_DIR]))
    if driver_of is not None:
        pids |= with_descendants([driver_of]) - {driver_of}
    rss, pss = memory_kib(pids)
    return f"RSS {rss / 1024:.0f} MiB, PSS {pss / 1024:.0f} MiB"


def cold_start_seconds(outputs: dict[str, Any]) -> dict[str, float]:
    """{"session", "first_job"}: `open_session` (imports included) and `spark.range(1).count()` in a new process."""
    require_free_slot(outputs)
    with tempfile.TemporaryDirectory(prefix="cdcstack-bench-cold-") as work_dir:
        result = subprocess.run(
            ["python", "-c", COLD_START_SCRIPT, work_dir],
            cwd=PROJECT_ROOT,
            env=toolchain_env(),
            # On stdin: the conf holds the S3 secret.
            input=json.dumps(outputs[out.SPARK_CONF]),
            capture_output=True,
            text=True,
            timeout=COLD_START_TIMEOUT_SECONDS,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"the cold Spark driver exited {result.returncode}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextmanager
def bench_session(outputs: dict[str, Any]) -> Iterator[SparkSession]:
    require_free_slot(outputs)
    with tempfile.TemporaryDirectory(prefix="cdcstack-bench-spark-") as work_dir:
        spark = open_session(outputs[out.SPARK_CONF], "cdcstack-bench", Path(work_dir))
        try:
            yield spark
        finally:
            spark.stop()


def timed(action: Callable[[], T]) -> tuple[float, T]:
    """(seconds `action` took, what it returned)."""
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def merge_and_read_seconds(spark: SparkSession, lake: Lake) -> dict[str, Any]:
    """1,000 inserts in one MERGE (creating the table), WARM_BATCHES MERGEs of 1,000 updates, then
    the Change Data Feed of those commits and the whole table read through Spark and delta-rs."""
    with owned_database(spark, lake.s3, lake.bucket, "bench_delta", "delta-bench") as (database, location):
        writer = DeltaTableWriter(spark, f"{database}.items", lake.bucket, location_root=location)
        inserts = [change("c", after={"id": n, "name": f"n{n}", "qty": n}, row_schema=ITEM_SCHEMA) for n in range(ROWS)]
        cold, first = timed(lambda: writer.apply(inserts, {"bench:0": ROWS}))
        rows, warm, last = inserts, [], first
        for batch in range(1, WARM_BATCHES + 1):
            updates = [change("u", before=event.after, after={**event.after, "qty": -batch}) for event in rows]
            seconds, last = timed(lambda: writer.apply(updates, {"bench:0": ROWS * (batch + 1)}))
            warm.append(seconds)
            rows = updates
        changes = ROWS + 2 * ROWS * WARM_BATCHES
        feed = f"table_changes('{writer.identifier}', {first.version}, {last.version})"
        spark_cdf, spark_changes = timed(lambda: spark.sql(f"SELECT * FROM {feed}").collect())
        delta_rs_cdf, delta_rs_changes = timed(
            lambda: pa.RecordBatchReader.from_stream(
                lake.open(writer.table_location).load_cdf(starting_version=first.version, ending_version=last.version)
            ).read_all()
        )
        spark_read, spark_rows = timed(lambda: spark.table(writer.identifier).collect())
        delta_rs_read, delta_rs_rows = timed(lambda: lake.open(writer.table_location).to_pyarrow_table())
        assert len(spark_changes) == delta_rs_changes.num_rows == changes, (len(spark_changes), delta_rs_changes.num_rows, changes)
        assert len(spark_rows) == delta_rs_rows.num_rows == ROWS, (len(spark_rows), delta_rs_rows.num_rows)
    return {
        "cold": cold,
        "warm": warm,
        "versions": (first.version, last.version),
        "changes": changes,
        "cdf": (spark_cdf, delta_rs_cdf),
        "read": (spark_read, delta_rs_read),
    }


def visible_ids(table: DeltaTable) -> set[int]:
    return set(table.to_pyarrow_table(columns=["id"]).column("id").to_pylist())


def commit_to_delta_lag(
    outputs: dict[str, Any], spark: SparkSession, lake: Lake, count: int = LAG_CHANGES, rate_per_second: float = LAG_RATE_PER_SECOND
) -> tuple[float, LagReport]:
    """(seconds until the first row is visible, the sink creating the table; lag of `count` single-row
    commits at `rate_per_second` after it): source commit to the row read back by delta-rs."""
    admin = AdminClient({"bootstrap.servers": outputs[out.KAFKA_BOOTSTRAP]})
    health_url = outputs[out.DELTA_SINK_HEALTH_URL]
    # The stack's Delta sink replicates `inventory.delta_*`.
    name = unique_name("delta_bench_lag")
    topic = f"{outputs[out.POSTGRES_TOPIC_PREFIX]}.inventory.{name}"
    identifier = table_identifier(lake.database, topic)
    table_name = identifier.split(".", 1)[1]
    location = f"s3://{lake.bucket}/{DELTA_PREFIX}/{table_name}"
    committed: dict[int, float] = {}
    ensure_topic(admin, topic)
    with psycopg.connect(outputs[out.POSTGRES_DSN], autocommit=True) as pg:
        pg.execute(f"CREATE TABLE inventory.{name} (id int PRIMARY KEY, note text)")
        pg.execute(f"ALTER TABLE inventory.{name} REPLICA IDENTITY FULL")
        try:
            wait_for_table_sink(health_url, topic, SINK_TABLE_TIMEOUT_SECONDS, "delta-sink")

            def commit(row_id: int) -> None:
                pg.execute(f"INSERT INTO inventory.{name} VALUES (%s, %s)", [row_id, f"change {row_id}"])
                committed[row_id] = time.monotonic()

            commit(0)
            first_row = wait_until_visible(lake, location, {0}, committed)
            if not first_row:
                raise TimeoutError(f"delta-sink: the first row of {topic} not in {location} after {VISIBLE_TIMEOUT_SECONDS:.0f} s")

            def commit_paced() -> None:
                started = time.monotonic()
                for row_id in range(1, count + 1):
                    commit(row_id)
                    time.sleep(max(0.0, started + row_id / rate_per_second - time.monotonic()))

            writer = threading.Thread(target=commit_paced, name="delta lag commits")
            writer.start()
            try:
                seen = wait_until_visible(lake, location, set(range(1, count + 1)), committed)
            finally:
                writer.join(60)
        finally:
            pg.execute(f"DROP TABLE IF EXISTS inventory.{name}")
            forget_topic(admin, topic, [health_url])
            spark.sql(f"DROP TABLE IF EXISTS {identifier}")
            delete_objects(lake.s3, lake.bucket, f"{DELTA_PREFIX}/{table_name}")
    samples = tuple(seconds * 1000 for seconds in seen.values())
    return first_row[0], LagReport(samples, count, achieved_rate=rate_per_second)


def wait_until_visible(lake: Lake, location: str, wanted: set[int], committed: dict[int, float]) -> dict[int, float]:
    """{id: seconds from its source commit until delta-rs sees it} for every id in `wanted`;
    those not seen by the deadline are left out."""
    seen: dict[int, float] = {}
    table: DeltaTable | None = None
    version = None
    deadline = time.monotonic() + VISIBLE_TIMEOUT_SECONDS
    while len(seen) < len(wanted) and time.monotonic() < deadline:
        try:
            if table is None:
                table = lake.open(location)
            else:
                table.update_incremental()
        except TableNotFoundError:
            time.sleep(0.2)
            continue
        if table.version() != version:
            version = table.version()
            now = time.monotonic()
            # Only ids whose commit time is recorded: the writer thread records it after the commit returns.
            for row_id in (visible_ids(table) & wanted) - seen.keys():
                if row_id in committed:
                    seen[row_id] = now - committed[row_id]
        time.sleep(0.1)
    return seen


def figures(outputs: dict[str, Any]) -> list[tuple[str, str]]:
    lake = Lake.of(outputs)
    wait_for_application(outputs, DELTA_SINK_APP)
    memory_spark_up = stack_memory(outputs)
    cold = cold_start_seconds(outputs)
    with bench_session(outputs) as spark:
        io = merge_and_read_seconds(spark, lake)
        memory_with_session = stack_memory(outputs, driver_of=os.getpid())
        first_row_seconds, lag = commit_to_delta_lag(outputs, spark, lake)
    first_version, last_version = io["versions"]
    return [
        (
            "spark: cold driver, open_session + first job (new process)",
            f"{cold['session'] + cold['first_job']:.1f} s (session {cold['session']:.1f} s, first job {cold['first_job']:.1f} s)",
        ),
        (f"delta: MERGE of {ROWS:,} inserts, cold (creates the table)", f"{io['cold']:.2f} s"),
        (
            f"delta: MERGE of {ROWS:,} updates, warm ({WARM_BATCHES} batches)",
            f"p50 {statistics.median(io['warm']):.2f} s, max {max(io['warm']):.2f} s",
        ),
        (
            f"delta: CDF read of versions {first_version}..{last_version} ({io['changes']:,} changes)",
            f"Spark table_changes {io['cdf'][0]:.2f} s, delta-rs load_cdf {io['cdf'][1]:.2f} s",
        ),
        (f"delta: full read of {ROWS:,} rows", f"Spark {io['read'][0]:.2f} s, delta-rs {io['read'][1]:.2f} s"),
        ("source commit -> visible in Delta, first change (sink creates the table)", f"{first_row_seconds:.1f} s"),
        (
            f"source commit -> visible in Delta ({LAG_CHANGES} changes at {LAG_RATE_PER_SECOND:g}/s, delta-rs polling)",
            f"p50 {lag.percentile(0.5):.0f} ms, p95 {lag.percentile(0.95):.0f} ms, {len(lag.samples_ms)} of {lag.expected}",
        ),
        ("resident memory of the running stack, Spark up (the stack's drivers and executors)", memory_spark_up),
        ("resident memory of the running stack, plus a bench Spark session", memory_with_session),
    ]


if __name__ == "__main__":
    toolchain_env()
    print_figures(figures(read_outputs(stack_name())))
