"""Debezium's Avro (Confluent wire format) decodes to the same change events as its JSON.

The schemas are those Debezium 3.5 wrote for one Postgres table through Apicurio's AvroConverter
(as-confluent) and through the JSON converter; the Avro bytes are written here with fastavro. Writer
schemas come over HTTP from a registry stand-in on loopback that answers like Apicurio's
Confluent-compatible API, so the real registry client runs.
"""

from __future__ import annotations

import base64
import decimal
import http.server
import io
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fastavro
import pytest
from confluent_kafka import Message

from pipelines.avro import AvroDecoder, UnsupportedAvroSchema, connect_payload, connect_schema
from pipelines.debezium import JSON_ONLY, UNAVAILABLE, UNAVAILABLE_PLACEHOLDER, ChangeDecoder, ChangeEvent, DecodeError, Tombstone
from pipelines.sinks.core import CdcSink, PendingBatch, RetryPolicy
from pipelines.sinks.errors import SchemaRegistryUnavailableError, TransientSinkError
from tests.support.sinks import RecordingDeadLetters, ScriptedWriter, closed_port

TOPIC = "spikeavro.inventory.spike_avro"
VALUE_NAME = "spikeavro.inventory.spike_avro.Value"


# --- The table's schemas, as Debezium wrote them ---------------------------------------------

def avro_column(name: str, avro_type: Any, optional: bool = True) -> dict[str, Any]:
    return {"name": name, "type": ["null", avro_type], "default": None} if optional else {"name": name, "type": avro_type}


def semantic(base: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"type": base, "connect.version": 1, "connect.name": name, **extra}


AVRO_VALUE = {
    "type": "record",
    "name": "Value",
    "fields": [
        avro_column("id", "int", optional=False),
        avro_column("name", "string"),
        avro_column("price", {"type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
                              "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
                              "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}),
        avro_column("n_any", {"type": "record", "name": "VariableScaleDecimal", "namespace": "io.debezium.data",
                              "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
                              "connect.doc": "Variable scaled decimal", "connect.version": 1,
                              "connect.name": "io.debezium.data.VariableScaleDecimal"}),
        avro_column("ts", semantic("string", "io.debezium.time.ZonedTimestamp")),
        avro_column("d", semantic("int", "io.debezium.time.Date")),
        avro_column("j", semantic("string", "io.debezium.data.Json")),
        avro_column("u", semantic("string", "io.debezium.data.Uuid")),
        avro_column("b", "bytes"),
        avro_column("arr", {"type": "array", "items": ["null", "int"]}),
        avro_column("f", "double"),
        avro_column("flag", "boolean"),
        avro_column("small", {"type": "int", "connect.type": "int16"}),
    ],
    "connect.name": VALUE_NAME,
}
AVRO_SOURCE = {
    "type": "record",
    "name": "Source",
    "namespace": "io.debezium.connector.postgresql",
    "fields": [
        avro_column("version", "string", optional=False),
        avro_column("connector", "string", optional=False),
        avro_column("name", "string", optional=False),
        avro_column("ts_ms", "long", optional=False),
        {"name": "snapshot", "type": [semantic("string", "io.debezium.data.Enum", **{
            "connect.parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
            "connect.default": "false"}), "null"], "default": "false"},
        avro_column("db", "string", optional=False),
        avro_column("sequence", "string"),
        avro_column("ts_us", "long"),
        avro_column("ts_ns", "long"),
        avro_column("schema", "string", optional=False),
        avro_column("table", "string", optional=False),
        avro_column("txId", "long"),
        avro_column("lsn", "long"),
        avro_column("xmin", "long"),
        avro_column("origin", "string"),
        avro_column("origin_lsn", "long"),
    ],
    "connect.version": 1,
    "connect.name": "io.debezium.connector.postgresql.Source",
}
AVRO_ENVELOPE = {
    "type": "record",
    "name": "Envelope",
    "namespace": "spikeavro.inventory.spike_avro",
    "fields": [
        avro_column("before", AVRO_VALUE),
        # A reference to the record defined in `before`, by its name in the envelope's namespace.
        avro_column("after", "Value"),
        avro_column("source", AVRO_SOURCE, optional=False),
        avro_column("transaction", {"type": "record", "name": "block", "namespace": "event", "fields": [
            avro_column("id", "string", optional=False), avro_column("total_order", "long", optional=False),
            avro_column("data_collection_order", "long", optional=False)], "connect.version": 1, "connect.name": "event.block"}),
        avro_column("op", "string", optional=False),
        avro_column("ts_ms", "long"),
        avro_column("ts_us", "long"),
        avro_column("ts_ns", "long"),
    ],
    "connect.version": 2,
    "connect.name": "spikeavro.inventory.spike_avro.Envelope",
}
AVRO_KEY = {"type": "record", "name": "Key", "namespace": "spikeavro.inventory.spike_avro", "fields": [{"name": "id", "type": "int"}],
            "connect.name": "spikeavro.inventory.spike_avro.Key"}


def connect(kind: str, name: str | None = None, optional: bool = True, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "optional": optional, **({"name": name} if name else {}), **extra}


def column(field_name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "field": field_name}


JSON_ROW_FIELDS = [
    column("id", connect("int32", optional=False)),
    column("name", connect("string")),
    column("price", connect("bytes", "org.apache.kafka.connect.data.Decimal", version=1,
                            parameters={"scale": "2", "connect.decimal.precision": "10"})),
    column("n_any", connect("struct", "io.debezium.data.VariableScaleDecimal", version=1, doc="Variable scaled decimal", fields=[
        column("scale", connect("int32", optional=False)), column("value", connect("bytes", optional=False))])),
    column("ts", connect("string", "io.debezium.time.ZonedTimestamp", version=1)),
    column("d", connect("int32", "io.debezium.time.Date", version=1)),
    column("j", connect("string", "io.debezium.data.Json", version=1)),
    column("u", connect("string", "io.debezium.data.Uuid", version=1)),
    column("b", connect("bytes")),
    column("arr", connect("array", items=connect("int32"))),
    column("f", connect("double")),
    column("flag", connect("boolean")),
    column("small", connect("int16")),
]
JSON_ROW = connect("struct", VALUE_NAME, fields=JSON_ROW_FIELDS)
JSON_ENVELOPE = connect("struct", "spikeavro.inventory.spike_avro.Envelope", optional=False, version=2, fields=[
    column("before", JSON_ROW),
    column("after", JSON_ROW),
    column("source", connect("struct", "io.debezium.connector.postgresql.Source", optional=False, version=1, fields=[
        column("version", connect("string", optional=False)),
        column("connector", connect("string", optional=False)),
        column("name", connect("string", optional=False)),
        column("ts_ms", connect("int64", optional=False)),
        column("snapshot", connect("string", "io.debezium.data.Enum", version=1, default="false", parameters={
            "allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"})),
        column("db", connect("string", optional=False)),
        column("sequence", connect("string")),
        column("ts_us", connect("int64")),
        column("ts_ns", connect("int64")),
        column("schema", connect("string", optional=False)),
        column("table", connect("string", optional=False)),
        column("txId", connect("int64")),
        column("lsn", connect("int64")),
        column("xmin", connect("int64")),
        column("origin", connect("string")),
        column("origin_lsn", connect("int64")),
    ])),
    column("transaction", connect("struct", "event.block", version=1, fields=[
        column("id", connect("string", optional=False)), column("total_order", connect("int64", optional=False)),
        column("data_collection_order", connect("int64", optional=False))])),
    column("op", connect("string", optional=False)),
    column("ts_ms", connect("int64")),
    column("ts_us", connect("int64")),
    column("ts_ns", connect("int64")),
])
JSON_KEY = connect("struct", "spikeavro.inventory.spike_avro.Key", optional=False, fields=[column("id", connect("int32", optional=False))])


# --- One row in both formats -------------------------------------------------------------------

def source(snapshot: str = "false", lsn: int = 26467960) -> dict[str, Any]:
    return {"version": "3.5.0.Final", "connector": "postgresql", "name": "spikeavro", "ts_ms": 1796127511809, "snapshot": snapshot,
            "db": "inventory", "sequence": '[null,"26467960"]', "ts_us": 1796127511809211, "ts_ns": 1796127511809211000,
            "schema": "inventory", "table": "spike_avro", "txId": 742, "lsn": lsn, "xmin": None, "origin": None, "origin_lsn": None}


# The same row as each converter carries it: Avro's decimals and bytes as such, JSON's in base64.
AVRO_ROW = {"id": 1, "name": "a", "price": decimal.Decimal("1.25"), "n_any": {"scale": 5, "value": (314159).to_bytes(3, "big")},
            "ts": "2026-12-01T12:18:31.807119Z", "d": 20788, "j": '{"x": 1}', "u": "357ef014-0f99-4a21-9b4f-c1f0f64928ca",
            "b": b"\x01\x02", "arr": [1, 2], "f": 2.5, "flag": True, "small": 7}
JSON_ROW_VALUES = {"id": 1, "name": "a", "price": "fQ==", "n_any": {"scale": 5, "value": "BMsv"}, "ts": "2026-12-01T12:18:31.807119Z",
                   "d": 20788, "j": '{"x": 1}', "u": "357ef014-0f99-4a21-9b4f-c1f0f64928ca", "b": "AQI=", "arr": [1, 2], "f": 2.5,
                   "flag": True, "small": 7}
SPARSE_AVRO_ROW = {"id": 2, "name": "", "price": decimal.Decimal("-99999999.99"),
                   "n_any": {"scale": 9, "value": (-123456789012345678901234567890123456789).to_bytes(16, "big", signed=True)},
                   "ts": None, "d": None, "j": None, "u": None, "b": None, "arr": [3, None, -7], "f": -1.5e300, "flag": None, "small": -32768}
SPARSE_JSON_ROW = {"id": 2, "name": "", "price": "/av0HAE=", "n_any": {"scale": 9, "value": "ox8WWp/qATpVIFzXUcZ+6w=="},
                   "ts": None, "d": None, "j": None, "u": None, "b": None, "arr": [3, None, -7], "f": -1.5e300, "flag": None, "small": -32768}
HEADERS = [("__debezium.context.connectorLogicalName", b"spikeavro"), ("__debezium.context.taskId", b"0")]


def framed(schema_id: int, schema: Any, record: Any) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), record)
    return b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()


KEY_ID, VALUE_ID = 2, 3


def avro_key(row_id: int) -> bytes:
    return framed(KEY_ID, AVRO_KEY, {"id": row_id})


def avro_value(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, snapshot: str = "false") -> bytes:
    envelope = {"before": before, "after": after, "source": source(snapshot), "transaction": None, "op": op,
                "ts_ms": 1796127511904, "ts_us": 1796127511904530, "ts_ns": 1796127511904530574}
    return framed(VALUE_ID, AVRO_ENVELOPE, envelope)


def json_key(row_id: int) -> bytes:
    return json.dumps({"schema": JSON_KEY, "payload": {"id": row_id}}).encode()


def json_value(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, snapshot: str = "false") -> bytes:
    payload = {"before": before, "after": after, "source": source(snapshot), "transaction": None, "op": op,
               "ts_ms": 1796127511904, "ts_us": 1796127511904530, "ts_ns": 1796127511904530574}
    return json.dumps({"schema": JSON_ENVELOPE, "payload": payload}).encode()


# --- A registry on loopback --------------------------------------------------------------------

@dataclass
class Registry:
    """Answers `GET <base>/schemas/ids/{id}` as Apicurio's Confluent-compatible API does."""

    base: str = "/apis/ccompat/v7"
    schemas: dict[int, str] = field(default_factory=dict)
    failing_with: int | None = None
    """Answer every request with this status (a registry that is up but failing)."""
    requested: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def registry() -> Iterator[Registry]:
    stand_in = Registry(schemas={KEY_ID: json.dumps(AVRO_KEY), VALUE_ID: json.dumps(AVRO_ENVELOPE)})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stand_in.requested.append(self.path)
            found = re.fullmatch(rf"{re.escape(stand_in.base)}/schemas/ids/(\d+)", self.path)
            if stand_in.failing_with is not None:
                status, body = stand_in.failing_with, {"error_code": stand_in.failing_with * 100, "message": "storage unavailable"}
            elif found is None:
                status, body = 404, {"error_code": 404, "message": f"RESTEASY003210: Could not find resource for full path: {self.path}"}
            elif int(found.group(1)) not in stand_in.schemas:
                status, body = 404, {"error_code": 40403, "message": f"No content with id/hash 'contentId-{found.group(1)}' was found."}
            else:
                status, body = 200, {"schema": stand_in.schemas[int(found.group(1))], "references": []}
            encoded = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}{stand_in.base}"
    # A short poll interval: shutdown waits for it, once per test.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield stand_in
    server.shutdown()
    server.server_close()


@pytest.fixture
def decoder(registry: Registry) -> ChangeDecoder:
    return ChangeDecoder(AvroDecoder(registry.url, timeout_seconds=2.0))


# --- Schemas -----------------------------------------------------------------------------------

def test_the_envelope_schema_translates_to_the_one_the_json_converter_sends() -> None:
    assert connect_schema(AVRO_ENVELOPE) == JSON_ENVELOPE
    assert connect_schema(AVRO_KEY) == JSON_KEY


@pytest.mark.parametrize(("avro", "expected"), [
    pytest.param("int", connect("int32", optional=False), id="int"),
    pytest.param(["null", "long"], connect("int64"), id="optional-long"),
    pytest.param(["long", "null"], connect("int64"), id="optional-null-second"),
    pytest.param({"type": "int", "connect.type": "int16"}, connect("int16", optional=False), id="int16"),
    pytest.param({"type": "int", "connect.type": "int8"}, connect("int8", optional=False), id="int8"),
    pytest.param("float", connect("float", optional=False), id="float32"),
    pytest.param(["null", "double"], connect("double"), id="double"),
    pytest.param(["null", "boolean"], connect("boolean"), id="boolean"),
    pytest.param(["null", "bytes"], connect("bytes"), id="bytes"),
    pytest.param({"type": "array", "items": ["null", "string"]}, connect("array", optional=False, items=connect("string")), id="array-of-optional"),
    pytest.param({"type": "array", "items": semantic("int", "io.debezium.time.Date")},
                 connect("array", optional=False, items=connect("int32", "io.debezium.time.Date", optional=False, version=1)), id="array-of-dates"),
    pytest.param({"type": "map", "values": ["null", "string"]},
                 connect("map", optional=False, keys=connect("string", optional=False), values=connect("string")), id="string-map"),
    pytest.param({"type": "array", "items": {"type": "record", "name": "MapEntry", "namespace": "io.confluent.connect.avro",
                                             "fields": [{"name": "key", "type": "int"}, {"name": "value", "type": ["null", "string"]}]}},
                 connect("map", optional=False, keys=connect("int32", optional=False), values=connect("string")), id="int-keyed-map"),
    pytest.param({"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3},
                 connect("bytes", "org.apache.kafka.connect.data.Decimal", optional=False, parameters={"scale": "3", "connect.decimal.precision": "12"}),
                 id="decimal-without-connect-name"),
    pytest.param({"type": "enum", "name": "Color", "symbols": ["RED"], "connect.name": "io.debezium.data.Enum", "connect.parameters": {"allowed": "RED"}},
                 connect("string", "io.debezium.data.Enum", optional=False, parameters={"allowed": "RED"}), id="enum"),
    pytest.param({"type": "fixed", "name": "Hash", "size": 4}, connect("bytes", optional=False), id="fixed"),
])
def test_avro_types_translate_to_connect_types(avro: Any, expected: dict[str, Any]) -> None:
    assert connect_schema(avro) == expected


def test_a_named_record_used_twice_gets_its_own_field_name_each_time() -> None:
    translated = connect_schema(AVRO_ENVELOPE)
    before, after = translated["fields"][0], translated["fields"][1]
    assert (before["field"], after["field"]) == ("before", "after")
    assert {**before, "field": None} == {**after, "field": None}
    assert before is not after and before["fields"] is not after["fields"]


def test_nested_records_keep_their_connect_name_and_fields() -> None:
    [n_any] = [column for column in connect_schema(AVRO_VALUE)["fields"] if column["field"] == "n_any"]
    assert n_any["name"] == "io.debezium.data.VariableScaleDecimal" and n_any["optional"] is True
    assert n_any["fields"] == [column("scale", connect("int32", optional=False)), column("value", connect("bytes", optional=False))]


@pytest.mark.parametrize(("avro", "message"), [
    pytest.param(["null", "int", "string"], "not an optional value", id="union-of-two-types"),
    pytest.param({"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}, "not defined before its use", id="recursive"),
    pytest.param("Undefined", "not defined before its use", id="unknown-name"),
    pytest.param("null", "no Connect equivalent", id="null"),
])
def test_avro_schemas_connect_would_not_write_are_refused(avro: Any, message: str) -> None:
    with pytest.raises(UnsupportedAvroSchema, match=message):
        connect_schema(avro)


# --- Values ------------------------------------------------------------------------------------

DECIMAL_2 = connect("bytes", "org.apache.kafka.connect.data.Decimal", parameters={"scale": "2"})


@pytest.mark.parametrize(("value", "unscaled"), [
    (decimal.Decimal("1.25"), 125),
    (decimal.Decimal("-99999999.99"), -9999999999),
    (decimal.Decimal("1.5"), 150),
    (decimal.Decimal("-1.28"), -128),
    (decimal.Decimal("0"), 0),
    (decimal.Decimal("1E+3"), 100000),
])
def test_decimals_become_their_unscaled_twos_complement_bytes_at_the_schema_scale(value: decimal.Decimal, unscaled: int) -> None:
    encoded = base64.b64decode(connect_payload(value, DECIMAL_2))
    assert int.from_bytes(encoded, "big", signed=True) == unscaled
    # As few bytes as Java's BigInteger.toByteArray: -128 is one byte, 0 is one byte.
    assert len(encoded) == (unscaled if unscaled >= 0 else ~unscaled).bit_length() // 8 + 1


def test_a_decimal_finer_than_the_schema_scale_is_refused() -> None:
    with pytest.raises(ValueError, match="more fraction digits than the schema's scale 2"):
        connect_payload(decimal.Decimal("1.255"), DECIMAL_2)


def test_values_take_the_json_converters_shapes() -> None:
    schema = connect("struct", fields=[
        column("blob", connect("bytes")),
        column("nested", connect("struct", fields=[column("raw", connect("bytes", optional=False))])),
        column("blobs", connect("array", items=connect("bytes"))),
        column("by_id", connect("map", keys=connect("int32"), values=connect("bytes"))),
        column("by_name", connect("map", keys=connect("string"), values=connect("int32"))),
        column("ratio", connect("float")),
        column("missing", connect("string")),
    ])
    value = {"blob": b"\x00\xff", "nested": {"raw": b"x"}, "blobs": [b"a", None], "by_id": [{"key": 1, "value": b"v"}],
             "by_name": {"a": 1}, "ratio": 0.10000000149011612}
    assert connect_payload(value, schema) == {
        "blob": "AP8=", "nested": {"raw": "eA=="}, "blobs": ["YQ==", None], "by_id": [[1, "dg=="]], "by_name": {"a": 1},
        # 0.1f, printed as the JSON converter prints a float, not as its 64-bit widening.
        "ratio": 0.1, "missing": None,
    }


# --- Change events: Avro and JSON decode alike -------------------------------------------------

Record = tuple[bytes | None, bytes | None]


def both(decoder: ChangeDecoder, avro: Record, json_record: Record) -> tuple[Any, Any]:
    from_avro = decoder.decode(*avro, TOPIC, 0, 41, HEADERS)
    from_json = decoder.decode(*json_record, TOPIC, 0, 41, HEADERS)
    return from_avro, from_json


def assert_same_event(from_avro: Any, from_json: Any) -> None:
    assert isinstance(from_avro, ChangeEvent) and from_avro == from_json
    assert from_avro.row_schema == from_json.row_schema and from_avro.key_columns == from_json.key_columns == ("id",)


def test_an_insert_decodes_to_the_same_event_with_the_same_typed_values(decoder: ChangeDecoder) -> None:
    from_avro, from_json = both(decoder, (avro_key(1), avro_value("c", None, AVRO_ROW)),
                                (json_key(1), json_value("c", None, JSON_ROW_VALUES)))
    assert_same_event(from_avro, from_json)
    assert from_avro.after["price"] == decimal.Decimal("1.25") and from_avro.after["n_any"] == decimal.Decimal("3.14159")
    assert from_avro.after["b"] == b"\x01\x02" and from_avro.after["j"] == {"x": 1} and from_avro.after["small"] == 7
    assert from_avro.row_schema == column("after", JSON_ROW)


def test_nulls_negatives_and_array_nulls_decode_alike(decoder: ChangeDecoder) -> None:
    from_avro, from_json = both(decoder, (avro_key(2), avro_value("c", None, SPARSE_AVRO_ROW)),
                                (json_key(2), json_value("c", None, SPARSE_JSON_ROW)))
    assert_same_event(from_avro, from_json)
    assert from_avro.after["n_any"] == decimal.Decimal("-123456789012345678901234567890.123456789")
    assert from_avro.after["arr"] == [3, None, -7] and from_avro.after["small"] == -32768


def test_a_snapshot_read_and_an_update_decode_alike(decoder: ChangeDecoder) -> None:
    for op, snapshot in (("r", "last"), ("u", "false")):
        updated = {**AVRO_ROW, "flag": False}
        from_avro, from_json = both(decoder, (avro_key(1), avro_value(op, None, updated, snapshot)),
                                    (json_key(1), json_value(op, None, {**JSON_ROW_VALUES, "flag": False}, snapshot)))
        assert_same_event(from_avro, from_json)
        assert from_avro.op == op and from_avro.source.snapshot is (op == "r") and from_avro.after["flag"] is False


def test_a_delete_and_its_tombstone_decode_alike(decoder: ChangeDecoder) -> None:
    # REPLICA IDENTITY DEFAULT: the before image holds the key, every other column null.
    key_only = {name: None for name in AVRO_ROW} | {"id": 1}
    from_avro, from_json = both(decoder, (avro_key(1), avro_value("d", key_only, None)), (json_key(1), json_value("d", key_only, None)))
    assert_same_event(from_avro, from_json)
    assert from_avro.before == key_only and from_avro.after is None
    tombstones = both(decoder, (avro_key(1), None), (json_key(1), None))
    assert tombstones[0] == tombstones[1] == Tombstone({"id": 1}, TOPIC, 0, 41)


def test_a_truncate_decodes_alike(decoder: ChangeDecoder) -> None:
    from_avro, from_json = both(decoder, (None, avro_value("t", None, None)), (None, json_value("t", None, None)))
    assert isinstance(from_avro, ChangeEvent) and from_avro == from_json and from_avro.op == "t" and from_avro.key is None


def test_the_unchanged_toast_placeholder_decodes_as_unavailable_alike(decoder: ChangeDecoder) -> None:
    placeholder = UNAVAILABLE_PLACEHOLDER.encode()
    avro_row = {**AVRO_ROW, "name": UNAVAILABLE_PLACEHOLDER, "b": placeholder}
    json_row = {**JSON_ROW_VALUES, "name": UNAVAILABLE_PLACEHOLDER, "b": base64.b64encode(placeholder).decode()}
    from_avro, from_json = both(decoder, (avro_key(3), avro_value("u", None, avro_row)), (json_key(3), json_value("u", None, json_row)))
    assert_same_event(from_avro, from_json)
    assert from_avro.after["name"] is UNAVAILABLE and from_avro.after["b"] is UNAVAILABLE


def test_keys_and_values_are_told_apart_one_by_one(decoder: ChangeDecoder) -> None:
    mixed = decoder.decode(json_key(1), avro_value("c", None, AVRO_ROW), TOPIC, 0, 41, HEADERS)
    assert_same_event(mixed, decoder.decode(avro_key(1), json_value("c", None, JSON_ROW_VALUES), TOPIC, 0, 41, HEADERS))


def test_writer_schemas_are_fetched_once_per_id(decoder: ChangeDecoder, registry: Registry) -> None:
    for row_id in range(5):
        decoder.decode(avro_key(row_id), avro_value("c", None, {**AVRO_ROW, "id": row_id}), TOPIC, 0, row_id)
    assert sorted(registry.requested) == [f"{registry.base}/schemas/ids/{KEY_ID}", f"{registry.base}/schemas/ids/{VALUE_ID}"]
    registry.failing_with = 503
    assert isinstance(decoder.decode(avro_key(9), avro_value("c", None, AVRO_ROW), TOPIC, 0, 9), ChangeEvent)


# --- Records that do not decode, and a registry that is away -----------------------------------

def test_a_json_only_decoder_names_the_missing_registry_flag() -> None:
    for raw_key, raw_value, part in ((avro_key(1), None, "key"), (json_key(1), avro_value("c", None, AVRO_ROW), "value")):
        message = rf"^{re.escape(TOPIC)}@0:7 {part} is Avro .*schema id \d+.*no schema registry URL configured.*--schema-registry-url"
        with pytest.raises(DecodeError, match=message):
            JSON_ONLY.decode(raw_key, raw_value, TOPIC, 0, 7)


@pytest.mark.parametrize(("raw", "message"), [
    pytest.param(b"\x01\x00\x00\x00\x03\x02", "not Avro in the Confluent wire format", id="bad-magic"),
    pytest.param(b"\x00\x00\x00", "not Avro in the Confluent wire format", id="shorter-than-the-header"),
])
def test_unframed_bytes_are_decode_errors(registry: Registry, raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=rf"^t@0:7 value is {message} \(byte 0.*\): {len(raw)} bytes"):
        AvroDecoder(registry.url).decode(raw, "value", "t@0:7")


def test_a_short_buffer_starting_with_zero_is_not_taken_for_avro(decoder: ChangeDecoder) -> None:
    with pytest.raises(DecodeError, match=r"^t@0:7 value is not JSON"):
        decoder.decode(None, b"\x00\x00\x03", "t", 0, 7)


@pytest.mark.parametrize(("mangle", "message"), [
    pytest.param(lambda raw: raw[:-12], r"does not decode with writer schema 3: \w+", id="truncated"),
    pytest.param(lambda raw: raw + b"\x00\x00", "has 2 bytes left after one record of writer schema 3", id="trailing-bytes"),
    pytest.param(lambda raw: raw[:5] + b"\x7f" + raw[6:], "does not decode with writer schema 3", id="bad-union-index"),
])
def test_bytes_that_do_not_fit_their_writer_schema_are_decode_errors(decoder: ChangeDecoder, mangle: Any, message: str) -> None:
    with pytest.raises(DecodeError, match=rf"^t@0:7 value \(Avro\) {message}"):
        decoder.decode(avro_key(1), mangle(avro_value("c", None, AVRO_ROW)), "t", 0, 7)


def test_an_unknown_schema_id_is_a_decode_error_naming_the_registry(decoder: ChangeDecoder, registry: Registry) -> None:
    message = rf"^t@0:7 value: writer schema 99 \(GET {re.escape(registry.url)}/schemas/ids/99\): the registry does not have it.*dead-lettered"
    with pytest.raises(DecodeError, match=message):
        decoder.decode(avro_key(1), framed(99, AVRO_ENVELOPE, {"before": None, "after": None, "source": source(), "op": "t"}), "t", 0, 7)


def test_a_writer_schema_connect_would_not_write_is_a_decode_error(decoder: ChangeDecoder, registry: Registry) -> None:
    registry.schemas[7] = json.dumps({"type": "record", "name": "Odd", "fields": [{"name": "either", "type": ["int", "string"]}]})
    message = rf"^t@0:7 value: writer schema 7 from the schema registry at {re.escape(registry.url)} cannot be read: UnsupportedAvroSchema"
    with pytest.raises(DecodeError, match=message):
        decoder.decode(None, b"\x00\x00\x00\x00\x07\x00\x02", "t", 0, 7)


@pytest.mark.parametrize("status", [500, 503, 401])
def test_a_failing_registry_is_transient_not_a_decode_error(decoder: ChangeDecoder, registry: Registry, status: int) -> None:
    registry.failing_with = status
    with pytest.raises(SchemaRegistryUnavailableError, match=rf"^t@0:7 key: writer schema 2 .* answered {status} .*kept and retried") as raised:
        decoder.decode(avro_key(1), avro_value("c", None, AVRO_ROW), "t", 0, 7)
    assert isinstance(raised.value, TransientSinkError) and not isinstance(raised.value, DecodeError)


def test_a_registry_url_that_is_not_the_confluent_api_is_transient(registry: Registry) -> None:
    """A 404 without the registry's schema-not-found code is a wrong URL: dead-lettering every record would not cure it."""
    wrong = ChangeDecoder(AvroDecoder(registry.url.removesuffix(registry.base)))
    with pytest.raises(SchemaRegistryUnavailableError, match=r"answered 404 .*--schema-registry-url is its Confluent-compatible API"):
        wrong.decode(avro_key(1), None, "t", 0, 7)


def test_an_unreachable_registry_is_transient_and_fails_after_one_connection_attempt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink core retries the batch with its own backoff; the client does not retry on its own."""
    from confluent_kafka.schema_registry._sync import schema_registry_client

    # The HTTP library the registry client was built with (httpx, or its fork httpx2).
    http_client = schema_registry_client.httpx.Client
    attempts: list[str] = []
    send = http_client.send

    def counted(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(str(request.url))
        return send(self, request, *args, **kwargs)

    monkeypatch.setattr(http_client, "send", counted)
    port = closed_port()
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    message = rf"^t@0:7 key: writer schema 2 \(GET {re.escape(url)}/schemas/ids/2\): the registry did not answer \(ConnectError"
    with pytest.raises(SchemaRegistryUnavailableError, match=message):
        ChangeDecoder(AvroDecoder(url)).decode(avro_key(1), None, "t", 0, 7)
    assert attempts == [f"{url}/schemas/ids/2"]


# --- The consumer core: a registry away stalls the batch ---------------------------------------

class OfflineSink(CdcSink):
    """The core with its broker away: the group commit after a table commit is recorded instead
    (against real Kafka, tests/integration/test_sink_core.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.group_commits: list[dict[str, int]] = []
        super().__init__(*args, **kwargs)

    def _commit_group(self, offsets: Mapping[str, int]) -> None:
        # Acknowledged as the broker would: close() then has nothing left to commit synchronously to
        # a broker that is not there (librdkafka would wait out its timeouts, ~45 s).
        self.group_commits.append(dict(offsets))
        self._group_offsets.update(offsets)


def test_a_registry_away_keeps_the_batch_undead_lettered_until_it_is_back(registry: Registry) -> None:
    now = [0.0]
    writer, letters = ScriptedWriter(), RecordingDeadLetters()
    sink = OfflineSink(f"127.0.0.1:{closed_port()}", [TOPIC], writer, "unit-avro", dead_letters=letters, retry=RetryPolicy(0.5, 1.0),
                       clock=lambda: now[0], decoder=ChangeDecoder(AvroDecoder(registry.url)))
    unknown_key = b"\x00\x00\x00\x00\x63\x02"  # schema id 99
    records = [(avro_key(1), avro_value("c", None, AVRO_ROW)), (unknown_key, None), (avro_key(2), avro_value("c", None, SPARSE_AVRO_ROW))]
    messages = [Message(topic=TOPIC, partition=0, offset=offset, key=key, value=value) for offset, (key, value) in enumerate(records)]
    try:
        sink.pending = PendingBatch(events=[], rejected=[], offsets={f"{TOPIC}:0": 3}, undecoded=list(messages))
        registry.failing_with = 503
        assert sink.step() == 0
        assert letters.sent == [] and writer.commits == [] and sink.offsets == {} and sink.group_commits == []
        assert sink.pending.undecoded == messages and sink.pending.failures == 1
        assert not sink.stats.healthy and "SchemaRegistryUnavailableError" in sink.stats.last_error

        registry.failing_with = None
        now[0] += 1.0
        assert sink.step() == 2
    finally:
        sink.close()
    assert sorted(writer.rows) == [(1,), (2,)] and [offsets for offsets, _ in writer.commits] == [[0, 2]]
    [letter] = letters.sent
    assert letter.message.offset() == 1 and isinstance(letter.error, DecodeError) and "writer schema 99" in str(letter.error)
    assert sink.offsets == {f"{TOPIC}:0": 3} and sink.group_commits == [{f"{TOPIC}:0": 3}] and sink.stats.healthy


MANGLING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)


def test_no_mangled_byte_raises_anything_but_decode_error(decoder: ChangeDecoder) -> None:
    """Each byte of a real key and value replaced by each of a few values: decoded into a change event
    or refused with DecodeError, never a crash; a broken frame (magic byte, unknown schema id) is always refused."""
    raw_key, raw_value = avro_key(1), avro_value("u", {name: None for name in AVRO_ROW} | {"id": 1}, SPARSE_AVRO_ROW)
    original = decoder.decode(raw_key, raw_value, "t", 0, 7)
    refused: set[tuple[str, int, int]] = set()
    raws = {"key": raw_key, "value": raw_value}
    for part, raw in raws.items():
        for position in range(len(raw)):
            for byte in MANGLING_BYTES:
                mangled = raw[:position] + bytes([byte]) + raw[position + 1:]
                try:
                    event = decoder.decode(*{**raws, part: mangled}.values(), "t", 0, 7)
                except DecodeError:
                    refused.add((part, position, byte))
                    continue
                assert isinstance(event, ChangeEvent), f"{part}[{position}]={byte:#x} decoded to {event!r}"
                if mangled == raw:
                    assert event == original
    # A magic byte other than 0, or a schema id of 2**24 and up (no registry here holds one), is no frame.
    framing = {(part, position, byte) for part, raw in raws.items() for position in range(4) for byte in MANGLING_BYTES
               if byte != raw[position]}
    assert framing <= refused, f"broken frames decoded: {sorted(framing - refused)}"
