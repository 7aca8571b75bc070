"""Faults a test puts on the live stack's services, and putting the stack back, on either runtime.

Stopping a service keeps it down until the stack is brought up again: SIGTERM to its supervisor
(process) or `docker stop` of its container (docker). Killing a service's process is a crash: SIGKILL
to the supervised child, which the supervisor starts again, or to the service inside its container
(the one child of the container's init), which exits the container for Docker's restart policy to
start again. (`docker kill` of the container would be a manual stop, which Docker restarts nothing after.)
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import stack_outputs as out
from providers import health, processes, supervisor
from providers.docker_resources import engine_client
from testkit.stack import PulumiCli, toolchain_env
from tests.support.stack import StackOutputs

STOP_GRACE_SECONDS = 20.0


def service_dir(stack: StackOutputs, service: str) -> Path:
    return stack.state_dir / "services" / service


def on_docker(stack: StackOutputs) -> bool:
    return stack[out.RUNTIME] == "docker"


@cache
def engine() -> Any:
    """The Docker daemon of the docker stack (the one `make test-docker` starts or the user's)."""
    host = toolchain_env().get("DOCKER_HOST", "")
    assert host, "DOCKER_HOST is not set: run the docker suite through `make test-docker` (it starts the engine)"
    return engine_client(host)


def container_of(stack: StackOutputs, service: str) -> Any:
    import docker.errors

    try:
        return engine().containers.get(f"cdcstack-{stack.name}-{service}")
    except docker.errors.NotFound:
        raise AssertionError(f"{service} of stack {stack.name} has no container: run `STACK={stack.name} make up`") from None


def stop_service(stack: StackOutputs, service: str) -> None:
    """Stops a service as an operator would; nothing starts it again until `restore_stack`."""
    if on_docker(stack):
        container = container_of(stack, service)
        container.stop(timeout=int(STOP_GRACE_SECONDS))
        container.reload()
        assert container.status == "exited", f"{service} did not stop ({container.status}); log: {stack.log_of(service)}"
        return
    pid = processes.read_pid(service_dir(stack, service) / "service.pid")
    assert pid is not None and processes.is_running(pid), f"{service} of stack {stack.name} is not running: run `make up`"
    processes.stop_process(pid, grace_seconds=STOP_GRACE_SECONDS)
    assert not processes.is_running(pid), f"{service} (pid {pid}) did not stop; log: {stack.log_of(service)}"


def restore_stack(stack: StackOutputs) -> None:
    """`pulumi up --refresh`: what `make up` does, starting again whatever a test stopped."""
    PulumiCli(stack.name).up("--refresh")


def service_urn(stack_name: str, service: str, kind: str = "process") -> str:
    """The URN of the resource that runs `service` (its process, or its container on docker), from the
    state of stack `stack_name`."""
    deployment = json.loads(PulumiCli(stack_name).run("stack", "export").stdout)["deployment"]
    named_by = "alias" if kind == "container" else "service"
    urns = [
        resource["urn"]
        for resource in deployment.get("resources", [])
        if resource["urn"].endswith(f"::{service}-{kind}") and (resource.get("outputs") or {}).get(named_by) == service
    ]
    assert len(urns) == 1, f"stack {stack_name} has {len(urns)} {kind} resources for {service}, expected 1: run `make up`"
    return urns[0]


def restore_service(stack: StackOutputs, service: str) -> None:
    """`make up` for the one service a test stopped: `pulumi up --refresh --target` its process (or
    container) resource. Nothing else restarts; what depends on it only ever waited for it to be healthy."""
    kind = "container" if on_docker(stack) else "process"
    PulumiCli(stack.name).up("--refresh", "--target", service_urn(stack.name, service, kind))


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
    if on_docker(stack):
        container = container_of(stack, service)
        restarts = int(container.attrs["RestartCount"])
        # Run as the container's root: a service may have dropped to its own user.
        killed = container.exec_run(["sh", "-c", "child=$(ps -o pid= --ppid 1 | head -n1); kill -KILL $child && echo $child"], user="root")
        assert killed.exit_code == 0, f"{service}: could not kill its process in {container.name}: {killed.output!r}"
        return int(killed.output.decode().split()[-1]), restarts
    state_file = service_dir(stack, service) / "supervisor.json"
    child = supervised_child(stack, service)
    restarts = supervisor.read_state(state_file).restarts
    os.kill(child, signal.SIGKILL)
    return child, restarts


def wait_until_restarted(
    stack: StackOutputs, service: str, killed_pid: int, restarts_before: int, health_spec: health.HealthSpec, timeout_seconds: float = 120.0
) -> float:
    """Waits until the supervisor (or Docker) started a new process and the service is healthy; returns seconds."""
    started = time.monotonic()
    deadline = started + timeout_seconds
    not_yet = _container_not_restarted if on_docker(stack) else _process_not_restarted
    while (seen := not_yet(stack, service, killed_pid, restarts_before)) is not None:
        assert time.monotonic() < deadline, (
            f"{service}: no new process {timeout_seconds:.0f}s after pid {killed_pid} was killed ({seen}); log: {stack.log_of(service)}"
        )
        time.sleep(0.2)
    health.wait_until_healthy(health_spec, max(1.0, deadline - time.monotonic()))
    return time.monotonic() - started


def _process_not_restarted(stack: StackOutputs, service: str, killed_pid: int, restarts_before: int) -> str | None:
    """None once the supervisor runs a new child after more restarts than before, else what it shows."""
    state = supervisor.read_state(service_dir(stack, service) / "supervisor.json")
    child = supervisor.live_child(state) if state is not None else None
    if child is not None and child != killed_pid and state.restarts > restarts_before:
        return None
    return f"supervisor state {state}"


def _container_not_restarted(stack: StackOutputs, service: str, _killed_pid: int, restarts_before: int) -> str | None:
    """None once Docker restarted the container (its pid namespace starts over: the pid may come back)."""
    container = container_of(stack, service)
    if container.status == "running" and int(container.attrs["RestartCount"]) > restarts_before:
        return None
    return f"container {container.name} {container.status} after {container.attrs['RestartCount']} restarts"
