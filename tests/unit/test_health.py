"""Health probes against real listeners on loopback."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from providers import health


@pytest.fixture
def http_server() -> Iterator[str]:
    class Teapot(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 418)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Teapot)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_http_probe_passes_on_the_expected_status(http_server: str) -> None:
    health.probe({"kind": "http", "url": f"{http_server}/ok"})
    health.probe({"kind": "http", "url": f"{http_server}/brew", "status": 418})


def test_http_probe_reports_the_status_it_got(http_server: str) -> None:
    with pytest.raises(health.ProbeFailed, match=r"answered 418, expected 200"):
        health.probe({"kind": "http", "url": f"{http_server}/brew"})


def test_tcp_probe_names_the_address_it_could_not_reach() -> None:
    port = closed_port()
    with pytest.raises(health.ProbeFailed, match=rf"no TCP listener on 127.0.0.1:{port}"):
        health.probe({"kind": "tcp", "host": "127.0.0.1", "port": port})


def test_kafka_probe_fails_within_its_timeout_when_no_broker_answers() -> None:
    with pytest.raises(health.ProbeFailed, match="metadata request failed"):
        health.probe({"kind": "kafka", "bootstrap_servers": f"127.0.0.1:{closed_port()}"})


def test_wait_gives_up_at_the_deadline_with_the_last_reason() -> None:
    port = closed_port()
    with pytest.raises(health.ProbeFailed, match=rf"not healthy after 1s: no TCP listener on 127.0.0.1:{port}"):
        health.wait_until_healthy({"kind": "tcp", "host": "127.0.0.1", "port": port}, timeout_seconds=1.0)


def test_wait_stops_at_once_when_the_process_is_gone() -> None:
    with pytest.raises(ChildProcessError, match="process exited before its health check passed"):
        health.wait_until_healthy(
            {"kind": "tcp", "host": "127.0.0.1", "port": closed_port()}, timeout_seconds=60.0, still_running=lambda: False
        )


def test_spec_problems_name_missing_fields_and_unknown_kinds() -> None:
    assert health.spec_problems({"kind": "mysql", "host": "127.0.0.1"}) == [
        "health check 'mysql' needs field 'port'",
        "health check 'mysql' needs field 'user'",
        "health check 'mysql' needs field 'password'",
    ]
    assert health.spec_problems({"kind": "postgres", "dsn": "postgresql://x"}) == []
    assert "unknown health check kind None" in health.spec_problems({})[0]
