"""The one record size limit every hop of the pipeline shares, so a row that one hop accepts no later hop refuses.

A 10 MB Postgres text value has to replicate. Test tables use REPLICA IDENTITY FULL, so an update's
event carries the row twice (before and after): about 20 MB, plus the JSON converter's embedded
schema and escaping. 32 MiB covers that with headroom. Kafka's defaults (1 MB on the broker, the
topic and Connect's producer) would fail the task with RecordTooLargeException instead.

Imported by the components (broker, worker, connector topic settings) and by the consumers; no Pulumi here.
"""

from __future__ import annotations

MAX_RECORD_BYTES = 32 * 1024 * 1024
"""Largest record (one record batch) any hop accepts: broker, topic, Connect producer, sink producer."""

BROKER_SETTINGS: dict[str, str] = {
    "message.max.bytes": str(MAX_RECORD_BYTES),
    # Followers (and KRaft's own fetches) must be able to fetch the largest batch the leader accepts.
    "replica.fetch.max.bytes": str(MAX_RECORD_BYTES),
}
"""Broker properties; `message.max.bytes` is also the default `max.message.bytes` of every topic."""

TOPIC_MAX_MESSAGE_BYTES = str(MAX_RECORD_BYTES)
"""Topic-level `max.message.bytes`, set explicitly on topics Connect creates so they never fall below the limit."""

CONNECT_PRODUCER_SETTINGS: dict[str, str] = {
    "producer.max.request.size": str(MAX_RECORD_BYTES),
    # A record larger than the producer's whole buffer is refused before it is sent; two records' worth
    # lets one large record wait while the batch before it is in flight.
    "producer.buffer.memory": str(2 * MAX_RECORD_BYTES),
}
"""Connect worker properties for the producer every source task uses."""

LIBRDKAFKA_PRODUCER_SETTINGS: dict[str, int] = {"message.max.bytes": MAX_RECORD_BYTES}
"""For a confluent-kafka producer that re-publishes such a record (a dead-letter topic): its default is 1 MB."""

LIBRDKAFKA_CONSUMER_SETTINGS: dict[str, int] = {
    # A batch larger than `max.partition.fetch.bytes` or `fetch.max.bytes` is still returned (KIP-74);
    # the hard cap is `receive.message.max.bytes`, which librdkafka requires to be >= fetch.max.bytes + 512.
    "fetch.max.bytes": MAX_RECORD_BYTES + 1024 * 1024,
    "receive.message.max.bytes": MAX_RECORD_BYTES + 2 * 1024 * 1024,
}
"""For confluent-kafka consumers of captured topics. librdkafka's defaults (50 MiB, 100 MB) also pass a
32 MiB record; these state the dependency on the limit instead of relying on it."""
