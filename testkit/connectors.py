"""What a connector of the caller's own leaves behind on Postgres, and removing it."""

from __future__ import annotations

import time

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
