"""The stack's alerting from a test: alerts posted to Alertmanager, and what its receivers got, read
back from the mail capture (Mailpit's API) and the webhook capture, polled with a deadline."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

import stack_outputs as out
from tests.support.stack import StackOutputs

REQUEST_TIMEOUT_SECONDS = 10.0
DELIVERY_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class Alerting:
    prometheus: str
    alertmanager: str
    mail: str
    captures: str

    @classmethod
    def of(cls, stack: StackOutputs) -> Alerting:
        """Every piece, checked healthy first (a failure says what to run)."""
        alerting = cls(stack[out.PROMETHEUS_URL], stack[out.ALERTMANAGER_URL], stack[out.MAIL_CAPTURE_URL], stack[out.WEBHOOK_CAPTURE_URL])
        stack.require_healthy("prometheus", {"kind": "http", "url": f"{alerting.prometheus}/-/ready"})
        stack.require_healthy("alertmanager", {"kind": "http", "url": f"{alerting.alertmanager}/-/ready"})
        stack.require_healthy("mail-capture", {"kind": "http", "url": f"{alerting.mail}/api/v1/messages"})
        stack.require_healthy("webhook-capture", {"kind": "http", "url": f"{alerting.captures}/health"})
        return alerting


def utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def post_alert(alerting: Alerting, labels: Mapping[str, str], annotations: Mapping[str, str], resolved: bool = False) -> None:
    """Sends one alert to Alertmanager's API as Prometheus would; `resolved` ends it now."""
    now = time.time()
    alert: dict[str, Any] = {"labels": dict(labels), "annotations": dict(annotations), "startsAt": utc(now - 1)}
    if resolved:
        alert["endsAt"] = utc(now)
    response = httpx.post(f"{alerting.alertmanager}/api/v2/alerts", json=[alert], timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code == 200, f"Alertmanager refused the alert: {response.status_code} {response.text}"


def poll(read: Callable[[], list[Any]], what: str, timeout: float = DELIVERY_TIMEOUT_SECONDS) -> list[Any]:
    """Polls `read` until it returns something; fails naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        found = read()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: nothing within {timeout:.0f}s"
        time.sleep(0.25)


def emails(alerting: Alerting, subject_contains: str) -> list[dict[str, Any]]:
    """The captured emails whose subject contains the text, each with its full text body."""
    response = httpx.get(f"{alerting.mail}/api/v1/messages", params={"limit": 200}, timeout=REQUEST_TIMEOUT_SECONDS)
    response.raise_for_status()
    matching = [summary for summary in response.json().get("messages", []) if subject_contains in summary.get("Subject", "")]
    full = []
    for summary in matching:
        message = httpx.get(f"{alerting.mail}/api/v1/message/{summary['ID']}", timeout=REQUEST_TIMEOUT_SECONDS)
        message.raise_for_status()
        full.append(message.json())
    return full


def captured(alerting: Alerting, kind: str, matches: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    """Slack or webhook notifications the capture got that `matches` (given the whole record)."""
    response = httpx.get(f"{alerting.captures}/api/messages", params={"kind": kind}, timeout=REQUEST_TIMEOUT_SECONDS)
    response.raise_for_status()
    return [message for message in response.json() if matches(message)]


def webhook_alerts(message: dict[str, Any]) -> list[dict[str, Any]]:
    body = message.get("body")
    return body.get("alerts", []) if isinstance(body, dict) else []


def slack_text(message: dict[str, Any]) -> str:
    """Everything a person reads in a Slack message: its text and its attachments' fields."""
    body = message.get("body") if isinstance(message.get("body"), dict) else {}
    parts = [str(body.get("text", ""))]
    for attachment in body.get("attachments", []) or []:
        parts += [str(attachment.get(key, "")) for key in ("title", "pretext", "text", "fallback")]
    return "\n".join(parts)
