"""Health probes against real listeners on loopback."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from providers import health


@dataclass
class Teapot:
    url: str
    requested: list[str] = field(default_factory=list)
    """Paths of the GETs it answered, in order."""


@pytest.fixture
def http_server() -> Iterator[Teapot]:
    teapot = Teapot("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            teapot.requested.append(self.path)
            self.send_response(200 if self.path == "/ok" else 418)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    teapot.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield teapot
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_http_probe_passes_on_the_expected_status(http_server: Teapot) -> None:
    health.probe({"kind": "http", "url": f"{http_server.url}/ok"})
    health.probe({"kind": "http", "url": f"{http_server.url}/brew", "status": 418})
    # It passed because the service answered, with the status asked for, at the path asked for.
    assert http_server.requested == ["/ok", "/brew"]


def test_http_probe_reports_the_status_it_got(http_server: Teapot) -> None:
    with pytest.raises(health.ProbeFailed, match=r"answered 418, expected 200"):
        health.probe({"kind": "http", "url": f"{http_server.url}/brew"})
    # A 200 is no pass either when the spec expects another status.
    with pytest.raises(health.ProbeFailed, match=r"answered 200, expected 418"):
        health.probe({"kind": "http", "url": f"{http_server.url}/ok", "status": 418})
    assert http_server.requested == ["/brew", "/ok"]


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


@contextmanager
def json_server(answer: Callable[[str], tuple[int, object]]) -> Iterator[str]:
    """A loopback HTTP server whose GETs `answer(path)` gives as (status, JSON body); yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answer(self.path)
            encoded = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SparkMaster:
    """A stand-in for a Spark master's web UI: GET /json/ answers `status` as JSON."""

    url: str
    status: dict[str, object] = field(default_factory=dict)
    requested: list[str] = field(default_factory=list)


@pytest.fixture
def spark_master() -> Iterator[SparkMaster]:
    master = SparkMaster("")

    def answer(path: str) -> tuple[int, object]:
        master.requested.append(path)
        return 200 if path == "/json/" else 404, master.status

    with json_server(answer) as master.url:
        yield master


def spark_worker(state: str, port: int = 27078) -> dict[str, object]:
    return {"id": f"worker-{port}", "host": "127.0.0.1", "port": port, "state": state}


def test_spark_probe_passes_on_an_alive_master_and_asks_its_json(spark_master: SparkMaster) -> None:
    spark_master.status = {"status": "ALIVE", "workers": []}
    health.probe({"kind": "spark", "url": spark_master.url})
    spark_master.status = {"status": "ALIVE", "workers": [spark_worker("DEAD", 1), spark_worker("ALIVE")]}
    health.probe({"kind": "spark", "url": f"{spark_master.url}/", "alive_workers": 1})
    assert spark_master.requested == ["/json/", "/json/"]


def test_spark_probe_fails_while_the_master_is_not_alive(spark_master: SparkMaster) -> None:
    spark_master.status = {"status": "RECOVERING", "workers": [spark_worker("ALIVE")]}
    with pytest.raises(health.ProbeFailed, match=r"the Spark master is 'RECOVERING', expected ALIVE"):
        health.probe({"kind": "spark", "url": spark_master.url, "alive_workers": 1})


def test_spark_worker_probe_fails_while_no_worker_is_registered(spark_master: SparkMaster) -> None:
    spark_master.status = {"status": "ALIVE", "workers": []}
    with pytest.raises(health.ProbeFailed, match=r"lists 0 ALIVE workers, expected 1 \(its workers: none\)"):
        health.probe({"kind": "spark", "url": spark_master.url, "alive_workers": 1})


def test_spark_worker_probe_fails_on_a_dead_worker_naming_it(spark_master: SparkMaster) -> None:
    spark_master.status = {"status": "ALIVE", "workers": [spark_worker("DEAD")]}
    with pytest.raises(health.ProbeFailed, match=r"lists 0 ALIVE workers, expected 1 \(its workers: \{'127.0.0.1:27078': 'DEAD'\}\)"):
        health.probe({"kind": "spark", "url": spark_master.url, "alive_workers": 1})


def test_spark_probe_reports_a_master_that_does_not_answer_json(http_server: Teapot) -> None:
    with pytest.raises(health.ProbeFailed, match=r"GET .*/json/ answered 418"):
        health.probe({"kind": "spark", "url": http_server.url})


@dataclass
class ConnectWorker:
    """A stand-in for Kafka Connect's REST API: GET /connector-plugins lists `connectors`, and
    `converters` too only when asked with connectorsOnly=false (as a real worker does)."""

    url: str
    connectors: list[str] = field(default_factory=list)
    converters: list[str] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)


@pytest.fixture
def connect_worker() -> Iterator[ConnectWorker]:
    worker = ConnectWorker("")

    def answer(request: str) -> tuple[int, object]:
        worker.requested.append(request)
        path, _, query = request.partition("?")
        everything = "connectorsOnly=false" in query.split("&")
        plugins = [{"class": name, "type": "source"} for name in worker.connectors]
        plugins += [{"class": name, "type": "converter"} for name in worker.converters] if everything else []
        return 200 if path == "/connector-plugins" else 404, plugins

    with json_server(answer) as worker.url:
        yield worker


CONNECT_PLUGINS = ["io.debezium.connector.postgresql.PostgresConnector", "io.apicurio.registry.utils.converter.AvroConverter"]


def test_connect_probe_passes_once_the_worker_lists_its_connectors_and_converters(connect_worker: ConnectWorker) -> None:
    connect_worker.connectors, connect_worker.converters = CONNECT_PLUGINS[:1], CONNECT_PLUGINS[1:]
    health.probe({"kind": "connect", "url": connect_worker.url, "plugins": CONNECT_PLUGINS})
    assert connect_worker.requested == ["/connector-plugins?connectorsOnly=false"]


def test_connect_probe_fails_naming_a_converter_the_worker_does_not_list(connect_worker: ConnectWorker) -> None:
    connect_worker.connectors = CONNECT_PLUGINS[:1]
    with pytest.raises(health.ProbeFailed, match=r"does not list plugins \['io\.apicurio\.registry\.utils\.converter\.AvroConverter'\]"):
        health.probe({"kind": "connect", "url": connect_worker.url, "plugins": CONNECT_PLUGINS})
