"""Connectors a test owns: configs for the stack's databases, and clean-up of what Debezium leaves behind."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlparse

import psycopg

import stack_outputs as out
from components.change_capture import postgres_source_config
from tests.support.stack import StackOutputs


def postgres_config(stack: StackOutputs, topic_prefix: str, slot: str, tables: str) -> dict[str, str]:
    """A Postgres connector of the test's own, on the stack's database, limited to `tables`."""
    url = urlparse(stack.postgres_dsn)
    config = postgres_source_config(
        "127.0.0.1", url.port, url.username, url.password, url.path.lstrip("/"), topic_prefix, slot
    )
    config.update({"publication.autocreate.mode": "filtered", "table.include.list": tables})
    return config


def drop_slot_and_publication(dsn: str, slot: str, timeout_seconds: float = 30.0) -> None:
    """Debezium keeps its slot and publication after the connector is deleted; a test removes its own.

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


def stack_connector_names(stack: StackOutputs) -> set[Any]:
    return {stack[out.POSTGRES_CONNECTOR], stack[out.MYSQL_CONNECTOR]}
