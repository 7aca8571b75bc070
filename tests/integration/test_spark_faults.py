"""The Spark cluster under the stack's Delta sink crashing mid-load (issue 16): the master and the
worker killed, both back within seconds, and the sink's driver, which the new master does not know
and which never gets an executor again, said to be stuck on /health and given up for a new one
(:mod:`pipelines.sinks.delta.watchdog`), until Delta holds exactly the source again, by itself.

Restores the stack (`pulumi up --refresh`) only when the test fails, and appends its figures to
reports/faults.tsv.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg

import stack_outputs as out
from pipelines.sinks.delta.job import DRIVER_LOST_EXIT_CODE
from providers import supervisor
from tests.support.delta import DELTA_SINK, DeltaLake, DeltaSourceTable, postgres_rows, wait_for_delta_parity
from tests.support.lake import LoadWriter, duplicate_keys, job_status, record_fault, wait_for_job
from tests.support.services import kill_service_process, restore_stack, service_dir, wait_until_restarted
from tests.support.stack import StackOutputs

ITEMS = "id integer PRIMARY KEY, name text NOT NULL, qty integer NOT NULL"
SPARK_SERVICES = ("spark-master", "spark-worker")
FLOWING_SECONDS = 180.0
"""The first rows of a new table reach Delta within a few commits of a few seconds each."""
STUCK_REPORTED_SECONDS = 60.0
"""The watchdog looks every 2 s and reports a driver without executors at once; the table stalls on
its first batch after the kill, a second or two after the load resumes."""
SPARK_BACK_SECONDS = 120.0
"""Each daemon is restarted within a second by its supervisor; the JVM and the worker's registration take seconds more."""
CONVERGE_SECONDS = 360.0
"""The stuck driver given up (10 s after the master is back), a new driver with its first executor
(about a minute on two cores), then the 2,000 rows and the updates and deletes written meanwhile."""
HEALTHY_SECONDS = 60.0
STUCK_CAUSES = ("no executor", "the master no longer lists the application")
"""Either is seen first: the driver notices its lost executor within a heartbeat, while a master back
within a second may already answer without the application."""


def stuck_on_spark(stack: StackOutputs, table: DeltaSourceTable) -> Callable[[int, dict[str, Any]], bool]:
    """/health says the job cannot write: 503, a `spark` error naming the master, the table not `ok`."""

    def check(code: int, status: dict[str, Any]) -> bool:
        said = status.get("errors", {}).get("spark", "")
        entry = status.get("tables", {}).get(table.topic, {})
        return code == 503 and stack[out.SPARK_MASTER_URL] in said and entry.get("state", "ok") != "ok"

    return check


def logs(stack: StackOutputs) -> str:
    return ", ".join(f"{service} log: {stack.log_of(service)}" for service in (DELTA_SINK, *SPARK_SERVICES))


def test_a_killed_spark_master_and_worker_mid_load_lose_and_duplicate_nothing(
    stack: StackOutputs, pg: psycopg.Connection, delta_postgres_table, delta_lake: DeltaLake
) -> None:
    table = delta_postgres_table(ITEMS)
    load = LoadWriter(stack.postgres_dsn, table.qualified, rows=3000, batch=50, pause_after=1000).start()
    load.wait_paused()
    wait_for_job(
        stack,
        lambda _code, status: status["tables"].get(table.topic, {}).get("applied", 0) >= load.pause_after,
        f"the first {load.pause_after} rows of {table.qualified} applied",
        FLOWING_SECONDS,
        DELTA_SINK,
    )
    driver_pid = job_status(stack, DELTA_SINK)[1]["pid"]
    health_specs = {
        "spark-master": {"kind": "spark", "url": stack[out.SPARK_UI_URL]},
        "spark-worker": {"kind": "spark", "url": stack[out.SPARK_UI_URL], "alive_workers": 1},
    }
    killed = {service: kill_service_process(stack, service) for service in SPARK_SERVICES}
    killed_at = time.monotonic()
    try:
        load.resume()
        stuck = wait_for_job(stack, stuck_on_spark(stack, table), f"the stuck Spark driver of {table.identifier} on /health", STUCK_REPORTED_SECONDS, DELTA_SINK)
        reported_after = time.monotonic() - killed_at
        for service, (pid, restarts) in killed.items():
            wait_until_restarted(stack, service, pid, restarts, health_specs[service], SPARK_BACK_SECONDS)
        load.join_checked()
        try:
            result = wait_for_delta_parity(delta_lake, table, postgres_rows(pg, table.qualified), timeout=CONVERGE_SECONDS)
        except AssertionError as error:
            raise AssertionError(f"{error}; {logs(stack)}") from error
        converged_after = time.monotonic() - killed_at
        status = wait_for_job(stack, lambda code, _status: code == 200, "healthy again with a new driver", HEALTHY_SECONDS, DELTA_SINK)
    except BaseException:
        restore_stack(stack)
        raise
    said = stuck["errors"]["spark"]
    assert any(cause in said for cause in STUCK_CAUSES) and stack.log_of(DELTA_SINK) in said, said
    assert status["pid"] != driver_pid, f"the stuck driver (pid {driver_pid}) was never given up; {logs(stack)}"
    exited = supervisor.read_state(service_dir(stack, DELTA_SINK) / "supervisor.json")
    assert exited is not None and exited.last_exit_code == DRIVER_LOST_EXIT_CODE, f"{exited}; {logs(stack)}"
    assert status["tables"][table.topic]["last_error"] is None, status["tables"][table.topic]
    assert duplicate_keys(result.rows, ["id"]) == 0 and result.diff.equal
    assert len(result.rows) == load.rows - load.rows // 11
    fault = f"spark-master and spark-worker kill -9 (stuck driver on /health after {reported_after:.1f}s, given up for a new one)"
    record_fault(fault, load.rows, len(result.source), len(result.rows), duplicate_keys(result.rows, ["id"]), converged_after)
