"""Faults a test puts on the live stack's services, and putting the stack back.

Stopping a service (SIGTERM to its supervisor) keeps it down until the stack is brought up again;
killing a service's process (SIGKILL to the supervised child) is a crash, which the supervisor
answers by starting it again.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from providers import health, processes, supervisor
from testkit.stack import PulumiCli
from tests.support.stack import StackOutputs

STOP_GRACE_SECONDS = 20.0


def service_dir(stack: StackOutputs, service: str) -> Path:
    return stack.state_dir / "services" / service


def stop_service(stack: StackOutputs, service: str) -> None:
    """Stops a service as an operator would; nothing starts it again until `restore_stack`."""
    pid = processes.read_pid(service_dir(stack, service) / "service.pid")
    assert pid is not None and processes.is_running(pid), f"{service} of stack {stack.name} is not running: run `make up`"
    processes.stop_process(pid, grace_seconds=STOP_GRACE_SECONDS)
    assert not processes.is_running(pid), f"{service} (pid {pid}) did not stop; log: {stack.log_of(service)}"


def restore_stack(stack: StackOutputs) -> None:
    """`pulumi up --refresh`: what `make up` does, starting again whatever a test stopped."""
    PulumiCli(stack.name).up("--refresh")


def service_urn(stack_name: str, service: str) -> str:
    """The URN of the resource that runs `service`'s process, from the state of stack `stack_name`."""
    deployment = json.loads(PulumiCli(stack_name).run("stack", "export").stdout)["deployment"]
    urns = [
        resource["urn"]
        for resource in deployment.get("resources", [])
        if resource["urn"].endswith(f"::{service}-process") and (resource.get("outputs") or {}).get("service") == service
    ]
    assert len(urns) == 1, f"stack {stack_name} has {len(urns)} process resources for {service}, expected 1: run `make up`"
    return urns[0]


def restore_service(stack: StackOutputs, service: str) -> None:
    """`make up` for the one service a test stopped: `pulumi up --refresh --target` its process
    resource. Nothing else restarts; what depends on it only ever waited for it to be healthy."""
    PulumiCli(stack.name).up("--refresh", "--target", service_urn(stack.name, service))


@contextmanager
def service_stopped(stack: StackOutputs, service: str) -> Iterator[None]:
    """The service is down inside the block and started again after it, whatever happened (a stop
    that fails half way included)."""
    try:
        stop_service(stack, service)
        yield
    finally:
        restore_service(stack, service)


def supervised_child(stack: StackOutputs, service: str) -> int:
    """The pid of the service's own process under its supervisor."""
    state = supervisor.read_state(service_dir(stack, service) / "supervisor.json")
    child = supervisor.live_child(state) if state is not None else None
    assert child is not None, f"{service} of stack {stack.name} runs no supervised process: run `make up`"
    return child


def kill_service_process(stack: StackOutputs, service: str) -> tuple[int, int]:
    """SIGKILLs the service's process (a crash). Returns (its pid, the restart count before)."""
    state_file = service_dir(stack, service) / "supervisor.json"
    child = supervised_child(stack, service)
    restarts = supervisor.read_state(state_file).restarts
    os.kill(child, signal.SIGKILL)
    return child, restarts


def wait_until_restarted(
    stack: StackOutputs, service: str, killed_pid: int, restarts_before: int, health_spec: health.HealthSpec, timeout_seconds: float = 120.0
) -> float:
    """Waits until the supervisor started a new process and the service is healthy; returns seconds."""
    started = time.monotonic()
    state_file = service_dir(stack, service) / "supervisor.json"
    deadline = started + timeout_seconds
    while True:
        state = supervisor.read_state(state_file)
        child = supervisor.live_child(state) if state is not None else None
        if child is not None and child != killed_pid and state.restarts > restarts_before:
            break
        assert time.monotonic() < deadline, (
            f"{service}: no new process {timeout_seconds:.0f}s after pid {killed_pid} was killed "
            f"(supervisor state {state}); log: {stack.log_of(service)}"
        )
        time.sleep(0.2)
    health.wait_until_healthy(health_spec, max(1.0, deadline - time.monotonic()))
    return time.monotonic() - started
