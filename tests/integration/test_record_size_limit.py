"""A 10 MB row replicates through the stack's Postgres connector: every hop takes `MAX_RECORD_BYTES`.

Before the limit was raised, one 5 MB row failed the connector's task with RecordTooLargeException.
"""

from __future__ import annotations

import psycopg

import stack_outputs as out
from tests.support.stack import StackOutputs

TEN_MB = 10 * 1000 * 1000
EVENT_TIMEOUT_SECONDS = 120.0
"""A 20 MB event (before and after) takes seconds through Debezium's JSON converter, not minutes."""


def shape(value: str) -> tuple[int, set[str]]:
    """Length and characters: a readable comparison of 10 MB strings (pytest would diff them in full)."""
    return len(value), set(value)


def test_a_ten_megabyte_row_replicates_inserted_and_updated(stack: StackOutputs, pg: psycopg.Connection, postgres_capture) -> None:
    table = postgres_capture("id integer PRIMARY KEY, body text NOT NULL")
    pg.execute(f"INSERT INTO {table.qualified} VALUES (1, %s)", ["a" * TEN_MB])
    # REPLICA IDENTITY FULL (the captured tables' setting): the update's event carries both 10 MB values.
    pg.execute(f"UPDATE {table.qualified} SET body = %s WHERE id = 1", ["b" * TEN_MB])
    inserted, updated = table.reader.wait_for_changes(2, timeout=EVENT_TIMEOUT_SECONDS)
    assert (inserted.op, shape(inserted.after["body"])) == ("c", (TEN_MB, {"a"}))
    assert (updated.op, shape(updated.before["body"]), shape(updated.after["body"])) == ("u", (TEN_MB, {"a"}), (TEN_MB, {"b"}))
    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR])
