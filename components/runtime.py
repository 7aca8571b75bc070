"""The two runtimes every component has behind one interface, and what they share."""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from providers.errors import UnknownRuntimeError
from toolchain.layout import ImageToolchain, Toolchain

LOOPBACK = "127.0.0.1"
ALL_INTERFACES = "0.0.0.0"
CONTAINER_STATE_DIR = Path("/var/lib/cdcstack")
"""Where a container keeps its service's work dir: its named volume's mount point."""
DOCKER_SOCKET = Path("/var/run/docker.sock")


class Runtime(str, enum.Enum):
    PROCESS = "process"
    """Native processes under the stack's state dir (no Docker needed)."""
    DOCKER = "docker"
    """Containers on a Docker engine, through the project's own providers (`providers.docker_resources`)."""


def docker_engine_url() -> str:
    """The daemon the docker runtime uses: DOCKER_HOST (`scripts/dockerd.sh host` sets it), else the default socket."""
    return os.environ.get("DOCKER_HOST") or f"unix://{DOCKER_SOCKET}"


def docker_daemon_answers(socket_path: Path = DOCKER_SOCKET) -> bool:
    """True when a Docker daemon answers a ping on its Unix socket (a client alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "")
    if host and not host.startswith("unix://"):
        return False
    path = host.removeprefix("unix://") or str(socket_path)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(2.0)
            client.connect(path)
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in client.recv(64)
    except OSError:
        return False


def resolve_runtime(requested: str, daemon_answers: bool | None = None) -> Runtime:
    """Maps `cdcstack:runtime` (auto | process | docker) to the runtime to use."""
    value = (requested or "auto").strip().lower()
    if value == "auto":
        answers = docker_daemon_answers() if daemon_answers is None else daemon_answers
        return Runtime.DOCKER if answers else Runtime.PROCESS
    try:
        return Runtime(value)
    except ValueError:
        raise UnknownRuntimeError(
            f"cdcstack:runtime is {requested!r}; expected auto, process or docker "
            "(fix with `pulumi config set cdcstack:runtime process`)"
        ) from None


@dataclass(frozen=True)
class Placement:
    """Where a stack's services run: shared by every component of the stack."""

    runtime: Runtime
    """Process or docker."""
    stack_dir: Path
    """The stack's state dir: services/<name>/ holds each process service's data, log and pid."""
    toolchain: Toolchain
    """Binaries and jars where the services see them: the host's (process) or the runtime image's (docker)."""
    docker_network: str = ""
    """Name of the stack's Docker network (docker runtime only)."""
    docker_engine: str = ""
    """The Docker daemon's DOCKER_HOST url (docker runtime only)."""
    docker_image: str = ""
    """The runtime image every container runs: its reference, a digest of what is built into it (`toolchain.images`)."""
    image_platform: str = ""
    """linux/amd64 or linux/arm64: the runtime image's platform (docker runtime only)."""

    @classmethod
    def on_docker(cls, stack_dir: Path, host_toolchain: Toolchain, network: str, engine: str, platform: str = "") -> Placement:
        """The docker runtime's placement: the runtime image for `platform` (default: this host's),
        planned from this checkout (its reference is a digest of what goes into it)."""
        from toolchain.images import ImageBuilder, Platform

        target = Platform.parse(platform) if platform else Platform.host()
        planned = ImageBuilder(None, target, host_toolchain.cache_dir, stack_dir)
        return cls(
            runtime=Runtime.DOCKER,
            stack_dir=stack_dir,
            toolchain=ImageToolchain.of(host_toolchain, target.arch),
            docker_network=network,
            docker_engine=engine,
            docker_image=planned.runtime_reference(),
            image_platform=target.docker,
        )

    @property
    def listen_host(self) -> str:
        """The address a service binds: loopback on the host; every interface of its container on docker,
        whose ports are published on the host's 127.0.0.1 only."""
        return LOOPBACK if self.runtime is Runtime.PROCESS else ALL_INTERFACES

    def service_dir(self, service: str) -> Path:
        """The service's work dir as the service sees it: under the state dir, or on its container's volume."""
        if self.runtime is Runtime.PROCESS:
            return self.stack_dir / "services" / service
        return CONTAINER_STATE_DIR / service
