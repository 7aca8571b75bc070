"""The consumer core every sink runs on: poll, decode, batch, retry, dead-letter, commit offsets.

A destination plugs in as a :class:`TableWriter`: it applies a batch of decoded change events to
one table in one commit that records the Kafka offsets the batch ends at, and reads those offsets
back. Everything else is here, the same for every destination:

- **Offsets move only with a commit.** A batch is kept until the table commit holding it succeeds;
  a transient failure retries the same batch from its first offset after a capped backoff, and
  nothing newer is read meanwhile. The consumer group's offsets are committed after the table's
  (asynchronously: a broker that is away must not block the job),
  and on (re)assignment the table's recorded offsets win, so a crash between the two replays
  nothing. Records below the committed offset are dropped, so a replayed batch is a no-op.
- **Dead letters.** A record that does not decode, or whose change the table cannot take
  (:class:`TerminalSinkError`, or an exception the writer did not map and the event caused:
  :func:`pipelines.sinks.errors.classify_unexpected`), is published to `<topic>.dlq` with the error in its headers before
  the offsets move past it; the rest of its batch still commits. Dead letters are at least once: a
  crash after publishing and before the next table commit publishes them again.
- **Decoding is part of the attempt.** Records are decoded (JSON, or Avro with a schema registry:
  :class:`ChangeDecoder`) at the start of each attempt at their batch, so a decode that fails
  transiently (the registry away: :class:`SchemaRegistryUnavailableError`) stalls the batch and is
  retried like a failing table commit, neither dead-lettering the record nor moving offsets.
- **Kafka away.** Consumer, offset-commit and dead-letter errors are recorded and retried; they
  never end the sink.
- **Reporting.** One structured log line per committed batch (table, records, version, ms), one
  per failure, and :class:`SinkStats` for a health endpoint and Prometheus
  (:mod:`pipelines.sinks.metrics`): with the counts, how late the last batch landed (its commit
  time minus the newest source commit time in it) and how many records wait in Kafka (the end
  offsets the consumer last fetched, which costs no broker request, minus the table's offsets).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.debezium import JSON_ONLY, ChangeDecoder, ChangeEvent, DecodeError, Tombstone
from pipelines.kafka_limits import LIBRDKAFKA_CONSUMER_SETTINGS, LIBRDKAFKA_PRODUCER_SETTINGS, MAX_RECORD_BYTES
from pipelines.sinks.failpoints import AFTER_TABLE_COMMIT, BEFORE_TABLE_COMMIT, Failpoints
from pipelines.sinks.errors import (
    KafkaUnavailableError,
    RejectedEventsError,
    SinkError,
    TerminalSinkError,
    TransientSinkError,
    classify_unexpected,
)

log = logging.getLogger("cdcstack.sink")

DEAD_LETTER_SUFFIX = ".dlq"
KAFKA_ERROR_LOG_INTERVAL_SECONDS = 10.0
MAX_POLL_INTERVAL_MS = 30 * 60 * 1000
UNASSIGNED_GRACE_SECONDS = 60.0
"""A consumer with no partition this long has left its group for good (kicked out after a long
round, a broker restart it missed): the table would say `ok` and never move again. Joining takes
seconds, and a static member gets its partitions back at once, so a minute is well past normal."""
ERROR_TEXT_LIMIT = 2000
"""Characters of an error message kept in a dead letter's header and in the health report."""


def partition_key(topic: str, partition: int) -> str:
    """How offsets are keyed everywhere (table commits, health): "topic:partition"."""
    return f"{topic}:{partition}"


def topic_partitions(offsets: Mapping[str, int]) -> list[TopicPartition]:
    """{"topic:partition": offset} as the consumer commits them."""
    return [TopicPartition(key.rsplit(":", 1)[0], int(key.rsplit(":", 1)[1]), offset) for key, offset in offsets.items()]


@dataclass(frozen=True)
class Commit:
    """What one table commit did."""

    rows: int
    """Rows written (the last state of each key the batch upserted)."""
    version: int | str | None
    """The destination's id of the commit (an Iceberg snapshot id, a Delta version)."""


class TableWriter(Protocol):
    """One destination table; the Kafka side is the core's."""

    identifier: str
    """The table's name in its catalog, as logged and reported."""

    def committed_offsets(self) -> dict[str, int]:
        """{"topic:partition": next offset} recorded by the table's latest sink commit ({} if none)."""
        ...

    def apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        """Applies the events in one commit recording `offsets`; all or nothing.

        Raises TransientSinkError when retrying may succeed, TerminalSinkError when the events
        cannot be written as they are.
        """
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff between attempts at the same batch."""

    first_delay_seconds: float = 0.5
    max_delay_seconds: float = 10.0
    """Local services come back within seconds; a retry every 10 s at most finds them soon."""

    def delay(self, failures: int) -> float:
        return min(self.max_delay_seconds, self.first_delay_seconds * 2 ** max(0, failures - 1))


def _short(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= ERROR_TEXT_LIMIT else text[: ERROR_TEXT_LIMIT - 3] + "..."


def _newest_source_ms(newest: int | None, events: Sequence[ChangeEvent]) -> int | None:
    """The newest source commit time of `events` and `newest`; 0 (a source that sent none) is not a time."""
    times = [event.source.ts_ms for event in events if event.source.ts_ms > 0]
    return max([*times, *([newest] if newest else [])], default=None)


@dataclass
class SinkStats:
    """What one sink has done and what is wrong with it now, for logs and a health endpoint."""

    table: str
    topics: list[str]
    applied_events: int = 0
    batches: int = 0
    dead_letters: int = 0
    last_dead_letter_error: str | None = None
    failing_since: float | None = None
    """Wall-clock time the batch pending now first failed (None when nothing is failing)."""
    last_error: str | None = None
    """Why the pending batch failed last; cleared when it commits."""
    attempts_failed: int = 0
    kafka_errors: int = 0
    last_kafka_error: str | None = None
    last_commit_at: float | None = None
    last_commit_version: int | str | None = None
    last_commit_lag_seconds: float | None = None
    """Source commit to table commit of the last batch that applied changes: its commit's wall-clock
    time minus the newest `source.ts_ms` in it (None until one has)."""
    committed_offsets: dict[str, int] = field(default_factory=dict)
    consumer_lag: dict[str, int] = field(default_factory=dict)
    """Records per assigned partition not yet in the table, as of the sink's last poll (a partition
    appears once the consumer has fetched from it). Replaced whole, never changed in place, so a
    reader on another thread sees one consistent map."""

    @property
    def consumer_lag_records(self) -> int | None:
        """Records of all its partitions not yet in the table (None before the first fetch)."""
        lag = self.consumer_lag
        return sum(lag.values()) if lag else None

    consumer_error: str | None = None
    """Why the table's consumer reads nothing now (no partition assigned); cleared once it has one."""

    @property
    def healthy(self) -> bool:
        return self.last_error is None and self.consumer_error is None

    @property
    def state(self) -> str:
        if self.last_error is not None:
            return "retrying"
        return "unassigned" if self.consumer_error is not None else "ok"

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "topics": list(self.topics),
            "state": self.state,
            "consumer_error": self.consumer_error,
            "applied": self.applied_events,
            "batches": self.batches,
            "dead_letters": self.dead_letters,
            "last_dead_letter_error": self.last_dead_letter_error,
            "last_error": self.last_error,
            "failing_since": self.failing_since,
            "attempts_failed": self.attempts_failed,
            "kafka_errors": self.kafka_errors,
            "last_kafka_error": self.last_kafka_error,
            "last_commit_at": self.last_commit_at,
            "last_commit_version": self.last_commit_version,
            "last_commit_lag_seconds": self.last_commit_lag_seconds,
            "committed_offsets": dict(self.committed_offsets),
            "consumer_lag": dict(self.consumer_lag),
        }


@dataclass(frozen=True)
class DeadLetter:
    """A record the sink gives up on, with why."""

    message: Message
    error: BaseException


class DeadLetterQueue:
    """Publishes records a sink cannot apply to `<topic>.dlq`: the original key, value and headers,
    plus `cdcstack.*` headers saying where it came from and why it was refused."""

    def __init__(self, bootstrap_servers: str, suffix: str = DEAD_LETTER_SUFFIX, timeout_seconds: float = 30.0) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.suffix = suffix
        self.timeout_seconds = timeout_seconds
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                "enable.idempotence": True,
                "linger.ms": 0,
                **LIBRDKAFKA_PRODUCER_SETTINGS,
                "message.timeout.ms": int(timeout_seconds * 1000),
            }
        )
        self._known_topics: set[str] = set()

    def topic_for(self, topic: str) -> str:
        return f"{topic}{self.suffix}"

    def _ensure_topic(self, topic: str) -> None:
        if topic in self._known_topics:
            return
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1, config={"max.message.bytes": str(MAX_RECORD_BYTES)})],
            request_timeout=self.timeout_seconds,
        )
        try:
            futures[topic].result(self.timeout_seconds)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaUnavailableError(f"dead-letter topic {topic} could not be created: {error}") from error
        self._known_topics.add(topic)

    def send(self, letters: Sequence[DeadLetter], table: str) -> None:
        """Publishes every letter and waits for Kafka to take them all; raises if it did not."""
        failures: list[str] = []

        def delivered(error: KafkaError | None, _message: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for letter in letters:
            source = letter.message
            topic = self.topic_for(source.topic())
            self._ensure_topic(topic)
            headers = list(source.headers() or []) + [
                ("cdcstack.error", _short(letter.error).encode()),
                ("cdcstack.error.class", type(letter.error).__name__.encode()),
                ("cdcstack.source.topic", source.topic().encode()),
                ("cdcstack.source.partition", str(source.partition()).encode()),
                ("cdcstack.source.offset", str(source.offset()).encode()),
                ("cdcstack.sink.table", table.encode()),
            ]
            try:
                self._producer.produce(topic, key=source.key(), value=source.value(), headers=headers, on_delivery=delivered)
            except (KafkaException, BufferError) as error:
                raise KafkaUnavailableError(f"dead letter for {source.topic()}@{source.partition()}:{source.offset()} not queued: {error}") from error
        undelivered = self._producer.flush(self.timeout_seconds)
        if undelivered or failures:
            raise KafkaUnavailableError(
                f"{undelivered + len(failures)} of {len(letters)} dead letters for {table} not delivered within "
                f"{self.timeout_seconds:.0f}s ({'; '.join(failures[:3]) or 'timed out'}); the batch is kept and retried"
            )


@dataclass
class PendingBatch:
    """Records read but not yet committed: what a retry starts from."""

    events: list[tuple[ChangeEvent, Message]]
    rejected: list[DeadLetter]
    offsets: dict[str, int]
    """The next offset per partition once the whole batch is done."""
    failures: int = 0
    next_attempt_at: float = 0.0
    undecoded: list[Message] = field(default_factory=list)
    """Records not decoded yet, in offset order: an attempt decodes them first, and one that fails
    transiently leaves the rest here for the next attempt."""
    newest_source_ms: int | None = None
    """The newest source commit time (`source.ts_ms`) among the events committed so far, kept across
    attempts (a one-by-one retry commits some events before failing)."""


class CdcSink:
    """Consumes Debezium topics into one table through a :class:`TableWriter`; see the module docstring."""

    def __init__(
        self,
        bootstrap_servers: str,
        topics: Sequence[str],
        writer: TableWriter,
        group_id: str,
        batch_max_events: int = 1000,
        batch_max_seconds: float = 0.5,
        dead_letters: DeadLetterQueue | None = None,
        retry: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.monotonic,
        group_instance_id: str | None = None,
        decoder: ChangeDecoder = JSON_ONLY,
        failpoints: Failpoints | None = None,
    ) -> None:
        self.writer = writer
        self.failpoints = failpoints or Failpoints()
        self.decoder = decoder
        self.topics = list(topics)
        self.batch_max_events = batch_max_events
        self.batch_max_seconds = batch_max_seconds
        self.retry = retry
        self.clock = clock
        self.dead_letters = dead_letters or DeadLetterQueue(bootstrap_servers)
        self.offsets: dict[str, int] = writer.committed_offsets()
        self.stats = SinkStats(writer.identifier, self.topics, committed_offsets=dict(self.offsets))
        self.pending: PendingBatch | None = None
        # A static member (group.instance.id) that restarts takes its partitions back at once, instead
        # of waiting out the dead member's session timeout (45 s) for a rebalance.
        membership = {"group.instance.id": group_instance_id} if group_instance_id else {}
        self._kafka_error_logged_at = float("-inf")
        self._group_offsets: dict[str, int] = {}
        """What the consumer group acknowledged, per partition."""
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                "group.id": group_id,
                **membership,
                # Broker-level errors (all brokers down, connection refused) come here, not as messages.
                "error_cb": self._kafka_error,
                "on_commit": self._group_committed,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
                # One loop steps every table of a job in turn, and a Delta round can take minutes on
                # two loaded cores: past the 5-minute default, the group would drop the member.
                "max.poll.interval.ms": MAX_POLL_INTERVAL_MS,
                **LIBRDKAFKA_CONSUMER_SETTINGS,
            }
        )
        self._unassigned_since: float | None = None
        self.consumer.subscribe(self.topics, on_assign=self._resume, on_lost=self._lost)

    @property
    def applied_events(self) -> int:
        return self.stats.applied_events

    def _resume(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The table's offsets are what was committed; the group's may lag them after a crash.
        for partition in partitions:
            recorded = self.offsets.get(partition_key(partition.topic, partition.partition))
            if recorded is not None:
                partition.offset = recorded
        consumer.assign(partitions)

    def step(self) -> int:
        """One round: retries the pending batch once its backoff is due, else reads a new one.

        Returns the change events committed. Never raises for a failed batch: the failure is in
        :attr:`stats` and the log, and the batch is kept for the next round.
        """
        if self.pending is None:
            self.pending = self._read_batch()
            if self.pending is None:
                return 0
        wait = self.pending.next_attempt_at - self.clock()
        if wait > 0:
            time.sleep(min(wait, self.batch_max_seconds))
            return 0
        return self._attempt(self.pending)

    def kafka_error(self, error: object) -> None:
        """Records a Kafka failure this sink's consumer or someone else of its process saw."""
        self._kafka_error(error)

    def _kafka_error(self, error: object) -> None:
        self.stats.kafka_errors += 1
        self.stats.last_kafka_error = _short(str(error))
        # librdkafka repeats a broker error on every reconnect attempt: one line per 10 s is enough.
        if self.clock() - self._kafka_error_logged_at >= KAFKA_ERROR_LOG_INTERVAL_SECONDS:
            self._kafka_error_logged_at = self.clock()
            log.warning(
                "kafka error",
                extra={"fields": {"table": self.writer.identifier, "error": self.stats.last_kafka_error, "count": self.stats.kafka_errors}},
            )

    def _read_batch(self) -> PendingBatch | None:
        try:
            messages = self.consumer.consume(self.batch_max_events, self.batch_max_seconds)
        except KafkaException as error:
            self._kafka_error(error)
            return None
        self._refresh_consumer_lag()
        self._check_assignment()
        batch = PendingBatch(events=[], rejected=[], offsets={})
        for message in messages:
            error = message.error()
            if error is not None:
                # Broker down, partition EOF, a topic deleted under us: librdkafka recovers by itself.
                if error.code() != KafkaError._PARTITION_EOF:
                    self._kafka_error(error)
                continue
            position = partition_key(message.topic(), message.partition())
            if message.offset() < self.offsets.get(position, -1):
                continue
            batch.offsets[position] = message.offset() + 1
            batch.undecoded.append(message)
        return batch if batch.offsets else None

    def _check_assignment(self) -> None:
        """Reports, then heals by subscribing again, a consumer that has had no partition for
        :data:`UNASSIGNED_GRACE_SECONDS`."""
        try:
            assigned = bool(self.consumer.assignment())
        except KafkaException as error:
            self._kafka_error(error)
            return
        now = self.clock()
        if assigned:
            self._unassigned_since = None
            self.stats.consumer_error = None
            return
        if self._unassigned_since is None:
            self._unassigned_since = now
            return
        unassigned_for = now - self._unassigned_since
        if unassigned_for < UNASSIGNED_GRACE_SECONDS:
            return
        self.stats.consumer_error = (
            f"no partition of {', '.join(self.topics)} assigned to the consumer for {unassigned_for:.0f}s "
            "(it left its group); subscribing again"
        )
        log.warning("consumer without partitions, subscribing again", extra={"fields": {"table": self.writer.identifier, "error": self.stats.consumer_error}})
        self._unassigned_since = now
        try:
            self.consumer.unsubscribe()
            self.consumer.subscribe(self.topics, on_assign=self._resume, on_lost=self._lost)
        except KafkaException as error:
            self._kafka_error(error)

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Lost, not revoked: the group moved on without this member (it was too slow to poll).
        log.warning(
            "partitions lost, rejoining the group",
            extra={"fields": {"table": self.writer.identifier, "partitions": [partition_key(p.topic, p.partition) for p in partitions]}},
        )

    def _refresh_consumer_lag(self) -> None:
        # Cached watermarks are the high offsets of the last fetch responses: no broker round trip.
        lag: dict[str, int] = {}
        try:
            for partition in self.consumer.assignment():
                low, high = self.consumer.get_watermark_offsets(partition, cached=True)
                if high < 0:
                    continue  # nothing fetched from it yet
                position = partition_key(partition.topic, partition.partition)
                lag[position] = max(0, high - self.offsets.get(position, max(low, 0)))
        except KafkaException as error:
            self._kafka_error(error)
            return
        self.stats.consumer_lag = lag

    def _decode(self, batch: PendingBatch) -> None:
        """Decodes the batch's undecoded records in order; a transient failure (the schema registry
        away) propagates with the records from the failing one on left undecoded."""
        decoded_count = 0
        try:
            for message in batch.undecoded:
                try:
                    decoded = self.decoder.decode_message(message)
                except DecodeError as undecodable:
                    batch.rejected.append(DeadLetter(message, undecodable))
                else:
                    if isinstance(decoded, ChangeEvent):
                        batch.events.append((decoded, message))
                    elif not isinstance(decoded, Tombstone):
                        batch.rejected.append(DeadLetter(message, DecodeError(f"unexpected record {decoded!r}")))
                decoded_count += 1
        finally:
            del batch.undecoded[:decoded_count]

    def _attempt(self, batch: PendingBatch) -> int:
        started = self.clock()
        try:
            self._decode(batch)
            if batch.rejected:
                self._dead_letter(batch.rejected)
                batch.rejected = []
            self.failpoints.reach(BEFORE_TABLE_COMMIT, self.topics, batch.offsets)
            applied, version = self._apply(batch)
        except Exception as error:  # noqa: BLE001 - anything but a terminal error keeps the batch for a retry
            batch.failures += 1
            batch.next_attempt_at = self.clock() + self.retry.delay(batch.failures)
            self.stats.attempts_failed += 1
            self.stats.last_error = _short(error)
            self.stats.failing_since = self.stats.failing_since or time.time()
            log.warning(
                "batch failed, kept for a retry",
                exc_info=not isinstance(error, TransientSinkError),
                extra={
                    "fields": {
                        "table": self.writer.identifier,
                        "records": len(batch.events) + len(batch.undecoded),
                        "attempt": batch.failures,
                        "retry_in_s": round(self.retry.delay(batch.failures), 2),
                        "error": self.stats.last_error,
                    }
                },
            )
            return 0
        self.offsets.update(batch.offsets)
        self.pending = None
        self.stats.batches += 1
        self.stats.last_error = None
        self.stats.failing_since = None
        self.stats.last_commit_at = time.time()
        self.stats.committed_offsets = dict(self.offsets)
        if version is not None:
            self.stats.last_commit_version = version
        if batch.newest_source_ms:
            self.stats.last_commit_lag_seconds = max(0.0, self.stats.last_commit_at - batch.newest_source_ms / 1000)
        self._refresh_consumer_lag()
        log.info(
            "batch committed",
            extra={
                "fields": {
                    "table": self.writer.identifier,
                    "records": applied,
                    "version": version,
                    "ms": round((self.clock() - started) * 1000, 1),
                    "offsets": dict(batch.offsets),
                }
            },
        )
        self.failpoints.reach(AFTER_TABLE_COMMIT, self.topics, batch.offsets)
        self._commit_group(batch.offsets)
        return applied

    def _apply(self, batch: PendingBatch) -> tuple[int, int | str | None]:
        """Commits the batch's events whole; events the writer names as refused are dead-lettered and
        the rest committed together; a refusal that names none (or an unexpected exception the event
        causes) has the events committed one by one, dead-lettering those refused. Returns (events
        committed, last version); each commit is counted in the stats as it happens, so a failure
        midway keeps the count right."""
        while batch.events:
            events = [event for event, _ in batch.events]
            try:
                commit = self._writer_apply(events, {**self.offsets, **batch.offsets})
            except RejectedEventsError as refused:
                self._dead_letter([DeadLetter(batch.events[index][1], TerminalSinkError(reason)) for index, reason in sorted(refused.rejected.items())])
                batch.events = [entry for index, entry in enumerate(batch.events) if index not in refused.rejected]
                continue
            except TerminalSinkError as refused:
                if len(batch.events) == 1:
                    return self._refuse(batch, refused)
                log.warning(
                    "batch refused, isolating the records the table cannot take",
                    extra={"fields": {"table": self.writer.identifier, "records": len(events), "error": _short(refused)}},
                )
                return self._apply_one_by_one(batch)
            batch.events = []
            batch.newest_source_ms = _newest_source_ms(batch.newest_source_ms, events)
            self.stats.applied_events += len(events)
            return len(events), commit.version
        return 0, None

    def _writer_apply(self, events: Sequence[ChangeEvent], offsets: Mapping[str, int]) -> Commit:
        """The writer's commit, with what it raised sorted into the two kinds (an exception it did
        not map is terminal unless its cause is a service or the network: retrying a `TypeError`
        forever would hold the table's partition for good)."""
        try:
            return self.writer.apply(events, offsets)
        except SinkError:
            raise
        except Exception as error:  # noqa: BLE001 - sorted by cause right here
            classified = classify_unexpected(error, self.writer.identifier)
            if isinstance(classified, TerminalSinkError):
                log.error("writer raised an unexpected exception", exc_info=True, extra={"fields": {"table": self.writer.identifier}})
            raise classified from error

    def _refuse(self, batch: PendingBatch, refused: TerminalSinkError) -> tuple[int, None]:
        [(_, message)] = batch.events
        self._dead_letter([DeadLetter(message, refused)])
        batch.events = []
        return 0, None

    def _apply_one_by_one(self, batch: PendingBatch) -> tuple[int, int | str | None]:
        applied, version = 0, None
        # The batch shrinks as events commit, so a transient failure midway retries only the rest.
        while batch.events:
            event, message = batch.events[0]
            position = partition_key(message.topic(), message.partition())
            try:
                commit = self._writer_apply([event], {**self.offsets, position: message.offset() + 1})
            except RejectedEventsError as refused:
                self._dead_letter([DeadLetter(message, TerminalSinkError(next(iter(refused.rejected.values()), str(refused))))])
            except TerminalSinkError as refused:
                self._dead_letter([DeadLetter(message, refused)])
            else:
                applied, version = applied + 1, commit.version
                self.offsets[position] = message.offset() + 1
                batch.newest_source_ms = _newest_source_ms(batch.newest_source_ms, [event])
                self.stats.applied_events += 1
            batch.events.pop(0)
        return applied, version

    def _dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        self.dead_letters.send(letters, self.writer.identifier)
        self.stats.dead_letters += len(letters)
        self.stats.last_dead_letter_error = _short(letters[-1].error)
        for letter in letters:
            log.error(
                "record dead-lettered",
                extra={
                    "fields": {
                        "table": self.writer.identifier,
                        "source": f"{letter.message.topic()}@{letter.message.partition()}:{letter.message.offset()}",
                        "dead_letter_topic": self.dead_letters.topic_for(letter.message.topic()),
                        "error": _short(letter.error),
                    }
                },
            )

    def _commit_group(self, offsets: Mapping[str, int]) -> None:
        # Asynchronous: a synchronous commit blocks the whole job while the broker is away (every
        # table's loop, and the error callbacks that put Kafka's absence on /health).
        try:
            self.consumer.commit(offsets=topic_partitions(offsets), asynchronous=True)
        except KafkaException as error:
            # The table already holds these offsets, and they win on restart: nothing is lost.
            self._kafka_error(f"consumer group commit failed (the table's offsets stand): {error}")

    def _group_committed(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        failed = [partition for partition in partitions if partition.error is not None]
        if error is not None or failed:
            said = error or "; ".join(f"{partition.topic}:{partition.partition}: {partition.error}" for partition in failed[:3])
            self._kafka_error(f"consumer group commit failed (the table's offsets stand): {said}")
            return
        for partition in partitions:
            self._group_offsets[partition_key(partition.topic, partition.partition)] = partition.offset

    def run_until(self, done: Callable[[], bool], timeout_seconds: float) -> None:
        """Steps until `done()`; raises TransientSinkError naming the last failure at the deadline."""
        deadline = self.clock() + timeout_seconds
        while not done():
            if self.clock() >= deadline:
                raise TransientSinkError(
                    f"{self.writer.identifier}: not caught up within {timeout_seconds:.0f}s "
                    f"({self.stats.applied_events} events applied; last error: {self.stats.last_error or self.stats.last_kafka_error or 'none'})"
                )
            self.step()

    def close(self) -> None:
        """Commits to the group what the table holds and the group has not acknowledged yet, then
        leaves it (the group's offsets are what a consumer of the group without the table sees)."""
        behind = {key: offset for key, offset in self.offsets.items() if self._group_offsets.get(key) != offset}
        if behind:
            try:
                self.consumer.commit(offsets=topic_partitions(behind), asynchronous=False)
            except KafkaException as error:
                self._kafka_error(f"consumer group commit at close failed (the table's offsets stand): {error}")
        self.consumer.close()
