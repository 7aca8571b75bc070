"""The docker stack's life cycle on a real engine: every service a healthy container published on
127.0.0.1 only; a second `up` changes nothing; a container removed or stopped behind Pulumi's back
shows in `preview --refresh` and the next `up` puts it back; Docker restarts a killed one."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

import service_catalogue
import stack_outputs as out
from testkit.stack import PulumiCli
from tests.docker.conftest import stack_label
from tests.support.stack import StackOutputs

SERVICES = [service.name for service in service_catalogue.SERVICES]
RESTART_TIMEOUT_SECONDS = 120.0


def containers_by_service(engine: Any, stack: StackOutputs) -> dict[str, Any]:
    prefix = f"cdcstack-{stack.name}-"
    found = engine.containers.list(all=True, filters={"label": stack_label(stack)})
    return {container.name.removeprefix(prefix): container for container in found}


def wait_for_health(url: str, what: str, timeout: float = RESTART_TIMEOUT_SECONDS) -> float:
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(url, timeout=3.0).status_code == 200:
                return time.monotonic() - started
            last = "not 200"
        except httpx.HTTPError as error:
            last = str(error)
        time.sleep(0.5)
    pytest.fail(f"{what}: {url} did not answer 200 within {timeout:.0f}s ({last})")


def test_every_service_is_one_running_container_published_on_loopback_only(engine: Any, docker_stack: StackOutputs) -> None:
    containers = containers_by_service(engine, docker_stack)
    assert sorted(containers) == sorted(SERVICES)
    ports = docker_stack[out.SERVICE_PORTS]
    for service, container in containers.items():
        assert container.status == "running", f"{service}: {container.status}; log: docker logs {container.name}"
        published = container.attrs["NetworkSettings"]["Ports"]
        bindings = [binding for mappings in published.values() if mappings for binding in mappings]
        assert {binding["HostIp"] for binding in bindings} == {"127.0.0.1"}, (service, bindings)
        assert sorted(int(binding["HostPort"]) for binding in bindings) == sorted(ports[service]), service
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        # The launch (which may hold secrets) is a file in the container, not its environment.
        assert not [entry for entry in container.attrs["Config"]["Env"] if "secret" in entry.lower()], service


def test_a_second_up_changes_nothing(docker_stack: StackOutputs) -> None:
    preview = PulumiCli(docker_stack.name).run("preview", "--refresh", "--expect-no-changes", "--diff", check=False)
    assert preview.returncode == 0, preview.stdout[-3000:] + preview.stderr[-2000:]


@pytest.mark.parametrize(("service", "how"), [("webhook-capture", "removed"), ("mail-capture", "stopped")])
def test_a_container_removed_or_stopped_by_hand_shows_in_preview_and_up_puts_it_back(
    engine: Any, docker_stack: StackOutputs, service: str, how: str
) -> None:
    container = containers_by_service(engine, docker_stack)[service]
    if how == "removed":
        container.remove(force=True)
    else:
        container.stop(timeout=10)
    cli = PulumiCli(docker_stack.name)
    preview = cli.run("preview", "--refresh")
    planned = [line.split() for line in preview.stdout.splitlines() if f"{service}-container" in line]
    assert [f"{service}-container", "create"] in [words[-2:] for words in planned], preview.stdout[-3000:]
    cli.up("--refresh")
    again = containers_by_service(engine, docker_stack)[service]
    assert again.status == "running" and again.id != container.id
    url = {"webhook-capture": docker_stack[out.WEBHOOK_CAPTURE_URL] + "/health", "mail-capture": docker_stack[out.MAIL_CAPTURE_URL] + "/readyz"}[service]
    wait_for_health(url, service)


def test_docker_restarts_a_container_whose_service_crashed(engine: Any, docker_stack: StackOutputs) -> None:
    """The service killed (SIGKILL) inside its container, as a crash or the kernel's OOM killer would:
    the container exits on its own and its restart policy starts it again. (`docker kill` is a
    manual stop to Docker, which restarts nothing after it: the next `make up` reads that container
    as gone and starts it.)"""
    container = containers_by_service(engine, docker_stack)["webhook-capture"]
    restarts = int(container.attrs["RestartCount"])
    # The service is the one child of the container's init; `docker exec` sessions are not.
    crashed = container.exec_run(["sh", "-c", "kill -KILL $(ps -o pid= --ppid 1)"])
    assert crashed.exit_code == 0, crashed.output
    deadline = time.monotonic() + RESTART_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        container.reload()
        if container.status == "running" and int(container.attrs["RestartCount"]) > restarts:
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"webhook-capture was not restarted by Docker within {RESTART_TIMEOUT_SECONDS:.0f}s: {container.status}")
    wait_for_health(docker_stack[out.WEBHOOK_CAPTURE_URL] + "/health", "webhook-capture after its service crashed")
