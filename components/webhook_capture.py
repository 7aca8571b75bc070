"""`WebhookCapture`: where the stack's Alertmanager sends its Slack and webhook notifications, so they
can be read back (`monitoring/webhook_capture.py`: it checks each against the receiver's payload
shape). Healthy once `GET /health` answers.

The project's Python runs the module (it needs nothing but the standard library), bound to the
placement's listen host.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition

MODULE = "monitoring.webhook_capture"


@dataclass(frozen=True)
class WebhookCaptureArgs(ServiceArgs):
    """Its port: the HTTP API receivers post to and tests read from."""


class WebhookCapture(ServiceComponent):
    """The capture service; `slack_url` and `webhook_url` are what Alertmanager's receivers post to."""

    url: pulumi.Output[str]
    """Its API base: `GET {url}/api/messages?kind=slack|webhook`."""
    slack_url: pulumi.Output[str]
    """A Slack incoming-webhook URL, as Alertmanager reaches it."""
    webhook_url: pulumi.Output[str]
    """A generic webhook URL, as Alertmanager reaches it."""

    def __init__(self, name: str, args: WebhookCaptureArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:WebhookCapture", name, service_catalogue.WEBHOOK_CAPTURE, opts)
        base = f"http://{LOOPBACK}:{args.ports.main}"
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": f"{base}/health"},
                process=lambda workdir: self._process_capture(args, workdir),
                memory_mb=128,
            ),
        )
        internal = f"http://{self._internal_address()}"
        self.url = self._once_ready(base)
        self.slack_url = self._once_ready(f"{internal}/slack/cdcstack")
        self.webhook_url = self._once_ready(f"{internal}/webhook/cdcstack")
        self._register({"url": self.url, "slack_url": self.slack_url, "webhook_url": self.webhook_url})

    @staticmethod
    def _process_capture(args: WebhookCaptureArgs, workdir: Path) -> ProcessLaunch:
        python, host = args.placement.toolchain.python, args.placement.listen_host
        return ProcessLaunch(argv=[python, "-m", MODULE, "--host", host, "--port", str(args.ports.main), "--data-dir", str(workdir)])
