"""The spec calls these Iceberg tests unit tests; they run against the live catalog and object store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pyiceberg.catalog import Catalog

from pipelines.sinks.iceberg.writer import IcebergTableWriter
from testkit.iceberg import owned_namespace
from tests.support.iceberg import catalog_of
from tests.support.stack import StackOutputs


@pytest.fixture
def catalog(stack: StackOutputs) -> Catalog:
    return catalog_of(stack)


@pytest.fixture
def namespace(catalog: Catalog) -> Iterator[str]:
    with owned_namespace(catalog) as name:
        yield name


@pytest.fixture
def writer(catalog: Catalog, namespace: str) -> IcebergTableWriter:
    return IcebergTableWriter(catalog, f"{namespace}.items")
