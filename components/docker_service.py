"""The docker runtime's shape of one service: a pinned image, a named volume, a health-checked container.

Components describe it with a :class:`DockerServiceSpec`; `components.service.ServiceComponent`
calls :func:`docker_service`. The container is created with `wait=True`, so Pulumi returns only once
Docker reports it healthy; the service's own health check (`ServiceHealth`) then gates its dependents.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.network import StackNetwork
from components.runtime import LOOPBACK


@dataclass(frozen=True)
class DockerServiceSpec:
    image: str
    """Pinned image reference from toolchain/versions.env."""
    ports: Mapping[int, int]
    """Container port -> host port, published on 127.0.0.1 only."""
    health_test: Sequence[str]
    """Docker HEALTHCHECK test, e.g. ["CMD-SHELL", "pg_isready -U postgres"]."""
    volume_path: str
    """Where the service keeps its data inside the container."""
    binds: Mapping[str, str] = field(default_factory=dict)
    """Host path -> container path, mounted read-only (the project's code, for a job that runs it)."""
    envs: pulumi.Input[Sequence[pulumi.Input[str]]] = ()
    """KEY=VALUE pairs; pass an Output.secret when any carries a credential."""
    command: Sequence[str] = ()
    """Arguments replacing the image's default command."""
    entrypoint: Sequence[str] = ()
    """Replaces the image's entrypoint (`command` then follows it)."""
    memory_mb: int = 1024
    """Hard memory limit, so one service cannot starve the others."""
    start_timeout_seconds: int = 180
    """How long Pulumi waits for the container to report healthy."""
    health_start_period_seconds: int = 5
    """How long after start failed health checks do not count yet (a job installing its packages first)."""


FILE_ENV_PREFIX = "CDCSTACK_FILE_"


def files_entrypoint(paths: Sequence[str], argv: Sequence[str]) -> list[str]:
    """A shell entrypoint that writes each of `paths` from its environment variable (`files_envs`, in
    the same order), then execs `argv`: for an image that reads its config from files. The container's
    envs carry the contents, so a secret file stays a secret input (needs the image's `sh`)."""
    writes = [
        f'mkdir -p "$(dirname {shlex.quote(path)})" && printf %s "${FILE_ENV_PREFIX}{index}" > {shlex.quote(path)}'
        for index, path in enumerate(paths)
    ]
    return ["/bin/sh", "-c", " && ".join([*writes, f"exec {shlex.join(argv)}"])]


def files_envs(contents: Sequence[str]) -> list[str]:
    """The KEY=VALUE envs `files_entrypoint` writes its files from, in the order of its paths."""
    return [f"{FILE_ENV_PREFIX}{index}={content}" for index, content in enumerate(contents)]


def docker_log_hint(container: docker.Container) -> pulumi.Output[str]:
    """Where a container's log is read (the docker runtime's counterpart of a service's log path)."""
    return container.name.apply(lambda container_name: f"docker logs {container_name}")


def docker_service(
    component: pulumi.ComponentResource,
    name: str,
    network: StackNetwork,
    spec: DockerServiceSpec,
    depends_on: Sequence[pulumi.Resource] = (),
) -> docker.Container:
    """The container of service `name` (also its network alias), started once `depends_on` are healthy."""
    child = pulumi.ResourceOptions(parent=component)
    image = docker.RemoteImage(f"{name}-image", name=spec.image, keep_locally=True, opts=child)
    volume = docker.Volume(f"{name}-data", name=f"{network.docker_network_name}-{name}", opts=child)
    return docker.Container(
        f"{name}-container",
        name=f"{network.docker_network_name}-{name}",
        image=image.image_id,
        envs=spec.envs,
        command=list(spec.command) or None,
        entrypoints=list(spec.entrypoint) or None,
        ports=[
            docker.ContainerPortArgs(internal=internal, external=external, ip=LOOPBACK)
            for internal, external in spec.ports.items()
        ],
        volumes=[
            docker.ContainerVolumeArgs(volume_name=volume.name, container_path=spec.volume_path),
            *(
                docker.ContainerVolumeArgs(host_path=host_path, container_path=container_path, read_only=True)
                for host_path, container_path in spec.binds.items()
            ),
        ],
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[name])],
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=list(spec.health_test),
            interval="2s",
            timeout="5s",
            retries=60,
            start_period=f"{spec.health_start_period_seconds}s",
        ),
        memory=spec.memory_mb,
        restart="unless-stopped",
        wait=True,
        wait_timeout=spec.start_timeout_seconds,
        opts=pulumi.ResourceOptions(parent=component, depends_on=[*network.dependency(), *depends_on]),
    )
