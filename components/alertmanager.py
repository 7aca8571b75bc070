"""`Alertmanager`: routes the stack's alerts to email, Slack and a generic webhook.

Its config is generated from the Args: three receivers, each with `send_resolved`; a route tree by
severity (critical goes to all three, warning to Slack and the webhook, anything else to the
webhook), grouped by alert, connector and table; ServiceDown inhibiting the other alerts of the same
service, and a critical alert its warning twin. Emails and Slack messages are rendered by the
templates of `templates/cdcstack.tmpl` (alert, connector, table, value, runbook). The config holds
the SMTP password and the Slack and webhook URLs, so it is a secret file; `amtool check-config`
accepts it (a unit test runs it). Healthy once `GET /-/ready` answers.

What a rule should set for the notifications to read well: labels `severity` (critical | warning),
`service` (a catalogue name), `connector`, `table`; annotations `summary`, `description`, `value`,
`runbook`.

Debian's Alertmanager, bound to the placement's listen host (127.0.0.1 on the process runtime), no
cluster (gossip) port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi
import yaml

import service_catalogue
from components.mail_capture import MailCapture
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition

CONFIG_FILE = "alertmanager.yml"
TEMPLATE_FILE = "templates/cdcstack.tmpl"
READINESS_PATH = "/-/ready"
GROUP_BY = ("alertname", "connector", "table")
EMAIL, SLACK, WEBHOOK = "email", "slack", "webhook"

TEMPLATES = """\
{{/* cdcstack's notifications: what fired or resolved, on which connector and table, its value and what to do. */}}

{{ define "cdcstack.title" -}}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.alertname }}
{{- with .CommonLabels.connector }} connector={{ . }}{{ end }}
{{- with .CommonLabels.table }} table={{ . }}{{ end }}
{{- end }}

{{ define "cdcstack.alert" -}}
{{ .Labels.alertname }} {{ .Status | toUpper }} (severity {{ or .Labels.severity "none" }})
{{ with .Annotations.summary }}{{ . }}
{{ end }}{{ with .Annotations.description }}{{ . }}
{{ end }}Connector: {{ or .Labels.connector "-" }}
Table: {{ or .Labels.table "-" }}
Service: {{ or .Labels.service "-" }}
Value: {{ or .Annotations.value "-" }}
Runbook: {{ or .Annotations.runbook .Annotations.runbook_url "-" }}
Since: {{ .StartsAt.UTC.Format "2006-01-02 15:04:05 UTC" }}{{ if eq .Status "resolved" }}, resolved {{ .EndsAt.UTC.Format "2006-01-02 15:04:05 UTC" }}{{ end }}
Labels: {{ range .Labels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}
{{ with .GeneratorURL }}Source: {{ . }}{{ end }}
{{- end }}

{{ define "cdcstack.email.subject" }}{{ template "cdcstack.title" . }}{{ end }}

{{ define "cdcstack.email.text" -}}
{{ template "cdcstack.title" . }}
{{ range .Alerts }}
{{ template "cdcstack.alert" . }}
{{ end }}
Alertmanager: {{ .ExternalURL }}
{{ end }}

{{ define "cdcstack.email.html" }}<html><body><pre>{{ template "cdcstack.email.text" . }}</pre></body></html>{{ end }}

{{ define "cdcstack.slack.title" }}{{ template "cdcstack.title" . }}{{ end }}

{{ define "cdcstack.slack.text" }}{{ range .Alerts }}{{ template "cdcstack.alert" . }}
{{ end }}{{ end }}
"""
"""The notification templates (Go templates), written as TEMPLATE_FILE beside the config."""


@dataclass(frozen=True)
class AlertmanagerArgs(ServiceArgs):
    mail_capture: MailCapture
    """Where the email receiver sends (its SMTP server); Alertmanager starts once it is healthy."""
    email_to: str
    """The email receiver's recipient."""
    email_from: str
    """The sender of its emails."""
    smtp_username: str
    """The SMTP login the email receiver offers."""
    smtp_password: pulumi.Input[str]
    """Its password (a Pulumi secret)."""
    slack_api_url: pulumi.Input[str]
    """The Slack receiver's incoming-webhook URL, as Alertmanager reaches it (a secret: a real one is a credential)."""
    slack_channel: str
    """The channel the Slack messages name."""
    webhook_url: pulumi.Input[str]
    """The generic webhook receiver's URL, as Alertmanager reaches it (a secret)."""
    receivers_depend_on: Sequence[pulumi.Resource] = ()
    """Services behind the Slack and webhook URLs (the webhook capture): healthy before Alertmanager starts."""
    group_wait: str = "1s"
    """How long a new group waits for more alerts before its first notification."""
    group_interval: str = "2s"
    """How long before a group's changes (new or resolved alerts) are notified."""
    repeat_interval: str = "1h"
    """How long before an unchanged firing group is notified again."""


def alertmanager_config(args: AlertmanagerArgs, smarthost: str, smtp_password: str, slack_api_url: str, webhook_url: str) -> str:
    """alertmanager.yml (secret: it holds the password and the receiver URLs), the same on both runtimes."""

    def to(*receivers: str) -> list[dict]:
        """Child routes without matchers, each taking every alert of its parent; `continue` passes it to the next too."""
        return [{"receiver": receiver, **({"continue": True} if receiver != receivers[-1] else {})} for receiver in receivers]

    config = {
        "route": {
            "receiver": WEBHOOK,
            "group_by": list(GROUP_BY),
            "group_wait": args.group_wait,
            "group_interval": args.group_interval,
            "repeat_interval": args.repeat_interval,
            "routes": [
                {"matchers": ['severity="critical"'], "routes": to(EMAIL, SLACK, WEBHOOK)},
                {"matchers": ['severity="warning"'], "routes": to(SLACK, WEBHOOK)},
            ],
        },
        "inhibit_rules": [
            # A service that is down explains its other alerts (lag, dead letters): notify the cause only.
            {"source_matchers": ['alertname="ServiceDown"'], "target_matchers": ['alertname!="ServiceDown"'], "equal": ["service"]},
            {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'], "equal": list(GROUP_BY)},
        ],
        "receivers": [
            {
                "name": EMAIL,
                "email_configs": [
                    {
                        "to": args.email_to,
                        "from": args.email_from,
                        "smarthost": smarthost,
                        "auth_username": args.smtp_username,
                        "auth_password": smtp_password,
                        "require_tls": False,
                        "send_resolved": True,
                        "headers": {"Subject": '{{ template "cdcstack.email.subject" . }}'},
                        "text": '{{ template "cdcstack.email.text" . }}',
                        "html": '{{ template "cdcstack.email.html" . }}',
                    }
                ],
            },
            {
                "name": SLACK,
                "slack_configs": [
                    {
                        "api_url": slack_api_url,
                        "channel": args.slack_channel,
                        "send_resolved": True,
                        "title": '{{ template "cdcstack.slack.title" . }}',
                        "text": '{{ template "cdcstack.slack.text" . }}',
                        "fallback": '{{ template "cdcstack.slack.title" . }}',
                    }
                ],
            },
            {"name": WEBHOOK, "webhook_configs": [{"url": webhook_url, "send_resolved": True}]},
        ],
        # Relative to the config file's folder.
        "templates": [f"{Path(TEMPLATE_FILE).parent}/*.tmpl"],
    }
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_flags(config_file: str, data_dir: str, listen_address: str, external_url: str) -> list[str]:
    return [
        f"--config.file={config_file}",
        f"--storage.path={data_dir}",
        f"--web.listen-address={listen_address}",
        # Empty: a single Alertmanager, no gossip port.
        "--cluster.listen-address=",
        # What notifications link back to.
        f"--web.external-url={external_url}",
    ]


class Alertmanager(ServiceComponent):
    """An Alertmanager with the stack's receivers; `url` is its API base (`POST {url}/api/v2/alerts`)."""

    url: pulumi.Output[str]
    """The HTTP base on 127.0.0.1."""
    internal_address: pulumi.Output[str]
    """`host:port` as the stack's services reach it (what Prometheus sends alerts to)."""

    def __init__(self, name: str, args: AlertmanagerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:Alertmanager", name, service_catalogue.ALERTMANAGER, opts)
        base = f"http://{LOOPBACK}:{args.ports.main}"
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": f"{base}{READINESS_PATH}"},
                process=lambda workdir: self._process_alertmanager(args, workdir),
                depends_on=(args.mail_capture, *args.receivers_depend_on),
                memory_mb=128,
            ),
        )
        self.url = self._once_ready(base)
        self.internal_address = pulumi.Output.from_input(self._internal_address())
        self._register({"url": self.url, "internal_address": self.internal_address})

    @staticmethod
    def _config(args: AlertmanagerArgs) -> pulumi.Output[str]:
        return pulumi.Output.secret(
            pulumi.Output.all(args.mail_capture.internal_smtp_address, args.smtp_password, args.slack_api_url, args.webhook_url).apply(
                lambda values: alertmanager_config(args, *values)
            )
        )

    @staticmethod
    def _process_alertmanager(args: AlertmanagerArgs, workdir: Path) -> ProcessLaunch:
        base = f"http://{LOOPBACK}:{args.ports.main}"
        return ProcessLaunch(
            argv=[
                args.placement.toolchain.alertmanager_binary,
                *alertmanager_flags(str(workdir / CONFIG_FILE), str(workdir / "data"), f"{args.placement.listen_host}:{args.ports.main}", base),
            ],
            init=[["mkdir", "-p", "data"]],
            files={TEMPLATE_FILE: TEMPLATES},
            secret_files=Alertmanager._config(args).apply(lambda config: {CONFIG_FILE: config}),
        )
