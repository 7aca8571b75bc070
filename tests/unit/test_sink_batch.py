"""Batch planning shared by every sink, and the values Debezium cannot send (unchanged TOASTed columns)."""

from __future__ import annotations

import base64
import json

import pytest

from pipelines.consistency import materialize
from pipelines.debezium import UNAVAILABLE, UNAVAILABLE_PLACEHOLDER, ChangeEvent, SourcePosition, decode
from pipelines.sinks.batch import plan_batch, plan_keyless_batch
from pipelines.sinks.errors import TerminalSinkError, TransientSinkError, classify_unexpected

SOURCE = SourcePosition("postgresql", "inventory", "docs", "inventory", 0, False)


def change(op: str, before: dict | None, after: dict | None) -> ChangeEvent:
    return ChangeEvent(op=op, key=None, before=before, after=after, source=SOURCE, ts_ms=0, key_columns=("id",))


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


def keyless_change(op: str, before: dict | None, after: dict | None, offset: int = 0) -> ChangeEvent:
    return ChangeEvent(op=op, key=None, before=before, after=after, source=SOURCE, ts_ms=0, topic="t", partition=0, offset=offset)


def test_an_event_the_plan_cannot_take_is_listed_with_why_and_the_rest_is_planned() -> None:
    events = [
        change("c", None, {"id": 1, "qty": 1}),
        change("d", None, None),
        keyless_change("c", None, {"id": 2, "qty": 2}, offset=2),
        change("c", None, {"qty": 3}),
        change("u", {"id": 1, "qty": 1}, {"id": 1, "qty": 4}),
    ]
    plan = plan_batch(events, ["id"])
    assert plan.upserts == {(1,): {"id": 1, "qty": 4}}
    assert sorted(plan.rejected) == [1, 2, 3]
    assert "a delete without its old row" in plan.rejected[1]
    assert "without a key" in plan.rejected[2] and "duplicate rows" in plan.rejected[2]
    assert "no key column 'id'" in plan.rejected[3]


def test_a_keyless_batch_removes_one_occurrence_of_each_old_row() -> None:
    plan = plan_keyless_batch(
        [
            keyless_change("c", None, {"id": 1, "name": "a"}),
            keyless_change("c", None, {"id": 1, "name": "a"}),
            keyless_change("u", {"id": 1, "name": "a"}, {"id": 1, "name": "b"}, offset=2),
            keyless_change("d", {"id": 7, "name": "old"}, None, offset=3),
            keyless_change("d", {"id": 7, "name": "old"}, None, offset=4),
        ]
    )
    assert plan.appends == [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]
    assert [(removal.row, removal.events) for removal in plan.removals.values()] == [({"id": 7, "name": "old"}, [3, 4])]
    assert plan.rejected == {} and not plan.truncate


def test_a_keyless_change_without_its_whole_old_row_is_rejected_naming_replica_identity_full() -> None:
    plan = plan_keyless_batch(
        [
            keyless_change("u", None, {"id": 1, "name": "b"}),
            keyless_change("d", {"id": 1, "name": UNAVAILABLE}, None),
            keyless_change("u", {"id": 2, "doc": "big"}, {"id": 2, "doc": UNAVAILABLE}),
            keyless_change("t", None, None),
            keyless_change("c", None, {"id": 3, "name": "c"}),
        ]
    )
    assert sorted(plan.rejected) == [0, 1]
    assert all("REPLICA IDENTITY FULL" in reason for reason in plan.rejected.values())
    # An unchanged TOASTed value comes from the whole old row; a truncate forgets what came before.
    assert plan.truncate and plan.appends == [{"id": 3, "name": "c"}] and plan.removals == {}


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (TypeError("And.__new__() missing 2 required positional arguments"), TerminalSinkError),
        (KeyError("qty"), TerminalSinkError),
        (ConnectionResetError("reset by peer"), TransientSinkError),
        (TimeoutError("read timed out"), TransientSinkError),
        (type("ReadTimeoutError", (Exception,), {"__module__": "urllib3.exceptions"})("timed out"), TransientSinkError),
    ],
)
def test_an_exception_no_writer_mapped_is_terminal_unless_a_service_or_the_network_caused_it(error: Exception, kind: type) -> None:
    classified = classify_unexpected(error, "cdc.items")
    assert isinstance(classified, kind) and "cdc.items" in str(classified) and type(error).__name__ in str(classified)


def test_an_exception_raised_while_handling_a_network_error_is_transient() -> None:
    try:
        try:
            raise ConnectionRefusedError("catalog refused")
        except ConnectionRefusedError as refused:
            raise ValueError("could not parse the answer") from refused
    except ValueError as error:
        assert isinstance(classify_unexpected(error, "cdc.items"), TransientSinkError)
