"""Failpoints: a fault test holds one table's batch at a point of its cycle through the job's HTTP
API, sees it held (with the batch's offsets) on /health, and lets it go; nothing else waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from pipelines.sinks.failpoints import AFTER_TABLE_COMMIT, BEFORE_TABLE_COMMIT, Failpoints, UnknownFailpointError
from pipelines.sinks.job import SinkJob, serve_health
from tests.support.sinks import ScriptedWriter, closed_port

TOPIC = "pg.inventory.items"
OFFSETS = {f"{TOPIC}:0": 42}


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reach_in_thread(failpoints: Failpoints, point: str, topics: list[str]) -> threading.Thread:
    thread = threading.Thread(target=failpoints.reach, args=(point, topics, OFFSETS), daemon=True)
    thread.start()
    return thread


def wait_for_state(failpoints: Failpoints, point: str, state: str) -> None:
    """Waits (at most 10 s) until the thread that reaches the point has it in `state`."""
    for _ in range(200):
        if failpoints.report().get(point, {}).get("state") == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"{point} never {state}: {failpoints.report()}")


def test_an_armed_point_holds_only_its_topic_until_released_and_fires_once() -> None:
    failpoints = Failpoints()
    failpoints.arm(AFTER_TABLE_COMMIT, TOPIC)
    failpoints.reach(AFTER_TABLE_COMMIT, ["pg.inventory.other"], OFFSETS)  # another table: not held
    failpoints.reach(BEFORE_TABLE_COMMIT, [TOPIC], OFFSETS)  # another point: not held
    held = reach_in_thread(failpoints, AFTER_TABLE_COMMIT, [TOPIC])
    wait_for_state(failpoints, AFTER_TABLE_COMMIT, "held")
    assert failpoints.report()[AFTER_TABLE_COMMIT]["offsets"] == OFFSETS
    assert held.is_alive()
    assert failpoints.release(AFTER_TABLE_COMMIT) is True
    held.join(10)
    assert not held.is_alive()
    assert failpoints.report() == {}
    failpoints.reach(AFTER_TABLE_COMMIT, [TOPIC], OFFSETS)  # fired once: the next batch runs through
    assert failpoints.release(AFTER_TABLE_COMMIT) is False


def test_a_hold_ends_by_itself_when_the_job_stops_or_the_limit_passes() -> None:
    stopping = threading.Event()
    failpoints = Failpoints(stopping)
    failpoints.arm(BEFORE_TABLE_COMMIT, TOPIC)
    held = reach_in_thread(failpoints, BEFORE_TABLE_COMMIT, [TOPIC])
    wait_for_state(failpoints, BEFORE_TABLE_COMMIT, "held")
    stopping.set()
    held.join(10)
    assert not held.is_alive() and failpoints.report() == {}

    clock = ManualClock()
    limited = Failpoints(hold_limit_seconds=60.0, clock=clock)
    limited.arm(BEFORE_TABLE_COMMIT, TOPIC)
    held = reach_in_thread(limited, BEFORE_TABLE_COMMIT, [TOPIC])
    wait_for_state(limited, BEFORE_TABLE_COMMIT, "held")
    clock.now += 59.0
    held.join(0.3)
    assert held.is_alive(), "held until the limit"
    clock.now += 1.0
    held.join(10)
    assert not held.is_alive() and limited.report() == {}


def test_an_unknown_point_is_refused_by_name() -> None:
    with pytest.raises(UnknownFailpointError, match="no failpoint 'mid-commit'; there are before-table-commit, after-table-commit"):
        Failpoints().arm("mid-commit", TOPIC)


@pytest.fixture
def job_url() -> Iterator[tuple[SinkJob, str]]:
    writer = ScriptedWriter()
    job = SinkJob(f"127.0.0.1:{closed_port()}", "^pg\\.", "cdc", lambda _identifier: writer, "unit-failpoints", destination="iceberg")
    server = serve_health(job, 0)
    try:
        yield job, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_job_arms_shows_and_releases_a_point_over_http(job_url: tuple[SinkJob, str]) -> None:
    job, url = job_url
    armed = httpx.post(f"{url}/failpoints/{AFTER_TABLE_COMMIT}", params={"topic": TOPIC}, timeout=10)
    assert armed.status_code == 201
    assert armed.json()[AFTER_TABLE_COMMIT]["state"] == "armed" and armed.json()[AFTER_TABLE_COMMIT]["topic"] == TOPIC
    held = reach_in_thread(job.failpoints, AFTER_TABLE_COMMIT, [TOPIC])
    wait_for_state(job.failpoints, AFTER_TABLE_COMMIT, "held")
    health = httpx.get(f"{url}/health", timeout=10).json()
    assert health["failpoints"][AFTER_TABLE_COMMIT]["state"] == "held" and health["failpoints"][AFTER_TABLE_COMMIT]["offsets"] == OFFSETS
    released = httpx.delete(f"{url}/failpoints/{AFTER_TABLE_COMMIT}", timeout=10)
    assert released.status_code == 200 and released.json() == {AFTER_TABLE_COMMIT: {"state": "released"}}
    held.join(10)
    assert not held.is_alive()
    assert httpx.get(f"{url}/health", timeout=10).json()["failpoints"] == {}
    unknown = httpx.post(f"{url}/failpoints/mid-commit", params={"topic": TOPIC}, timeout=10)
    assert unknown.status_code == 404 and "no failpoint 'mid-commit'" in unknown.json()["error"]
    no_topic = httpx.post(f"{url}/failpoints/{AFTER_TABLE_COMMIT}", timeout=10)
    assert no_topic.status_code == 400 and "?topic=" in no_topic.json()["error"]
