"""The webhook capture: Slack's and Alertmanager's payload shapes, and the server keeping what arrived."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from monitoring.webhook_capture import slack_problem, webhook_problem

ALERT = {"status": "firing", "labels": {"alertname": "A"}, "annotations": {}, "startsAt": "t", "endsAt": "t", "fingerprint": "f"}
WEBHOOK = {
    "version": "4",
    "groupKey": "{}:{}",
    "status": "firing",
    "receiver": "webhook",
    "groupLabels": {},
    "commonLabels": {},
    "commonAnnotations": {},
    "externalURL": "http://127.0.0.1:29193",
    "alerts": [ALERT],
}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"channel": "#a", "text": "hello"}, ""),
        ({"attachments": [{"fallback": "f", "title": "t"}]}, ""),
        ({"blocks": [{"type": "section"}]}, ""),
        ([], "the payload is not a JSON object"),
        ({"channel": 5, "text": "x"}, "channel is not a string"),
        ({"channel": "#a"}, "no text, blocks or attachments"),
        ({"attachments": ["x"]}, "attachments[0] is not an object"),
        ({"attachments": [{"title": "t"}]}, "attachments[0] has neither text nor fallback"),
    ],
)
def test_slack_payloads_are_checked_as_slack_does(body: object, problem: str) -> None:
    assert slack_problem(body) == problem


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (WEBHOOK, ""),
        ({**WEBHOOK, "version": "3"}, "version is '3', not '4'"),
        ({key: value for key, value in WEBHOOK.items() if key != "groupKey"}, "missing ['groupKey']"),
        ({**WEBHOOK, "status": "pending"}, "status is 'pending'"),
        ({**WEBHOOK, "alerts": []}, "alerts is not a non-empty list"),
        ({**WEBHOOK, "alerts": [{"status": "firing"}]}, "alerts[0] is missing ['labels', 'annotations', 'startsAt', 'endsAt', 'fingerprint']"),
    ],
)
def test_webhook_payloads_are_checked_against_alertmanagers_version_4(body: object, problem: str) -> None:
    assert webhook_problem(body) == problem


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "monitoring.webhook_capture", "--port", str(port), "--data-dir", str(tmp_path)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline and server.poll() is None, "the webhook capture did not start within 10 s"
            time.sleep(0.05)
    yield url
    server.terminate()
    server.wait(10)


def test_the_capture_keeps_what_arrived_answers_as_the_receiver_would_and_forgets_on_request(capture: str, tmp_path: Path) -> None:
    assert httpx.post(f"{capture}/slack/x", json={"channel": "#a", "text": "hi"}).text == "ok"
    refused = httpx.post(f"{capture}/slack/x", json={"channel": "#a"})
    assert (refused.status_code, refused.text) == (400, "invalid_payload")
    assert httpx.post(f"{capture}/webhook/x", json=WEBHOOK).status_code == 200
    slack = httpx.get(f"{capture}/api/messages", params={"kind": "slack"}).json()
    assert [(message["valid"], message["problem"]) for message in slack] == [(True, ""), (False, "no text, blocks or attachments")]
    (webhook,) = httpx.get(f"{capture}/api/messages", params={"kind": "webhook"}).json()
    assert webhook["body"] == WEBHOOK and webhook["path"] == "/webhook/x"
    assert len((tmp_path / "messages.jsonl").read_text().splitlines()) == 3
    httpx.delete(f"{capture}/api/messages").raise_for_status()
    assert httpx.get(f"{capture}/api/messages").json() == []
