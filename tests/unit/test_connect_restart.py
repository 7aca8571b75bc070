"""`ConnectClient.restart_failed` and `settled_status` over scripted worker answers (no worker needed).

Connect restarts asynchronously: right after the restart request the status may still show the old
FAILED task, and a task that fails on the same record again does so moments after running.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from providers import connect_client
from providers.connect_client import ConnectClient, ConnectorStatus
from providers.errors import ConnectorFailedError, ConnectorNotRunningError

TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer send callback\n"
    "\tat org.apache.kafka.connect.runtime.WorkerSourceTask.execute(WorkerSourceTask.java:250)\n"
    "Caused by: org.apache.kafka.common.errors.RecordTooLargeException: The request included a message larger"
    " than the max message size the server will accept.\n"
)
WORKER_LOG = "/state/services/connect/service.log"


def status(connector: str, task: str | None) -> ConnectorStatus:
    tasks = [] if task is None else [{"id": 0, "state": task, "trace": TRACE if task == "FAILED" else ""}]
    return ConnectorStatus.parse({"name": "orders", "connector": {"state": connector}, "tasks": tasks})


RUNNING = status("RUNNING", "RUNNING")
FAILED = status("RUNNING", "FAILED")
RESTARTING = status("RUNNING", "RESTARTING")
UNASSIGNED = status("RUNNING", "UNASSIGNED")


class ScriptedClient(ConnectClient):
    """Answers `status` from a script (its last answer repeats) and records restart requests."""

    def __init__(self, answers: Sequence[ConnectorStatus]) -> None:
        super().__init__("http://127.0.0.1:1", log_hint=WORKER_LOG)
        self.answers = list(answers)
        self.restarts: list[tuple[str, bool, bool]] = []

    def status(self, name: str) -> ConnectorStatus:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def restart(self, name: str, include_tasks: bool = True, only_failed: bool = False) -> None:
        self.restarts.append((name, include_tasks, only_failed))


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connect_client, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(connect_client, "RESTART_PICKUP_SECONDS", 0.3)


def test_a_restart_that_takes_returns_once_the_task_has_kept_running() -> None:
    client = ScriptedClient([FAILED, FAILED, RESTARTING, RUNNING])
    assert client.restart_failed("orders", timeout_seconds=5, stable_seconds=0.1).running
    assert client.restarts == [("orders", True, True)], "only the failed connector and tasks are restarted"


def test_a_task_that_fails_again_after_running_fails_naming_the_task_its_trace_and_the_log() -> None:
    client = ScriptedClient([FAILED, RESTARTING, RUNNING, FAILED])
    with pytest.raises(ConnectorFailedError) as failure:
        client.restart_failed("orders", timeout_seconds=5, stable_seconds=1.0)
    message = str(failure.value)
    assert message.startswith("connector orders: task 0 FAILED again after a restart: ")
    assert "RecordTooLargeException: The request included a message larger" in message
    assert f"worker log: {WORKER_LOG}" in message and "\n" not in message


def test_a_task_still_failed_after_the_pickup_window_counts_as_failed_again() -> None:
    client = ScriptedClient([FAILED])
    with pytest.raises(ConnectorFailedError, match="task 0 FAILED again after a restart"):
        client.restart_failed("orders", timeout_seconds=5, stable_seconds=0.1)


def test_a_task_that_never_runs_ends_the_wait_at_its_timeout() -> None:
    client = ScriptedClient([FAILED, UNASSIGNED])
    with pytest.raises(ConnectorNotRunningError, match=r"not RUNNING \d+s after a restart \(task 0 UNASSIGNED\)"):
        client.restart_failed("orders", timeout_seconds=0.5, stable_seconds=0.1)


def test_settled_status_waits_out_a_task_being_assigned() -> None:
    client = ScriptedClient([UNASSIGNED, RESTARTING, RUNNING])
    assert client.settled_status("orders", timeout_seconds=5).problem == ""


def test_settled_status_returns_a_failed_task_at_once_and_a_stuck_one_after_its_window() -> None:
    assert ScriptedClient([FAILED, RUNNING]).settled_status("orders", timeout_seconds=5).failed
    assert ScriptedClient([UNASSIGNED]).settled_status("orders", timeout_seconds=0.1).problem == "task 0 UNASSIGNED"
