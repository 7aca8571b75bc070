"""CDC lag: commit marker rows at the source, time them into Kafka.

Lag of one change = the Kafka record's timestamp (when Connect produced it) minus the source's
commit time as Debezium reports it (`source.ts_ms`): both read off this machine's clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException

from pipelines.debezium import ChangeEvent, decode_message


@dataclass(frozen=True)
class LagReport:
    samples_ms: tuple[float, ...]
    expected: int
    achieved_rate: float = 0.0
    """Changes committed per second, start of the run to its last event."""

    @staticmethod
    def _percentile(ordered: list[float], fraction: float) -> float:
        index = max(0, math.ceil(fraction * len(ordered)) - 1)
        return ordered[index]

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.samples_ms)
        return self._percentile(ordered, fraction) if ordered else math.inf

    @property
    def complete(self) -> bool:
        return len(self.samples_ms) == self.expected

    def describe(self) -> str:
        return (
            f"{len(self.samples_ms)}/{self.expected} changes at {self.achieved_rate:.0f}/s: p50={self.percentile(0.50):.0f} ms "
            f"p95={self.percentile(0.95):.0f} ms p99={self.percentile(0.99):.0f} ms max={max(self.samples_ms, default=math.inf):.0f} ms"
        )


def measure_lag(
    commit_marker: Callable[[int], None],
    consumer: Consumer,
    marker_of: Callable[[ChangeEvent], int | None],
    count: int,
    rate_per_second: float,
    timeout_seconds: float = 60.0,
) -> LagReport:
    """Commits `count` markers at `rate_per_second` (each its own transaction) while consuming.

    A writer thread paces the commits, so a slow poll never delays them. `consumer` must already be
    subscribed to the marker table's topic; `marker_of` picks the marker id out of a change event
    (None for events that are not this run's markers).
    """
    writer_errors: list[BaseException] = []
    started = time.monotonic()

    def write() -> None:
        try:
            for marker in range(count):
                delay = started + marker / rate_per_second - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                commit_marker(marker)
        except BaseException as error:  # surfaced to the caller below
            writer_errors.append(error)

    writer = threading.Thread(target=write, name="lag-probe-writer", daemon=True)
    writer.start()
    pending = set(range(count))
    samples: list[float] = []
    deadline = started + count / rate_per_second + timeout_seconds
    while pending and time.monotonic() < deadline and not writer_errors:
        message = consumer.poll(0.1)
        if message is None:
            continue
        if message.error():
            raise KafkaException(message.error())
        event = decode_message(message)
        marker = marker_of(event) if isinstance(event, ChangeEvent) and event.op == "c" else None
        if marker in pending:
            pending.discard(marker)
            samples.append(float(message.timestamp()[1] - event.source.ts_ms))
    writer.join(timeout_seconds)
    if writer_errors:
        raise writer_errors[0]
    return LagReport(tuple(samples), count, achieved_rate=count / max(time.monotonic() - started, 1e-9))
