"""CDC figures on a running stack: Connect start time, snapshot rate, streaming lag at set rates."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

import stack_outputs as out
from pipelines.connectors import postgres_source_config
from pipelines.lag import LagReport, measure_lag
from providers.connect_client import ConnectClient
from testkit.connectors import drop_slot_and_publication
from testkit.kafka import delete_topic, ensure_topic
from testkit.names import unique_name
from testkit.stack import PulumiCli

SNAPSHOT_ROWS = 100_000
BENCH_SCHEMA = "bench"


def worker_start_seconds(cli: PulumiCli) -> float:
    """How long the Connect worker took from launch to healthy, as its LocalService recorded it."""
    deployment = json.loads(cli.run("stack", "export").stdout)["deployment"]
    for resource in deployment["resources"]:
        if resource["urn"].endswith("::connect-process"):
            return float(resource["outputs"]["healthy_after_seconds"])
    raise LookupError("no connect-process in the stack's state")


def snapshot_rows_per_second(outputs: dict[str, Any]) -> tuple[float, float]:
    """(rows/s, seconds) for a new connector snapshotting a table of SNAPSHOT_ROWS rows."""
    name = unique_name("bench_snapshot")
    dsn = outputs[out.POSTGRES_DSN]
    client = ConnectClient(outputs[out.CONNECT_URL])
    admin = AdminClient({"bootstrap.servers": outputs[out.KAFKA_BOOTSTRAP]})
    # Outside the `inventory` schema, so the stack's own connector does not stream the same rows.
    table = f"{BENCH_SCHEMA}.{name}"
    topic = f"{name}.{table}"
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute(f"CREATE SCHEMA IF NOT EXISTS {BENCH_SCHEMA}")
        pg.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text, amount numeric(10,2), at timestamptz)")
        pg.execute(f"INSERT INTO {table} SELECT n, 'row ' || n, n / 100.0, now() FROM generate_series(1, {SNAPSHOT_ROWS}) n")
    ensure_topic(admin, topic)
    # Counted, not decoded: the figure is the pipeline's, not this process's JSON parsing.
    consumer = Consumer({"bootstrap.servers": outputs[out.KAFKA_BOOTSTRAP], "group.id": name, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    url = psycopg.conninfo.conninfo_to_dict(dsn)
    config = postgres_source_config(
        "127.0.0.1", int(url["port"]), url["user"], url["password"], url["dbname"], name, name
    )
    config.update(
        {"schema.include.list": BENCH_SCHEMA, "table.include.list": rf"{BENCH_SCHEMA}\.{name}", "publication.autocreate.mode": "filtered"}
    )
    try:
        started = time.monotonic()
        client.put_config(name, config)
        arrived = 0
        while arrived < SNAPSHOT_ROWS and time.monotonic() - started < 600:
            arrived += len(consumer.consume(1000, 0.5))
        seconds = time.monotonic() - started
        if arrived < SNAPSHOT_ROWS:
            raise TimeoutError(f"only {arrived} of {SNAPSHOT_ROWS} snapshot rows arrived within 600 s")
    finally:
        consumer.close()
        client.delete_if_present(name)
        drop_slot_and_publication(dsn, name)
        with psycopg.connect(dsn, autocommit=True) as pg:
            pg.execute(f"DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE")
        delete_topic(admin, topic)
    return SNAPSHOT_ROWS / seconds, seconds


def streaming_lag(outputs: dict[str, Any], rate_per_second: float, seconds: float) -> LagReport:
    """Lag of the stack's own Postgres connector while markers are committed at `rate_per_second`."""
    name = unique_name("bench_lag")
    dsn = outputs[out.POSTGRES_DSN]
    admin = AdminClient({"bootstrap.servers": outputs[out.KAFKA_BOOTSTRAP]})
    topic = f"{outputs[out.POSTGRES_TOPIC_PREFIX]}.inventory.{name}"
    ensure_topic(admin, topic)
    consumer = Consumer(
        {"bootstrap.servers": outputs[out.KAFKA_BOOTSTRAP], "group.id": name, "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10}
    )
    with psycopg.connect(dsn, autocommit=True) as pg, psycopg.connect(dsn, autocommit=True) as writer:
        pg.execute(f"CREATE TABLE inventory.{name} (marker_id int PRIMARY KEY)")
        consumer.subscribe([topic])
        try:
            return measure_lag(
                commit_marker=lambda marker: writer.execute(f"INSERT INTO inventory.{name} VALUES (%s)", [marker]),
                consumer=consumer,
                marker_of=lambda event: event.after.get("marker_id") if event.after else None,
                count=int(rate_per_second * seconds),
                rate_per_second=rate_per_second,
            )
        finally:
            consumer.close()
            pg.execute(f"DROP TABLE IF EXISTS inventory.{name}")
            delete_topic(admin, topic)
