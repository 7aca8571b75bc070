"""Tables the stack's own sink job replicates (`inventory.lake_*`), loads written into them while a
fault happens, and waiting for the lake to equal the source again."""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from confluent_kafka.admin import AdminClient
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

import stack_outputs as out
from pipelines.consistency import RowDiff, compare_rows
from pipelines.sinks.job import table_identifier
from testkit.connectors import drop_captured_postgres_table
from testkit.kafka import ensure_topic
from testkit.names import unique_name
from testkit.sinks import arm_failpoint, release_failpoint
from testkit.sinks import wait_for_table_sink as wait_for_job_sink
from testkit.sinks import forget_topic as forget_sink_topic
from testkit.sinks import sink_status, wait_for_sink
from testkit.stack import DEFAULT_STACK, PROJECT_ROOT, stack_name
from tests.support.stack import StackOutputs

JOB_TIMEOUT_SECONDS = 60.0
FAULT_REPORT = PROJECT_ROOT / "reports" / ("faults.tsv" if stack_name() == DEFAULT_STACK else f"faults-{stack_name()}.tsv")


CONNECTOR_OF_TOPIC_PREFIX = {out.POSTGRES_TOPIC_PREFIX: out.POSTGRES_CONNECTOR, out.AVRO_TOPIC_PREFIX: out.AVRO_CONNECTOR}
"""The output naming the Postgres connector that writes to the topics of each topic-prefix output."""

SINK_HEALTH_URLS = {"iceberg-sink": out.ICEBERG_SINK_HEALTH_URL, "delta-sink": out.DELTA_SINK_HEALTH_URL}
"""The stack's sink jobs and the output holding each one's /health."""


def job_status(stack: StackOutputs, sink: str = "iceberg-sink") -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of a sink job's /health; 503 is an answer too (a table retrying)."""
    try:
        return sink_status(stack[SINK_HEALTH_URLS[sink]])
    except AssertionError as error:
        raise AssertionError(f"{sink}: {error}; log: {stack.log_of(sink)}") from error


def wait_for_job(
    stack: StackOutputs,
    condition: Callable[[int, dict[str, Any]], bool],
    what: str,
    timeout: float = JOB_TIMEOUT_SECONDS,
    sink: str = "iceberg-sink",
) -> dict[str, Any]:
    return wait_for_sink(stack[SINK_HEALTH_URLS[sink]], condition, f"{sink}: {what}", timeout, f"log: {stack.log_of(sink)}")


def wait_for_table_sink(stack: StackOutputs, topic: str, timeout: float = JOB_TIMEOUT_SECONDS, sink: str = "iceberg-sink") -> None:
    """Asks the job `sink` to discover its topics now and waits until it runs a sink for `topic`."""
    wait_for_job_sink(stack[SINK_HEALTH_URLS[sink]], topic, timeout, f"{sink} log: {stack.log_of(sink)}")


CATCH_UP_SECONDS = 300.0
"""A fresh stack's sinks replicate the seeded tables first: the Delta sink's first commits take
minutes on two loaded cores (a Spark session, then a table created per topic)."""
_caught_up: set[tuple[str, str]] = set()


def caught_up(code: int, status: dict[str, Any]) -> bool:
    """Healthy, with tables, and each one has fetched its topic and has nothing left in it."""
    tables = status.get("tables", {})
    return code == 200 and bool(tables) and all(table["consumer_lag"] and not any(table["consumer_lag"].values()) for table in tables.values())


def wait_until_caught_up(stack: StackOutputs, sink: str) -> None:
    """Once per test run and sink: waits until the job has replicated what its topics hold, so a
    test's own table is not queued behind the seeded tables' first commits."""
    key = (str(stack.state_dir), sink)
    if key in _caught_up:
        return
    wait_for_job(stack, caught_up, "every table caught up with its topic", CATCH_UP_SECONDS, sink)
    _caught_up.add(key)


@dataclass
class HeldBatch:
    """A failpoint of a sink job armed for one topic (see `pipelines.sinks.failpoints`)."""

    stack: StackOutputs
    sink: str
    point: str
    topic: str

    def wait(self, timeout: float = JOB_TIMEOUT_SECONDS) -> dict[str, int]:
        """Waits until a batch of the topic is held at the point; returns the batch's offsets."""
        status = wait_for_job(
            self.stack,
            lambda _code, status: status.get("failpoints", {}).get(self.point, {}).get("state") == "held",
            f"a batch of {self.topic} held at {self.point}",
            timeout,
            self.sink,
        )
        return dict(status["failpoints"][self.point]["offsets"])

    def release(self) -> None:
        release_failpoint(self.stack[SINK_HEALTH_URLS[self.sink]], self.point)


@contextmanager
def failpoint(stack: StackOutputs, sink: str, point: str, topic: str) -> Iterator[HeldBatch]:
    """Arms `point` of the job `sink` for `topic`; released on the way out, whatever happened."""
    arm_failpoint(stack[SINK_HEALTH_URLS[sink]], point, topic)
    held = HeldBatch(stack, sink, point, topic)
    try:
        yield held
    finally:
        held.release()


@dataclass
class LakeTable:
    """A source table the job replicates, its topic and its Iceberg table."""

    name: str
    qualified: str
    topic: str
    identifier: str


def iceberg_rows(catalog: Catalog, identifier: str) -> list[dict[str, Any]]:
    try:
        return catalog.load_table(identifier).scan().to_arrow().to_pylist()
    except NoSuchTableError:
        return []


@contextmanager
def lake_postgres_table(
    stack: StackOutputs,
    pg: psycopg.Connection,
    admin: AdminClient,
    catalog: Catalog,
    columns_sql: str,
    prefix: str = "lake",
    topic_prefix_output: str = out.POSTGRES_TOPIC_PREFIX,
) -> Iterator[LakeTable]:
    """`inventory.<prefix>_<unique>` in Postgres, captured by the connector whose topic prefix is the
    output `topic_prefix_output`; the job replicates it until the test ends, then the table, its
    topics and its Iceberg table are removed."""
    name = unique_name(prefix)
    topic = f"{stack[topic_prefix_output]}.inventory.{name}"
    table = LakeTable(name, f"inventory.{name}", topic, table_identifier(stack[out.ICEBERG_SINK_NAMESPACE], topic))
    wait_until_caught_up(stack, "iceberg-sink")
    ensure_topic(admin, topic)
    pg.execute(f"CREATE TABLE {table.qualified} ({columns_sql})")
    try:
        wait_for_table_sink(stack, topic)
        yield table
    finally:
        connector = stack[CONNECTOR_OF_TOPIC_PREFIX[topic_prefix_output]]
        drop_captured_postgres_table(pg, table.qualified, stack.connect_url, connector, f"log: {stack.log_of('connect')}")
        forget_topic(stack, admin, topic)
        try:
            catalog.purge_table(table.identifier)
        except NoSuchTableError:
            pass


def forget_topic(stack: StackOutputs, admin: AdminClient, topic: str, attempts: int = 4, sinks: Sequence[str] = ("iceberg-sink",)) -> None:
    """Deletes the topic (and its dead letters) until every job in `sinks` has closed its sink
    (see `testkit.sinks.forget_topic`)."""
    urls = [stack[SINK_HEALTH_URLS[sink]] for sink in sinks]
    logs = ", ".join(f"{sink} log: {stack.log_of(sink)}" for sink in sinks)
    forget_sink_topic(admin, topic, urls, attempts, logs)


@dataclass
class Convergence:
    seconds: float
    source: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    diff: RowDiff


def wait_for_parity(
    read_source: Callable[[], list[dict[str, Any]]],
    read_lake: Callable[[], list[dict[str, Any]]],
    key_columns: Sequence[str],
    what: str,
    timeout: float = 180.0,
    normalize: Callable[[dict[str, Any]], dict[str, Any]] = lambda row: row,
) -> Convergence:
    """Polls until the lake equals the source as multisets (a duplicated key is a difference)."""
    started = time.monotonic()
    source = [normalize(row) for row in read_source()]
    while True:
        rows = [normalize(row) for row in read_lake()]
        diff = compare_rows(source, rows, key_columns)
        if diff.equal:
            return Convergence(time.monotonic() - started, source, rows, diff)
        assert time.monotonic() - started < timeout, f"{what}: not equal to the source within {timeout:.0f}s: {diff.summary()}"
        time.sleep(0.5)


@dataclass
class LoadWriter:
    """Writes `rows` rows into a Postgres table from a thread of its own, `batch` per transaction;
    pauses after `pause_after` rows until `resume()` (so a fault lands mid-load), then updates every
    7th row and deletes every 11th. Its exceptions fail the test through `join_checked`."""

    dsn: str
    qualified: str
    rows: int = 3000
    batch: int = 50
    pause_after: int = 1000
    make_row: Callable[[int], Sequence[Any]] = lambda n: (n, f"row {n}", n % 97)
    insert_sql: str = "INSERT INTO {table} VALUES (%s, %s, %s)"
    update_sql: str = "qty = qty + 1000"
    written: int = 0
    error: str | None = None
    _resume: threading.Event = field(default_factory=threading.Event)
    _paused: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> LoadWriter:
        self._thread = threading.Thread(target=self._run, name=f"load {self.qualified}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as connection:
                statement = self.insert_sql.format(table=self.qualified)
                for first in range(1, self.rows + 1, self.batch):
                    if self.written >= self.pause_after and not self._resume.is_set():
                        self._paused.set()
                        assert self._resume.wait(120), "the test never resumed the load"
                    with connection.transaction():
                        with connection.cursor() as cursor:
                            cursor.executemany(statement, [self.make_row(n) for n in range(first, min(first + self.batch, self.rows + 1))])
                    self.written = min(first + self.batch - 1, self.rows)
                connection.execute(f"UPDATE {self.qualified} SET {self.update_sql} WHERE id % 7 = 0")
                connection.execute(f"DELETE FROM {self.qualified} WHERE id % 11 = 0")
        except BaseException:  # noqa: BLE001 - reported to the test thread by join_checked
            self.error = traceback.format_exc()
        finally:
            self._paused.set()

    def wait_paused(self, timeout: float = 60.0) -> None:
        assert self._paused.wait(timeout), f"load on {self.qualified}: {self.pause_after} rows not written within {timeout:.0f}s"
        assert self.error is None, self.error

    def resume(self) -> None:
        self._resume.set()

    def join_checked(self, timeout: float = 180.0) -> None:
        self._resume.set()
        assert self._thread is not None
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"load on {self.qualified} still running after {timeout:.0f}s ({self.written} rows written)"
        assert self.error is None, f"load on {self.qualified} failed:\n{self.error}"


def record_fault(fault: str, rows_written: int, source_rows: int, rows_in_lake: int, duplicates: int, seconds: float) -> None:
    """Appends one line to reports/faults.tsv: what `make test` measured for the figures in a note."""
    FAULT_REPORT.parent.mkdir(parents=True, exist_ok=True)
    new = not FAULT_REPORT.exists()
    with open(FAULT_REPORT, "a") as report:
        if new:
            report.write("fault\trows inserted\trows at the source\trows in the lake\tduplicate keys\tseconds from fault to parity\n")
        report.write(f"{fault}\t{rows_written}\t{source_rows}\t{rows_in_lake}\t{duplicates}\t{seconds:.1f}\n")


def duplicate_keys(rows: list[dict[str, Any]], key_columns: Sequence[str]) -> int:
    keys = [tuple(row[column] for column in key_columns) for row in rows]
    return len(keys) - len(set(keys))


def dead_letter_headers(message: Any) -> dict[str, str]:
    return {key: value.decode() for key, value in (message.headers() or []) if key.startswith("cdcstack.")}


def json_text(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
