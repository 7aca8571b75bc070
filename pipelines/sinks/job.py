"""A sink as a long-running job, whatever the destination: every Debezium topic matching a pattern,
each into a table of its own (`<namespace>.<topic with dots as underscores>`).

Topics that appear later (new source tables) are picked up within the discovery interval, and a
topic that is deleted has its sink closed. Nothing in the loop ends the job: a failing table is
retried by its sink and reported, Kafka away is reported and retried.

Keys and values are JSON (the JSON converter with schemas) or, with `--schema-registry-url`, also
Avro in the Confluent wire format, told apart record by record (see :mod:`pipelines.debezium`).

GET /health on 127.0.0.1 (`--health-host`) answers 200 while every table commits (or has nothing to do) and 503 while
any table's batch is failing, topics cannot be listed or the destination reports a failure of its own
(a Spark driver without executors: every table with a batch in hand is then `stalled`), with
per-table figures either way: events applied, batches, dead letters and the last dead-letter error, the pending failure, committed
offsets, how late the last batch landed and the records still in Kafka. GET /metrics on the same
port has those figures for Prometheus (:mod:`pipelines.sinks.metrics`). The log has one JSON line
per event (batch committed, batch failed, record dead-lettered). POST /discover has the job look
for new and gone topics at once; /failpoints/<point> holds one table's batch for a fault test
(:mod:`pipelines.sinks.failpoints`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from pipelines.avro import AvroDecoder
from pipelines.debezium import JSON_ONLY, ChangeDecoder
from pipelines.sinks.core import DEAD_LETTER_SUFFIX, CdcSink, DeadLetterQueue, SinkStats, TableWriter
from pipelines.sinks.errors import SinkError
from pipelines.sinks.failpoints import Failpoints, UnknownFailpointError
from pipelines.sinks.metrics import CONTENT_TYPE, exposition, sink_job_registry

log = logging.getLogger("cdcstack.sink.job")

LIST_TOPICS_TIMEOUT_SECONDS = 4.0
"""Short: a discovery that waits blocks every table's loop, and a broker on loopback answers in milliseconds."""


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def table_identifier(namespace: str, topic: str) -> str:
    return f"{namespace}.{re.sub(r'[^A-Za-z0-9_]', '_', topic)}"


class SinkJob:
    """One :class:`CdcSink` per matching topic, stepped in turn by one loop."""

    def __init__(
        self,
        bootstrap: str,
        topics_regex: str,
        namespace: str,
        writer_for: Callable[[str], TableWriter],
        group: str,
        discover_seconds: float = 5.0,
        poll_seconds: float = 0.1,
        decoder: ChangeDecoder = JSON_ONLY,
        *,
        destination: str,
        destination_errors: Callable[[], dict[str, str]] = dict,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap = bootstrap
        self.pattern = re.compile(topics_regex)
        self.namespace = namespace
        self.writer_for = writer_for
        self.group = group
        self.discover_seconds = discover_seconds
        self.poll_seconds = poll_seconds
        """How long each sink waits for records per round: one loop steps every table in turn, so
        an idle table must not hold up a busy one for long."""
        self.decoder = decoder
        """Shared by every table, so each writer schema is fetched from the registry once."""
        self.dead_letters = DeadLetterQueue(bootstrap)
        self.sinks: dict[str, CdcSink] = {}
        self.errors: dict[str, str] = {}
        """Job-level failures: "discovery", or a topic whose sink could not be set up."""
        self.destination_errors = destination_errors
        """Job-level failures the destination itself reports, keyed by what fails (its Spark driver
        without executors, say); asked at every /health, from the server's thread."""
        self.stepping: str | None = None
        """The topic whose sink the loop is stepping now: a destination that hangs hangs there."""
        self.started_at = time.time()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self.metrics = sink_job_registry(destination, self.table_stats)
        """Its tables' figures for GET /metrics, labelled `sink=destination` (iceberg, delta)."""
        self.clock = clock
        """Monotonic seconds, by which discovery comes due."""
        self.failpoints = Failpoints(self.stopping)
        """Where a fault test holds one table's batch (see :mod:`pipelines.sinks.failpoints`)."""
        self.discovery_requested = threading.Event()
        """Set by POST /discover: whoever just created or deleted a topic need not wait out the interval."""

    def request_discovery(self) -> None:
        """Discovery runs at the loop's next turn (between two tables' steps) instead of when due."""
        self.discovery_requested.set()

    def discover(self) -> None:
        try:
            listed = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=LIST_TOPICS_TIMEOUT_SECONDS).topics
        except KafkaException as error:
            self.errors["discovery"] = f"cannot list Kafka topics at {self.bootstrap}: {error}"
            log.warning("topic discovery failed", extra={"fields": {"error": self.errors["discovery"]}})
            # Every table reads from the same brokers: each one's /health says so at once, instead
            # of when its consumer next reports (librdkafka tells of a broker that went away once).
            with self._lock:
                sinks = list(self.sinks.values())
            for sink in sinks:
                sink.kafka_error(self.errors["discovery"])
            return
        self.errors.pop("discovery", None)
        wanted = {topic for topic in listed if self.pattern.search(topic) and not topic.endswith(DEAD_LETTER_SUFFIX)}
        for topic in sorted(set(self.sinks) - wanted):
            with self._lock:
                sink = self.sinks.pop(topic)
            sink.close()
            log.info("topic gone, its sink is closed", extra={"fields": {"topic": topic, "table": sink.writer.identifier}})
        for topic in sorted(wanted - set(self.sinks)):
            identifier = table_identifier(self.namespace, topic)
            try:
                group = f"{self.group}.{topic}"
                sink = CdcSink(
                    self.bootstrap,
                    [topic],
                    self.writer_for(identifier),
                    group,
                    batch_max_seconds=self.poll_seconds,
                    dead_letters=self.dead_letters,
                    group_instance_id=group,
                    decoder=self.decoder,
                    failpoints=self.failpoints,
                )
            except SinkError as error:
                self.errors[topic] = f"{identifier}: sink not started, retried at the next discovery: {error}"
                log.warning("sink not started", extra={"fields": {"topic": topic, "error": self.errors[topic]}})
                continue
            with self._lock:
                self.sinks[topic] = sink
            self.errors.pop(topic, None)
            log.info("sink started", extra={"fields": {"topic": topic, "table": identifier, "resume_from": sink.offsets}})
        for topic in [key for key in self.errors if key != "discovery" and key not in wanted]:
            self.errors.pop(topic, None)

    def table_stats(self) -> dict[str, SinkStats]:
        """{topic: its sink's stats} for every table the job runs now."""
        with self._lock:
            return {topic: sink.stats for topic, sink in self.sinks.items()}

    def healthy(self) -> bool:
        return self._healthy(self.destination_errors())

    def _healthy(self, destination_errors: dict[str, str]) -> bool:
        with self._lock:
            return not self.errors and not destination_errors and all(sink.stats.healthy for sink in self.sinks.values())

    def status(self) -> dict[str, Any]:
        destination_errors = self.destination_errors()
        with self._lock:
            tables = {topic: self._table_report(topic, sink, destination_errors) for topic, sink in self.sinks.items()}
        return {
            "status": "ok" if self._healthy(destination_errors) else "degraded",
            "pid": os.getpid(),
            "started_at": self.started_at,
            "consumer_groups": f"{self.group}.<topic>",
            "tables": tables,
            "dead_letters": sum(table["dead_letters"] for table in tables.values()),
            "errors": {**self.errors, **destination_errors},
            "failpoints": self.failpoints.report(),
        }

    def _table_report(self, topic: str, sink: CdcSink, destination_errors: dict[str, str]) -> dict[str, Any]:
        """The sink's stats; while the destination reports a failure, a table with a batch in hand
        (being applied now, or kept for a retry) cannot commit it: `stalled`, with that failure."""
        report = sink.stats.as_dict()
        if destination_errors and (topic == self.stepping or sink.pending is not None):
            report["state"] = "stalled"
            report["last_error"] = report["last_error"] or "; ".join(destination_errors.values())
        return report

    def run(self) -> None:
        next_discovery = 0.0
        while not self.stopping.is_set():
            next_discovery = self._discover_when_due(next_discovery)
            for topic, sink in list(self.sinks.items()):
                if self.stopping.is_set():
                    break
                # A round can take minutes (a Spark commit per table while a fresh stack catches
                # up): a new topic must still get its sink within the discovery interval.
                next_discovery = self._discover_when_due(next_discovery)
                if self.sinks.get(topic) is not sink:
                    continue  # its topic is gone and that discovery closed it
                self.stepping = topic
                try:
                    sink.step()
                except Exception:  # noqa: BLE001 - one table's bug must not stop the others
                    log.exception("sink step failed unexpectedly", extra={"fields": {"topic": topic}})
                finally:
                    self.stepping = None
            if not self.sinks:
                self.discovery_requested.wait(0.5)
        for sink in self.sinks.values():
            sink.close()

    def _discover_when_due(self, due_at: float) -> float:
        """Discovers when `due_at` (monotonic) has come; the next due time either way."""
        if self.clock() < due_at and not self.discovery_requested.is_set():
            return due_at
        self.discovery_requested.clear()
        self.discover()
        return self.clock() + self.discover_seconds


FAILPOINTS_PATH = "/failpoints/"


def serve_health(job: SinkJob, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serves GET /health (JSON, 200 or 503), GET /metrics (Prometheus' text format), POST
    /discover (look for new and gone topics now) and POST or DELETE /failpoints/<point> (see
    :mod:`pipelines.sinks.failpoints`) in a thread."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                status = job.status()
                self._answer(200 if status["status"] == "ok" else 503, "application/json", json.dumps(status, default=str).encode())
            elif path == "/metrics":
                self._answer(200, CONTENT_TYPE, exposition(job.metrics))
            else:
                self.send_response(404)
                self.end_headers()

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/discover":
                job.request_discovery()
                self._answer(202, "application/json", b'{"discovery": "requested"}')
            elif url.path.startswith(FAILPOINTS_PATH):
                topic = parse_qs(url.query).get("topic", [""])[0]
                if not topic:
                    self._answer(400, "application/json", b'{"error": "arm a failpoint for one topic: ?topic=<topic>"}')
                    return
                self._failpoint(url.path, lambda point: job.failpoints.arm(point, topic), 201)
            else:
                self.send_response(404)
                self.end_headers()

        def do_DELETE(self) -> None:
            url = urlsplit(self.path)
            if url.path.startswith(FAILPOINTS_PATH):
                self._failpoint(url.path, job.failpoints.release, 200)
            else:
                self.send_response(404)
                self.end_headers()

        def _failpoint(self, path: str, action: Callable[[str], object], code: int) -> None:
            point = path.removeprefix(FAILPOINTS_PATH)
            try:
                action(point)
            except UnknownFailpointError as error:
                self._answer(404, "application/json", json.dumps({"error": str(error)}).encode())
                return
            self._answer(code, "application/json", json.dumps({point: job.failpoints.report().get(point, {"state": "released"})}).encode())

        def _answer(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer((host, port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def job_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every sink job takes; a destination adds its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics-regex", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--group", required=True, help="consumer groups are <group>.<topic>")
    parser.add_argument("--health-port", type=int, required=True)
    # 0.0.0.0 inside a container, so the port Docker publishes on the host's 127.0.0.1 reaches it.
    parser.add_argument("--health-host", default="127.0.0.1")
    parser.add_argument("--discover-seconds", type=float, default=5.0)
    parser.add_argument("--poll-seconds", type=float, default=0.1, help="per table and round")
    parser.add_argument(
        "--schema-registry-url",
        help="base URL of a Confluent-compatible schema registry API (Apicurio: http://HOST:PORT/apis/ccompat/v7), "
        "to read Avro keys and values; without it only JSON is read",
    )
    return parser


def change_decoder(schema_registry_url: str | None) -> ChangeDecoder:
    """JSON and, given a registry, Confluent-framed Avro."""
    return ChangeDecoder(AvroDecoder(schema_registry_url)) if schema_registry_url else JSON_ONLY


def run_job(
    args: argparse.Namespace,
    writer_for: Callable[[str], TableWriter],
    destination: str,
    destination_errors: Callable[[], dict[str, str]] = dict,
) -> None:
    """Runs a job until SIGTERM, serving /health and /metrics meanwhile; `destination` (iceberg,
    delta) is the `sink` label of its metrics, `destination_errors` its own failures for /health
    (see :attr:`SinkJob.destination_errors`)."""
    configure_logging()
    registry = args.schema_registry_url
    job = SinkJob(
        args.bootstrap,
        args.topics_regex,
        args.namespace,
        writer_for,
        args.group,
        args.discover_seconds,
        args.poll_seconds,
        decoder=change_decoder(registry),
        destination=destination,
        destination_errors=destination_errors,
    )
    server = serve_health(job, args.health_port, args.health_host)
    signal.signal(signal.SIGTERM, lambda *_: job.stopping.set())
    started = {"topics_regex": args.topics_regex, "namespace": args.namespace, "schema_registry_url": registry, "pid": os.getpid()}
    log.info("sink job started", extra={"fields": started})
    try:
        job.run()
    finally:
        server.shutdown()
