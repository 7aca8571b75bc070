"""Debezium change events decoded into typed rows.

An event is a Kafka record whose value is ``{"schema": ..., "payload": {"before", "after", "op",
"source", "ts_ms", ...}}``; a delete is followed by a tombstone (same key, null value). Column values
are converted from their Connect/Debezium logical types (dates, timestamps, decimals, …) using the
schema that travels with them.

The key and the value each come as JSON (the JSON converter with schemas) or as Avro in the
Confluent wire format (byte 0, a 4-byte schema id, the Avro binary), told apart by their first
byte: no JSON document starts with byte 0. :class:`ChangeDecoder` reads Avro when it has an
:class:`pipelines.avro.AvroDecoder`, which turns it into the JSON converter's payload and schema, so
both formats decode through the same code into the same events.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipelines.framing import CONFLUENT_HEADER_BYTES, DecodeError, FramedAvroDecoder, is_confluent_avro

OPERATIONS = {"c": "create", "u": "update", "d": "delete", "r": "read", "t": "truncate", "m": "message"}
EPOCH = dt.datetime(1970, 1, 1)


UNAVAILABLE_PLACEHOLDER = "__debezium_unavailable_value"
"""What Debezium sends (its `unavailable.value.placeholder` default) for a Postgres TOASTed column an
update did not change: logical decoding does not carry it, so the event does not know the value."""
_UNAVAILABLE_BYTES = base64.b64encode(UNAVAILABLE_PLACEHOLDER.encode()).decode()
_UNAVAILABLE_INTEGERS = list(UNAVAILABLE_PLACEHOLDER.encode())


class Unavailable:
    """The value of a column the source did not send (an unchanged TOASTed value): a sink keeps the
    value it already has. There is one instance, :data:`UNAVAILABLE`."""

    _instance: Unavailable | None = None

    def __new__(cls) -> Unavailable:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNAVAILABLE"


UNAVAILABLE = Unavailable()


def is_unavailable(value: Any, schema: Mapping[str, Any]) -> bool:
    """Debezium's placeholder in the shape of the column: text, base64 bytes, or an array holding it."""
    if value == UNAVAILABLE_PLACEHOLDER:
        return True
    if schema.get("type") == "bytes" and value == _UNAVAILABLE_BYTES:
        return True
    # An array of integers carries the placeholder's bytes, one element each.
    return schema.get("type") == "array" and value in ([UNAVAILABLE_PLACEHOLDER], _UNAVAILABLE_INTEGERS)


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
    def operation(self) -> str:
        return OPERATIONS.get(self.op, self.op)


@dataclass(frozen=True)
class Tombstone:
    """The null-valued record after a delete, so log compaction can drop the key."""

    key: dict[str, Any] | None
    topic: str = ""
    partition: int = -1
    offset: int = -1


class _Malformed(Exception):
    """Why a record cannot be decoded; :meth:`ChangeDecoder.decode` adds where the record sits and raises DecodeError."""


def _describe(value: Any) -> str:
    shown = repr(value)
    return f"{type(value).__name__} {shown if len(shown) <= 60 else shown[:57] + '...'}"


def _is_integer(value: Any) -> bool:
    # bool is an int subclass, but JSON true is never a Connect integer.
    return isinstance(value, int) and not isinstance(value, bool)


# Python's int has no bounds; a Connect integer does, and a value past them fails only later, at a
# table write, where it can no longer be dead-lettered on its own.
_INTEGER_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64}


def _in_range(value: int, bits: int) -> bool:
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


def _optional_int64(value: Any, path: str) -> int | None:
    if value is None:
        return None
    if not _is_integer(value):
        raise _Malformed(f"{path} should be an integer, got {_describe(value)}")
    if not _in_range(value, 64):
        raise _Malformed(f"{path} is out of range for int64: {value}")
    return value


_SHAPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "int8": ("an integer", _is_integer),
    "int16": ("an integer", _is_integer),
    "int32": ("an integer", _is_integer),
    "int64": ("an integer", _is_integer),
    "float32": ("a number", lambda value: _is_integer(value) or isinstance(value, float)),
    "float64": ("a number", lambda value: _is_integer(value) or isinstance(value, float)),
    # What the JSON converter calls them.
    "float": ("a number", lambda value: _is_integer(value) or isinstance(value, float)),
    "double": ("a number", lambda value: _is_integer(value) or isinstance(value, float)),
    "boolean": ("a boolean", lambda value: isinstance(value, bool)),
    "string": ("a string", lambda value: isinstance(value, str)),
    "bytes": ("a base64 string", lambda value: isinstance(value, str)),
    "array": ("an array", lambda value: isinstance(value, list)),
    # JsonConverter writes a map with non-string keys as a list of [key, value] pairs.
    "map": ("an object or a list of pairs", lambda value: isinstance(value, (dict, list))),
    "struct": ("an object", lambda value: isinstance(value, dict)),
}


def _expect(value: Any, kind: str, path: str, described_as: str) -> None:
    shape = _SHAPES.get(kind)
    if shape is not None and not shape[1](value):
        raise _Malformed(f"{path} ({described_as}) should be {shape[0]}, got {_describe(value)}")
    bits = _INTEGER_BITS.get(kind)
    if bits is not None and not _in_range(value, bits):
        raise _Malformed(f"{path} ({described_as}) is out of range for {kind}: {value}")


def _base64(value: str, path: str) -> bytes:
    try:
        # validate=True: without it, characters outside the alphabet are silently dropped.
        return base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise _Malformed(f"{path} is not valid base64: {error}") from error


def _decimal_from_bytes(encoded: str, scale: int, path: str) -> decimal.Decimal:
    unscaled = int.from_bytes(_base64(encoded, path), "big", signed=True)
    # Built from sign, digits and exponent: exact at any precision, where arithmetic such as scaleb
    # would round to the context's 28 digits.
    digits = tuple(int(digit) for digit in str(abs(unscaled)))
    return decimal.Decimal((int(unscaled < 0), digits, -scale))


def _decimal_scale(schema: Mapping[str, Any], path: str) -> int:
    parameters = schema.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise _Malformed(f"{path}: schema parameters should be an object, got {_describe(parameters)}")
    scale = parameters.get("scale", 0)
    if _is_integer(scale):
        return scale
    problem = f"{path}: Decimal scale parameter should be an integer, got {_describe(scale)}"
    if not isinstance(scale, str):
        raise _Malformed(problem)
    try:
        # Connect schema parameters travel as strings ("2").
        return int(scale)
    except ValueError as error:
        raise _Malformed(problem) from error


def _variable_scale_decimal(value: Mapping[str, Any], path: str) -> decimal.Decimal:
    scale, encoded = value.get("scale"), value.get("value")
    if not _is_integer(scale) or not isinstance(encoded, str):
        raise _Malformed(f"{path} (VariableScaleDecimal) should be {{scale: integer, value: base64}}, got {_describe(value)}")
    return _decimal_from_bytes(encoded, scale, path)


def _zoned(value: str, parse: Callable[[str], Any], path: str, name: str) -> Any:
    try:
        return parse(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise _Malformed(f"{path} ({name}) is not an ISO-8601 value: {value!r}") from error


def _json_text(value: str, path: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as error:
        raise _Malformed(f"{path} (io.debezium.data.Json) is not JSON: {error}") from error


def _uuid(value: str, path: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError as error:
        raise _Malformed(f"{path} (io.debezium.data.Uuid) is not a UUID: {value!r}") from error


def _since_epoch(path: str, name: str, **delta: int) -> dt.datetime:
    try:
        return EPOCH + dt.timedelta(**delta)
    except OverflowError as error:
        raise _Malformed(f"{path} ({name}) is out of range: {delta}") from error


# Logical type name -> (the JSON shape it travels as, conversion(value, schema, path)).
_LOGICAL: dict[str, tuple[str, Callable[[Any, Mapping[str, Any], str], Any]]] = {
    "org.apache.kafka.connect.data.Decimal": ("bytes", lambda v, s, p: _decimal_from_bytes(v, _decimal_scale(s, p), p)),
    "io.debezium.data.VariableScaleDecimal": ("struct", lambda v, s, p: _variable_scale_decimal(v, p)),
    "io.debezium.time.Date": ("int32", lambda v, s, p: _since_epoch(p, "date", days=v).date()),
    "org.apache.kafka.connect.data.Date": ("int32", lambda v, s, p: _since_epoch(p, "date", days=v).date()),
    "io.debezium.time.Timestamp": ("int64", lambda v, s, p: _since_epoch(p, "timestamp", milliseconds=v)),
    "org.apache.kafka.connect.data.Timestamp": ("int64", lambda v, s, p: _since_epoch(p, "timestamp", milliseconds=v)),
    "io.debezium.time.MicroTimestamp": ("int64", lambda v, s, p: _since_epoch(p, "timestamp", microseconds=v)),
    "io.debezium.time.NanoTimestamp": ("int64", lambda v, s, p: _since_epoch(p, "timestamp", microseconds=v // 1000)),
    "io.debezium.time.ZonedTimestamp": ("string", lambda v, s, p: _zoned(v, dt.datetime.fromisoformat, p, "ZonedTimestamp")),
    "io.debezium.time.Time": ("int32", lambda v, s, p: _since_epoch(p, "time", milliseconds=v).time()),
    "org.apache.kafka.connect.data.Time": ("int32", lambda v, s, p: _since_epoch(p, "time", milliseconds=v).time()),
    "io.debezium.time.MicroTime": ("int64", lambda v, s, p: _since_epoch(p, "time", microseconds=v).time()),
    "io.debezium.time.NanoTime": ("int64", lambda v, s, p: _since_epoch(p, "time", microseconds=v // 1000).time()),
    "io.debezium.time.ZonedTime": ("string", lambda v, s, p: _zoned(v, dt.time.fromisoformat, p, "ZonedTime")),
    "io.debezium.data.Uuid": ("string", lambda v, s, p: _uuid(v, p)),
    "io.debezium.data.Json": ("string", lambda v, s, p: _json_text(v, p)),
}


def _schema_part(schema: Mapping[str, Any], part: str, path: str) -> Mapping[str, Any]:
    found = schema.get(part) or {}
    if not isinstance(found, Mapping):
        raise _Malformed(f"{path}: schema {part!r} should be an object, got {_describe(found)}")
    return found


def _convert(value: Any, schema: Mapping[str, Any], path: str) -> Any:
    """A column value converted by its Connect schema (logical `name` first, then `type`)."""
    if value is None:
        return None
    if is_unavailable(value, schema):
        return UNAVAILABLE
    name, kind = schema.get("name"), schema.get("type")
    logical = _LOGICAL.get(name) if isinstance(name, str) else None
    if logical is not None:
        _expect(value, logical[0], path, name)
        return logical[1](value, schema, path)
    if not isinstance(kind, str):
        # No schema for this column (or an unknown one): pass the JSON value through.
        return value
    _expect(value, kind, path, kind)
    if kind == "bytes":
        return _base64(value, path)
    if kind == "struct":
        return _convert_struct(value, schema, path)
    if kind == "array":
        items = _schema_part(schema, "items", path)
        return [_convert(item, items, f"{path}[{index}]") for index, item in enumerate(value)]
    if kind == "map":
        keys, values = _schema_part(schema, "keys", path), _schema_part(schema, "values", path)
        pairs = value.items() if isinstance(value, dict) else value
        converted = {}
        for index, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise _Malformed(f"{path}[{index}] (map entry) should be a [key, value] pair, got {_describe(pair)}")
            entry_key = _convert(pair[0], keys, f"{path}[{index}].key")
            entry_value = _convert(pair[1], values, f"{path}[{entry_key!r}]")
            try:
                converted[entry_key] = entry_value
            except TypeError as error:
                raise _Malformed(f"{path}[{index}] (map entry) has a key that cannot be a dict key: {_describe(entry_key)}") from error
        return converted
    return value


def _convert_struct(value: Any, schema: Mapping[str, Any], path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{path} should be an object (struct), got {_describe(value)}")
    declared = schema.get("fields") or []
    if not isinstance(declared, list) or not all(isinstance(column, Mapping) for column in declared):
        raise _Malformed(f"{path}: schema 'fields' should be a list of field schemas, got {_describe(declared)}")
    fields = {column.get("field"): column for column in declared}
    # The JSON converter writes every field of a struct, null or not: a required one missing is no
    # record Connect wrote, and a row without it (its key, say) cannot be applied.
    missing = [name for name, column in fields.items() if column.get("optional") is False and name not in value]
    if missing:
        raise _Malformed(f"{path} lacks the required field(s) {missing}")
    return {column: _convert(item, fields.get(column, {}), f"{path}.{column}") for column, item in value.items()}


def _field_schema(envelope_schema: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    declared = envelope_schema.get("fields") or []
    if not isinstance(declared, list):
        raise _Malformed(f"the envelope schema's 'fields' should be a list, got {_describe(declared)}")
    for candidate in declared:
        if isinstance(candidate, Mapping) and candidate.get("field") == name:
            return candidate
    return {}


def _json_document(raw: Any, what: str) -> Any:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            # Decoded here rather than by json.loads, which would also accept UTF-16 and UTF-32.
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as error:
            raise _Malformed(f"{what} is not UTF-8: {error}") from error
    elif not isinstance(raw, str):
        raise _Malformed(f"{what} should be bytes, got {type(raw).__name__}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise _Malformed(f"{what} is not JSON: {error}") from error


def _envelope(document: Any, what: str) -> tuple[Any, Mapping[str, Any]]:
    schema = document.get("schema") or {}
    if not isinstance(schema, Mapping):
        raise _Malformed(f"{what} schema should be an object, got {_describe(schema)}")
    return document["payload"], schema


def _decode_key(raw_key: bytes | None) -> dict[str, Any] | None:
    if raw_key is None:
        return None
    document = _json_document(raw_key, "key")
    if isinstance(document, dict) and "payload" in document:
        payload, schema = _envelope(document, "key")
        key = None if payload is None else _convert_struct(payload, schema, "key")
    elif document is None or isinstance(document, dict):
        key = document
    else:
        raise _Malformed(f"key should be a JSON object (a struct of the primary key), got {_describe(document)}")
    if key == {}:
        # A keyless table's events have no key at all; a key of no columns would match every row.
        raise _Malformed("key has no columns")
    return key


def _optional(value: Any, check: Callable[[Any], bool], path: str, expected: str) -> Any:
    if value is not None and not check(value):
        raise _Malformed(f"{path} should be {expected}, got {_describe(value)}")
    return value


def _position(source: Any) -> SourcePosition:
    if not isinstance(source, dict):
        raise _Malformed(f"source should be an object, got {_describe(source)}")

    def text(name: str) -> str | None:
        return _optional(source.get(name), lambda value: isinstance(value, str), f"source.{name}", "a string")

    def integer(name: str) -> int | None:
        return _optional_int64(source.get(name), f"source.{name}")

    snapshot = _optional(source.get("snapshot"), lambda value: isinstance(value, (str, bool)), "source.snapshot", "a string or boolean")
    return SourcePosition(
        connector=text("connector") or "",
        database=text("db") or "",
        table=text("table") or "",
        schema=text("schema"),
        ts_ms=integer("ts_ms") or 0,
        snapshot=snapshot not in (None, False, "false"),
        lsn=integer("lsn"),
        tx_id=integer("txId"),
        binlog_file=text("file"),
        binlog_pos=integer("pos"),
        row=integer("row"),
    )


# Operations a sink cannot apply without the row as it is after the change.
_NEEDS_AFTER = frozenset("cru")


def _change_event(
    key: dict[str, Any] | None,
    payload: Any,
    schema: Mapping[str, Any],
    topic: str,
    partition: int,
    offset: int,
    headers: list[tuple[str, bytes]] | None,
) -> ChangeEvent:
    """The event of a value's payload and envelope schema, whichever format they came in."""
    if not isinstance(payload, dict) or "op" not in payload:
        raise _Malformed(f"is not a change event (no 'op'): payload is {_describe(payload)}")
    op = payload["op"]
    if not isinstance(op, str) or op not in OPERATIONS:
        raise _Malformed(f"is not a change event: unknown op {_describe(op)}")
    ts_ms = _optional_int64(payload.get("ts_ms"), "ts_ms") or 0

    def row(name: str) -> dict[str, Any] | None:
        value = payload.get(name)
        return None if value is None else _convert_struct(value, _field_schema(schema, name), name)

    before, after = row("before"), row("after")
    if op in _NEEDS_AFTER and after is None:
        raise _Malformed(f"is a {OPERATIONS[op]} event without an 'after' row")
    return ChangeEvent(
        op=op,
        key=key,
        before=before,
        after=after,
        source=_position({} if payload.get("source") is None else payload["source"]),
        ts_ms=ts_ms,
        topic=topic,
        partition=partition,
        offset=offset,
        headers=dict(headers or []),
        row_schema=dict(_field_schema(schema, "after") or _field_schema(schema, "before")),
        key_columns=tuple(key) if isinstance(key, dict) else (),
    )


def _json_value(raw_value: bytes) -> tuple[Any, Mapping[str, Any]]:
    document = _json_document(raw_value, "value")
    if not isinstance(document, dict) or "payload" not in document:
        raise _Malformed("has no schema/payload envelope (JsonConverter schemas.enable=false?)")
    return _envelope(document, "value")


class ChangeDecoder:
    """Decodes records whose key and value are each JSON or Confluent-framed Avro (see the module
    docstring); without an `avro` decoder (no schema registry configured) only JSON.

    :meth:`decode` raises :class:`DecodeError`, naming topic@partition:offset and the reason, for
    any record it cannot decode: the caller dead-letters it and keeps going. The Avro decoder may
    also raise a transient error (its registry away): that record is fine, retry it later.
    """

    def __init__(self, avro: FramedAvroDecoder | None = None) -> None:
        self.avro = avro

    def _avro(self, raw: bytes, part: str, where: str) -> tuple[Any, Mapping[str, Any]]:
        if self.avro is None:
            schema_id = int.from_bytes(raw[1:CONFLUENT_HEADER_BYTES], "big")
            raise _Malformed(
                f"{part} is Avro (Confluent wire format, schema id {schema_id}), but this sink has no schema registry URL "
                "configured: start it with --schema-registry-url <the registry's Confluent-compatible API>"
            )
        return self.avro.decode(raw, part, where)

    def _key(self, raw_key: bytes | None, where: str) -> dict[str, Any] | None:
        if raw_key is None or not is_confluent_avro(raw_key):
            return _decode_key(raw_key)
        payload, schema = self._avro(raw_key, "key", where)
        return None if payload is None else _convert_struct(payload, schema, "key")

    def _decode(
        self,
        raw_key: bytes | None,
        raw_value: bytes | None,
        topic: str,
        partition: int,
        offset: int,
        headers: list[tuple[str, bytes]] | None,
        where: str,
    ) -> ChangeEvent | Tombstone:
        key = self._key(raw_key, where)
        if raw_value is None:
            return Tombstone(key, topic, partition, offset)
        payload, schema = self._avro(raw_value, "value", where) if is_confluent_avro(raw_value) else _json_value(raw_value)
        return _change_event(key, payload, schema, topic, partition, offset, headers)

    def decode(
        self,
        raw_key: bytes | None,
        raw_value: bytes | None,
        topic: str = "",
        partition: int = -1,
        offset: int = -1,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> ChangeEvent | Tombstone:
        """Decodes one Kafka record of a Debezium topic."""
        where = f"{topic}@{partition}:{offset}"
        try:
            return self._decode(raw_key, raw_value, topic, partition, offset, headers, where)
        except DecodeError:
            raise
        except _Malformed as malformed:
            raise DecodeError(f"{where} {malformed}") from malformed.__cause__
        except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError, RecursionError) as error:
            # A shape the checks above do not name: still a bad record to dead-letter, not a crash.
            raise DecodeError(f"{where} could not be decoded: {type(error).__name__}: {error}") from error

    def decode_message(self, message: Any) -> ChangeEvent | Tombstone:
        """Decodes a confluent_kafka Message."""
        return self.decode(message.key(), message.value(), message.topic(), message.partition(), message.offset(), message.headers())


JSON_ONLY = ChangeDecoder()
"""The decoder of a sink without a schema registry."""


def decode(
    raw_key: bytes | None,
    raw_value: bytes | None,
    topic: str = "",
    partition: int = -1,
    offset: int = -1,
    headers: list[tuple[str, bytes]] | None = None,
) -> ChangeEvent | Tombstone:
    """Decodes one Kafka record of a Debezium topic in JSON.

    Raises :class:`DecodeError`, naming topic@partition:offset and the reason, for any record it
    cannot decode, and never another exception: the caller dead-letters it and keeps going.
    """
    return JSON_ONLY.decode(raw_key, raw_value, topic, partition, offset, headers)


def decode_message(message: Any) -> ChangeEvent | Tombstone:
    """Decodes a confluent_kafka Message in JSON."""
    return JSON_ONLY.decode_message(message)
