"""`pulumi destroy` of the docker stack leaves nothing of it on the engine but the images it built (a
cache, kept on purpose so that the next `up` starts in seconds), and the next `up` brings every
service back healthy. Run last in the docker stage (tests/docker/conftest.py): it ends with a stack
that is up again, as the stage found it, but fresh."""

from __future__ import annotations

import time
from typing import Any

import service_catalogue
import stack_outputs as out
from testkit.stack import PulumiCli
from tests.docker.conftest import stack_label
from tests.support.stack import StackOutputs

SERVICES = sorted(service.name for service in service_catalogue.SERVICES)


def left_on_engine(engine: Any, stack: StackOutputs) -> dict[str, list[str]]:
    label = {"label": stack_label(stack)}
    return {
        "containers": [container.name for container in engine.containers.list(all=True, filters=label)],
        "networks": [network.name for network in engine.networks.list(filters=label)],
        "volumes": [volume.name for volume in engine.volumes.list(filters=label)],
    }


def test_destroy_leaves_no_container_network_or_volume_and_up_brings_the_stack_back(engine: Any, docker_stack: StackOutputs) -> None:
    before = left_on_engine(engine, docker_stack)
    assert len(before["containers"]) == len(SERVICES) and before["networks"] and before["volumes"], before
    images = sorted(tag for image in engine.images.list() for tag in image.tags if tag.startswith("cdcstack/"))
    cli = PulumiCli(docker_stack.name)
    started = time.monotonic()
    cli.destroy()
    destroyed_in = time.monotonic() - started
    assert left_on_engine(engine, docker_stack) == {"containers": [], "networks": [], "volumes": []}
    assert sorted(tag for image in engine.images.list() for tag in image.tags if tag.startswith("cdcstack/")) == images
    started = time.monotonic()
    cli.up()
    up_in = time.monotonic() - started
    prefix = f"cdcstack-{docker_stack.name}-"
    running = {container.name.removeprefix(prefix): container.status for container in engine.containers.list(filters={"label": stack_label(docker_stack)})}
    assert running == dict.fromkeys(SERVICES, "running")
    assert cli.outputs()[out.SERVICE_PORTS] == docker_stack[out.SERVICE_PORTS]
    print(f"docker stack: destroy {destroyed_in:.1f}s, up again from cached images {up_in:.1f}s")
