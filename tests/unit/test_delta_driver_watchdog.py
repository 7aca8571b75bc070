"""The Delta sink's driver watchdog: when a driver without executors, or one its master forgot, is
reported and when the job gives it up for a new one. A scripted clock and scripted looks stand in for
time and Spark; the master's /json/ is a local HTTP server. Against the live stack (the master and
worker killed mid-load): tests/integration/test_spark_faults.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipelines.sinks.delta.job import LazySession, driver_look
from pipelines.sinks.delta.watchdog import (
    EXECUTORLESS_GRACE_SECONDS,
    STARTUP_SECONDS,
    UNKNOWN_APPLICATION_GRACE_SECONDS,
    DriverLook,
    DriverWatch,
    DriverWatchdog,
)
from pipelines.spark import master_applications
from tests.support.sinks import closed_port

MASTER_URL = "spark://127.0.0.1:27077"
MASTER_UI_URL = "http://127.0.0.1:28480"
LOG_PATH = "/state/services/delta-sink/service.log"
APP = "app-20260101000000-0001"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def running(executors: int = 1, known: bool | None = True, application_id: str = APP) -> DriverLook:
    return DriverLook(application_id, executors, known)


def watch(clock: ManualClock, master_ui_url: str | None = MASTER_UI_URL) -> DriverWatch:
    return DriverWatch(MASTER_URL, master_ui_url, LOG_PATH, clock)


def test_a_driver_with_executors_that_its_master_lists_is_fine() -> None:
    clock = ManualClock()
    watched = watch(clock)
    for _ in range(100):
        verdict = watched.observe(running())
        assert verdict.problem is None and not verdict.give_up
        clock.now += 2


def test_a_master_that_forgot_the_application_is_reported_at_once_and_the_driver_given_up_after_its_grace() -> None:
    clock = ManualClock()
    watched = watch(clock)
    watched.observe(running())
    clock.now += 2
    # Both killed: the master's UI does not answer for a while, the executor is gone.
    verdict = watched.observe(DriverLook(APP, 0, None, master_error="connection refused"))
    assert verdict.problem is not None and not verdict.give_up, "no executor: on /health at once"
    clock.now += 4
    verdict = watched.observe(running(executors=0, known=False))
    assert verdict.problem is not None and not verdict.give_up
    for text in ("Spark", MASTER_URL, APP, "no executor for 4s", "no longer lists the application", f"{MASTER_UI_URL}/json/", LOG_PATH):
        assert text in verdict.problem, verdict.problem
    clock.now += UNKNOWN_APPLICATION_GRACE_SECONDS - 1
    assert not watched.observe(running(executors=0, known=False)).give_up
    clock.now += 1
    verdict = watched.observe(running(executors=0, known=False))
    assert verdict.give_up and "exits for a new driver now" in (verdict.problem or "")


def test_without_the_master_ui_a_driver_is_given_up_after_the_executorless_grace() -> None:
    clock = ManualClock()
    watched = watch(clock, master_ui_url=None)
    watched.observe(running(known=None))
    clock.now += 1
    verdict = watched.observe(running(executors=0, known=None))
    assert verdict.problem is not None and "exits for a new driver in 30s" in verdict.problem and not verdict.give_up
    clock.now += EXECUTORLESS_GRACE_SECONDS - 1
    assert not watched.observe(running(executors=0, known=None)).give_up
    clock.now += 1
    assert watched.observe(running(executors=0, known=None)).give_up


def test_a_master_that_cannot_say_neither_starts_nor_clears_the_unknown_clock() -> None:
    clock = ManualClock()
    watched = watch(clock)
    watched.observe(running())
    clock.now += 2
    watched.observe(running(executors=0, known=False))
    clock.now += UNKNOWN_APPLICATION_GRACE_SECONDS
    assert watched.observe(DriverLook(APP, 0, None, master_error="timed out")).give_up, "what the master said last stands"


def test_an_executor_replaced_within_the_grace_clears_the_report_and_keeps_the_driver() -> None:
    clock = ManualClock()
    watched = watch(clock)
    watched.observe(running())
    clock.now += 2
    assert watched.observe(running(executors=0)).problem is not None
    clock.now += EXECUTORLESS_GRACE_SECONDS - 5
    verdict = watched.observe(running(executors=1))
    assert verdict.problem is None and not verdict.give_up
    clock.now += 2
    verdict = watched.observe(running(executors=0))
    assert verdict.problem is not None and "no executor for 0s" in verdict.problem, "a new loss starts a new clock"


def test_the_first_executor_may_take_the_startup_window() -> None:
    clock = ManualClock()
    watched = watch(clock)
    while clock.now < 1000.0 + STARTUP_SECONDS:
        verdict = watched.observe(running(executors=0))
        assert verdict.problem is None, f"{clock.now - 1000:.0f}s after the session opened: {verdict.problem}"
        clock.now += 2
    verdict = watched.observe(running(executors=0))
    assert verdict.problem is not None and "none since its session opened" in verdict.problem and not verdict.give_up
    clock.now += EXECUTORLESS_GRACE_SECONDS
    assert watched.observe(running(executors=0)).give_up


def test_a_session_not_listed_by_its_master_at_startup_is_not_waited_for() -> None:
    clock = ManualClock()
    watched = watch(clock)
    assert watched.observe(running(executors=0, known=False)).problem is not None
    clock.now += UNKNOWN_APPLICATION_GRACE_SECONDS
    assert watched.observe(running(executors=0, known=False)).give_up


def test_a_driver_that_does_not_answer_counts_as_one_without_executors() -> None:
    clock = ManualClock()
    watched = watch(clock, master_ui_url=None)
    watched.observe(running(known=None))
    verdict = watched.observe(DriverLook(APP, None, None, driver_error="py4j.protocol.Py4JNetworkError: Answer from Java side is empty"))
    assert verdict.problem is not None and "Py4JNetworkError" in verdict.problem


def test_a_new_session_starts_a_new_startup_window() -> None:
    clock = ManualClock()
    watched = watch(clock)
    watched.observe(running())
    clock.now += 2
    assert watched.observe(running(executors=0)).problem is not None
    verdict = watched.observe(running(executors=0, application_id="app-20260101000100-0002"))
    assert verdict.problem is None


def test_the_watchdog_reports_the_problem_and_gives_the_driver_up_once_its_grace_is_over() -> None:
    clock = ManualClock()
    looks: list[DriverLook | None] = [None, running(), running(executors=0, known=False)]
    given_up: list[str] = []
    watchdog = DriverWatchdog(watch(clock), lambda: looks[0] if len(looks) == 1 else looks.pop(0), given_up.append)

    watchdog.check()
    assert watchdog.errors() == {}, "no session open yet: nothing to watch"
    watchdog.check()
    assert watchdog.errors() == {}
    clock.now += 2
    watchdog.check()
    assert set(watchdog.errors()) == {"spark"} and MASTER_URL in watchdog.errors()["spark"] and not given_up
    clock.now += UNKNOWN_APPLICATION_GRACE_SECONDS
    watchdog.check()
    assert given_up == [watchdog.errors()["spark"]]


class MasterUi:
    """Serves a standalone master's /json/ with `state` (what the test sets)."""

    def __init__(self) -> None:
        self.state: dict[str, Any] = {"status": "ALIVE", "activeapps": [{"id": APP, "state": "RUNNING"}]}
        ui = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(ui.state).encode()
                self.send_response(200 if self.path == "/json/" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def master_ui() -> Iterator[MasterUi]:
    ui = MasterUi()
    yield ui
    ui.server.shutdown()
    ui.server.server_close()


def test_the_master_lists_its_running_and_waiting_applications(master_ui: MasterUi) -> None:
    master_ui.state["activeapps"].append({"id": "app-2", "state": "WAITING"})
    assert master_applications(master_ui.url, 2.0) == {APP, "app-2"}
    master_ui.state = {"status": "RECOVERING", "activeapps": []}
    assert master_applications(master_ui.url, 2.0) is None, "a recovering master may not list them yet"
    with pytest.raises(OSError):
        master_applications(f"http://127.0.0.1:{closed_port()}", 2.0)


class FakeSession:
    """Answers `executor_count` as a driver with `block_managers` block managers (its own included) would."""

    def __init__(self, block_managers: int) -> None:
        memory_status = type("MemoryStatus", (), {"size": lambda _self: block_managers})()
        context = type("Context", (), {"getExecutorMemoryStatus": lambda _self: memory_status})()
        java_context = type("JavaContext", (), {"sc": lambda _self: context})()
        self.sparkContext = type("SparkContext", (), {"_jsc": java_context})()


def opened_session(block_managers: int) -> LazySession:
    session = LazySession({"spark.master": MASTER_URL})
    session._session, session.application_id = FakeSession(block_managers), APP  # type: ignore[assignment]  # noqa: SLF001
    return session


def test_a_look_at_the_driver_counts_its_executors_and_asks_the_master(master_ui: MasterUi) -> None:
    assert driver_look(LazySession({"spark.master": MASTER_URL}), master_ui.url) is None, "a session not opened is not opened by a look"
    assert driver_look(opened_session(2), master_ui.url) == DriverLook(APP, 1, True)
    master_ui.state = {"status": "ALIVE", "activeapps": []}
    assert driver_look(opened_session(1), master_ui.url) == DriverLook(APP, 0, False)
    look = driver_look(opened_session(1), f"http://127.0.0.1:{closed_port()}")
    assert look is not None and look.application_known is None and "did not answer" in (look.master_error or "")
    assert driver_look(opened_session(2), None) == DriverLook(APP, 1, None)
