"""`DebeziumConnector`: a Kafka Connect connector as a Pulumi resource.

- check: validates the config against the worker (Connect's own messages) when the worker answers;
  create also refuses a `table.include.list` that matches no table (Debezium would capture nothing);
  on a first `pulumi up` the worker does not exist yet during preview, so create validates again;
- create: registers with `PUT /connectors/{name}/config` (an upsert, so a connector that already
  exists is adopted, never a conflict) and returns once the connector and every task are RUNNING;
  a FAILED task is an error carrying its trace, and the connector is removed again so nothing is
  left half-registered;
- read: the live config and state from the worker: the connector's state, each task's state with its
  trace in one line (`tasks`: first line and innermost cause), and `problem`, one line saying what
  keeps it from running ("" when it runs). A task still UNASSIGNED or RESTARTING is given
  `READ_SETTLE_SECONDS` to settle first. So `pulumi refresh` finds drift: a config changed or a
  connector deleted behind Pulumi's back, and a task that FAILED (a 5 MB row over the record limit,
  say) or never got assigned. A worker that cannot answer tells nothing: the recorded state is kept;
- diff: side-effect free; a change when the declared inputs differ from the (refreshed) outputs, or
  when the refreshed outputs record a `problem`. `pulumi up --refresh` (what `make up` runs) therefore
  never reports a connector with a FAILED task as unchanged;
- update: the same PUT, in place; when the refreshed state recorded a problem it then restarts the
  FAILED connector and tasks and waits until everything has run for `RESTART_STABLE_SECONDS`; a task
  that fails again fails the update, naming the connector, the task, its trace in one line and the
  worker log. The state keeps the problem, so the next `up` tries again;
- delete: removes it (already gone is success).

The natural id is the connector name. The config carries database passwords: it is a secret input
and a secret output, and nothing is kept on the provider object (which is pickled into state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from providers.base import DeclaredProvider, DeclaredResource, Input, ResourceSchema
from providers.connect_client import ConnectClient, ConnectorStatus
from providers.preview import is_known
from providers.source_tables import unmatched_include_patterns
from providers.errors import (
    ConnectorConfigInvalidError,
    ConnectorNotFoundError,
    ConnectUnavailableError,
    TerminalError,
    TransientError,
)

DEFAULT_RUNNING_TIMEOUT_SECONDS = 120.0
READ_SETTLE_SECONDS = 15.0
"""How long `read` lets a task that is UNASSIGNED or RESTARTING (a worker just restarted) reach RUNNING
before it records it as a problem; a FAILED task is recorded at once."""
RESTART_STABLE_SECONDS = 15.0
"""How long a restarted connector must keep running before a repair counts. A task that fails on the
same record again reports FAILED only once Connect kills it, 5.2 s after the refused send on the dev
stack here (worker log), more on busy cores: with 5 s, `up` once called such a task repaired. A
repair called good too early is the worse mistake; restarts of FAILED tasks are rare."""
SCHEMA = ResourceSchema(
    id_key="name",
    inputs=(
        Input("name"),
        Input("connect_url"),
        Input("config", secret=True),
        # Named in error messages and bounding a wait: neither changes the connector on the worker.
        Input("worker_log", diffed=False),
        Input("source_address", default="", diffed=False),
        Input("running_timeout", default=DEFAULT_RUNNING_TIMEOUT_SECONDS, diffed=False),
    ),
    outputs=("state", "task_count", "tasks", "problem"),
)


def needs_repair(olds: Mapping[str, Any]) -> bool:
    """The recorded state says the connector is not running (a FAILED task, one never assigned)."""
    return bool(olds.get("problem"))


def _client(props: Mapping[str, Any]) -> ConnectClient:
    return ConnectClient(props["connect_url"], log_hint=props.get("worker_log", ""))


def _with_status(props: Mapping[str, Any], status: ConnectorStatus) -> dict[str, Any]:
    """The outputs: the inputs plus what the worker reports, in the same shape from create, update and read."""
    return {
        **props,
        "state": status.state,
        "task_count": len(status.tasks),
        "tasks": status.task_records(),
        "problem": status.problem,
    }


class DebeziumConnectorProvider(DeclaredProvider):
    schema = SCHEMA

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        name = news.get("name", "?")
        config = news.get("config") or {}
        if not is_known(config) or not is_known(news.get("connect_url")):
            return CheckResult(news, [])
        if "connector.class" not in config:
            return CheckResult(news, [CheckFailure("config", f"connector {name}: config has no connector.class")])
        try:
            problems = _client(news).validate(name, config)
        except ConnectUnavailableError:
            return CheckResult(news, [])
        return CheckResult(news, [CheckFailure("config", f"connector {name}: {problem}") for problem in problems])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # A refreshed state that records a problem is a change though the inputs are the same, so
        # `pulumi up --refresh` repairs it in place (never by replacing the connector).
        return SCHEMA.diff(olds, news, also_changed=needs_repair(olds))

    def _register(self, props: dict[str, Any], remove_on_failure: bool, repair: bool = False) -> dict[str, Any]:
        """Validates, PUTs the config and waits until it runs; with `repair`, restarts what FAILED before waiting."""
        client = _client(props)
        name, config = props["name"], props["config"]
        problems = client.validate(name, config)
        problems += [
            f"table.include.list: {pattern!r} matches no table in the source database"
            for pattern in unmatched_include_patterns(config, str(SCHEMA.value(props, "source_address")))
        ]
        if problems:
            raise ConnectorConfigInvalidError(
                f"connector {name} rejected by {client.where()}:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        client.put_config(name, config)
        timeout = float(SCHEMA.value(props, "running_timeout"))
        try:
            if repair:
                status = client.restart_failed(name, timeout, RESTART_STABLE_SECONDS)
            else:
                status = client.wait_running(name, timeout)
        except TerminalError:
            if remove_on_failure:
                client.delete_if_present(name)
            raise
        return _with_status(props, status)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=self._register(props, remove_on_failure=True))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._register(news, remove_on_failure=False, repair=needs_repair(olds)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        client = _client(props)
        try:
            if id_ not in client.connectors():
                return ReadResult(None, {})
            status = client.settled_status(id_, READ_SETTLE_SECONDS)
            live_config = client.get_config(id_)
        except ConnectorNotFoundError:
            # Deleted between the listing and the status.
            return ReadResult(None, {})
        except TransientError:
            # A worker that cannot answer (its broker down, say) tells nothing about drift: keep the
            # recorded state so the rest of the refresh, and the `up` that repairs the broker, go on.
            return ReadResult(id_, props)
        return ReadResult(id_, _with_status({**props, "config": live_config}, status))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        _client(props).delete_if_present(id_)


@dataclass(frozen=True)
class DebeziumConnectorArgs:
    name: str
    """Connector name: the natural id, unique on the worker."""
    connect_url: pulumi.Input[str]
    """The worker's REST URL."""
    config: pulumi.Input[Mapping[str, pulumi.Input[str]]]
    """Connector config (all values strings). Secret: it carries database passwords."""
    worker_log: pulumi.Input[str] = ""
    """The worker's log path, named in error messages."""
    running_timeout: float = DEFAULT_RUNNING_TIMEOUT_SECONDS
    """Seconds to wait for the connector and its tasks to reach RUNNING."""
    source_address: pulumi.Input[str] = ""
    """`host:port` where this program reaches the source database for the include-list check, when the
    config's `database.hostname` is a name only Connect resolves (a network alias on docker); "" = the config's."""


class DebeziumConnector(DeclaredResource, module="cdcstack", name="DebeziumConnector"):
    """A connector on a Kafka Connect worker; see the module docstring."""

    state: pulumi.Output[str]
    task_count: pulumi.Output[int]
    tasks: pulumi.Output[list[dict[str, Any]]]
    """Per task: id, state and its trace in one line, as last read."""
    problem: pulumi.Output[str]
    """What keeps the connector from running, one line; "" when it runs."""

    def __init__(self, name: str, args: DebeziumConnectorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DebeziumConnectorProvider(), name, args, opts)
