"""What a sink job tells Prometheus at `GET /metrics`: per table, labelled `sink` (the destination:
iceberg, delta) and `table` (the topic it consumes, as /health keys its tables).

| metric | type | what |
| --- | --- | --- |
| `cdc_sink_batches_committed_total` | counter | batches committed to the table |
| `cdc_sink_records_applied_total` | counter | change events applied |
| `cdc_sink_dead_letters_total` | counter | records published to `<topic>.dlq` |
| `cdc_sink_failed_attempts_total` | counter | attempts at a batch that failed and are retried (transient errors) |
| `cdc_sink_last_commit_timestamp_seconds` | gauge | unix time of the last batch committed (absent before one) |
| `cdc_sink_lag_seconds` | gauge | source commit to table commit of the last batch that applied changes: its commit time minus the newest `source.ts_ms` in it |
| `cdc_sink_consumer_lag_records` | gauge | records in Kafka not yet in the table: end offsets as of the sink's last poll minus the table's offsets |

The figures are the sinks' own :class:`~pipelines.sinks.core.SinkStats`, read at scrape time, so
/metrics and /health never disagree and a table whose topic is gone leaves no stale series. A
counter starts again from 0 when the job (or the table's sink) restarts, which `rate()` and
`increase()` take in their stride. The job's `process_*` metrics come along.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipelines.sinks.core import SinkStats

LABELS = ("sink", "table")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The classic text format's content type (`generate_latest` writes it), which every Prometheus 2.x reads."""


class SinkMetricsCollector(Collector):
    """Turns the stats of every table of one job into Prometheus metric families at each scrape."""

    def __init__(self, destination: str, tables: Callable[[], Mapping[str, SinkStats]]) -> None:
        self.destination = destination
        """The `sink` label: iceberg, delta."""
        self.tables = tables
        """{topic: its sink's stats}, taken at each scrape."""

    def collect(self) -> Iterator[Metric]:
        batches = CounterMetricFamily("cdc_sink_batches_committed", "Batches committed to the table.", labels=LABELS)
        applied = CounterMetricFamily("cdc_sink_records_applied", "Change events applied to the table.", labels=LABELS)
        dead_letters = CounterMetricFamily("cdc_sink_dead_letters", "Records the table refused, published to <topic>.dlq.", labels=LABELS)
        failed = CounterMetricFamily(
            "cdc_sink_failed_attempts", "Attempts at a batch that failed and are retried (transient errors).", labels=LABELS
        )
        last_commit = GaugeMetricFamily("cdc_sink_last_commit_timestamp_seconds", "Unix time of the last batch committed.", labels=LABELS)
        lag = GaugeMetricFamily(
            "cdc_sink_lag_seconds",
            "Source commit to table commit of the last batch that applied changes (its commit time minus its newest source.ts_ms).",
            labels=LABELS,
        )
        consumer_lag = GaugeMetricFamily(
            "cdc_sink_consumer_lag_records",
            "Records in Kafka not yet in the table (end offsets as of the sink's last poll minus the table's offsets).",
            labels=LABELS,
        )
        for topic, stats in sorted(self.tables().items()):
            labels = [self.destination, topic]
            batches.add_metric(labels, stats.batches)
            applied.add_metric(labels, stats.applied_events)
            dead_letters.add_metric(labels, stats.dead_letters)
            failed.add_metric(labels, stats.attempts_failed)
            if stats.last_commit_at is not None:
                last_commit.add_metric(labels, stats.last_commit_at)
            if stats.last_commit_lag_seconds is not None:
                lag.add_metric(labels, stats.last_commit_lag_seconds)
            records = stats.consumer_lag_records
            if records is not None:
                consumer_lag.add_metric(labels, records)
        yield from (batches, applied, dead_letters, failed, last_commit, lag, consumer_lag)


def sink_job_registry(destination: str, tables: Callable[[], Mapping[str, SinkStats]]) -> CollectorRegistry:
    """A registry of its own for one job (not the library's global one): its tables and its process."""
    registry = CollectorRegistry()
    registry.register(SinkMetricsCollector(destination, tables))
    ProcessCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format, what `GET /metrics` answers."""
    return generate_latest(registry)
