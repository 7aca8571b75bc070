"""The stack's own CDC → Iceberg sink job: the seeded tables replicated, kept in step, and reported."""

from __future__ import annotations

import time

import httpx
import psycopg

import stack_outputs as out
from pipelines.consistency import compare_rows
from testkit.names import unique_name
from tests.support.iceberg import catalog_of
from tests.support.stack import StackOutputs

CUSTOMER_COLUMNS = ("id", "first_name", "last_name", "email")


def job_status(stack: StackOutputs) -> dict:
    url = stack[out.ICEBERG_SINK_HEALTH_URL]
    stack.require_healthy("iceberg-sink", {"kind": "http", "url": url})
    return httpx.get(url, timeout=10).json()


SEEDED = ("customers", "products", "orders")


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"iceberg sink job: {what} within {timeout:.0f}s"
        time.sleep(0.5)


def test_the_job_reports_one_table_per_seeded_source_table_without_errors(stack: StackOutputs) -> None:
    status = job_status(stack)
    namespace = stack[out.ICEBERG_SINK_NAMESPACE]
    seeded = {topic: entry for topic, entry in status["tables"].items() if topic.rsplit(".", 1)[1] in SEEDED}
    # A list, not a set: two topics written into one table would be a fault, not one table.
    tables = sorted(entry["table"] for entry in seeded.values())
    assert tables == sorted(f"{namespace}.{prefix}_inventory_{table}" for prefix in ("pg", "my") for table in SEEDED)
    assert status["status"] == "ok" and status["errors"] == {}
    assert all(entry["state"] == "ok" and entry["dead_letters"] == 0 and entry["committed_offsets"] for entry in seeded.values()), seeded


def test_seeded_postgres_customers_are_replicated_row_for_row(stack: StackOutputs, pg: psycopg.Connection) -> None:
    catalog = catalog_of(stack)
    identifier = f"{stack[out.ICEBERG_SINK_NAMESPACE]}.pg_inventory_customers"
    source = [dict(zip(CUSTOMER_COLUMNS, row)) for row in pg.execute(f"SELECT {', '.join(CUSTOMER_COLUMNS)} FROM inventory.customers").fetchall()]

    def replicated() -> bool:
        rows = catalog.load_table(identifier).scan().to_arrow().to_pylist()
        return compare_rows(source, rows, ["id"], CUSTOMER_COLUMNS).equal

    job_status(stack)
    wait_for(replicated, f"{identifier} equal to inventory.customers")


def test_a_change_at_the_source_reaches_the_jobs_table_and_its_removal_too(stack: StackOutputs, pg: psycopg.Connection) -> None:
    catalog = catalog_of(stack)
    identifier = f"{stack[out.ICEBERG_SINK_NAMESPACE]}.pg_inventory_customers"
    email = f"{unique_name('sinkjob')}@test.example"
    [customer_id] = pg.execute(
        "INSERT INTO inventory.customers (first_name, last_name, email) VALUES ('Sink', 'Job', %s) RETURNING id", [email]
    ).fetchone()

    def copies() -> int:
        return sum(row["email"] == email for row in catalog.load_table(identifier).scan().to_arrow().to_pylist())

    try:
        wait_for(lambda: copies() > 0, f"customer {customer_id} in {identifier}")
        assert copies() == 1, f"customer {customer_id} landed in {identifier} {copies()} times"
    finally:
        pg.execute("DELETE FROM inventory.customers WHERE id = %s", [customer_id])
    wait_for(lambda: copies() == 0, f"customer {customer_id} deleted from {identifier}")
