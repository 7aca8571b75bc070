"""`DebeziumConnectorProvider.diff` and the one-line status it decides on: pure, no worker needed."""

from __future__ import annotations

from typing import Any

import pytest

from providers.connect_client import ConnectorStatus, trace_summary
from providers.debezium_connector import DebeziumConnectorProvider

RECORD_TOO_LARGE_TRACE = (
    "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer send callback\n"
    "\tat org.apache.kafka.connect.runtime.WorkerSourceTask.maybeThrowProducerSendException(WorkerSourceTask.java:340)\n"
    "\tat org.apache.kafka.connect.runtime.WorkerSourceTask.execute(WorkerSourceTask.java:250)\n"
    "Caused by: org.apache.kafka.common.errors.RecordTooLargeException: The message is 5242976 bytes when serialized"
    " which is larger than 1048576, which is the value of the max.request.size configuration.\n"
)
INPUTS: dict[str, Any] = {
    "name": "orders",
    "connect_url": "http://127.0.0.1:28083",
    "config": {"connector.class": "io.debezium.connector.postgresql.PostgresConnector", "topic.prefix": "pg"},
    "worker_log": "/state/services/connect/service.log",
    "running_timeout": 120.0,
    "state": None,
    "task_count": None,
    "tasks": None,
    "problem": None,
}


def status_of(connector: str, *tasks: tuple[str, str]) -> ConnectorStatus:
    return ConnectorStatus.parse(
        {
            "name": "orders",
            "connector": {"state": connector, "worker_id": "127.0.0.1:28083"},
            "tasks": [{"id": i, "state": state, "trace": trace, "worker_id": "127.0.0.1:28083"} for i, (state, trace) in enumerate(tasks)],
        }
    )


def refreshed(status: ConnectorStatus, **changes: Any) -> dict[str, Any]:
    """Outputs as `read` records them after a refresh."""
    return {
        **INPUTS,
        "state": status.state,
        "task_count": len(status.tasks),
        "tasks": status.task_records(),
        "problem": status.problem,
        **changes,
    }


@pytest.fixture
def provider() -> DebeziumConnectorProvider:
    return DebeziumConnectorProvider()


def test_a_running_connector_with_the_declared_config_is_unchanged(provider: DebeziumConnectorProvider) -> None:
    olds = refreshed(status_of("RUNNING", ("RUNNING", "")))
    assert olds["problem"] == "" and olds["tasks"] == [{"id": 0, "state": "RUNNING", "trace": ""}]
    assert provider.diff("orders", olds, INPUTS).changes is False


def test_a_failed_task_after_refresh_is_a_change_though_the_config_is_the_same(provider: DebeziumConnectorProvider) -> None:
    olds = refreshed(status_of("RUNNING", ("FAILED", RECORD_TOO_LARGE_TRACE)))
    result = provider.diff("orders", olds, INPUTS)
    assert result.changes is True
    assert result.replaces == [], "a failed task is repaired in place, never by replacing the connector"


def test_a_failed_task_is_recorded_with_its_trace_in_one_line(provider: DebeziumConnectorProvider) -> None:
    olds = refreshed(status_of("RUNNING", ("RUNNING", ""), ("FAILED", RECORD_TOO_LARGE_TRACE)))
    assert olds["problem"] == (
        "task 1 FAILED: org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer send"
        " callback (caused by org.apache.kafka.common.errors.RecordTooLargeException: The message is 5242976 bytes"
        " when serialized which is larger than 1048576, which is the value of the max.request.size configuration.)"
    )
    assert [task["state"] for task in olds["tasks"]] == ["RUNNING", "FAILED"]
    assert "\n" not in olds["tasks"][1]["trace"] and olds["tasks"][1]["trace"].startswith("org.apache.kafka.connect.errors.ConnectException")


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        (status_of("FAILED"), "connector FAILED: "),
        (status_of("UNASSIGNED", ("UNASSIGNED", "")), "connector UNASSIGNED"),
        (status_of("RUNNING"), "connector RUNNING without any task"),
        (status_of("RUNNING", ("RUNNING", ""), ("UNASSIGNED", "")), "task 1 UNASSIGNED"),
    ],
)
def test_a_connector_not_running_after_the_settle_window_is_a_change(
    provider: DebeziumConnectorProvider, status: ConnectorStatus, problem: str
) -> None:
    olds = refreshed(status)
    assert olds["problem"] == problem
    assert provider.diff("orders", olds, INPUTS).changes is True


@pytest.mark.parametrize("state", ["PAUSED", "STOPPED"])
def test_a_connector_paused_or_stopped_on_purpose_is_not_a_problem(provider: DebeziumConnectorProvider, state: str) -> None:
    olds = refreshed(status_of(state, *([("PAUSED", "")] if state == "PAUSED" else [])))
    assert olds["problem"] == ""
    assert provider.diff("orders", olds, INPUTS).changes is False


def test_state_recorded_before_tasks_were_recorded_is_unchanged(provider: DebeziumConnectorProvider) -> None:
    olds = {key: value for key, value in INPUTS.items() if key not in ("tasks", "problem")}
    assert provider.diff("orders", {**olds, "state": "RUNNING", "task_count": 1}, INPUTS).changes is False


def test_config_drift_is_a_change_and_a_new_name_a_replacement(provider: DebeziumConnectorProvider) -> None:
    olds = refreshed(status_of("RUNNING", ("RUNNING", "")))
    drifted = {**olds, "config": {**olds["config"], "poll.interval.ms": "750"}}
    assert provider.diff("orders", drifted, INPUTS).changes is True
    renamed = provider.diff("orders", olds, {**INPUTS, "name": "orders-v2"})
    assert renamed.changes is True and renamed.replaces == ["name"] and renamed.delete_before_replace is True


def test_diff_does_not_touch_its_arguments(provider: DebeziumConnectorProvider) -> None:
    olds = refreshed(status_of("RUNNING", ("FAILED", RECORD_TOO_LARGE_TRACE)))
    before = repr(olds), repr(INPUTS)
    provider.diff("orders", olds, INPUTS)
    assert (repr(olds), repr(INPUTS)) == before


@pytest.mark.parametrize(
    ("trace", "summary"),
    [
        ("", ""),
        ("java.lang.IllegalStateException: boom\n\tat a.b(C.java:1)\n", "java.lang.IllegalStateException: boom"),
        (
            "x.TopException: outer\n\tat a\nCaused by: y.MiddleException: middle\n\tat b\nCaused by: z.RootException: root\n",
            "x.TopException: outer (caused by z.RootException: root)",
        ),
    ],
)
def test_a_trace_in_one_line_is_its_first_line_and_innermost_cause(trace: str, summary: str) -> None:
    assert trace_summary(trace) == summary
