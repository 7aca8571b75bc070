"""The stack's schema registry from a test: the Avro connector's tables (`inventory.avro_*`), their
subjects and versions, the Avro records on their topics, and the registry's change events.

A test's table is `inventory.avro_<unique>`; on the way out its topic, its Iceberg table and both of
its subjects (soft, then hard delete) are removed, so versions never pile up between runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from pyiceberg.catalog import Catalog

import stack_outputs as out
from testkit.names import unique_name
from tests.support.lake import LakeTable, iceberg_rows, lake_postgres_table
from tests.support.stack import StackOutputs

REQUEST_TIMEOUT_SECONDS = 10.0
CONFLUENT_MAGIC = 0
AVRO_PREFIX = "avro"


@dataclass(frozen=True)
class Registry:
    """The stack's registry: its Confluent API base and confluent-kafka's client for it."""

    url: str
    client: SchemaRegistryClient


def registry_of(stack: StackOutputs) -> Registry:
    """The registry, checked healthy first; every request bounded by a timeout."""
    url = stack[out.SCHEMA_REGISTRY_URL]
    stack.require_healthy("schema-registry", {"kind": "http", "url": f"{url}/subjects"})
    return Registry(url, SchemaRegistryClient({"url": url, "timeout": REQUEST_TIMEOUT_SECONDS}))


def delete_subject(registry: Registry, subject: str) -> None:
    """Soft, then hard delete; a subject already gone is fine."""
    for permanent in (False, True):
        try:
            registry.client.delete_subject(subject, permanent=permanent)
        except SchemaRegistryError as error:
            if error.http_status_code != 404:
                raise


def versions(registry: Registry, subject: str) -> list[int]:
    try:
        return registry.client.get_versions(subject)
    except SchemaRegistryError as error:
        if error.http_status_code == 404:
            return []
        raise


def latest_schema(registry: Registry, subject: str) -> dict[str, Any]:
    return json.loads(version_schema(registry, subject, "latest"))


def version_schema(registry: Registry, subject: str, version: int | str) -> str:
    """The schema text of one version, read from the registry (the client caches `latest`)."""
    response = httpx.get(f"{registry.url}/subjects/{subject}/versions/{version}", timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code == 200, f"{subject} version {version}: the registry answered {response.status_code} {response.text}"
    return response.json()["schema"]



def row_record(envelope: dict[str, Any]) -> dict[str, Any]:
    """The `Value` record (the table's row) inside a Debezium envelope schema."""
    for field in envelope["fields"]:
        if field["name"] == "before":
            return next(branch for branch in field["type"] if isinstance(branch, dict))
    raise AssertionError(f"not a Debezium envelope: {sorted(field['name'] for field in envelope['fields'])}")


def row_fields(envelope: dict[str, Any]) -> list[str]:
    return [field["name"] for field in row_record(envelope)["fields"]]


def with_row_record(envelope: dict[str, Any], change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> str:
    """The envelope schema text with its row record's fields changed by `change` (a candidate
    schema as a producer would propose it)."""
    candidate = json.loads(json.dumps(envelope))
    record = row_record(candidate)
    record["fields"] = change(record["fields"])
    return json.dumps(candidate)


def version_id(registry: Registry, subject: str, version: int) -> int:
    """The schema id of one version: what records written with it carry after the magic byte."""
    response = httpx.get(f"{registry.url}/subjects/{subject}/versions/{version}", timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code == 200, f"{subject} version {version}: the registry answered {response.status_code} {response.text}"
    return response.json()["id"]


def schema_id_of(raw: bytes) -> int:
    assert raw[:1] == bytes([CONFLUENT_MAGIC]) and len(raw) >= 5, f"not a Confluent-framed Avro record: {raw[:8]!r}"
    return int.from_bytes(raw[1:5], "big")


def value_subject(table: LakeTable) -> str:
    return f"{table.topic}-value"


def key_subject(table: LakeTable) -> str:
    return f"{table.topic}-key"


@contextmanager
def avro_table(
    stack: StackOutputs, pg: psycopg.Connection, admin: AdminClient, catalog: Catalog, registry: Registry, columns_sql: str
) -> Iterator[LakeTable]:
    """`inventory.avro_<unique>` in Postgres, replicated through the registry into Iceberg until the
    test ends; then the table, its topic, its Iceberg table and its subjects are removed."""
    with lake_postgres_table(stack, pg, admin, catalog, columns_sql, AVRO_PREFIX, out.AVRO_TOPIC_PREFIX) as table:
        try:
            yield table
        finally:
            # No change follows the test, so the connector registers nothing under them again.
            for subject in (value_subject(table), key_subject(table)):
                delete_subject(registry, subject)


def source_rows(pg: psycopg.Connection, table: LakeTable) -> list[dict[str, Any]]:
    with pg.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(f"SELECT * FROM {table.qualified}").fetchall()


def lake_rows(catalog: Catalog, table: LakeTable) -> Callable[[], list[dict[str, Any]]]:
    return lambda: iceberg_rows(catalog, table.identifier)


def wait_for_versions(registry: Registry, subject: str, count: int, timeout: float = 60.0) -> list[int]:
    """Polls until `subject` has `count` versions; fails naming what it has."""
    deadline = time.monotonic() + timeout
    while True:
        found = versions(registry, subject)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{subject}: {count} versions expected within {timeout:.0f}s, the registry has {found}"
        time.sleep(0.25)


@dataclass(frozen=True)
class AvroRecord:
    offset: int
    schema_id: int
    value: dict[str, Any] | None


def topic_records(stack: StackOutputs, topic: str, reader_schema: str | None = None, timeout: float = 30.0) -> list[AvroRecord]:
    """Every value record now on `topic`, decoded by confluent-kafka's AvroDeserializer: with the
    writer's schema, or resolved to `reader_schema` (an older version, as a consumer still on it reads)."""
    client = registry_of(stack).client
    deserialize = AvroDeserializer(client, schema_str=reader_schema) if reader_schema else AvroDeserializer(client)
    consumer = Consumer(
        {"bootstrap.servers": stack.kafka_bootstrap, "group.id": unique_name("avro-reader"), "enable.auto.commit": False}
    )
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
        consumer.assign([TopicPartition(topic, 0, low)])
        records: list[AvroRecord] = []
        deadline = time.monotonic() + timeout
        while (not records or records[-1].offset < high - 1) and high > low:
            assert time.monotonic() < deadline, f"{topic}: offsets {low}..{high - 1} not read within {timeout:.0f}s (read {len(records)})"
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            raw = message.value()
            value = None if raw is None else deserialize(raw, SerializationContext(topic, MessageField.VALUE))
            records.append(AvroRecord(message.offset(), schema_id_of(raw) if raw else -1, value))
        return records
    finally:
        consumer.close()


def schema_events(stack: StackOutputs, subject: str, since: dict[int, int], timeout: float = 30.0, want: int = 1) -> list[dict[str, Any]]:
    """The registry's change events for `subject` after the offsets `since` (from `events_end`):
    [{"event": CloudEvent type, "version", "artifactId", "type": AVRO}], once `want` of them arrived."""
    topic = stack[out.SCHEMA_EVENTS_TOPIC]
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": unique_name("schema-events"), "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, partition, offset) for partition, offset in since.items()])
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(found) < want:
            assert time.monotonic() < deadline, f"{topic}: {want} events for {subject} expected within {timeout:.0f}s, got {found}"
            message = consumer.poll(0.5)
            if message is None or message.error() or message.key() != subject.encode():
                continue
            headers = {key: value.decode() for key, value in message.headers() or []}
            found.append({**json.loads(message.value()), "event": headers.get("ce_type")})
        return found
    finally:
        consumer.close()


def events_end(stack: StackOutputs, timeout: float = 10.0) -> dict[int, int]:
    """The end offset of every partition of the registry's events topic, to read what comes after."""
    topic = stack[out.SCHEMA_EVENTS_TOPIC]
    consumer = Consumer({"bootstrap.servers": stack.kafka_bootstrap, "group.id": unique_name("schema-events"), "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        return {partition: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)[1] for partition in partitions}
    finally:
        consumer.close()


def register(registry: Registry, subject: str, schema_text: str) -> int:
    return registry.client.register_schema(subject, Schema(schema_text, "AVRO"))


def set_level(registry: Registry, subject: str, level: str) -> None:
    response = httpx.put(f"{registry.url}/config/{subject}", json={"compatibility": level}, timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code == 200, f"{subject}: setting {level} answered {response.status_code} {response.text}"


def level_of(registry: Registry, subject: str) -> str:
    response = httpx.get(f"{registry.url}/config/{subject}", timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code == 200, f"{subject}: its level answered {response.status_code} {response.text}"
    return response.json()["compatibilityLevel"]


def compatible_with_latest(registry: Registry, subject: str, schema_text: str) -> tuple[bool, str]:
    """(compatible, the registry's reason) of a candidate checked against the subject's latest
    version by the subject's rule, without registering it."""
    response = httpx.post(
        f"{registry.url}/compatibility/subjects/{subject}/versions/latest",
        params={"verbose": "true"},
        json={"schema": schema_text},
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    assert response.status_code == 200, f"{subject}: the compatibility check answered {response.status_code} {response.text}"
    body = response.json()
    return body["is_compatible"], str(body.get("reason") or body.get("messages") or "")


def register_answer(registry: Registry, subject: str, schema_text: str) -> tuple[int, str]:
    """(HTTP status, body) of registering a schema, whatever the registry decides: 200 took it, 409
    refused it as incompatible with the versions the subject's level checks."""
    response = httpx.post(f"{registry.url}/subjects/{subject}/versions", json={"schema": schema_text}, timeout=REQUEST_TIMEOUT_SECONDS)
    return response.status_code, response.text


def register_refused(registry: Registry, subject: str, schema_text: str) -> tuple[int, str]:
    """Registers a schema expected to be refused: (HTTP status, the registry's message)."""
    response = httpx.post(f"{registry.url}/subjects/{subject}/versions", json={"schema": schema_text}, timeout=REQUEST_TIMEOUT_SECONDS)
    assert response.status_code >= 400, f"{subject}: the registry took the schema ({response.text}) that it should have refused"
    return response.status_code, response.json().get("message", response.text)
