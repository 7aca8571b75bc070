"""The Iceberg writer's upsert and delete semantics, against the live catalog and object store."""

from __future__ import annotations

import datetime as dt
import decimal

from pipelines.sinks.iceberg.writer import IcebergTableWriter, sink_offsets_of
from testkit.iceberg import change


def rows(writer: IcebergTableWriter) -> list[dict]:
    return sorted(writer.catalog.load_table(writer.identifier).scan().to_arrow().to_pylist(), key=lambda row: row["id"])


def test_inserts_appear_as_rows(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1}), change("r", after={"id": 2, "name": "b", "qty": 2})], {"t:0": 2})
    assert rows(writer) == [{"id": 1, "name": "a", "qty": 1}, {"id": 2, "name": "b", "qty": 2}]


def test_an_update_replaces_the_row_of_its_key(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    writer.apply([change("u", before={"id": 1, "name": "a", "qty": 1}, after={"id": 1, "name": "a", "qty": 5})], {"t:0": 2})
    assert rows(writer) == [{"id": 1, "name": "a", "qty": 5}]


def test_a_delete_removes_the_row(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1}), change("c", after={"id": 2, "name": "b", "qty": 2})], {"t:0": 2})
    writer.apply([change("d", before={"id": 1, "name": "a", "qty": 1})], {"t:0": 3})
    assert rows(writer) == [{"id": 2, "name": "b", "qty": 2}]


def test_a_primary_key_change_moves_the_row(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    writer.apply([change("u", before={"id": 1, "name": "a", "qty": 1}, after={"id": 10, "name": "a", "qty": 1})], {"t:0": 2})
    assert rows(writer) == [{"id": 10, "name": "a", "qty": 1}]


def test_a_truncate_empties_the_table(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": n, "name": "x", "qty": n}) for n in range(5)], {"t:0": 5})
    writer.apply([change("t")], {"t:0": 6})
    assert rows(writer) == []


def test_a_key_created_and_deleted_in_one_batch_is_absent(writer: IcebergTableWriter) -> None:
    writer.apply(
        [change("c", after={"id": 1, "name": "a", "qty": 1}), change("d", before={"id": 1, "name": "a", "qty": 1}), change("c", after={"id": 2, "name": "b", "qty": 2})],
        {"t:0": 3},
    )
    assert rows(writer) == [{"id": 2, "name": "b", "qty": 2}]


def test_each_batch_is_one_commit(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": n, "name": "x", "qty": n}) for n in range(100)], {"t:0": 100})
    table = writer.catalog.load_table(writer.identifier)
    before = len(table.snapshots())
    writer.apply([change("u", before={"id": n, "name": "x", "qty": n}, after={"id": n, "name": "y", "qty": n}) for n in range(50)], {"t:0": 150})
    table = writer.catalog.load_table(writer.identifier)
    # One transaction: its snapshots all carry the batch's offsets, and the table moved once.
    new = table.snapshots()[before:]
    assert new and {sink_offsets_of(snapshot) for snapshot in new} == {'{"t:0": 150}'}
    assert len(rows(writer)) == 100 and sum(row["name"] == "y" for row in rows(writer)) == 50


def test_an_empty_batch_commits_nothing(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    count = len(writer.catalog.load_table(writer.identifier).snapshots())
    assert writer.apply([], {"t:0": 1}).rows == 0
    assert len(writer.catalog.load_table(writer.identifier).snapshots()) == count


def test_column_types_round_trip(writer: IcebergTableWriter) -> None:
    schema = {
        "fields": [
            {"field": "id", "type": "int64", "optional": False},
            {"field": "price", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2", "connect.decimal.precision": "10"}},
            {"field": "born", "type": "int32", "name": "io.debezium.time.Date"},
            {"field": "seen", "type": "string", "name": "io.debezium.time.ZonedTimestamp"},
            {"field": "active", "type": "boolean"},
            {"field": "blob", "type": "bytes"},
            {"field": "ratio", "type": "float64"},
        ]
    }
    row = {
        "id": 9_000_000_000,
        "price": decimal.Decimal("12.34"),
        "born": dt.date(1999, 12, 31),
        "seen": dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.timezone.utc),
        "active": True,
        "blob": b"\x00\xff",
        "ratio": 0.125,
    }
    writer.apply([change("c", after=row, row_schema=schema)], {"t:0": 1})
    assert rows(writer) == [row]


def test_missing_values_are_nulls(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": None, "qty": None})], {"t:0": 1})
    assert rows(writer) == [{"id": 1, "name": None, "qty": None}]


def test_a_column_the_source_adds_is_added_to_the_table(writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    wider = {"fields": [*[{"field": f, "type": t, "optional": f != "id"} for f, t in (("id", "int32"), ("name", "string"), ("qty", "int32"))], {"field": "colour", "type": "string"}]}
    writer.apply([change("c", after={"id": 2, "name": "b", "qty": 2, "colour": "red"}, row_schema=wider)], {"t:0": 2})
    assert rows(writer) == [{"id": 1, "name": "a", "qty": 1, "colour": None}, {"id": 2, "name": "b", "qty": 2, "colour": "red"}]


def test_applying_the_same_batch_twice_leaves_one_row_per_key(writer: IcebergTableWriter) -> None:
    """A replay (a crash before the consumer's offset commit) must not duplicate rows."""
    batch = [change("c", after={"id": n, "name": f"n{n}", "qty": n}) for n in range(20)]
    writer.apply(batch, {"t:0": 20})
    writer.apply(batch, {"t:0": 20})
    assert [row["id"] for row in rows(writer)] == list(range(20))


def test_a_composite_key_upserts_and_deletes_by_all_its_columns(writer: IcebergTableWriter) -> None:
    schema = {"fields": [{"field": "region", "type": "string", "optional": False}, {"field": "id", "type": "int32", "optional": False}, {"field": "qty", "type": "int32"}]}
    keyed = {"row_schema": schema, "key_columns": ("region", "id")}
    writer.apply(
        [change("c", after={"region": "eu", "id": 1, "qty": 1}, **keyed), change("c", after={"region": "us", "id": 1, "qty": 2}, **keyed)],
        {"t:0": 2},
    )
    writer.apply(
        [change("u", before={"region": "eu", "id": 1, "qty": 1}, after={"region": "eu", "id": 1, "qty": 9}, **keyed),
         change("d", before={"region": "us", "id": 1, "qty": 2}, **keyed)],
        {"t:0": 4},
    )
    table = writer.catalog.load_table(writer.identifier)
    assert table.schema().identifier_field_names() == {"region", "id"}
    assert table.scan().to_arrow().to_pylist() == [{"region": "eu", "id": 1, "qty": 9}]
