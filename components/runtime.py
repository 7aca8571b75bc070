"""The two runtimes every component has behind one interface, and what they share."""

from __future__ import annotations

import enum
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from providers.errors import UnknownRuntimeError
from toolchain.layout import Toolchain

LOOPBACK = "127.0.0.1"
DOCKER_SOCKET = Path("/var/run/docker.sock")


class Runtime(str, enum.Enum):
    PROCESS = "process"
    """Native processes under the stack's state dir (no Docker needed)."""
    DOCKER = "docker"
    """Containers on the local Docker daemon, through pulumi-docker."""


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
    """Binaries and jars (process) and pinned images (docker)."""
    docker_network: str = ""
    """Name of the stack's Docker network (docker runtime only)."""

    def service_dir(self, service: str) -> Path:
        return self.stack_dir / "services" / service
