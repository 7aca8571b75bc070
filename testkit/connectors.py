"""What a connector of the caller's own leaves behind on Postgres, and removing it; whether a connector has
streamed past a point of the WAL or the binlog, so a captured table can be dropped without its changes coming back."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psycopg
import pymysql

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


SourceOffset = dict[str, object]


def committed_offsets(connect_url: str, connector: str) -> list[SourceOffset] | None:
    """The source offsets Connect committed for the connector: it commits one only once Kafka took
    every record the task produced before it."""
    response = httpx.get(f"{connect_url}/connectors/{connector}/offsets", timeout=10)
    if response.status_code != 200:
        return None
    return [entry.get("offset", {}) for entry in response.json().get("offsets", [])]


def wait_until_committed(
    connect_url: str,
    connector: str,
    reached: Callable[[list[SourceOffset]], bool],
    target: str,
    hint: str = "",
    timeout_seconds: float = STREAMED_TIMEOUT_SECONDS,
    nudge: Callable[[], None] | None = None,
) -> None:
    """Waits until the connector's committed offsets are `reached` (`target` says where that is),
    calling `nudge` about once a second meanwhile (a source that must write for offsets to move)."""
    deadline = time.monotonic() + timeout_seconds
    nudged_at = float("-inf")
    while True:
        try:
            offsets = committed_offsets(connect_url, connector)
        except httpx.HTTPError:
            offsets = None
        if offsets is not None and reached(offsets):
            return
        if nudge is not None and time.monotonic() - nudged_at >= 1.0:
            nudge()
            nudged_at = time.monotonic()
        assert time.monotonic() < deadline, (
            f"connect: connector {connector} has not committed offsets past {target} within {timeout_seconds:.0f}s "
            f"(its committed offsets are {offsets}); is it RUNNING? {hint}"
        )
        time.sleep(0.25)


def streamed_past_lsn(lsn: int) -> Callable[[list[SourceOffset]], bool]:
    """Whether a Postgres connector's offsets are at or after `lsn`."""
    return lambda offsets: any(isinstance(offset.get("lsn"), int) and offset["lsn"] >= lsn for offset in offsets)


def drop_captured_postgres_table(pg: psycopg.Connection, qualified: str, connect_url: str, connector: str, hint: str = "") -> None:
    """Drops a captured table once the connector has streamed its last change: dropped earlier,
    Debezium would emit the changes still in flight with null keys (it reads the primary key from
    the live catalog) after the test deleted the topic, and Connect would create the topic again."""
    watermark = postgres_watermark(pg, qualified)
    wait_until_committed(connect_url, connector, streamed_past_lsn(watermark), f"the WAL's LSN {watermark}", hint)
    pg.execute(f"DROP TABLE IF EXISTS {qualified}")


def mysql_binlog_position(mysql: pymysql.connections.Connection) -> tuple[str, int]:
    """(file, position) the server writes its binlog at now."""
    with mysql.cursor() as cursor:
        cursor.execute("SHOW MASTER STATUS")
        file, position = cursor.fetchone()[:2]
    return str(file), int(position)


def streamed_past_binlog(position: tuple[str, int]) -> Callable[[list[SourceOffset]], bool]:
    """Whether a MySQL/MariaDB connector's offsets are at or after the binlog `position`. A record's
    offset holds the start of its transaction, so the last row of a test's changes never gets there:
    the connector's heartbeats (pipelines/connectors.py) carry the position after it."""

    def reached(offsets: list[SourceOffset]) -> bool:
        return any(
            "file" in offset and "pos" in offset and (str(offset["file"]), int(str(offset["pos"]))) >= position
            for offset in offsets
        )

    return reached


def drop_captured_mysql_table(
    mysql: pymysql.connections.Connection, qualified: str, connect_url: str, connector: str, hint: str = ""
) -> None:
    """Drops a captured table once the connector has put every change before the DROP in Kafka:
    deleting its topic afterwards then leaves nothing in flight that would make Connect create it again.

    The connector's heartbeat, whose offset passes the DROP, goes out with the next binlog event it
    reads; on an idle server that came 48 s later when measured. So the wait writes one: the same
    DROP ... IF EXISTS, which the server logs though the table is gone."""
    before_drop = mysql_binlog_position(mysql)

    def drop() -> None:
        with mysql.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {qualified}")

    drop()
    wait_until_committed(connect_url, connector, streamed_past_binlog(before_drop), f"the binlog's {before_drop}", hint, nudge=drop)
