"""`MailCapture`: an SMTP server that keeps every message it is sent, read back through a REST API.

Alertmanager's email receiver sends here (`internal_smtp_address`); tests read what arrived at
`url` (`GET {url}/api/v1/messages`, `GET {url}/api/v1/message/<id>`). It accepts any SMTP username
and password over a plain connection, so a receiver configured with credentials, as a real one
would be, delivers. Messages are kept in a SQLite file in its data dir. Healthy once `GET /readyz`
answers.

Process runtime: Mailpit (built from the Go module proxy), SMTP and HTTP bound to 127.0.0.1. Docker
runtime: the same release's image. Its web UI is not built (its assets are not in the Go module);
the API is all the stack uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.docker_service import DockerServiceSpec
from components.runtime import LOOPBACK, Runtime
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition

CONTAINER_API_PORT = 8025
CONTAINER_SMTP_PORT = 1025
READINESS_PATH = "/readyz"
DATABASE = "data/mailpit.db"
ACCEPT_ANY_LOGIN = [
    # Any username and password, offered as PLAIN or LOGIN over a connection without TLS.
    "--smtp-auth-accept-any",
    "--smtp-auth-allow-insecure",
    "--smtp-disable-rdns",
    # Its info API would otherwise ask GitHub for the latest release.
    "--disable-version-check",
]


@dataclass(frozen=True)
class MailCaptureArgs(ServiceArgs):
    """Its ports: the HTTP API (main) and SMTP ("smtp")."""


def mailpit_argv(api_address: str, smtp_address: str, database: str) -> list[str]:
    """Mailpit's flags, the same on both runtimes."""
    return ["--listen", api_address, "--smtp", smtp_address, "--database", database, *ACCEPT_ANY_LOGIN]


class MailCapture(ServiceComponent):
    """A mail capture; `url` is its REST API, `smtp_host`/`smtp_port` where mail goes in."""

    url: pulumi.Output[str]
    """The HTTP base on 127.0.0.1: `GET {url}/api/v1/messages`."""
    smtp_host: pulumi.Output[str]
    smtp_port: pulumi.Output[int]
    """Its SMTP server on 127.0.0.1."""
    internal_smtp_address: pulumi.Output[str]
    """`host:port` of its SMTP server as the stack's services reach it (container alias on docker)."""

    def __init__(self, name: str, args: MailCaptureArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:MailCapture", name, service_catalogue.MAIL_CAPTURE, opts)
        base = f"http://{LOOPBACK}:{args.ports.main}"
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": f"{base}{READINESS_PATH}"},
                container_port=CONTAINER_API_PORT,
                process=lambda workdir: self._process_capture(args, workdir),
                docker=lambda: self._docker_capture(args),
            ),
        )
        on_process = args.placement.runtime is Runtime.PROCESS
        internal_smtp_port = args.ports.of("smtp") if on_process else CONTAINER_SMTP_PORT
        self.url = self._once_ready(base)
        self.smtp_host = pulumi.Output.from_input(LOOPBACK)
        self.smtp_port = pulumi.Output.from_input(args.ports.of("smtp"))
        self.internal_smtp_address = self.internal_host.apply(lambda host: f"{host}:{internal_smtp_port}")
        self._register(
            {
                "url": self.url,
                "smtp_host": self.smtp_host,
                "smtp_port": self.smtp_port,
                "internal_smtp_address": self.internal_smtp_address,
            }
        )

    @staticmethod
    def _process_capture(args: MailCaptureArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        return ProcessLaunch(
            argv=[
                toolchain.mailpit_binary,
                *mailpit_argv(f"{LOOPBACK}:{args.ports.main}", f"{LOOPBACK}:{args.ports.of('smtp')}", str(workdir / DATABASE)),
            ],
            init=[["mkdir", "-p", "data"]],
        )

    @staticmethod
    def _docker_capture(args: MailCaptureArgs) -> DockerServiceSpec:
        return DockerServiceSpec(
            image=args.placement.toolchain.image("MAIL_CAPTURE_IMAGE"),
            ports={CONTAINER_API_PORT: args.ports.main, CONTAINER_SMTP_PORT: args.ports.of("smtp")},
            # Mailpit's own readiness check, against its API in the container.
            health_test=["CMD", "/mailpit", "readyz", "--listen", f"127.0.0.1:{CONTAINER_API_PORT}"],
            volume_path="/data",
            command=mailpit_argv(f"0.0.0.0:{CONTAINER_API_PORT}", f"0.0.0.0:{CONTAINER_SMTP_PORT}", f"/data/{Path(DATABASE).name}"),
            memory_mb=128,
        )
