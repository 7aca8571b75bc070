"""The sink job's loop: how discovery interleaves with its tables' rounds, and what /health says of
a failure the destination reports.

The tables are stand-ins that only take time to step, on a clock of the test's own (so a round's
length is exact on any machine, however loaded); discovery is scripted, so no Kafka is needed.
Against the live stack: the Delta and Iceberg sink tests under tests/integration.
"""

from __future__ import annotations

import httpx
import pytest

from pipelines.sinks.core import SinkStats
from pipelines.sinks.job import SinkJob, serve_health
from tests.support.sinks import ScriptedWriter, closed_port

STEP_SECONDS = 0.05
DISCOVER_SECONDS = 0.1


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SlowTable:
    """A table whose every step takes `STEP_SECONDS` of the job's clock, as a Spark commit takes
    seconds; the step that takes the clock past `stop_at` asks the job to stop."""

    def __init__(self, topic: str, job: SinkJob, clock: ManualClock, stop_at: float) -> None:
        self.topic = topic
        self.job = job
        self.clock = clock
        self.stop_at = stop_at
        self.steps = 0
        self.stepped_after_close = False
        self.closed = False

    def step(self) -> int:
        self.stepped_after_close |= self.closed
        self.steps += 1
        self.clock.now += STEP_SECONDS
        if self.clock.now >= self.stop_at:
            self.job.stopping.set()
        return 0

    def close(self) -> None:
        self.closed = True


class ScriptedDiscovery:
    """Stands in for `SinkJob.discover`: the job starts with `tables` topics; at call `changes_at` a
    new topic appears and the first one is gone. `made` keeps every table it ever gave the job."""

    def __init__(self, job: SinkJob, clock: ManualClock, tables: int, changes_at: int, stop_at: float) -> None:
        self.job = job
        self.clock = clock
        self.tables = tables
        self.changes_at = changes_at
        self.stop_at = stop_at
        self.calls: list[float] = []
        self.made: dict[str, SlowTable] = {}

    def _add(self, topic: str) -> None:
        self.made[topic] = SlowTable(topic, self.job, self.clock, self.stop_at)
        self.job.sinks[topic] = self.made[topic]  # type: ignore[assignment]

    def __call__(self) -> None:
        self.calls.append(self.clock.now)
        if len(self.calls) == 1:
            for index in range(self.tables):
                self._add(f"unit.inventory.t{index}")
        if len(self.calls) == self.changes_at:
            self.job.sinks.pop(FIRST_TOPIC).close()
            self._add(NEW_TOPIC)


FIRST_TOPIC = "unit.inventory.t0"
NEW_TOPIC = "unit.inventory.new"


def run_for(seconds: float, tables: int, changes_at: int) -> tuple[SinkJob, ScriptedDiscovery]:
    """Runs a job's loop over `tables` slow tables until `seconds` of its clock have passed."""
    writer = ScriptedWriter()
    clock = ManualClock()
    job = SinkJob(
        f"127.0.0.1:{closed_port()}", "^unit\\.", "cdc", lambda _identifier: writer, "unit-loop", DISCOVER_SECONDS, destination="delta", clock=clock
    )
    discovery = ScriptedDiscovery(job, clock, tables, changes_at, stop_at=clock.now + seconds)
    job.discover = discovery  # type: ignore[method-assign]
    job.run()
    return job, discovery


def test_a_long_round_still_discovers_within_the_interval() -> None:
    # 20 tables of 50 ms make a 1 s round, ten discovery intervals.
    job, discovery = run_for(0.6, tables=20, changes_at=3)

    gaps = [later - earlier for earlier, later in zip(discovery.calls, discovery.calls[1:])]
    assert len(discovery.calls) >= 4, f"discovered {len(discovery.calls)} times in 0.6 s of a 1 s round"
    assert max(gaps) < DISCOVER_SECONDS + 2 * STEP_SECONDS, f"gaps between discoveries (s): {gaps}"
    assert NEW_TOPIC in job.sinks and FIRST_TOPIC not in job.sinks


def test_a_table_closed_by_discovery_mid_round_is_not_stepped_again() -> None:
    job, discovery = run_for(2.5, tables=20, changes_at=2)  # the new table is last in the second round, which ends at 2 s

    closed = discovery.made[FIRST_TOPIC]
    assert closed.closed and closed.steps == 1 and not closed.stepped_after_close
    assert discovery.made[NEW_TOPIC].steps > 0, "the new topic's table was never stepped"
    assert all(table.closed for table in discovery.made.values()), "the loop closes every table when it stops"


def test_a_discovery_asked_for_over_http_runs_at_the_next_turn_instead_of_when_due() -> None:
    writer = ScriptedWriter()
    clock = ManualClock()
    job = SinkJob(f"127.0.0.1:{closed_port()}", "^unit\\.", "cdc", lambda _identifier: writer, "unit-asked", 60.0, destination="iceberg", clock=clock)
    discovery = ScriptedDiscovery(job, clock, tables=3, changes_at=2, stop_at=clock.now + 1.0)
    job.discover = discovery  # type: ignore[method-assign]
    server = serve_health(job, 0)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/discover"
        original_step = SlowTable.step

        def step_and_ask(table: SlowTable) -> int:
            if table.topic == "unit.inventory.t1" and table.steps == 1:
                # A test has just created a topic: it asks, as the live tests do, mid-round.
                answer = httpx.post(url, timeout=10)
                assert answer.status_code == 202 and answer.json() == {"discovery": "requested"}
            return original_step(table)

        SlowTable.step = step_and_ask  # type: ignore[method-assign]
        try:
            job.run()
        finally:
            SlowTable.step = original_step  # type: ignore[method-assign]
    finally:
        server.shutdown()
        server.server_close()
    # Round 1 steps t0, t1, t2; t1's second step (round 2) asks; discovery follows that step at once,
    # 59 s before the interval would have.
    asked_at = discovery.calls[0] + 4 * STEP_SECONDS
    assert len(discovery.calls) == 2 and discovery.calls[1] == pytest.approx(asked_at + STEP_SECONDS), discovery.calls
    assert NEW_TOPIC in job.sinks and FIRST_TOPIC not in job.sinks
    assert not job.discovery_requested.is_set(), "the request was used up by the discovery it asked for"


def test_a_table_whose_consumer_has_no_partition_for_a_minute_says_so_and_subscribes_again() -> None:
    from pipelines.sinks.core import UNASSIGNED_GRACE_SECONDS, CdcSink

    clock = ManualClock()
    sink = CdcSink(f"127.0.0.1:{closed_port()}", ["pg.inventory.items"], ScriptedWriter(), "unassigned", clock=clock)
    try:
        sink._check_assignment()  # noqa: SLF001 - the check the read of every batch makes
        clock.now += UNASSIGNED_GRACE_SECONDS - 1
        sink._check_assignment()  # noqa: SLF001
        assert sink.stats.healthy and sink.stats.as_dict()["state"] == "ok", "joining a group takes seconds: not a failure yet"
        clock.now += 2
        sink._check_assignment()  # noqa: SLF001
        report = sink.stats.as_dict()
        assert not sink.stats.healthy and report["state"] == "unassigned"
        assert "no partition of pg.inventory.items assigned" in report["consumer_error"] and "subscribing again" in report["consumer_error"]
        clock.now += 1
        sink._check_assignment()  # noqa: SLF001
        assert sink.stats.consumer_error is not None, "still without a partition: it says so until it has one again"
    finally:
        sink.close()


class IdleTable:
    """A table stand-in with stats, and a batch in hand when `pending`."""

    def __init__(self, topic: str, pending: bool) -> None:
        self.stats = SinkStats(f"cdc.{topic}", [topic])
        self.pending = object() if pending else None


def test_a_failure_the_destination_reports_stalls_the_tables_with_a_batch_in_hand() -> None:
    destination_errors: dict[str, str] = {}
    writer = ScriptedWriter()
    job = SinkJob(
        f"127.0.0.1:{closed_port()}", "^unit\\.", "cdc", lambda _identifier: writer, "unit-hook", destination="delta", destination_errors=lambda: dict(destination_errors)
    )
    tables = {topic: IdleTable(topic, pending=topic == "unit.kept") for topic in ("unit.stepping", "unit.kept", "unit.idle")}
    job.sinks.update(tables)  # type: ignore[arg-type]
    job.stepping = "unit.stepping"
    status = job.status()
    assert status["status"] == "ok" and status["errors"] == {}
    assert {table["state"] for table in status["tables"].values()} == {"ok"}

    destination_errors["spark"] = "Spark: the driver has had no executor for 12s"
    status = job.status()
    assert status["status"] == "degraded" and not job.healthy()
    assert status["errors"] == {"spark": "Spark: the driver has had no executor for 12s"}
    for topic in ("unit.stepping", "unit.kept"):
        assert status["tables"][topic]["state"] == "stalled" and status["tables"][topic]["last_error"] == destination_errors["spark"]
    assert status["tables"]["unit.idle"]["state"] == "ok" and status["tables"]["unit.idle"]["last_error"] is None
    assert tables["unit.stepping"].stats.last_error is None, "the report says so; the table's own stats stay the core's"
