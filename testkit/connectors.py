"""What a connector of the caller's own leaves behind on Postgres, and removing it; whether a connector has
streamed past a point of the WAL, so a captured table can be dropped without its changes coming back."""

from __future__ import annotations

import time

import httpx
import psycopg

SLOT_DROP_TIMEOUT_SECONDS = 30.0


def drop_slot_and_publication(dsn: str, slot: str, timeout_seconds: float = SLOT_DROP_TIMEOUT_SECONDS) -> None:
    """Debezium keeps its slot and publication after the connector is deleted; the caller removes its own.

    Right after the delete the slot may still be active for a moment: retry within a bound.
    """
    deadline = time.monotonic() + timeout_seconds
    with psycopg.connect(dsn, autocommit=True) as pg:
        while True:
            try:
                pg.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", [slot])
                break
            except psycopg.errors.ObjectInUse:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)
        pg.execute(f"DROP PUBLICATION IF EXISTS {slot}")


WATERMARK_PREFIX = "cdcstack.watermark"
"""Logical decoding messages the test kit writes so a connector's position can be compared with them
(Debezium streams them to `<topic prefix>.message`)."""
STREAMED_TIMEOUT_SECONDS = 180.0
"""A connector that fell behind during a fault (Kafka away) catches up within this."""


def lsn_number(lsn: str) -> int:
    """A Postgres LSN (`16/B374D848`) as the number Debezium's offsets hold."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def postgres_watermark(pg: psycopg.Connection, label: str) -> int:
    """Writes a watermark into the WAL after everything committed so far; returns its LSN."""
    [lsn] = pg.execute("SELECT pg_logical_emit_message(true, %s, %s)::text", [WATERMARK_PREFIX, label]).fetchone()
    return lsn_number(lsn)


def streamed_lsn(connect_url: str, connector: str) -> int | None:
    """The WAL position up to which the connector's changes are in Kafka: the LSN in the source
    offsets Connect committed (it commits them only once Kafka took every record before them)."""
    response = httpx.get(f"{connect_url}/connectors/{connector}/offsets", timeout=10)
    if response.status_code != 200:
        return None
    positions = [entry.get("offset", {}).get("lsn") for entry in response.json().get("offsets", [])]
    return max((lsn for lsn in positions if isinstance(lsn, int)), default=None)


def wait_until_streamed_past(connect_url: str, connector: str, lsn: int, hint: str = "", timeout_seconds: float = STREAMED_TIMEOUT_SECONDS) -> None:
    """Waits until the connector has put every change before `lsn` in Kafka."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            streamed = streamed_lsn(connect_url, connector)
        except httpx.HTTPError:
            streamed = None
        if streamed is not None and streamed >= lsn:
            return
        assert time.monotonic() < deadline, (
            f"connect: connector {connector} has not streamed past LSN {lsn} within {timeout_seconds:.0f}s "
            f"(its committed offsets are at {streamed}); is it RUNNING? {hint}"
        )
        time.sleep(0.25)


def drop_captured_postgres_table(pg: psycopg.Connection, qualified: str, connect_url: str, connector: str, hint: str = "") -> None:
    """Drops a captured table once the connector has streamed its last change: dropped earlier,
    Debezium would emit the changes still in flight with null keys (it reads the primary key from
    the live catalog) after the test deleted the topic, and Connect would create the topic again."""
    wait_until_streamed_past(connect_url, connector, postgres_watermark(pg, qualified), hint)
    pg.execute(f"DROP TABLE IF EXISTS {qualified}")
