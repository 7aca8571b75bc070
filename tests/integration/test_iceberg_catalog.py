"""The Iceberg REST catalog with its warehouse on the object store, driven through PyIceberg."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import NamespaceAlreadyExistsError, NoSuchTableError, TableAlreadyExistsError
from pyiceberg.expressions import EqualTo
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

import stack_outputs as out
from testkit.iceberg import owned_namespace
from tests.support.iceberg import catalog_of
from tests.support.services import service_stopped
from tests.support.stack import StackOutputs

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "name", StringType(), required=False),
    identifier_field_ids=[1],
)
ARROW_SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string())])


def rows(*pairs: tuple[int, str]) -> pa.Table:
    return pa.Table.from_pylist([{"id": row_id, "name": name} for row_id, name in pairs], schema=ARROW_SCHEMA)


@pytest.fixture
def catalog(stack: StackOutputs) -> Catalog:
    return catalog_of(stack)


@pytest.fixture
def namespace(catalog: Catalog) -> Iterator[str]:
    with owned_namespace(catalog) as name:
        yield name


def test_the_catalog_answers_its_config_endpoint(stack: StackOutputs) -> None:
    response = httpx.get(f"{stack[out.ICEBERG_CATALOG_URI]}/v1/config", timeout=10)
    assert response.status_code == 200 and "defaults" in response.json()


def test_a_table_written_through_the_catalog_reads_back_row_for_row(catalog: Catalog, namespace: str) -> None:
    table = catalog.create_table(f"{namespace}.items", SCHEMA)
    table.append(rows((1, "bolt"), (2, "nut"), (3, "washer")))
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda row: row["id"]) == [
        {"id": 1, "name": "bolt"},
        {"id": 2, "name": "nut"},
        {"id": 3, "name": "washer"},
    ]
    assert table.metadata.location.startswith("s3://warehouse/")
    assert table.schema().identifier_field_names() == {"id"}


def test_snapshots_carry_custom_summary_properties_and_time_travel(catalog: Catalog, namespace: str) -> None:
    table = catalog.create_table(f"{namespace}.events", SCHEMA)
    table.append(rows((1, "a")), snapshot_properties={"cdcstack.kafka-offsets": "pg.inventory.x:0:41"})
    first = table.current_snapshot()
    table.delete(delete_filter=EqualTo("id", 1))
    table.append(rows((2, "b")))
    assert first.summary["cdcstack.kafka-offsets"] == "pg.inventory.x:0:41"
    assert table.scan(snapshot_id=first.snapshot_id).to_arrow().to_pylist() == [{"id": 1, "name": "a"}]
    assert table.scan().to_arrow().to_pylist() == [{"id": 2, "name": "b"}]
    assert len(table.snapshots()) >= 3


def test_catalog_errors_map_to_pyiceberg_exceptions(catalog: Catalog, namespace: str) -> None:
    with pytest.raises(NoSuchTableError):
        catalog.load_table(f"{namespace}.missing")
    catalog.create_table(f"{namespace}.once", SCHEMA)
    with pytest.raises(TableAlreadyExistsError):
        catalog.create_table(f"{namespace}.once", SCHEMA)
    with pytest.raises(NamespaceAlreadyExistsError):
        catalog.create_namespace(namespace)


def test_table_metadata_survives_a_catalog_restart(stack: StackOutputs, catalog: Catalog, namespace: str) -> None:
    table = catalog.create_table(f"{namespace}.durable", SCHEMA)
    table.append(rows((7, "kept")))
    snapshot_id = table.current_snapshot().snapshot_id
    # Stopped, then the stack's own repair path: refresh reads the catalog as gone, up starts it on
    # the same data.
    config_url = f"{stack.iceberg_catalog_properties['uri']}/v1/config"
    with service_stopped(stack, "iceberg-catalog"), pytest.raises(httpx.TransportError):
        httpx.get(config_url, timeout=5)
    reloaded = load_catalog("cdcstack", **stack.iceberg_catalog_properties).load_table(f"{namespace}.durable")
    assert reloaded.current_snapshot().snapshot_id == snapshot_id
    assert reloaded.scan().to_arrow().to_pylist() == [{"id": 7, "name": "kept"}]
