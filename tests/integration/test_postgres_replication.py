"""The Postgres service is ready for Debezium: logical WAL, slots, pgoutput publications, seed data."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest

from testkit.names import unique_name


@pytest.fixture
def scratch_table(pg: psycopg.Connection) -> Iterator[str]:
    table = unique_name("repl")
    pg.execute(f"CREATE TABLE public.{table} (id int PRIMARY KEY, name text NOT NULL, amount numeric(10,2))")
    pg.execute(f"ALTER TABLE public.{table} REPLICA IDENTITY FULL")
    yield table
    pg.execute(f"DROP TABLE IF EXISTS public.{table}")


@pytest.fixture
def logical_slot(pg: psycopg.Connection) -> Iterator[callable]:
    """Creates slots on demand and drops every one of them afterwards."""
    created: list[str] = []

    def create(plugin: str) -> str:
        slot = unique_name("slot")
        pg.execute("SELECT pg_create_logical_replication_slot(%s, %s)", [slot, plugin])
        created.append(slot)
        return slot

    yield create
    for slot in created:
        pg.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", [slot])


def test_server_runs_with_logical_wal_and_room_for_debezium(pg: psycopg.Connection) -> None:
    settings = dict(
        pg.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('wal_level', 'max_replication_slots', 'max_wal_senders', 'listen_addresses')"
        ).fetchall()
    )
    assert settings["wal_level"] == "logical"
    assert int(settings["max_replication_slots"]) >= 10 and int(settings["max_wal_senders"]) >= 10
    assert settings["listen_addresses"] == "127.0.0.1"


def test_seeded_inventory_schema_has_the_sample_rows(pg: psycopg.Connection) -> None:
    products = pg.execute("SELECT id, name, price FROM inventory.products WHERE id BETWEEN 101 AND 105 ORDER BY id").fetchall()
    assert [(row[0], row[1], str(row[2])) for row in products] == [
        (101, "scooter", "49.99"),
        (102, "car battery", "89.00"),
        (103, "12-pack drill bits", "12.50"),
        (104, "hammer", "15.00"),
        (105, "rocks", "7.25"),
    ]
    customers = pg.execute("SELECT email FROM inventory.customers WHERE id BETWEEN 1001 AND 1004 ORDER BY id").fetchall()
    assert [row[0] for row in customers][0] == "sally.thomas@acme.example" and len(customers) == 4


def test_seeded_tables_keep_full_before_images(pg: psycopg.Connection) -> None:
    identities = dict(
        pg.execute(
            "SELECT c.relname, c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'inventory' AND c.relkind = 'r'"
        ).fetchall()
    )
    assert identities == {"customers": "f", "products": "f", "orders": "f", "avro_customers": "f"}


def test_pgoutput_slot_streams_inserts_updates_and_deletes_of_a_publication(
    pg: psycopg.Connection, scratch_table: str, logical_slot
) -> None:
    publication = unique_name("pub")
    pg.execute(f"CREATE PUBLICATION {publication} FOR TABLE public.{scratch_table}")
    try:
        slot = logical_slot("pgoutput")
        with pg.transaction():
            for row_id in (1, 2, 3):
                pg.execute(f"INSERT INTO public.{scratch_table} VALUES (%s, %s, %s)", [row_id, f"row {row_id}", row_id * 1.5])
        pg.execute(f"UPDATE public.{scratch_table} SET amount = 99.99 WHERE id = 2")
        pg.execute(f"DELETE FROM public.{scratch_table} WHERE id = 3")
        changes = pg.execute(
            "SELECT data FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL, 'proto_version', '1', 'publication_names', %s)",
            [slot, publication],
        ).fetchall()
        message_types = Counter(bytes(row[0])[:1].decode() for row in changes)
        assert message_types["I"] == 3 and message_types["U"] == 1 and message_types["D"] == 1
        assert message_types["B"] == message_types["C"] == 3, "three transactions, each begun and committed"
    finally:
        pg.execute(f"DROP PUBLICATION IF EXISTS {publication}")


def test_test_decoding_slot_shows_each_row_change_exactly(
    pg: psycopg.Connection, scratch_table: str, logical_slot
) -> None:
    slot = logical_slot("test_decoding")
    pg.execute(f"INSERT INTO public.{scratch_table} VALUES (7, 'seven', 7.70)")
    pg.execute(f"UPDATE public.{scratch_table} SET name = 'SEVEN' WHERE id = 7")
    changes = [
        row[0]
        for row in pg.execute("SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL)", [slot]).fetchall()
        if row[0].startswith("table ")
    ]
    assert changes == [
        f"table public.{scratch_table}: INSERT: id[integer]:7 name[text]:'seven' amount[numeric]:7.70",
        f"table public.{scratch_table}: UPDATE: old-key: id[integer]:7 name[text]:'seven' amount[numeric]:7.70 "
        f"new-tuple: id[integer]:7 name[text]:'SEVEN' amount[numeric]:7.70",
    ]


def test_a_replication_connection_is_accepted(stack) -> None:
    with psycopg.connect(stack.postgres_dsn, autocommit=True, replication="database") as replication:
        system = replication.execute("IDENTIFY_SYSTEM").fetchone()
    assert system is not None and int(system[1]) >= 1
