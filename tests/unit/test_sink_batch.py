"""Batch planning shared by every sink, and the values Debezium cannot send (unchanged TOASTed columns)."""

from __future__ import annotations

import base64
import json

import pytest

from pipelines.consistency import materialize
from pipelines.debezium import UNAVAILABLE, UNAVAILABLE_PLACEHOLDER, ChangeEvent, SourcePosition, decode
from pipelines.sinks.batch import plan_batch

SOURCE = SourcePosition("postgresql", "inventory", "docs", "inventory", 0, False)


def change(op: str, before: dict | None, after: dict | None) -> ChangeEvent:
    return ChangeEvent(op=op, key=None, before=before, after=after, source=SOURCE, ts_ms=0)


def update_event(column_schema: dict, value: object) -> bytes:
    row = {"type": "struct", "optional": True, "fields": [{"field": "id", "type": "int32"}, {**column_schema, "field": "doc", "optional": True}]}
    envelope = {"type": "struct", "fields": [{**row, "field": "before"}, {**row, "field": "after"}]}
    return json.dumps({"schema": envelope, "payload": {"op": "u", "before": None, "after": {"id": 1, "doc": value}, "source": {}}}).encode()


@pytest.mark.parametrize(
    ("column_schema", "placeholder"),
    [
        ({"type": "string"}, UNAVAILABLE_PLACEHOLDER),
        ({"type": "string", "name": "io.debezium.data.Json"}, UNAVAILABLE_PLACEHOLDER),
        ({"type": "bytes"}, base64.b64encode(UNAVAILABLE_PLACEHOLDER.encode()).decode()),
        ({"type": "array", "items": {"type": "string", "optional": True}}, [UNAVAILABLE_PLACEHOLDER]),
        # An int[] carries the placeholder's bytes as its elements (seen on a live TOASTed int[]).
        ({"type": "array", "items": {"type": "int32", "optional": True}}, list(UNAVAILABLE_PLACEHOLDER.encode())),
    ],
)
def test_the_unchanged_toast_placeholder_decodes_as_unavailable_whatever_the_column_type(column_schema: dict, placeholder: object) -> None:
    event = decode(json.dumps({"id": 1}).encode(), update_event(column_schema, placeholder), "t", 0, 7)
    assert event.after == {"id": 1, "doc": UNAVAILABLE}


def test_an_unavailable_column_takes_the_value_written_earlier_in_the_batch() -> None:
    plan = plan_batch([change("c", None, {"id": 1, "doc": "big", "qty": 1}), change("u", None, {"id": 1, "doc": UNAVAILABLE, "qty": 2})], ["id"])
    assert plan.upserts == {(1,): {"id": 1, "doc": "big", "qty": 2}} and plan.unresolved == {}


def test_an_unavailable_column_with_no_earlier_value_is_left_to_the_writer_to_keep() -> None:
    plan = plan_batch([change("u", None, {"id": 1, "doc": UNAVAILABLE, "qty": 2}), change("u", None, {"id": 1, "doc": UNAVAILABLE, "qty": 3})], ["id"])
    assert plan.upserts[(1,)]["qty"] == 3
    assert plan.unresolved == {(1,): ((1,), frozenset({"doc"}))}


def test_a_key_change_keeps_the_unavailable_value_of_the_old_key() -> None:
    plan = plan_batch([change("u", {"id": 1}, {"id": 2, "doc": UNAVAILABLE, "qty": 2})], ["id"])
    assert plan.deletes == {(1,)} and plan.unresolved == {(2,): ((1,), frozenset({"doc"}))}


def test_a_full_row_after_an_unavailable_one_resolves_it() -> None:
    plan = plan_batch([change("u", None, {"id": 1, "doc": UNAVAILABLE, "qty": 2}), change("u", None, {"id": 1, "doc": "new", "qty": 3})], ["id"])
    assert plan.upserts == {(1,): {"id": 1, "doc": "new", "qty": 3}} and plan.unresolved == {}


def test_materialized_state_keeps_values_the_source_did_not_send() -> None:
    state = materialize([change("c", None, {"id": 1, "doc": "big", "qty": 1}), change("u", None, {"id": 1, "doc": UNAVAILABLE, "qty": 2})], ["id"])
    assert state == {(1,): {"id": 1, "doc": "big", "qty": 2}}
