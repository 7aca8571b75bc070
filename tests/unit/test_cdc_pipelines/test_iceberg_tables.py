"""Tables and namespaces the sink creates, on the live catalog and object store."""

from __future__ import annotations

import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.types import IntegerType, StringType

import stack_outputs as out
from pipelines.sinks.iceberg.writer import IcebergTableWriter
from testkit.iceberg import change
from testkit.names import unique_name
from tests.support.stack import StackOutputs


def test_the_first_event_creates_the_table_with_the_key_as_identifier(writer: IcebergTableWriter) -> None:
    assert writer.load() is None
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    table = writer.catalog.load_table(writer.identifier)
    assert [(f.name, f.field_type, f.required) for f in table.schema().fields] == [
        ("id", IntegerType(), True),
        ("name", StringType(), False),
        ("qty", IntegerType(), False),
    ]
    assert table.schema().identifier_field_names() == {"id"}


def test_a_missing_namespace_is_created(catalog: Catalog) -> None:
    namespace = unique_name("auto")
    writer = IcebergTableWriter(catalog, f"{namespace}.items")
    try:
        writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
        assert (namespace,) in catalog.list_namespaces()
        assert catalog.list_tables(namespace) == [(namespace, "items")]
    finally:
        catalog.purge_table(f"{namespace}.items")
        catalog.drop_namespace(namespace)


def test_a_second_writer_loads_the_existing_table(catalog: Catalog, writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    table_uuid = catalog.load_table(writer.identifier).metadata.table_uuid
    again = IcebergTableWriter(catalog, writer.identifier)
    again.apply([change("c", after={"id": 2, "name": "b", "qty": 2})], {"t:0": 2})
    table = catalog.load_table(writer.identifier)
    assert table.metadata.table_uuid == table_uuid
    assert len(table.scan().to_arrow()) == 2


def test_a_dropped_table_is_gone(catalog: Catalog, writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    catalog.purge_table(writer.identifier)
    with pytest.raises(NoSuchTableError):
        catalog.load_table(writer.identifier)
    assert writer.load() is None


def test_table_files_live_in_the_warehouse_bucket(stack: StackOutputs, writer: IcebergTableWriter) -> None:
    writer.apply([change("c", after={"id": n, "name": "x", "qty": n}) for n in range(10)], {"t:0": 10})
    location = writer.catalog.load_table(writer.identifier).metadata.location
    assert location.startswith(stack[out.WAREHOUSE])
    prefix = location.removeprefix("s3://warehouse/")
    keys = [item["Key"] for item in stack.s3_client().list_objects_v2(Bucket="warehouse", Prefix=prefix)["Contents"]]
    assert any(key.endswith(".parquet") for key in keys) and any(key.endswith(".metadata.json") for key in keys)


def test_namespaces_list_their_tables_and_drop_once_empty(catalog: Catalog) -> None:
    namespace = unique_name("ns")
    catalog.create_namespace(namespace)
    writer = IcebergTableWriter(catalog, f"{namespace}.one")
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    assert (namespace,) in catalog.list_namespaces()
    assert catalog.list_tables(namespace) == [(namespace, "one")]
    catalog.purge_table(f"{namespace}.one")
    catalog.drop_namespace(namespace)
    assert (namespace,) not in catalog.list_namespaces()
