"""`ServiceHealth`: a service's own health check as a Pulumi resource (the docker runtime's gate).

A container reports healthy by its image's HEALTHCHECK, which is not the check the process runtime
runs (`pg_isready` is not a SQL ping; Connect answering is not Connect listing its plugins). This
resource runs the same :mod:`providers.health` spec as `LocalService`, from the host against the
published 127.0.0.1 port, so `ready` means the same on both runtimes.

- create/update: probes until healthy (`health.wait_until_healthy`) or fails with the last reason;
  a new `instance` (a replaced container) waits again;
- read: one probe; an unhealthy service reads as gone, so `pulumi refresh` then `pulumi up` waits
  for it again (and whatever depends on it waits too);
- delete: nothing to undo.

The natural id is the service name. The spec may carry a password: it is a secret input and output,
and nothing is kept on the provider object (which Pulumi pickles into state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, UpdateResult

from providers import health
from providers.base import DeclaredProvider, DeclaredResource, Input, ResourceSchema
from providers.errors import ServiceUnhealthyError
from providers.preview import is_known

SCHEMA = ResourceSchema(
    id_key="service",
    inputs=(
        Input("service"),
        Input("health", secret=True),
        Input("instance"),
        # How long to wait and where the log is only shape the wait, not what is checked.
        Input("timeout", diffed=False),
        Input("log", diffed=False),
    ),
    outputs=("healthy_after_seconds",),
)
"""A new spec or a new instance (a replaced container) waits again; a new name is a new resource."""


def _wait(props: dict[str, Any]) -> dict[str, Any]:
    service = props["service"]
    try:
        seconds = health.wait_until_healthy(props["health"], float(props["timeout"]))
    except health.ProbeFailed as failure:
        raise ServiceUnhealthyError(f"{service}: {failure}. Read its log with `{props.get('log') or 'make outputs'}`.") from failure
    return {**props, "healthy_after_seconds": round(seconds, 3)}


class ServiceHealthProvider(DeclaredProvider):
    """Stateless: everything it needs is in the inputs."""

    schema = SCHEMA

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        spec = news.get("health")
        failures: list[CheckFailure] = []
        if isinstance(spec, dict) and is_known(spec):
            service = news.get("service", "?")
            failures = [CheckFailure("health", f"{service}: {problem}") for problem in health.spec_problems(spec)]
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["service"], outs=_wait(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=_wait(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            health.probe(props["health"])
        except health.ProbeFailed:
            return ReadResult(None, {})
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


@dataclass(frozen=True)
class ServiceHealthArgs:
    """The schema's inputs, one field each."""

    service: str
    """Natural id: the service's name."""
    health: pulumi.Input[dict[str, Any]]
    """A :mod:`providers.health` spec against 127.0.0.1; kept secret since it may carry a password."""
    instance: pulumi.Input[str]
    """What changes when the service starts anew (a container id): a new one is waited for again."""
    timeout: float = 120.0
    """Seconds to wait for the check to pass."""
    log: pulumi.Input[str] = ""
    """How to read the service's log (`docker logs <container>`), named when the check fails."""


class ServiceHealth(DeclaredResource, module="cdcstack", name="ServiceHealth"):
    """Exists once the service's health check passed; see the module docstring."""

    instance: pulumi.Output[str]
    healthy_after_seconds: pulumi.Output[float]

    def __init__(self, name: str, args: ServiceHealthArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ServiceHealthProvider(), name, args, opts)
