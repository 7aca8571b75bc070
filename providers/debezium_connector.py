"""`DebeziumConnector`: a Kafka Connect connector as a Pulumi resource.

- check: validates the config against the worker (Connect's own messages) when the worker answers;
  create also refuses a `table.include.list` that matches no table (Debezium would capture nothing);
  on a first `pulumi up` the worker does not exist yet during preview, so create validates again;
- create: registers with `PUT /connectors/{name}/config` (an upsert, so a connector that already
  exists is adopted, never a conflict) and returns once the connector and every task are RUNNING;
  a FAILED task is an error carrying its trace, and the connector is removed again so nothing is
  left half-registered;
- update: the same PUT, in place; delete: removes it (already gone is success);
- read: the live config from the worker, so `pulumi refresh` finds drift (changed or deleted behind
  Pulumi's back) and the next `pulumi up` puts the declared config back.

The natural id is the connector name. The config carries database passwords: it is a secret input
and a secret output, and nothing is kept on the provider object (which is pickled into state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from providers.connect_client import ConnectClient
from providers.preview import is_known
from providers.source_tables import unmatched_include_patterns
from providers.errors import ConnectorConfigInvalidError, ConnectUnavailableError, TerminalError, TransientError

DEFAULT_RUNNING_TIMEOUT_SECONDS = 120.0


def _client(props: Mapping[str, Any]) -> ConnectClient:
    return ConnectClient(props["connect_url"], log_hint=props.get("worker_log", ""))


class DebeziumConnectorProvider(ResourceProvider):
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
        changed = [key for key in ("name", "connect_url", "config") if olds.get(key) != news.get(key)]
        return DiffResult(
            changes=bool(changed),
            replaces=[key for key in changed if key == "name"],
            stables=[] if "name" in changed else ["name"],
            delete_before_replace=True,
        )

    def _register(self, props: dict[str, Any], remove_on_failure: bool) -> dict[str, Any]:
        client = _client(props)
        name, config = props["name"], props["config"]
        problems = client.validate(name, config)
        problems += [
            f"table.include.list: {pattern!r} matches no table in the source database"
            for pattern in unmatched_include_patterns(config)
        ]
        if problems:
            raise ConnectorConfigInvalidError(
                f"connector {name} rejected by {client.where()}:\n" + "\n".join(f"  - {p}" for p in problems)
            )
        client.put_config(name, config)
        try:
            status = client.wait_running(name, float(props.get("running_timeout") or DEFAULT_RUNNING_TIMEOUT_SECONDS))
        except TerminalError:
            if remove_on_failure:
                client.delete_if_present(name)
            raise
        return {**props, "state": status.state, "task_count": len(status.tasks)}

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=self._register(props, remove_on_failure=True))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._register(news, remove_on_failure=False))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        client = _client(props)
        try:
            if id_ not in client.connectors():
                return ReadResult(None, {})
            status = client.status(id_)
            live_config = client.get_config(id_)
        except TransientError:
            # A worker that cannot answer (its broker down, say) tells nothing about drift: keep the
            # recorded state so the rest of the refresh, and the `up` that repairs the broker, go on.
            return ReadResult(id_, props)
        return ReadResult(id_, {**props, "config": live_config, "state": status.state, "task_count": len(status.tasks)})

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


class DebeziumConnector(pulumi.dynamic.Resource, module="cdcstack", name="DebeziumConnector"):
    """A connector on a Kafka Connect worker; see the module docstring."""

    state: pulumi.Output[str]
    task_count: pulumi.Output[int]

    def __init__(self, name: str, args: DebeziumConnectorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {
            "name": args.name,
            "connect_url": args.connect_url,
            "config": pulumi.Output.secret(args.config),
            "worker_log": args.worker_log,
            "running_timeout": args.running_timeout,
            "state": None,
            "task_count": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["config"]))
        super().__init__(DebeziumConnectorProvider(), name, props, opts)
