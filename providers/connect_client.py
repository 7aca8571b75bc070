"""A small client for the Kafka Connect REST API, mapping HTTP status to cdcstack's errors per call.

Strict primitives (`put_config`, `delete`, …) raise on anything unexpected; the idempotent helpers
the Pulumi provider needs (`delete_if_present`, `wait_running`, `settled_status`, `restart_failed`)
are layered over them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote

import httpx

from providers.errors import (
    ConnectorConfigInvalidError,
    ConnectorFailedError,
    ConnectorNotFoundError,
    ConnectorNotRunningError,
    ConnectRebalanceError,
    ConnectUnavailableError,
)

REQUEST_TIMEOUT_SECONDS = 15.0
REBALANCE_RETRY_SECONDS = 30.0
RESTART_PICKUP_SECONDS = 10.0
"""How long a restarted task may still show its old FAILED state: Connect answers the restart request
at once and restarts asynchronously, so FAILED right after it may be the failure from before."""
POLL_SECONDS = 0.25

# States an operator sets on purpose (PUT .../pause, .../stop): not a failure to repair.
DELIBERATE_STATES = ("PAUSED", "STOPPED")


def trace_summary(trace: str) -> str:
    """A Java trace in one line: its first line (exception and message) and its innermost "Caused by".

    Connect wraps a producer's RecordTooLargeException in "ConnectException: Unrecoverable exception
    from producer send callback", so the first line alone would not say what failed.
    """
    lines = [line.strip() for line in trace.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    causes = [line.removeprefix("Caused by:").strip() for line in lines if line.startswith("Caused by:")]
    return f"{lines[0]} (caused by {causes[-1]})" if causes else lines[0]


@dataclass(frozen=True)
class ConnectorStatus:
    """GET /connectors/{name}/status, reduced to what callers decide on."""

    name: str
    state: str
    trace: str
    """The connector's own trace when it FAILED."""
    tasks: tuple[tuple[int, str, str], ...]
    """(task id, state, trace or "") per task."""

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(state == "RUNNING" for _, state, _ in self.tasks)

    @property
    def failure(self) -> str | None:
        """What FAILED, with its trace, or None."""
        if self.state == "FAILED":
            return f"connector FAILED:\n{self.trace}"
        for task_id, state, trace in self.tasks:
            if state == "FAILED":
                return f"task {task_id} FAILED:\n{trace}"
        return None

    @property
    def failed(self) -> bool:
        """The connector or one of its tasks FAILED: only a restart (or a config change) brings it back."""
        return self.first_failed() is not None

    def first_failed(self) -> tuple[str, str] | None:
        """("connector" or "task <id>", its trace in one line) of the first FAILED instance, or None."""
        if self.state == "FAILED":
            return "connector", trace_summary(self.trace)
        for task_id, state, trace in self.tasks:
            if state == "FAILED":
                return f"task {task_id}", trace_summary(trace)
        return None

    @property
    def problem(self) -> str:
        """One line saying what keeps it from running ("" when it runs, or is paused or stopped on purpose).

        A FAILED connector or task comes first, with its trace in one line (`trace_summary`).
        """
        failed = self.first_failed()
        if failed is not None:
            return f"{failed[0]} FAILED: {failed[1]}"
        if self.state in DELIBERATE_STATES:
            return ""
        if self.state != "RUNNING":
            return f"connector {self.state}"
        if not self.tasks:
            return "connector RUNNING without any task"
        for task_id, state, _ in self.tasks:
            if state != "RUNNING":
                return f"task {task_id} {state}"
        return ""

    def task_records(self) -> list[dict[str, Any]]:
        """Per task: id, state and its trace in one line, as the provider records them in state."""
        return [{"id": task_id, "state": state, "trace": trace_summary(trace)} for task_id, state, trace in self.tasks]

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ConnectorStatus:
        connector = body.get("connector", {})
        return cls(
            name=body.get("name", ""),
            state=connector.get("state", "UNASSIGNED"),
            trace=connector.get("trace", ""),
            tasks=tuple(
                (int(task["id"]), task.get("state", "UNASSIGNED"), task.get("trace", "")) for task in body.get("tasks", [])
            ),
        )


class ConnectClient:
    """One Connect worker. `log_hint` (the worker's log path) is added to every error message."""

    def __init__(self, url: str, log_hint: str = "", timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.url = url.rstrip("/")
        self.log_hint = log_hint
        self.timeout = timeout

    def where(self) -> str:
        return f"Kafka Connect at {self.url}" + (f" (log: {self.log_hint})" if self.log_hint else "")

    def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        deadline = time.monotonic() + REBALANCE_RETRY_SECONDS
        while True:
            try:
                response = httpx.request(method, f"{self.url}{path}", json=body, timeout=self.timeout)
            except httpx.HTTPError as error:
                raise ConnectUnavailableError(f"{self.where()} did not answer {method} {path}: {error!r}") from error
            if response.status_code != 409:
                return response
            # 409 means a rebalance is under way; it settles within seconds.
            if time.monotonic() >= deadline:
                raise ConnectRebalanceError(f"{self.where()} kept answering 409 (rebalancing) to {method} {path}")
            time.sleep(0.5)

    @staticmethod
    def _message(response: httpx.Response) -> str:
        try:
            return str(response.json().get("message", response.text))
        except ValueError:
            return response.text

    def _expect(self, response: httpx.Response, what: str, ok: tuple[int, ...] = (200,)) -> httpx.Response:
        if response.status_code in ok:
            return response
        message = self._message(response)
        if response.status_code == 404:
            raise ConnectorNotFoundError(f"{what}: not found on {self.where()}: {message}")
        if response.status_code in (400, 422):
            raise ConnectorConfigInvalidError(f"{what}: {self.where()} rejected it: {message}")
        raise ConnectUnavailableError(f"{what}: {self.where()} answered {response.status_code}: {message}")

    def connectors(self) -> list[str]:
        return self._expect(self._request("GET", "/connectors"), "list connectors").json()

    def plugins(self) -> list[str]:
        return [plugin["class"] for plugin in self._expect(self._request("GET", "/connector-plugins"), "list plugins").json()]

    def get_config(self, name: str) -> dict[str, str]:
        config = self._expect(self._request("GET", f"/connectors/{quote(name)}/config"), f"connector {name}").json()
        config.pop("name", None)
        return config

    def put_config(self, name: str, config: Mapping[str, str]) -> None:
        """Creates or updates (Connect's PUT is an upsert)."""
        self._expect(self._request("PUT", f"/connectors/{quote(name)}/config", dict(config)), f"connector {name}", (200, 201))

    def delete(self, name: str) -> None:
        self._expect(self._request("DELETE", f"/connectors/{quote(name)}"), f"connector {name}", (200, 204))

    def delete_if_present(self, name: str) -> bool:
        """Idempotent delete: True if it existed."""
        try:
            self.delete(name)
        except ConnectorNotFoundError:
            return False
        return True

    def status(self, name: str) -> ConnectorStatus:
        return ConnectorStatus.parse(
            self._expect(self._request("GET", f"/connectors/{quote(name)}/status"), f"connector {name}").json()
        )

    def restart(self, name: str, include_tasks: bool = True, only_failed: bool = False) -> None:
        query = f"?includeTasks={str(include_tasks).lower()}&onlyFailed={str(only_failed).lower()}"
        self._expect(self._request("POST", f"/connectors/{quote(name)}/restart{query}"), f"restart {name}", (200, 202, 204))

    def restart_task(self, name: str, task_id: int) -> None:
        self._expect(self._request("POST", f"/connectors/{quote(name)}/tasks/{task_id}/restart"), f"restart {name}/{task_id}", (200, 202, 204))

    def validate(self, name: str, config: Mapping[str, str]) -> list[str]:
        """Connect's own messages for connector `name`'s config (empty when valid)."""
        connector_class = config.get("connector.class", "")
        if not connector_class:
            return ["connector.class: missing"]
        body = {**config, "name": name}
        response = self._request("PUT", f"/connector-plugins/{quote(connector_class)}/config/validate", body)
        message = self._message(response)
        if response.status_code in (400, 404) or "Failed to find any class" in message:
            # An unknown class is answered with a message (and a 500), not with a validation body;
            # its list of every plugin's descriptor is long, so name the connectors instead.
            reason = message.split(", available connectors are")[0]
            return [f"connector.class: {reason}; this worker has {sorted(self.plugins())}"]
        result = self._expect(response, f"validate {connector_class}", (200,)).json()
        errors = []
        for entry in result.get("configs", []):
            value = entry.get("value", {})
            errors += [f"{value.get('name')}: {message}" for message in value.get("errors", [])]
        return errors

    def wait_running(self, name: str, timeout_seconds: float) -> ConnectorStatus:
        """Waits until the connector and all its tasks are RUNNING; FAILED ends the wait at once."""
        deadline = time.monotonic() + timeout_seconds
        last = "no status yet"
        while True:
            try:
                status = self.status(name)
            except ConnectorNotFoundError:
                status = None
            if status is not None:
                if status.failure:
                    raise ConnectorFailedError(f"connector {name} on {self.where()}: {status.failure}")
                if status.running:
                    return status
                last = f"connector {status.state}, tasks {[state for _, state, _ in status.tasks]}"
            if time.monotonic() >= deadline:
                raise ConnectorNotRunningError(f"connector {name} not RUNNING after {timeout_seconds:.0f}s ({last}) on {self.where()}")
            time.sleep(POLL_SECONDS)

    def settled_status(self, name: str, timeout_seconds: float) -> ConnectorStatus:
        """The status once it shows no problem or a FAILED one, or as it is after `timeout_seconds`.

        A task is briefly UNASSIGNED or RESTARTING while the worker (re)starts it; only one that stays
        so, or one that FAILED, is a problem worth repairing. Raises ConnectorNotFoundError if it is gone.
        """
        deadline = time.monotonic() + timeout_seconds
        while True:
            status = self.status(name)
            if not status.problem or status.failed or time.monotonic() >= deadline:
                return status
            time.sleep(POLL_SECONDS)

    def restart_failed(self, name: str, timeout_seconds: float, stable_seconds: float) -> ConnectorStatus:
        """Restarts the FAILED connector and tasks, then waits until everything has run for `stable_seconds`.

        A task that fails again (RecordTooLargeException on the same row, say) shows RUNNING until Connect
        kills it, seconds after the refused send; the stable window must outlast that. ConnectorFailedError names the connector, the
        task, its trace in one line and the worker log.
        """
        self.restart(name, include_tasks=True, only_failed=True)
        started = time.monotonic()
        deadline = started + timeout_seconds
        restart_seen = False
        running_since: float | None = None
        last = "no status yet"
        while True:
            now = time.monotonic()
            try:
                status: ConnectorStatus | None = self.status(name)
            except ConnectorNotFoundError:
                status = None
            if status is not None:
                last = status.problem or "running"
                if status.running:
                    restart_seen = True
                    running_since = running_since if running_since is not None else now
                    if now - running_since >= stable_seconds:
                        return status
                else:
                    running_since = None
                    failed = status.first_failed()
                    if failed is None:
                        restart_seen = True
                    elif restart_seen or now - started >= RESTART_PICKUP_SECONDS:
                        which, trace = failed
                        raise ConnectorFailedError(
                            f"connector {name}: {which} FAILED again after a restart: {trace}"
                            f" (Kafka Connect at {self.url}; worker log: {self.log_hint or 'not recorded'})"
                        )
            if now >= deadline:
                raise ConnectorNotRunningError(
                    f"connector {name} not RUNNING {timeout_seconds:.0f}s after a restart ({last}) on {self.where()}"
                )
            time.sleep(POLL_SECONDS)
