"""Debezium change events in Avro (Confluent wire format), read into what the JSON converter sends.

Debezium's Avro converter (Apicurio's, `as-confluent`) frames each key and value as byte 0, a 4-byte
big-endian schema id and the Avro binary; the writer schema is `GET <registry>/schemas/ids/{id}`
on a Confluent-compatible registry. Connect's schema travels in the Avro schema's `connect.*`
properties (`connect.name` for Debezium's semantic types, `connect.parameters`, `connect.type` for
int8/int16 on an Avro int), and an optional field is a union with null.

:class:`AvroDecoder` turns a framed key or value into the JSON converter's `(payload, schema)`: the
Connect schema dict (`type`, `optional`, `name`, `version`, `parameters`, `field`, `fields`,
`items`, …) and the payload in JSON shapes (bytes and decimals as base64, records as dicts), so
:mod:`pipelines.debezium` decodes both formats with the same code into the same events.
"""

from __future__ import annotations

import base64
import copy
import decimal
import io
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.schema import SchemaParseException

from pipelines.framing import CONFLUENT_HEADER_BYTES, DecodeError, is_confluent_avro
from pipelines.sinks.errors import SchemaRegistryUnavailableError

_PRIMITIVES = {
    "int": "int32",
    "long": "int64",
    # What the JSON converter calls FLOAT32 and FLOAT64.
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "string": "string",
    "bytes": "bytes",
}
_NAMED_KINDS = frozenset({"record", "enum", "fixed"})
_CONNECT_TYPES = frozenset({"int8", "int16", "int32", "int64", "float", "double", "boolean", "string", "bytes"})
# Avro logical types that Connect maps to its own logical types when `connect.name` does not say.
_CONNECT_LOGICAL = {
    ("int", "date"): "org.apache.kafka.connect.data.Date",
    ("int", "time-millis"): "org.apache.kafka.connect.data.Time",
    ("long", "timestamp-millis"): "org.apache.kafka.connect.data.Timestamp",
}
# Avro schema properties Connect's Avro converters write, and what the JSON converter calls them.
_CONNECT_PROPERTIES = (
    ("connect.version", "version"),
    ("connect.doc", "doc"),
    ("connect.parameters", "parameters"),
    ("connect.default", "default"),
)
DECIMAL = "org.apache.kafka.connect.data.Decimal"
SCHEMA_NOT_FOUND = 40403
"""The Confluent registry API's error code for a schema id it does not have (with HTTP 404)."""


class UnsupportedAvroSchema(ValueError):
    """An Avro schema with no Connect equivalent (a union of several types, a recursive record, …)."""


def _is_null(branch: Any) -> bool:
    return branch == "null" or (isinstance(branch, Mapping) and branch.get("type") == "null")


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _SchemaTranslator:
    """Walks one Avro schema, remembering named types so later references to them resolve."""

    def __init__(self) -> None:
        self.named: dict[str, dict[str, Any]] = {}

    def translate(self, avro: Any, namespace: str | None) -> dict[str, Any]:
        if isinstance(avro, list):
            return self._union(avro, namespace)
        if avro == "null":
            raise UnsupportedAvroSchema("Avro type 'null' alone has no Connect equivalent")
        if isinstance(avro, str):
            if avro in _PRIMITIVES:
                return {"type": _PRIMITIVES[avro], "optional": False}
            return self._reference(avro, namespace)
        if not isinstance(avro, Mapping):
            raise UnsupportedAvroSchema(f"{avro!r} is not an Avro schema")
        kind = avro.get("type")
        if isinstance(kind, (list, Mapping)):
            # {"type": {...}} wraps a schema in another.
            return self.translate(kind, namespace)
        if kind in _NAMED_KINDS:
            return self._named(avro, namespace)
        if kind in _PRIMITIVES:
            connect = {"type": _PRIMITIVES[kind], "optional": False}
            if avro.get("connect.type") in _CONNECT_TYPES:
                connect["type"] = avro["connect.type"]
            return self._annotated(connect, avro)
        if kind == "array":
            return self._array(avro, namespace)
        if kind == "map":
            values = self.translate(avro.get("values"), namespace)
            keys = {"type": "string", "optional": False}
            return self._annotated({"type": "map", "keys": keys, "values": values, "optional": False}, avro)
        if isinstance(kind, str) and kind != "null":
            return self._annotated(self._reference(kind, namespace), avro)
        raise UnsupportedAvroSchema(f"Avro type {kind!r} has no Connect equivalent")

    def _union(self, branches: list[Any], namespace: str | None) -> dict[str, Any]:
        present = [branch for branch in branches if not _is_null(branch)]
        if len(present) != 1:
            raise UnsupportedAvroSchema(
                f"the union {json.dumps(branches)[:200]} is not an optional value (null and one type); Connect writes no such union"
            )
        return {**self.translate(present[0], namespace), "optional": len(present) < len(branches)}

    def _reference(self, name: str, namespace: str | None) -> dict[str, Any]:
        for candidate in (_fullname(name, namespace), name):
            if candidate in self.named:
                # A copy: the same named record appears as `before` and `after`, each with its own `field`.
                return copy.deepcopy(self.named[candidate])
        raise UnsupportedAvroSchema(f"the type name {name!r} is not defined before its use (a recursive record?)")

    def _named(self, avro: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
        name = avro.get("name")
        if not isinstance(name, str):
            raise UnsupportedAvroSchema(f"a named Avro type without a name: {json.dumps(avro)[:200]}")
        own_namespace = avro.get("namespace") if isinstance(avro.get("namespace"), str) else namespace
        fullname = _fullname(name, own_namespace)
        enclosing = fullname.rsplit(".", 1)[0] if "." in fullname else None
        kind = avro["type"]
        if kind == "record":
            declared = avro.get("fields")
            if not isinstance(declared, list):
                raise UnsupportedAvroSchema(f"record {fullname} has no list of fields")
            fields = [{**self.translate(column.get("type"), enclosing), "field": column.get("name")} for column in declared]
            connect: dict[str, Any] = {"type": "struct", "fields": fields, "optional": False}
        elif kind == "enum":
            connect = {"type": "string", "optional": False}
        else:
            connect = {"type": "bytes", "optional": False}
        connect = self._annotated(connect, avro)
        self.named[fullname] = connect
        return copy.deepcopy(connect)

    def _array(self, avro: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
        avro_items = avro.get("items")
        items = self.translate(avro_items, namespace)
        item_name = avro_items.get("name") if isinstance(avro_items, Mapping) else avro_items
        entry = {column.get("field"): column for column in items.get("fields") or []} if items.get("type") == "struct" else {}
        if set(entry) == {"key", "value"} and isinstance(item_name, str) and item_name.endswith("MapEntry"):
            # Connect's Avro converters write a map whose keys are not strings as an array of
            # key/value records; the JSON converter writes it as a list of [key, value] pairs.
            connect = {"type": "map", "keys": entry["key"], "values": entry["value"], "optional": False}
            for part in (connect["keys"], connect["values"]):
                part.pop("field", None)
            return self._annotated(connect, avro)
        return self._annotated({"type": "array", "items": items, "optional": False}, avro)

    @staticmethod
    def _annotated(connect: dict[str, Any], avro: Mapping[str, Any]) -> dict[str, Any]:
        name = avro.get("connect.name")
        logical = avro.get("logicalType")
        if name is None and logical == "decimal":
            name = DECIMAL
            connect["parameters"] = {"scale": str(avro.get("scale", 0))}
            if "precision" in avro:
                connect["parameters"]["connect.decimal.precision"] = str(avro["precision"])
        elif name is None:
            name = _CONNECT_LOGICAL.get((avro.get("type"), logical))
        if name is not None:
            connect["name"] = name
        for avro_key, connect_key in _CONNECT_PROPERTIES:
            if avro_key in avro:
                connect[connect_key] = copy.deepcopy(avro[avro_key])
        return connect


def connect_schema(avro: Any) -> dict[str, Any]:
    """The Connect schema (as the JSON converter writes it) that an Avro writer schema stands for.

    Raises :class:`UnsupportedAvroSchema` for an Avro schema Connect would not have written.
    """
    return _SchemaTranslator().translate(avro, None)


def _scale(schema: Mapping[str, Any]) -> int:
    return int((schema.get("parameters") or {}).get("scale", 0))


def _unscaled_bytes(value: decimal.Decimal, scale: int) -> bytes:
    """A decimal as Connect's Decimal carries it: the unscaled integer, two's complement, big-endian,
    in the fewest bytes (Java's BigInteger.toByteArray)."""
    if not value.is_finite():
        raise ValueError(f"decimal {value} is not a finite number")
    sign, digits, exponent = value.as_tuple()
    unscaled = int("".join(map(str, digits)) or "0")
    shift = int(exponent) + scale
    if shift >= 0:
        unscaled *= 10**shift
    else:
        unscaled, remainder = divmod(unscaled, 10**-shift)
        if remainder:
            raise ValueError(f"decimal {value} has more fraction digits than the schema's scale {scale}")
    unscaled = -unscaled if sign else unscaled
    return unscaled.to_bytes((unscaled if unscaled >= 0 else ~unscaled).bit_length() // 8 + 1, "big", signed=True)


def _float32(value: float) -> float:
    """The float an Avro float (32 bits) was, as the JSON converter prints it (Java's shortest
    representation), not the 64-bit widening of its bits: 0.1f reads back as 0.10000000149011612."""
    if not math.isfinite(value):
        return value
    for digits in range(1, 10):
        shortest = float(f"{value:.{digits}g}")
        try:
            narrowed = struct.unpack("<f", struct.pack("<f", shortest))[0]
        except OverflowError:
            # Rounded past the largest float (3.4028235e38 to 3.4e38): more digits are needed.
            continue
        if narrowed == value:
            return shortest
    return value


def connect_payload(value: Any, schema: Mapping[str, Any]) -> Any:
    """An Avro-decoded value in the JSON converter's shape for its Connect schema: bytes as base64
    text (a Decimal as its unscaled bytes at the schema's scale), records as dicts, maps of
    non-string keys as [key, value] pairs."""
    if value is None:
        return None
    kind = schema.get("type")
    if kind == "bytes":
        if isinstance(value, decimal.Decimal):
            value = _unscaled_bytes(value, _scale(schema))
        return base64.b64encode(value).decode("ascii")
    if kind == "float" and isinstance(value, float):
        return _float32(value)
    if kind == "struct":
        return {column["field"]: connect_payload(value.get(column["field"]), column) for column in schema.get("fields") or []}
    if kind == "array":
        return [connect_payload(item, schema.get("items") or {}) for item in value]
    if kind == "map":
        keys, values = schema.get("keys") or {}, schema.get("values") or {}
        if isinstance(value, Mapping):
            return {entry_key: connect_payload(entry, values) for entry_key, entry in value.items()}
        return [[connect_payload(entry.get("key"), keys), connect_payload(entry.get("value"), values)] for entry in value]
    return value


def _without_logical_types(avro: Any) -> Any:
    """The schema with every `logicalType` dropped, so fastavro hands back the encoded primitives
    (a decimal's exact bytes, a date's day count) that the JSON converter would also have sent."""
    if isinstance(avro, list):
        return [_without_logical_types(branch) for branch in avro]
    if not isinstance(avro, Mapping):
        return avro
    plain = {key: value for key, value in avro.items() if key != "logicalType"}
    for part in ("type", "items", "values"):
        if part in plain:
            plain[part] = _without_logical_types(plain[part])
    if isinstance(plain.get("fields"), list):
        plain["fields"] = [
            {**column, "type": _without_logical_types(column.get("type"))} if isinstance(column, Mapping) else column
            for column in plain["fields"]
        ]
    return plain


def _shown(raw: bytes) -> str:
    head = bytes(raw[:16]).hex(" ")
    return f"{len(raw)} bytes ({head}{' …' if len(raw) > 16 else ''})"


@dataclass(frozen=True)
class WriterSchema:
    """One registered Avro schema, ready to read records with."""

    schema_id: int
    avro: Any
    """The schema as registered (JSON)."""
    connect: dict[str, Any]
    """The Connect schema it stands for, as the JSON converter writes it."""
    parsed: Any
    """fastavro's parsed form, logical types dropped."""

    @classmethod
    def parse(cls, schema_id: int, text: str) -> WriterSchema:
        """Raises ValueError (UnsupportedAvroSchema among them) for a schema that is not valid
        Avro or that Connect would not have written."""
        avro = json.loads(text)
        connect = connect_schema(avro)
        try:
            parsed = fastavro.parse_schema(_without_logical_types(avro))
        except SchemaParseException as error:
            raise ValueError(f"not a valid Avro schema: {error}") from error
        return cls(schema_id, avro, connect, parsed)

    def read(self, body: bytes) -> tuple[Any, dict[str, Any]]:
        """The Avro binary after the frame header, as the JSON converter's (payload, schema).

        Raises ValueError when the bytes are not one record of this schema.
        """
        buffer = io.BytesIO(body)
        try:
            value = fastavro.schemaless_reader(buffer, self.parsed, None)
        except Exception as error:  # noqa: BLE001 - fastavro raises anything (EOFError, IndexError, UnicodeDecodeError, …) on other bytes
            raise ValueError(f"does not decode with writer schema {self.schema_id}: {type(error).__name__}: {error}") from error
        left = len(body) - buffer.tell()
        if left:
            raise ValueError(f"has {left} bytes left after one record of writer schema {self.schema_id}: written with another schema?")
        return connect_payload(value, self.connect), self.connect


def schema_id_of(raw: bytes) -> int | None:
    """The schema id of a Confluent-framed record, or None when `raw` is not framed so."""
    return int.from_bytes(raw[1:CONFLUENT_HEADER_BYTES], "big", signed=True) if is_confluent_avro(raw) else None


class AvroDecoder:
    """Reads Confluent-framed Avro keys and values with their writer schemas, fetched from a
    Confluent-compatible registry (`registry_url` is its base, e.g. Apicurio's
    `http://host:port/apis/ccompat/v7`) and kept by id for the life of the decoder.

    A registry that does not answer raises :class:`SchemaRegistryUnavailableError` (transient: the
    sink retries the batch); a schema id the registry does not have, or bytes that are not a record
    of their schema, raise :class:`DecodeError` (the record is dead-lettered).
    """

    def __init__(self, registry_url: str, timeout_seconds: float = 10.0) -> None:
        self.registry_url = registry_url
        self.timeout_seconds = timeout_seconds
        # No retries inside the client: the sink core retries the batch with its own backoff, where
        # the client's (up to 20 s) would hold up every other table the job's one loop steps.
        self._registry = SchemaRegistryClient({"url": registry_url, "timeout": timeout_seconds, "max.retries": 0})
        self._writers: dict[int, WriterSchema] = {}

    def decode(self, raw: bytes, part: str, where: str) -> tuple[Any, dict[str, Any]]:
        """A framed key or value (`part`) of the record at `where` (topic@partition:offset) as the
        JSON converter's (payload, Connect schema)."""
        raw = bytes(raw)
        schema_id = schema_id_of(raw)
        if schema_id is None:
            raise DecodeError(
                f"{where} {part} is not Avro in the Confluent wire format (byte 0, a 4-byte schema id, the Avro binary): {_shown(raw)}"
            )
        if schema_id <= 0:
            # Registries hand out positive 32-bit ids: this is a record that merely starts with a zero byte.
            raise DecodeError(
                f"{where} {part} is neither JSON nor Avro in the Confluent wire format: it starts with byte 0 but"
                f" {_shown(raw[1:CONFLUENT_HEADER_BYTES])} is no schema id a registry gives: {_shown(raw)}"
            )
        writer = self.writer_schema(schema_id, part, where)
        try:
            return writer.read(raw[CONFLUENT_HEADER_BYTES:])
        except ValueError as error:
            raise DecodeError(f"{where} {part} (Avro) {error}") from error

    def writer_schema(self, schema_id: int, part: str = "record", where: str = "") -> WriterSchema:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        text = self._fetch(schema_id, part, where)
        try:
            writer = WriterSchema.parse(schema_id, text)
        except (ValueError, TypeError, LookupError, RecursionError) as error:
            raise DecodeError(
                f"{where} {part}: writer schema {schema_id} from the schema registry at {self.registry_url} cannot be read: "
                f"{type(error).__name__}: {error}"
            ) from error
        self._writers[schema_id] = writer
        return writer

    def _fetch(self, schema_id: int, part: str, where: str) -> str:
        about = f"{where} {part}: writer schema {schema_id} (GET {self.registry_url.rstrip('/')}/schemas/ids/{schema_id})"
        retried = (
            "the batch is kept and retried; check that the registry is up and that --schema-registry-url is its Confluent-compatible API"
        )
        try:
            schema = self._registry.get_schema(schema_id)
        except SchemaRegistryError as error:
            if error.http_status_code == 404 and error.error_code == SCHEMA_NOT_FOUND:
                raise DecodeError(
                    f"{about}: the registry does not have it ({error.error_message}). The record was written against another "
                    "registry, or this one lost its schemas; it is dead-lettered: replay it from the .dlq topic once the schema is back"
                ) from error
            # Any other 404 is a URL that is not a registry's API (Apicurio's root, its v2 API): the
            # records are fine, and dead-lettering every one of them would be the wrong cure.
            raise SchemaRegistryUnavailableError(
                f"{about}: the registry answered {error.http_status_code} ({error.error_message}); {retried}"
            ) from error
        except Exception as error:  # noqa: BLE001 - see below
            # Short of an answer the client raises its HTTP library's errors (httpx's or httpx2's,
            # whichever is installed: connection refused, timeouts), or a parse error for a 200 that
            # is not a schema answer (a proxy's page): either way the registry is not serving.
            raise SchemaRegistryUnavailableError(
                f"{about}: the registry did not answer ({type(error).__name__}: {error}; timeout {self.timeout_seconds:g}s); {retried}"
            ) from error
        if (schema.schema_type or "AVRO") != "AVRO":
            raise DecodeError(f"{about} is a {schema.schema_type} schema, not Avro")
        if schema.references:
            raise DecodeError(f"{about} refers to other schemas ({len(schema.references)} references), which this decoder does not resolve")
        if not isinstance(schema.schema_str, str):
            raise SchemaRegistryUnavailableError(f"{about}: the answer has no schema text; {retried}")
        return schema.schema_str
