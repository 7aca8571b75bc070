"""Decoding Debezium JSON change events into typed rows, and materialising them."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from typing import Any

import pytest

from pipelines.consistency import materialize
from pipelines.debezium import ChangeEvent, DecodeError, Tombstone, decode

ROW_FIELDS = [
    {"type": "int32", "optional": False, "field": "id"},
    {"type": "string", "optional": True, "field": "name"},
    {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}, "field": "price"},
    {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "field": "created_on"},
    {"type": "string", "optional": True, "name": "io.debezium.time.ZonedTimestamp", "field": "created_at"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "field": "updated_at"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.Timestamp", "field": "seen_at"},
    {"type": "struct", "optional": True, "name": "io.debezium.data.VariableScaleDecimal", "field": "ratio",
     "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}]},
    {"type": "string", "optional": True, "name": "io.debezium.data.Uuid", "field": "token"},
    {"type": "string", "optional": True, "name": "io.debezium.data.Json", "field": "attributes"},
    {"type": "bytes", "optional": True, "field": "blob"},
    {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTime", "field": "opens_at"},
]


def envelope(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None, source: dict[str, Any]) -> bytes:
    row_schema = {"type": "struct", "optional": True, "fields": ROW_FIELDS}
    schema = {
        "type": "struct",
        "fields": [
            {**row_schema, "field": "before"},
            {**row_schema, "field": "after"},
            {"type": "struct", "field": "source", "fields": []},
            {"type": "string", "field": "op"},
            {"type": "int64", "field": "ts_ms"},
        ],
    }
    payload = {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1_790_000_000_500}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def key(row_id: int) -> bytes:
    return json.dumps({"schema": {"type": "struct", "fields": [{"type": "int32", "field": "id"}]}, "payload": {"id": row_id}}).encode()


def decimal_bytes(unscaled: int) -> str:
    return base64.b64encode(unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)).decode()


POSTGRES_SOURCE = {
    "connector": "postgresql", "db": "inventory", "schema": "inventory", "table": "products",
    "ts_ms": 1_790_000_000_000, "snapshot": "false", "lsn": 123456, "txId": 789,
}
MARIADB_SOURCE = {
    "connector": "mariadb", "db": "inventory", "table": "products", "ts_ms": 1_790_000_000_000,
    "snapshot": "false", "file": "binlog.000002", "pos": 4321, "row": 0,
}


def full_row() -> dict[str, Any]:
    return {
        "id": 7,
        "name": "scooter",
        "price": decimal_bytes(4999),
        "created_on": 20_469,
        "created_at": "2026-01-16T10:20:30.123456Z",
        "updated_at": 1_790_000_000_123_456,
        "seen_at": 1_790_000_000_123,
        "ratio": {"scale": 3, "value": decimal_bytes(-1250)},
        "token": "0d8c3b5e-7f36-4b8c-9a51-1f2f4c1e9b10",
        "attributes": '{"color": "red", "tags": ["a", "b"]}',
        "blob": base64.b64encode(b"\x00\x01binary").decode(),
        "opens_at": 34_200_000_000,
    }


def test_create_event_decodes_every_logical_type() -> None:
    event = decode(key(7), envelope("c", None, full_row(), POSTGRES_SOURCE), "pg.inventory.products", 0, 42)
    assert isinstance(event, ChangeEvent) and event.operation == "create" and event.before is None
    assert event.after == {
        "id": 7,
        "name": "scooter",
        "price": decimal.Decimal("49.99"),
        "created_on": dt.date(2026, 1, 16),
        "created_at": dt.datetime(2026, 1, 16, 10, 20, 30, 123456, tzinfo=dt.timezone.utc),
        "updated_at": dt.datetime(2026, 9, 21, 14, 13, 20, 123456),
        "seen_at": dt.datetime(2026, 9, 21, 14, 13, 20, 123000),
        "ratio": decimal.Decimal("-1.250"),
        "token": uuid.UUID("0d8c3b5e-7f36-4b8c-9a51-1f2f4c1e9b10"),
        "attributes": {"color": "red", "tags": ["a", "b"]},
        "blob": b"\x00\x01binary",
        "opens_at": dt.time(9, 30),
    }
    assert (event.key, event.topic, event.partition, event.offset) == ({"id": 7}, "pg.inventory.products", 0, 42)


def test_postgres_source_position_carries_lsn_and_commit_time() -> None:
    event = decode(key(7), envelope("u", full_row(), full_row(), POSTGRES_SOURCE))
    assert event.source.lsn == 123456 and event.source.tx_id == 789
    assert event.source.ts_ms == 1_790_000_000_000 and event.ts_ms == 1_790_000_000_500
    assert event.source.snapshot is False and event.source.table == "products"


def test_binlog_source_position_carries_file_and_offset() -> None:
    event = decode(key(7), envelope("c", None, full_row(), MARIADB_SOURCE))
    assert (event.source.connector, event.source.binlog_file, event.source.binlog_pos, event.source.row) == (
        "mariadb", "binlog.000002", 4321, 0,
    )


def test_snapshot_reads_are_marked_as_snapshot() -> None:
    event = decode(key(7), envelope("r", None, full_row(), {**POSTGRES_SOURCE, "snapshot": "last"}))
    assert event.operation == "read" and event.source.snapshot is True


def test_delete_keeps_the_before_image_and_a_tombstone_follows() -> None:
    deleted = decode(key(7), envelope("d", full_row(), None, POSTGRES_SOURCE))
    assert deleted.op == "d" and deleted.after is None and deleted.before["price"] == decimal.Decimal("49.99")
    tombstone = decode(key(7), None, "pg.inventory.products", 0, 43)
    assert tombstone == Tombstone({"id": 7}, "pg.inventory.products", 0, 43)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"not json", "is not JSON"),
        (b'{"id": 1}', "no schema/payload envelope"),
        (b'{"schema": {}, "payload": {"id": 1}}', "not a change event"),
    ],
)
def test_records_that_are_not_change_events_are_decode_errors(value: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(key(1), value, "some.topic", 2, 9)


def test_materialize_applies_creates_updates_pk_changes_deletes_and_truncates() -> None:
    def row(row_id: int, name: str) -> dict[str, Any]:
        return {**full_row(), "id": row_id, "name": name}

    events = [
        decode(key(1), envelope("r", None, row(1, "a"), POSTGRES_SOURCE)),
        decode(key(2), envelope("c", None, row(2, "b"), POSTGRES_SOURCE)),
        decode(key(2), envelope("u", row(2, "b"), row(2, "B"), POSTGRES_SOURCE)),
        decode(key(1), envelope("u", row(1, "a"), row(10, "a"), POSTGRES_SOURCE)),
        decode(key(3), envelope("c", None, row(3, "c"), POSTGRES_SOURCE)),
        decode(key(3), envelope("d", row(3, "c"), None, POSTGRES_SOURCE)),
        decode(key(3), None),
    ]
    state = materialize(events, ["id"])
    assert {row_key: value["name"] for row_key, value in state.items()} == {(2,): "B", (10,): "a"}
    truncated = materialize([*events, decode(None, envelope("t", None, None, POSTGRES_SOURCE))], ["id"])
    assert truncated == {}


def event_with(columns: list[dict[str, Any]], after: dict[str, Any]) -> bytes:
    """An insert whose row schema is exactly `columns`."""
    row_schema = {"type": "struct", "optional": True, "fields": columns}
    schema = {"type": "struct", "fields": [{**row_schema, "field": "before"}, {**row_schema, "field": "after"}]}
    payload = {"before": None, "after": after, "source": POSTGRES_SOURCE, "op": "c", "ts_ms": 1}
    return json.dumps({"schema": schema, "payload": payload}).encode()


def decimal_column(scale: int) -> dict[str, Any]:
    return {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal", "field": "amount",
            "parameters": {"scale": str(scale), "connect.decimal.precision": "38"}}


VARIABLE_SCALE_COLUMN = {"type": "struct", "optional": True, "name": "io.debezium.data.VariableScaleDecimal", "field": "amount",
                         "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}]}


def decoded_amount(column: dict[str, Any], value: Any) -> decimal.Decimal:
    event = decode(key(1), event_with([{"type": "int32", "field": "id"}, column], {"id": 1, "amount": value}))
    return event.after["amount"]


# numeric(38,10) at the edges: 38 significant digits, and the smallest step.
NUMERIC_38_10 = ["1234567890123456789012345678.0123456789", "-1234567890123456789012345678.0123456789",
                 "-0.0000000001", "0.0000000001", "0.0000000000", "9999999999999999999999999999.9999999999"]


@pytest.mark.parametrize("text", NUMERIC_38_10)
def test_precise_decimals_round_trip_exactly_beyond_28_digits(text: str) -> None:
    expected = decimal.Decimal(text)
    unscaled = int(expected.scaleb(10, context=decimal.Context(prec=50)))
    decoded = decoded_amount(decimal_column(10), decimal_bytes(unscaled))
    assert decoded == expected and f"{decoded:f}" == text and decoded.as_tuple().exponent == -10


@pytest.mark.parametrize(("scale", "unscaled", "text"), [
    (10, 12345678901234567890123456780123456789, "1234567890123456789012345678.0123456789"),
    (3, -1250, "-1.250"),
    (0, -(10**40) - 1, str(-(10**40) - 1)),
    (40, 1, "1E-40"),
])
def test_variable_scale_decimals_are_exact_at_any_precision(scale: int, unscaled: int, text: str) -> None:
    decoded = decoded_amount(VARIABLE_SCALE_COLUMN, {"scale": scale, "value": decimal_bytes(unscaled)})
    assert decoded == decimal.Decimal(text) and decoded.as_tuple().exponent == -scale


def test_integer_and_text_arrays_keep_their_null_elements() -> None:
    columns = [
        {"type": "int32", "field": "id"},
        {"type": "array", "items": {"type": "int32", "optional": True}, "optional": True, "field": "tags"},
        {"type": "array", "items": {"type": "string", "optional": True}, "optional": True, "field": "labels"},
    ]
    event = decode(key(1), event_with(columns, {"id": 1, "tags": [3, None, -7], "labels": ["a", None, ""]}))
    assert event.after == {"id": 1, "tags": [3, None, -7], "labels": ["a", None, ""]}
    empty = decode(key(1), event_with(columns, {"id": 1, "tags": [], "labels": None}))
    assert empty.after == {"id": 1, "tags": [], "labels": None}


def test_arrays_of_logical_types_convert_each_element() -> None:
    columns = [
        {"type": "int32", "field": "id"},
        {"type": "array", "optional": True, "field": "days",
         "items": {"type": "int32", "optional": True, "name": "io.debezium.time.Date"}},
        {"type": "array", "optional": True, "field": "prices", "items": {**decimal_column(2), "field": None}},
        {"type": "array", "optional": True, "field": "ids", "items": {"type": "string", "name": "io.debezium.data.Uuid"}},
    ]
    token = "0d8c3b5e-7f36-4b8c-9a51-1f2f4c1e9b10"
    after = {"id": 1, "days": [0, None, 20_469], "prices": [decimal_bytes(-4999), None], "ids": [token]}
    event = decode(key(1), event_with(columns, after))
    assert event.after == {
        "id": 1,
        "days": [dt.date(1970, 1, 1), None, dt.date(2026, 1, 16)],
        "prices": [decimal.Decimal("-49.99"), None],
        "ids": [uuid.UUID(token)],
    }


def test_maps_convert_their_values_in_both_json_encodings() -> None:
    columns = [{"type": "int32", "field": "id"},
               {"type": "map", "keys": {"type": "string"}, "values": {"type": "string", "optional": True}, "field": "attrs"},
               {"type": "map", "keys": {"type": "int32"}, "values": {"type": "int32", "name": "io.debezium.time.Date"}, "field": "by_id"}]
    event = decode(key(1), event_with(columns, {"id": 1, "attrs": {"a": "x", "b": None}, "by_id": [[1, 0], [2, 1]]}))
    assert event.after["attrs"] == {"a": "x", "b": None}
    assert event.after["by_id"] == {1: dt.date(1970, 1, 1), 2: dt.date(1970, 1, 2)}


def change(payload: Any, schema: Any = None) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}).encode()


UNDECODABLE_VALUES = [
    pytest.param(b"\xff\xfe", "value is not UTF-8", id="value-not-utf8"),
    pytest.param("{}".encode("utf-16"), "value is not UTF-8", id="value-utf16"),
    pytest.param(b"not json", "value is not JSON", id="value-not-json"),
    pytest.param(b"[" * 100_000, "value is not JSON", id="value-nested-too-deep"),
    pytest.param(b"[1, 2]", "no schema/payload envelope", id="value-not-an-object"),
    pytest.param(b'{"payload": 3}', "not a change event .*int 3", id="payload-not-an-object"),
    pytest.param(b'{"payload": null}', "not a change event", id="payload-null"),
    pytest.param(change({"op": "c", "after": {}}, schema=3), "value schema should be an object", id="schema-not-an-object"),
    pytest.param(change({"op": "x", "after": {}}), "unknown op str 'x'", id="unknown-op"),
    pytest.param(change({"op": ["c"], "after": {}}), "unknown op list", id="op-not-a-string"),
    pytest.param(change({"op": "c", "after": None}), "create event without an 'after' row", id="create-without-after"),
    pytest.param(change({"op": "u", "before": None}), "update event without an 'after' row", id="update-without-after"),
    pytest.param(change({"op": "c", "after": [1]}), "after should be an object", id="after-a-list"),
    pytest.param(change({"op": "d", "before": "row"}), "before should be an object", id="before-a-string"),
    pytest.param(change({"op": "c", "after": {}, "source": 4}), "source should be an object", id="source-not-an-object"),
    pytest.param(change({"op": "c", "after": {}, "source": {"lsn": "12"}}), r"source.lsn should be an integer", id="lsn-a-string"),
    pytest.param(change({"op": "c", "after": {}, "source": {"table": 5}}), r"source.table should be a string", id="table-not-a-string"),
    pytest.param(change({"op": "c", "after": {}, "ts_ms": "soon"}), "ts_ms should be an integer", id="ts-ms-a-string"),
    pytest.param(change({"op": "c", "after": {}}, schema={"fields": 3}), "'fields' should be a list", id="envelope-fields-not-a-list"),
]


@pytest.mark.parametrize(("value", "message"), UNDECODABLE_VALUES)
def test_undecodable_values_are_decode_errors_naming_the_record(value: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=rf"^some\.topic@2:9 .*{message}"):
        decode(key(1), value, "some.topic", 2, 9)


@pytest.mark.parametrize(("raw_key", "message"), [
    pytest.param(b"\xff\xfe", "key is not UTF-8", id="not-utf8"),
    pytest.param(b"not json", "key is not JSON", id="not-json"),
    pytest.param(b"3", "key should be a JSON object", id="a-number"),
    pytest.param(b'{"schema": null, "payload": [1]}', "key should be an object", id="payload-a-list"),
    pytest.param(b'{"schema": {"fields": [{"field": "id", "type": "int32"}]}, "payload": {"id": "7"}}', r"key.id \(int32\) should be an integer", id="id-a-string"),
])
def test_undecodable_keys_are_decode_errors_for_events_and_tombstones(raw_key: bytes, message: str) -> None:
    for value in (envelope("c", None, full_row(), POSTGRES_SOURCE), None):
        with pytest.raises(DecodeError, match=rf"^some\.topic@2:9 {message}"):
            decode(raw_key, value, "some.topic", 2, 9)


@pytest.mark.parametrize(("column", "value", "message"), [
    pytest.param("created_on", "2026-01-16", r"after.created_on \(io.debezium.time.Date\) should be an integer, got str", id="date-a-string"),
    pytest.param("created_on", True, r"after.created_on \(io.debezium.time.Date\) should be an integer, got bool", id="date-a-bool"),
    pytest.param("created_on", 10**12, r"after.created_on \(io.debezium.time.Date\) is out of range for int32", id="date-out-of-range"),
    pytest.param("updated_at", 1.5, r"after.updated_at .* should be an integer", id="timestamp-a-float"),
    pytest.param("created_at", "yesterday", r"after.created_at \(ZonedTimestamp\) is not an ISO-8601 value", id="zoned-not-iso"),
    pytest.param("price", "not base64!", r"after.price is not valid base64", id="decimal-bad-base64"),
    pytest.param("price", 4999, r"after.price .* should be a base64 string, got int", id="decimal-a-number"),
    pytest.param("ratio", {"scale": "3", "value": "AA=="}, r"after.ratio \(VariableScaleDecimal\) should be", id="variable-scale-string-scale"),
    pytest.param("ratio", [3, "AA=="], r"after.ratio .* should be an object", id="variable-scale-a-list"),
    pytest.param("token", "not-a-uuid", r"after.token \(io.debezium.data.Uuid\) is not a UUID", id="uuid-malformed"),
    pytest.param("attributes", "{broken", r"after.attributes \(io.debezium.data.Json\) is not JSON", id="json-malformed"),
    pytest.param("blob", "%%%", r"after.blob is not valid base64", id="bytes-bad-base64"),
    pytest.param("name", 5, r"after.name \(string\) should be a string, got int", id="string-a-number"),
    pytest.param("id", "7", r"after.id \(int32\) should be an integer, got str", id="int-a-string"),
])
def test_column_values_of_the_wrong_type_are_decode_errors(column: str, value: Any, message: str) -> None:
    with pytest.raises(DecodeError, match=rf"^pg\.inventory\.products@0:42 {message}"):
        decode(key(7), envelope("c", None, {**full_row(), column: value}, POSTGRES_SOURCE), "pg.inventory.products", 0, 42)


def test_array_elements_of_the_wrong_type_name_their_index() -> None:
    columns = [{"type": "int32", "field": "id"},
               {"type": "array", "items": {"type": "int32", "optional": True}, "optional": True, "field": "tags"}]
    with pytest.raises(DecodeError, match=r"after.tags\[1\] \(int32\) should be an integer, got str"):
        decode(key(1), event_with(columns, {"id": 1, "tags": [1, "2"]}))
    with pytest.raises(DecodeError, match=r"after.tags \(array\) should be an array, got str"):
        decode(key(1), event_with(columns, {"id": 1, "tags": "{1,2}"}))


WRONG_VALUES: list[Any] = ["x", "", -1, 2**70, 1.5, True, [], [1], {}, {"scale": 1}, {"value": 1}]


def test_no_wrongly_typed_value_anywhere_raises_anything_but_decode_error() -> None:
    """Every column and every envelope field, each replaced by each wrong value: decoded into an event
    of the record's own op and key or refused with DecodeError, never a crash; a record that is no
    change event (wrong op, payload or key, an integer past its type's range) is always refused."""
    refused: set[str] = set()

    def outcome(mangled: str, raw_key: bytes | None, raw_value: bytes | None, op: str | None) -> None:
        try:
            event = decode(raw_key, raw_value)
        except DecodeError:
            refused.add(mangled)
            return
        if op is None:
            assert isinstance(event, Tombstone), f"{mangled} decoded to {event!r}"
        else:
            assert isinstance(event, ChangeEvent) and (event.op, event.key) == (op, {"id": 7}), f"{mangled} decoded to {event!r}"

    must_refuse: set[str] = set()
    for index, wrong in enumerate(WRONG_VALUES):
        for column in full_row():
            outcome(f"after.{column}={index}", key(7), envelope("c", None, {**full_row(), column: wrong}, POSTGRES_SOURCE), "c")
            outcome(f"before.{column}={index}", key(7), envelope("d", {**full_row(), column: wrong}, None, POSTGRES_SOURCE), "d")
        for name in POSTGRES_SOURCE:
            outcome(f"source.{name}={index}", key(7), envelope("c", None, full_row(), {**POSTGRES_SOURCE, name: wrong}), "c")
        document = json.loads(envelope("u", full_row(), full_row(), POSTGRES_SOURCE))
        for name in ("before", "after", "source", "op", "ts_ms"):
            outcome(f"payload.{name}={index}", key(7), json.dumps({**document, "payload": {**document["payload"], name: wrong}}).encode(), "u")
        for name in ("schema", "payload"):
            outcome(f"{name}={index}", key(7), json.dumps({**document, name: wrong}).encode(), "u")
        for part in ("name", "type", "parameters", "fields", "items"):
            broken = [{**column, part: wrong} for column in ROW_FIELDS]
            outcome(f"schema.{part}={index}", key(7), json.dumps({**document, "schema": {"fields": [{"field": "after", "type": "struct", "fields": broken}]}}).encode(), "u")
        outcome(f"key.payload.id={index}", json.dumps({"schema": None, "payload": {"id": wrong}}).encode(), None, None)
        outcome(f"key={index}", json.dumps(wrong).encode(), None, None)
        # No wrong value is an op or a payload, nor an after row: no object here has the required id.
        must_refuse |= {f"payload.op={index}", f"payload={index}", f"payload.after={index}"}
        if not isinstance(wrong, dict):
            must_refuse |= {f"payload.source={index}", f"key={index}"}
    # A key object without columns would match every row.
    must_refuse.add(f"key={WRONG_VALUES.index({})}")
    too_big = WRONG_VALUES.index(2**70)
    must_refuse |= {f"after.id={too_big}", f"payload.ts_ms={too_big}", f"source.ts_ms={too_big}", f"source.lsn={too_big}"}
    assert must_refuse <= refused, f"decoded though no change event: {sorted(must_refuse - refused)}"