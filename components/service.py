"""`ServiceComponent`: what every service component shares, whatever it runs.

A component describes its service once, as a :class:`ServiceDefinition` (how the process runtime
launches it, the docker runtime's container, the one health check, the port other containers reach
it on) and hands it with its Args to :meth:`ServiceComponent._serve`, which owns the runtime branch,
runs it on the ports of its `ServicePorts` handle and publishes what every service has: `log_path`,
`ready`, the internal address and `ports`.

Health means the same on both runtimes: the definition's :mod:`providers.health` spec, probed from
the host against 127.0.0.1. On the process runtime `LocalService`'s create waits on it; on docker a
`ServiceHealth` resource waits on it after the container reports healthy. Either way `ready`
resolves only then, and dependents gate on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.docker_service import DockerServiceSpec, docker_log_hint, docker_service
from components.network import StackNetwork
from components.runtime import LOOPBACK, Placement, Runtime
from providers.health import HealthSpec
from providers.local_service import LocalService, LocalServiceArgs
from providers.service_health import ServiceHealth, ServiceHealthArgs
from service_catalogue import ServicePorts, ServiceSpec

DEFAULT_START_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class ServiceArgs:
    """What every service component's Args start with."""

    placement: Placement
    """Runtime, state dir and toolchain of the stack."""
    network: StackNetwork
    """The stack's network."""
    ports: ServicePorts
    """Its ports on 127.0.0.1, as the stack's config resolved its catalogue entry."""


@dataclass(frozen=True)
class ProcessLaunch:
    """How the process runtime starts the service: `LocalServiceArgs` less what the base fills in
    (service name, work dir, ports, health check, start timeout)."""

    argv: pulumi.Input[Sequence[str]]
    """The foreground command; its first element must be an executable."""
    init: Sequence[Sequence[str]] = ()
    """Commands run once, before the first start, in the work dir."""
    files: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    """Config files written into the work dir before every start."""
    secret_files: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    """Like files, but secret."""
    env: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    """Extra environment."""
    secret_env: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    """Like env, but secret."""
    run_as: str = ""
    """System account to run as when cdcstack runs as root."""


@dataclass(frozen=True)
class ServiceDefinition:
    """One service, both runtimes."""

    health: pulumi.Input[HealthSpec]
    """The one health check, probed from the host against 127.0.0.1 on both runtimes (may carry a secret)."""
    container_port: int
    """The port other containers reach it on, at its network alias (docker runtime)."""
    process: Callable[[Path], ProcessLaunch]
    """Builds the process launch from the service's work dir; called on the process runtime only."""
    docker: Callable[[], DockerServiceSpec]
    """Builds the container spec; called on the docker runtime only."""
    depends_on: Sequence[pulumi.Resource] = ()
    """Services that must be healthy before it starts."""
    start_timeout: float = DEFAULT_START_TIMEOUT_SECONDS
    """Seconds its health check may take to pass once it has started."""


@dataclass(frozen=True)
class Served:
    """What `_serve` started, for the component's own children (seeds, buckets)."""

    healthy: pulumi.Resource
    """Exists once the health check passed: what a child that talks to the service depends on."""
    instance: pulumi.Output[str]
    """Changes whenever the server starts anew (a new process or container): reruns seeds."""


class ServiceComponent(pulumi.ComponentResource):
    """A service of the catalogue on either runtime, with the outputs every service has."""

    service: ServiceSpec
    """Its catalogue entry: its key in `service_ports`, `service_logs` and every other per-service output."""
    log_path: pulumi.Output[str]
    """Its log file (process) or the command that prints it (docker)."""
    ready: pulumi.Output[str]
    """Resolves once the service is healthy (and whatever it adds, a seed say, has run)."""
    internal_host: pulumi.Output[str]
    """How other services of the stack reach it: loopback on process, its network alias on docker."""
    internal_port: pulumi.Output[int]
    """The port that goes with internal_host."""
    ports: pulumi.Output[list[int]]
    """Every port it listens on at 127.0.0.1, the main one first."""

    def __init__(
        self, type_: str, name: str, service: ServiceSpec, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(type_, name, None, opts)
        self.service = service

    def _serve(self, args: ServiceArgs, definition: ServiceDefinition) -> Served:
        """Starts the service on the stack's runtime, on the ports of `args`, and sets the outputs every service has."""
        if args.ports.service != self.service:
            raise ValueError(f"{self._name} is the {self.service.name} service; it was given the ports of {args.ports.service.name}")
        name, placement, network, ports = self._name, args.placement, args.network, args.ports.numbers
        if placement.runtime is Runtime.PROCESS:
            workdir = placement.service_dir(name)
            launch = definition.process(workdir)
            server = LocalService(
                f"{name}-process",
                LocalServiceArgs(
                    service=name,
                    argv=launch.argv,
                    workdir=str(workdir),
                    ports=list(ports),
                    health=definition.health,
                    env=launch.env,
                    secret_env=launch.secret_env,
                    init=launch.init,
                    files=launch.files,
                    secret_files=launch.secret_files,
                    run_as=launch.run_as,
                    start_timeout=definition.start_timeout,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*network.dependency(), *definition.depends_on]),
            )
            served = Served(healthy=server, instance=server.instance)
            self.log_path = server.log_path
            self._internal = (LOOPBACK, ports[0])
        else:
            container = docker_service(self, name, network, definition.docker(), definition.depends_on)
            health = ServiceHealth(
                f"{name}-health",
                ServiceHealthArgs(
                    service=name,
                    health=definition.health,
                    instance=container.id,
                    timeout=definition.start_timeout,
                    log=docker_log_hint(container),
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[container]),
            )
            served = Served(healthy=health, instance=health.instance)
            self.log_path = docker_log_hint(container)
            # Containers reach each other by network alias (the service name) on the container's own port.
            self._internal = (name, definition.container_port)
        self.ready = served.instance
        self.internal_host = pulumi.Output.from_input(self._internal[0])
        self.internal_port = pulumi.Output.from_input(self._internal[1])
        self.ports = pulumi.Output.from_input(list(ports))
        return served

    def _internal_address(self) -> str:
        """`host:port` other services of the stack use (known once `_serve` ran)."""
        host, port = self._internal
        return f"{host}:{port}"

    def _once_ready(self, value: str) -> pulumi.Output[str]:
        """`value` (an address of the service) as an output that resolves only once the service is
        healthy, so whatever takes it waits for the service without naming it in `depends_on`."""
        return pulumi.Output.all(self.ready).apply(lambda _: value)

    def _internal_address_of(self, host_port: int, container_port: int) -> str:
        """`host:port` other services use for another port of this service: the host port on the
        process runtime, the container's own port at its alias on docker."""
        host, _ = self._internal
        return f"{host}:{host_port if host == LOOPBACK else container_port}"

    def _register(self, outputs: Mapping[str, Any]) -> None:
        """Registers the component's own outputs together with the ones every service has."""
        self.register_outputs(
            {
                "log_path": self.log_path,
                "ready": self.ready,
                "internal_host": self.internal_host,
                "internal_port": self.internal_port,
                "ports": self.ports,
                **outputs,
            }
        )
