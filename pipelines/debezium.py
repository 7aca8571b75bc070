"""Debezium change events (JSON converter with schemas) decoded into typed rows.

An event is a Kafka record whose value is ``{"schema": ..., "payload": {"before", "after", "op",
"source", "ts_ms", ...}}``; a delete is followed by a tombstone (same key, null value). Column values
are converted from their Connect/Debezium logical types (dates, timestamps, decimals, …) using the
schema that travels with them.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

OPERATIONS = {"c": "create", "u": "update", "d": "delete", "r": "read", "t": "truncate", "m": "message"}
EPOCH = dt.datetime(1970, 1, 1)
EPOCH_DATE = dt.date(1970, 1, 1)


class DecodeError(ValueError):
    """A record is not a Debezium change event this decoder understands (terminal: dead-letter it)."""


@dataclass(frozen=True)
class SourcePosition:
    """Where in the source's log the change was committed."""

    connector: str
    """postgresql, mysql or mariadb."""
    database: str
    table: str
    schema: str | None
    ts_ms: int
    """Commit time at the source, in ms since the epoch."""
    snapshot: bool
    lsn: int | None = None
    """Postgres WAL position."""
    tx_id: int | None = None
    binlog_file: str | None = None
    binlog_pos: int | None = None
    row: int | None = None
    """Row index inside a binlog event (MySQL/MariaDB)."""


@dataclass(frozen=True)
class ChangeEvent:
    """One row change, with typed column values."""

    op: str
    """c (create), u (update), d (delete), r (snapshot read), t (truncate)."""
    key: dict[str, Any] | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    source: SourcePosition
    ts_ms: int
    """When Debezium processed the change."""
    topic: str = ""
    partition: int = -1
    offset: int = -1
    headers: dict[str, bytes] = field(default_factory=dict)
    row_schema: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The Connect schema of the before/after struct: column types for sinks that create tables."""
    key_columns: tuple[str, ...] = ()
    """The source primary key's columns, from the record key."""

    @property
    def row(self) -> dict[str, Any] | None:
        """The row as it is after the change (None for deletes and truncates)."""
        return self.after

    @property
    def operation(self) -> str:
        return OPERATIONS.get(self.op, self.op)


@dataclass(frozen=True)
class Tombstone:
    """The null-valued record after a delete, so log compaction can drop the key."""

    key: dict[str, Any] | None
    topic: str = ""
    partition: int = -1
    offset: int = -1


def _decimal_from_bytes(encoded: str, scale: int) -> decimal.Decimal:
    unscaled = int.from_bytes(base64.b64decode(encoded), "big", signed=True)
    return decimal.Decimal(unscaled).scaleb(-scale)


def _convert(value: Any, schema: Mapping[str, Any]) -> Any:
    """A column value converted by its Connect schema (logical `name` first, then `type`)."""
    if value is None:
        return None
    name = schema.get("name")
    parameters = schema.get("parameters") or {}
    if name in ("org.apache.kafka.connect.data.Decimal",):
        return _decimal_from_bytes(value, int(parameters.get("scale", 0)))
    if name == "io.debezium.data.VariableScaleDecimal":
        return _decimal_from_bytes(value["value"], int(value["scale"]))
    if name in ("io.debezium.time.Date", "org.apache.kafka.connect.data.Date"):
        return EPOCH_DATE + dt.timedelta(days=int(value))
    if name in ("io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp"):
        return EPOCH + dt.timedelta(milliseconds=int(value))
    if name == "io.debezium.time.MicroTimestamp":
        return EPOCH + dt.timedelta(microseconds=int(value))
    if name == "io.debezium.time.NanoTimestamp":
        return EPOCH + dt.timedelta(microseconds=int(value) // 1000)
    if name == "io.debezium.time.ZonedTimestamp":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if name in ("io.debezium.time.Time", "org.apache.kafka.connect.data.Time"):
        return (EPOCH + dt.timedelta(milliseconds=int(value))).time()
    if name == "io.debezium.time.MicroTime":
        return (EPOCH + dt.timedelta(microseconds=int(value))).time()
    if name == "io.debezium.time.ZonedTime":
        return dt.time.fromisoformat(value.replace("Z", "+00:00"))
    if name == "io.debezium.data.Uuid":
        return uuid.UUID(value)
    if name == "io.debezium.data.Json":
        return json.loads(value)
    kind = schema.get("type")
    if kind == "bytes":
        return base64.b64decode(value)
    if kind == "struct":
        return _convert_struct(value, schema)
    if kind == "array":
        return [_convert(item, schema.get("items", {})) for item in value]
    return value


def _convert_struct(value: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    fields = {column["field"]: column for column in schema.get("fields", [])}
    return {column: _convert(item, fields.get(column, {})) for column, item in value.items()}


def _field_schema(envelope_schema: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    for candidate in envelope_schema.get("fields", []):
        if candidate.get("field") == name:
            return candidate
    return {}


def _decode_key(raw_key: bytes | None) -> dict[str, Any] | None:
    if raw_key is None:
        return None
    document = json.loads(raw_key)
    if isinstance(document, dict) and "payload" in document:
        payload, schema = document["payload"], document.get("schema") or {}
        return _convert_struct(payload, schema) if isinstance(payload, dict) else payload
    return document


def _position(source: Mapping[str, Any]) -> SourcePosition:
    snapshot = source.get("snapshot")
    return SourcePosition(
        connector=source.get("connector", ""),
        database=source.get("db", ""),
        table=source.get("table", ""),
        schema=source.get("schema"),
        ts_ms=int(source.get("ts_ms") or 0),
        snapshot=snapshot not in (None, False, "false"),
        lsn=source.get("lsn"),
        tx_id=source.get("txId"),
        binlog_file=source.get("file"),
        binlog_pos=source.get("pos"),
        row=source.get("row"),
    )


def decode(
    raw_key: bytes | None,
    raw_value: bytes | None,
    topic: str = "",
    partition: int = -1,
    offset: int = -1,
    headers: list[tuple[str, bytes]] | None = None,
) -> ChangeEvent | Tombstone:
    """Decodes one Kafka record of a Debezium topic; raises :class:`DecodeError` for anything else."""
    key = _decode_key(raw_key)
    if raw_value is None:
        return Tombstone(key, topic, partition, offset)
    try:
        document = json.loads(raw_value)
    except ValueError as error:
        raise DecodeError(f"{topic}@{partition}:{offset} is not JSON: {error}") from error
    if not isinstance(document, dict) or "payload" not in document:
        raise DecodeError(f"{topic}@{partition}:{offset} has no schema/payload envelope (JsonConverter schemas.enable=false?)")
    payload, schema = document["payload"], document.get("schema") or {}
    if not isinstance(payload, dict) or "op" not in payload:
        raise DecodeError(f"{topic}@{partition}:{offset} is not a change event (no 'op')")

    def row(name: str) -> dict[str, Any] | None:
        value = payload.get(name)
        return None if value is None else _convert_struct(value, _field_schema(schema, name))

    return ChangeEvent(
        op=payload["op"],
        key=key,
        before=row("before"),
        after=row("after"),
        source=_position(payload.get("source") or {}),
        ts_ms=int(payload.get("ts_ms") or 0),
        topic=topic,
        partition=partition,
        offset=offset,
        headers=dict(headers or []),
        row_schema=dict(_field_schema(schema, "after") or _field_schema(schema, "before")),
        key_columns=tuple(key) if isinstance(key, dict) else (),
    )


def decode_message(message: Any) -> ChangeEvent | Tombstone:
    """Decodes a confluent_kafka Message."""
    return decode(message.key(), message.value(), message.topic(), message.partition(), message.offset(), message.headers())
