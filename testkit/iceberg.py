"""Iceberg for tests and the bench: namespaces a caller owns, and change events built in code for the writer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyiceberg.catalog import Catalog

from pipelines.debezium import ChangeEvent, SourcePosition
from testkit.names import unique_name

SOURCE = SourcePosition(connector="postgresql", database="inventory", table="items", schema="inventory", ts_ms=0, snapshot=False)

ITEM_SCHEMA = {
    "fields": [
        {"field": "id", "type": "int32", "optional": False},
        {"field": "name", "type": "string", "optional": True},
        {"field": "qty", "type": "int32", "optional": True},
    ]
}


@contextmanager
def owned_namespace(catalog: Catalog, prefix: str = "test") -> Iterator[str]:
    """A namespace of the caller's own; its tables (data files included) and itself are dropped afterwards."""
    namespace = unique_name(prefix)
    catalog.create_namespace(namespace)
    try:
        yield namespace
    finally:
        for identifier in catalog.list_tables(namespace):
            catalog.purge_table(identifier)
        catalog.drop_namespace(namespace)


def change(
    op: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    row_schema: dict[str, Any] = ITEM_SCHEMA,
    key_columns: tuple[str, ...] = ("id",),
) -> ChangeEvent:
    """A decoded Debezium change event, as the sink receives it from `pipelines.debezium.decode`."""
    return ChangeEvent(op=op, key=None, before=before, after=after, source=SOURCE, ts_ms=0, row_schema=row_schema, key_columns=key_columns)
