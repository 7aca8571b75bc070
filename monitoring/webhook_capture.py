"""A local stand-in for Slack's incoming webhooks and for a generic webhook receiver: it keeps every
notification Alertmanager sends, checked against the shape the real receiver requires, so a test
can read what was delivered.

- `POST /slack/<anything>`: a Slack incoming-webhook message. Slack takes a JSON object with `text`,
  `blocks` or `attachments` (each attachment an object with `text` or `fallback`); `channel`, when
  present, is a string. Anything else is answered 400 `invalid_payload`, as Slack does, and kept
  with the reason.
- `POST /webhook/<anything>`: Alertmanager's webhook payload, version 4 (`version`, `groupKey`,
  `status`, `receiver`, `groupLabels`, `commonLabels`, `commonAnnotations`, `externalURL`, `alerts`
  with `status`, `labels`, `annotations`, `startsAt`, `endsAt`, `fingerprint`).
- `GET /api/messages[?kind=slack|webhook]`: what arrived, oldest first; `DELETE /api/messages` forgets it.
- `GET /health`: 200.

Each message is also appended to `messages.jsonl` in the working directory, so a restart keeps them.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

MESSAGES_FILE = "messages.jsonl"
MAX_BODY_BYTES = 4 * 1024 * 1024
WEBHOOK_FIELDS = ("version", "groupKey", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations", "externalURL", "alerts")
ALERT_FIELDS = ("status", "labels", "annotations", "startsAt", "endsAt", "fingerprint")


def slack_problem(body: Any) -> str:
    """Why Slack would refuse this message ("" when it would take it)."""
    if not isinstance(body, dict):
        return "the payload is not a JSON object"
    if "channel" in body and not isinstance(body["channel"], str):
        return "channel is not a string"
    text, blocks, attachments = body.get("text"), body.get("blocks"), body.get("attachments")
    if not (isinstance(text, str) and text) and not (isinstance(blocks, list) and blocks) and not (isinstance(attachments, list) and attachments):
        return "no text, blocks or attachments"
    for index, attachment in enumerate(attachments or []):
        if not isinstance(attachment, dict):
            return f"attachments[{index}] is not an object"
        if not any(isinstance(attachment.get(key), str) and attachment.get(key) for key in ("text", "fallback")):
            return f"attachments[{index}] has neither text nor fallback"
    return ""


def webhook_problem(body: Any) -> str:
    """Why this is not Alertmanager's version 4 webhook payload ("" when it is)."""
    if not isinstance(body, dict):
        return "the payload is not a JSON object"
    missing = [key for key in WEBHOOK_FIELDS if key not in body]
    if missing:
        return f"missing {missing}"
    if body["version"] != "4":
        return f"version is {body['version']!r}, not '4'"
    if body["status"] not in ("firing", "resolved"):
        return f"status is {body['status']!r}"
    if not isinstance(body["alerts"], list) or not body["alerts"]:
        return "alerts is not a non-empty list"
    for index, alert in enumerate(body["alerts"]):
        absent = [key for key in ALERT_FIELDS if not isinstance(alert, dict) or key not in alert]
        if absent:
            return f"alerts[{index}] is missing {absent}"
    return ""


PROBLEMS = {"slack": slack_problem, "webhook": webhook_problem}


class MessageStore:
    """What arrived, in memory and in `messages.jsonl`."""

    def __init__(self, folder: Path) -> None:
        self._path = folder / MESSAGES_FILE
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        if self._path.exists():
            self._messages = [json.loads(line) for line in self._path.read_text().splitlines() if line.strip()]

    def add(self, message: Mapping[str, Any]) -> None:
        with self._lock:
            self._messages.append(dict(message))
            with self._path.open("a") as log:
                log.write(json.dumps(message) + "\n")

    def list(self, kind: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return [message for message in self._messages if kind is None or message["kind"] == kind]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._path.write_text("")


def handler_for(store: MessageStore) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "cdcstack-webhook-capture"

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.address_string()} {format % args}", flush=True)

        def _answer(self, status: int, body: Any) -> None:
            encoded = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/health":
                self._answer(200, {"status": "ok", "messages": len(store.list(None))})
            elif url.path == "/api/messages":
                kind = parse_qs(url.query).get("kind", [None])[0]
                self._answer(200, store.list(kind))
            else:
                self._answer(404, {"error": f"no {url.path}"})

        def do_DELETE(self) -> None:
            if urlparse(self.path).path != "/api/messages":
                self._answer(404, {"error": f"no {self.path}"})
                return
            store.clear()
            self._answer(200, {"status": "cleared"})

        def do_POST(self) -> None:
            path = urlparse(self.path).path
            kind = path.strip("/").split("/", 1)[0]
            if kind not in PROBLEMS:
                self._answer(404, {"error": f"POST to /slack/… or /webhook/…, not {path}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
                return
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body, problem = raw.decode(errors="replace"), "the payload is not JSON"
            else:
                problem = PROBLEMS[kind](body)
            store.add({"kind": kind, "path": path, "received_at": time.time(), "valid": not problem, "problem": problem, "body": body})
            if problem and kind == "slack":
                # Slack's own answer to a payload it cannot take.
                self._answer(400, "invalid_payload")
            elif problem:
                self._answer(400, {"error": problem})
            else:
                self._answer(200, "ok" if kind == "slack" else {"status": "received"})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path.cwd())
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((args.host, args.port), handler_for(MessageStore(args.data_dir)))
    print(f"webhook capture listening on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
