"""`MailCapture`: an SMTP server that keeps every message it is sent, read back through a REST API.

Alertmanager's email receiver sends here (`internal_smtp_address`); tests read what arrived at
`url` (`GET {url}/api/v1/messages`, `GET {url}/api/v1/message/<id>`). It accepts any SMTP username
and password over a plain connection, so a receiver configured with credentials, as a real one
would be, delivers. Messages are kept in a SQLite file in its data dir. Healthy once `GET /readyz`
answers.

Mailpit (built from the Go module proxy), SMTP and HTTP bound to the placement's listen host
(127.0.0.1 on the process runtime). Its web UI is not built (its assets are not in the Go module);
the API is all the stack uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition

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
                process=lambda workdir: self._process_capture(args, workdir),
                memory_mb=128,
            ),
        )
        self.url = self._once_ready(base)
        self.smtp_host = pulumi.Output.from_input(LOOPBACK)
        self.smtp_port = pulumi.Output.from_input(args.ports.of("smtp"))
        self.internal_smtp_address = pulumi.Output.from_input(self._internal_address_of(args.ports.of("smtp")))
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
        toolchain, host = args.placement.toolchain, args.placement.listen_host
        return ProcessLaunch(
            argv=[
                toolchain.mailpit_binary,
                *mailpit_argv(f"{host}:{args.ports.main}", f"{host}:{args.ports.of('smtp')}", str(workdir / DATABASE)),
            ],
            init=[["mkdir", "-p", "data"]],
        )
