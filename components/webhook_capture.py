"""`WebhookCapture`: where the stack's Alertmanager sends its Slack and webhook notifications, so they
can be read back (`monitoring/webhook_capture.py`: it checks each against the receiver's payload
shape). Healthy once `GET /health` answers.

Process runtime: the project's Python running the module, bound to 127.0.0.1. Docker runtime: the
pinned Python image running it from the project mounted read-only (it needs nothing but the
standard library).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.docker_service import DockerServiceSpec
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition
from components.sink_job import PROJECT_MOUNT

CONTAINER_PORT = 8026
MODULE = "monitoring.webhook_capture"


@dataclass(frozen=True)
class WebhookCaptureArgs(ServiceArgs):
    python: str
    """The interpreter of the project's venv."""
    project_dir: str
    """The project checkout: mounted read-only into the docker runtime's container."""


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
                container_port=CONTAINER_PORT,
                process=lambda workdir: self._process_capture(args, workdir),
                docker=lambda: self._docker_capture(args),
            ),
        )
        internal = f"http://{self._internal_address()}"
        self.url = self._once_ready(base)
        self.slack_url = self._once_ready(f"{internal}/slack/cdcstack")
        self.webhook_url = self._once_ready(f"{internal}/webhook/cdcstack")
        self._register({"url": self.url, "slack_url": self.slack_url, "webhook_url": self.webhook_url})

    @staticmethod
    def _process_capture(args: WebhookCaptureArgs, workdir: Path) -> ProcessLaunch:
        return ProcessLaunch(argv=[args.python, "-m", MODULE, "--host", LOOPBACK, "--port", str(args.ports.main), "--data-dir", str(workdir)])

    @staticmethod
    def _docker_capture(args: WebhookCaptureArgs) -> DockerServiceSpec:
        probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{CONTAINER_PORT}/health', timeout=3)"
        return DockerServiceSpec(
            image=args.placement.toolchain.image("PYTHON_IMAGE"),
            ports={CONTAINER_PORT: args.ports.main},
            health_test=["CMD", "python", "-c", probe],
            volume_path="/data",
            binds={args.project_dir: PROJECT_MOUNT},
            envs=[f"PYTHONPATH={PROJECT_MOUNT}", "PYTHONDONTWRITEBYTECODE=1"],
            command=["python", "-m", MODULE, "--host", "0.0.0.0", "--port", str(CONTAINER_PORT), "--data-dir", "/data"],
            memory_mb=128,
        )
