"""The CDC → Iceberg sink as a long-running job: every Debezium topic matching a pattern, each into
an Iceberg table of its own (`<namespace>.<topic with dots as underscores>`).

    python -m pipelines.sinks.iceberg_job --bootstrap HOST:PORT --topics-regex '^(pg|my)\\.inventory\\..+' \\
        --namespace cdc --catalog-properties catalog.json --health-port 28190

Topics that appear later (new source tables) are picked up within `--discover-seconds`. GET
/health on 127.0.0.1 answers 200 with the events applied and dead-lettered per table.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from confluent_kafka.admin import AdminClient

from pipelines.sinks.iceberg import IcebergCdcSink, IcebergTableWriter, SinkError
from pipelines.sinks.iceberg_catalog import load_rest_catalog


def table_identifier(namespace: str, topic: str) -> str:
    return f"{namespace}.{re.sub(r'[^A-Za-z0-9_]', '_', topic)}"


class IcebergSinkJob:
    def __init__(self, bootstrap: str, topics_regex: str, namespace: str, catalog_properties: dict[str, str], group: str) -> None:
        self.bootstrap = bootstrap
        self.pattern = re.compile(topics_regex)
        self.namespace = namespace
        self.catalog = load_rest_catalog(catalog_properties)
        self.group = group
        self.sinks: dict[str, IcebergCdcSink] = {}
        self.errors: dict[str, str] = {}
        self.stopping = threading.Event()

    def discover(self) -> None:
        topics = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=10).topics
        for topic in sorted(topics):
            if self.pattern.search(topic) and topic not in self.sinks:
                writer = IcebergTableWriter(self.catalog, table_identifier(self.namespace, topic))
                self.sinks[topic] = IcebergCdcSink(self.bootstrap, [topic], writer, group_id=f"{self.group}.{topic}")

    def status(self) -> dict[str, object]:
        return {
            topic: {"table": sink.writer.identifier, "applied": sink.applied_events, "dead_letters": len(sink.writer.dead_letters)}
            for topic, sink in self.sinks.items()
        } | {"errors": dict(self.errors)}

    def run(self, discover_seconds: float) -> None:
        next_discovery = 0.0
        while not self.stopping.is_set():
            if time.monotonic() >= next_discovery:
                self.discover()
                next_discovery = time.monotonic() + discover_seconds
            for topic, sink in list(self.sinks.items()):
                try:
                    sink.step()
                    self.errors.pop(topic, None)
                except SinkError as error:
                    # Transient: retried on the next round. The message stays visible on /health.
                    self.errors[topic] = str(error)
            if not self.sinks:
                self.stopping.wait(0.5)
        for sink in self.sinks.values():
            sink.close()


def serve_health(job: IcebergSinkJob, port: int) -> ThreadingHTTPServer:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(job.status()).encode()
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics-regex", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--catalog-properties", required=True, type=Path, help="JSON file (it holds the S3 secret)")
    parser.add_argument("--group", default="cdcstack-iceberg-sink")
    parser.add_argument("--health-port", type=int, required=True)
    parser.add_argument("--discover-seconds", type=float, default=5.0)
    args = parser.parse_args()
    job = IcebergSinkJob(args.bootstrap, args.topics_regex, args.namespace, json.loads(args.catalog_properties.read_text()), args.group)
    server = serve_health(job, args.health_port)
    signal.signal(signal.SIGTERM, lambda *_: job.stopping.set())
    try:
        job.run(args.discover_seconds)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
