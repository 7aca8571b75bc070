"""Iceberg figures on a running stack: the spec's suite time, 1,000-row writes and reads, CDC lag."""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Any

import psycopg
from confluent_kafka.admin import AdminClient

import stack_outputs as out
from pipelines.debezium import ChangeEvent
from pipelines.lag import LagReport
from pipelines.sinks.core import CdcSink
from pipelines.sinks.iceberg.writer import IcebergTableWriter
from pipelines.sinks.iceberg.catalog import load_rest_catalog
from pipelines.sinks.iceberg.snapshots import commit_containing
from testkit.iceberg import ITEM_SCHEMA, change, owned_namespace
from testkit.kafka import EventReader, delete_topic, ensure_topic
from testkit.names import unique_name
from testkit.stack import PROJECT_ROOT, toolchain_env

SPEC_SUITE = [
    "tests/unit/test_cdc_pipelines/",
    "tests/integration/test_iceberg_cdc.py",
    "tests/e2e/test_iceberg_workflow.py",
]
ROWS = 1000


def spec_suite_seconds(stack_name: str) -> tuple[float, str]:
    """Wall time of the spec's Iceberg command (48 tests) against stack `stack_name`, and its summary line."""
    started = time.monotonic()
    result = subprocess.run(
        ["python", "-m", "pytest", "-q", "-p", "no:randomly", *SPEC_SUITE],
        cwd=PROJECT_ROOT,
        env={**toolchain_env(), "STACK": stack_name},
        capture_output=True,
        text=True,
        check=False,
    )
    return time.monotonic() - started, (result.stdout.strip().splitlines() or ["(no output)"])[-1]


def write_and_read_seconds(outputs: dict[str, Any]) -> dict[str, float]:
    """1,000 CDC rows written as an append (new keys) and as an upsert (same keys), then read back."""
    catalog = load_rest_catalog(outputs[out.ICEBERG_CATALOG_PROPERTIES])
    figures = {}
    with owned_namespace(catalog, "bench") as namespace:
        writer = IcebergTableWriter(catalog, f"{namespace}.items")
        inserts = [change("c", after={"id": n, "name": f"n{n}", "qty": n}, row_schema=ITEM_SCHEMA) for n in range(ROWS)]
        writer.apply(inserts[:1], {"t:0": 1})
        started = time.monotonic()
        writer.apply(inserts[1:] + [change("c", after={"id": ROWS, "name": "x", "qty": 0})], {"t:0": ROWS + 1})
        figures["append"] = time.monotonic() - started
        updates = [change("u", before=event.after, after={**event.after, "qty": -1}) for event in inserts]
        started = time.monotonic()
        writer.apply(updates, {"t:0": 2 * ROWS + 1})
        figures["upsert"] = time.monotonic() - started
        started = time.monotonic()
        rows = catalog.load_table(writer.identifier).scan().to_arrow()
        figures["read"] = time.monotonic() - started
        assert len(rows) == ROWS + 1
    return figures


def commit_to_iceberg_lag(outputs: dict[str, Any], count: int = 200, rate_per_second: float = 50) -> LagReport:
    """Source commit to visible in Iceberg (the sink commit holding the change), per change."""
    catalog = load_rest_catalog(outputs[out.ICEBERG_CATALOG_PROPERTIES])
    admin = AdminClient({"bootstrap.servers": outputs[out.KAFKA_BOOTSTRAP]})
    name = unique_name("bench_iceberg_lag")
    topic = f"{outputs[out.POSTGRES_TOPIC_PREFIX]}.inventory.{name}"
    ensure_topic(admin, topic)
    with owned_namespace(catalog, "bench") as namespace, psycopg.connect(outputs[out.POSTGRES_DSN], autocommit=True) as pg:
        pg.execute(f"CREATE TABLE inventory.{name} (marker_id int PRIMARY KEY)")
        sink = CdcSink(outputs[out.KAFKA_BOOTSTRAP], [topic], IcebergTableWriter(catalog, f"{namespace}.lag"), unique_name("bench"), batch_max_seconds=0.1)
        stop = threading.Event()

        def run_sink() -> None:
            while not stop.is_set():
                sink.step()

        thread = threading.Thread(target=run_sink)
        thread.start()
        try:
            for marker in range(count):
                pg.execute(f"INSERT INTO inventory.{name} VALUES (%s)", [marker])
                time.sleep(1 / rate_per_second)
            deadline = time.monotonic() + 60
            while sink.applied_events < count and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            stop.set()
            thread.join(30)
            sink.close()
        reader = EventReader(outputs[out.KAFKA_BOOTSTRAP], topic)
        try:
            events = [e for e in reader.wait_for_changes(count) if isinstance(e, ChangeEvent)]
        finally:
            reader.close()
        table = catalog.load_table(f"{namespace}.lag")
        samples = []
        for event in events:
            commit = commit_containing(table, topic, 0, event.offset)
            if commit is not None:
                samples.append(float(commit.timestamp_ms - event.source.ts_ms))
        pg.execute(f"DROP TABLE inventory.{name}")
    delete_topic(admin, topic)
    return LagReport(tuple(samples), count, achieved_rate=rate_per_second)
