"""Comparing source rows with downstream rows: by key and as multisets, counting copies."""

from __future__ import annotations

import decimal

from pipelines.consistency import compare_multisets, compare_rows, freeze_row


def test_compare_rows_reports_missing_unexpected_and_changed_rows() -> None:
    source = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    downstream = [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 4, "v": "d"}]
    diff = compare_rows(source, downstream, ["id"])
    assert not diff.equal
    assert diff.missing == {(3,): {"id": 3, "v": "c"}}
    assert diff.unexpected == {(4,): {"id": 4, "v": "d"}}
    assert diff.changed == {(2,): ({"id": 2, "v": "b"}, {"id": 2, "v": "B"})}
    assert diff.duplicated == {} and diff.source_duplicated == {}
    assert compare_rows(source, list(reversed(source)), ["id"]).equal


def test_a_key_delivered_twice_downstream_is_a_difference_even_when_both_copies_match() -> None:
    source = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]
    downstream = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 2, "v": "b"}, {"id": 2, "v": "b"}]
    diff = compare_rows(source, downstream, ["id"])
    assert not diff.equal
    assert diff.duplicated == {(2,): 3}
    assert (diff.missing, diff.unexpected, diff.changed, diff.source_duplicated) == ({}, {}, {}, {})
    assert "1 duplicated downstream (key: rows), e.g. [((2,), 3)]" in diff.summary()


def test_a_duplicated_copy_that_differs_is_both_duplicated_and_changed() -> None:
    diff = compare_rows([{"id": 1, "v": "a"}], [{"id": 1, "v": "a"}, {"id": 1, "v": "stale"}], ["id"])
    assert diff.duplicated == {(1,): 2}
    assert diff.changed == {(1,): ({"id": 1, "v": "a"}, {"id": 1, "v": "stale"})}


def test_unexpected_keys_are_counted_too() -> None:
    diff = compare_rows([], [{"id": 9, "v": "x"}, {"id": 9, "v": "x"}], ["id"])
    assert diff.unexpected == {(9,): {"id": 9, "v": "x"}} and diff.duplicated == {(9,): 2}


def test_source_duplicates_are_reported_apart_from_downstream_ones() -> None:
    diff = compare_rows([{"id": 1, "v": "a"}, {"id": 1, "v": "a"}], [{"id": 1, "v": "a"}], ["id"])
    assert not diff.equal
    assert diff.source_duplicated == {(1,): 2} and diff.duplicated == {}
    assert "duplicated in the source (key: rows), e.g. [((1,), 2)]" in diff.summary()


def test_compare_rows_on_chosen_columns_ignores_the_others() -> None:
    diff = compare_rows([{"id": 1, "v": "a", "at": 1}], [{"id": 1, "v": "a", "at": 2}], ["id"], ["id", "v"])
    assert diff.equal and diff.summary() == "equal"


def test_multisets_count_copies_regardless_of_order() -> None:
    source = [{"op": "c", "id": 1}, {"op": "u", "id": 1}, {"op": "u", "id": 1}]
    assert compare_multisets(source, list(reversed(source))).equal
    diff = compare_multisets(source, [{"op": "c", "id": 1}, {"op": "u", "id": 1}, {"op": "c", "id": 1}])
    assert not diff.equal
    assert dict(diff.missing) == {freeze_row({"op": "u", "id": 1}): 1}
    assert dict(diff.unexpected) == {freeze_row({"op": "c", "id": 1}): 1}
    assert "1 missing rows (row, copies), e.g. [({'id': 1, 'op': 'u'}, 1)]" in diff.summary()


def test_multisets_see_a_row_emitted_twice() -> None:
    diff = compare_multisets([{"id": 1}], [{"id": 1}, {"id": 1}])
    assert not diff.missing and dict(diff.unexpected) == {(("id", 1),): 1}


def test_multisets_compare_on_chosen_columns_and_unhashable_cells() -> None:
    source = [{"id": 1, "tags": ["a", "b"], "doc": {"k": [1]}, "price": decimal.Decimal("1.50"), "seen": 1}]
    downstream = [{"id": 1, "tags": ["a", "b"], "doc": {"k": [1]}, "price": decimal.Decimal("1.5"), "seen": 2}]
    assert compare_multisets(source, downstream, ["id", "tags", "doc", "price"]).equal
    assert not compare_multisets(source, downstream).equal
    assert not compare_multisets(source, [{**downstream[0], "tags": ["b", "a"]}], ["id", "tags"]).equal
