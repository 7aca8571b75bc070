"""`ServiceComponent`: what every service component shares, whatever it runs.

A component describes its service once, as a :class:`ServiceDefinition` (its launch: argv, files,
init, env; the one health check) and hands it with its Args to :meth:`ServiceComponent._serve`, which owns the runtime branch,
runs it on the ports of its `ServicePorts` handle and publishes what every service has: `log_path`,
`ready`, the internal address and `ports`.

Both runtimes run the same launch: `LocalService` on the host, under the stack's state dir; on
docker a `DockerContainer` of the runtime image, whose entry prepares the same work dir on the
container's volume. A service listens on the same port numbers on both (inside its container on
every interface, published on the host's 127.0.0.1), so a launch differs only by the placement's
listen host, work dir and toolchain paths. Health means the same on both: the definition's
:mod:`providers.health` spec, probed from the host against 127.0.0.1, which each resource's create
waits on; `ready` resolves only then, and dependents gate on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.network import StackNetwork
from components.runtime import LOOPBACK, Placement, Runtime
from providers.health import HealthSpec
from providers.docker_resources import DockerContainer, DockerContainerArgs, DockerNamedArgs, DockerVolume
from providers.local_service import LocalService, LocalServiceArgs
from service_catalogue import ServicePorts, ServiceSpec

DEFAULT_START_TIMEOUT_SECONDS = 120.0
DEFAULT_MEMORY_MB = 1024


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
    process: Callable[[Path], ProcessLaunch]
    """Builds the launch from the service's work dir (as the service sees it): run by `LocalService`
    on the process runtime, by the container's entry on docker."""
    depends_on: Sequence[pulumi.Resource] = ()
    """Services that must be healthy before it starts."""
    start_timeout: float = DEFAULT_START_TIMEOUT_SECONDS
    """Seconds its health check may take to pass once it has started."""
    memory_mb: int = DEFAULT_MEMORY_MB
    """The container's hard memory limit (docker runtime), so one service cannot starve the others."""


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
            server: LocalService | DockerContainer = LocalService(
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
        else:
            server = self._container(args, definition)
        served = Served(healthy=server, instance=server.instance)
        self.log_path = server.log_path
        # Containers reach each other by network alias (the service name) on the ports it has on the host.
        self._internal = (LOOPBACK if placement.runtime is Runtime.PROCESS else name, ports[0])
        self.ready = served.instance
        self.internal_host = pulumi.Output.from_input(self._internal[0])
        self.internal_port = pulumi.Output.from_input(self._internal[1])
        self.ports = pulumi.Output.from_input(list(ports))
        return served

    def _container(self, args: ServiceArgs, definition: ServiceDefinition) -> DockerContainer:
        """The docker runtime: the same launch in a container of the runtime image, its work dir on a volume."""
        name, placement, network = self._name, args.placement, args.network
        workdir = placement.service_dir(name)
        launch = definition.process(workdir)
        docker_name = f"{network.docker_network_name}-{name}"
        volume = DockerVolume(
            f"{name}-data",
            DockerNamedArgs(name=docker_name, stack=network.docker_network_name, engine=placement.docker_engine),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return DockerContainer(
            f"{name}-container",
            DockerContainerArgs(
                name=docker_name,
                stack=network.docker_network_name,
                image=network.image,
                python=placement.toolchain.python,
                network=network.name,
                alias=name,
                ports=list(args.ports.numbers),
                volume=volume.name,  # type: ignore[attr-defined]
                launch=pulumi.Output.all(launch.argv, launch.files, launch.env).apply(
                    lambda values: {
                        "service": name,
                        "workdir": str(workdir),
                        "argv": list(values[0]),
                        "init": [list(command) for command in launch.init],
                        "files": dict(values[1]),
                        "env": dict(values[2]),
                        "run_as": launch.run_as,
                    }
                ),
                secret_launch=pulumi.Output.all(launch.secret_files, launch.secret_env).apply(
                    lambda values: {"secret_files": dict(values[0]), "secret_env": dict(values[1])}
                ),
                health=definition.health,
                engine=placement.docker_engine,
                memory_mb=definition.memory_mb,
                start_timeout=definition.start_timeout,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*network.dependency(), *definition.depends_on]),
        )

    def _internal_address(self) -> str:
        """`host:port` other services of the stack use (known once `_serve` ran)."""
        host, port = self._internal
        return f"{host}:{port}"

    def _once_ready(self, value: str) -> pulumi.Output[str]:
        """`value` (an address of the service) as an output that resolves only once the service is
        healthy, so whatever takes it waits for the service without naming it in `depends_on`."""
        return pulumi.Output.all(self.ready).apply(lambda _: value)

    def _internal_address_of(self, port: int) -> str:
        """`host:port` other services use for another of this service's ports (the same number on both runtimes)."""
        host, _ = self._internal
        return f"{host}:{port}"

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
