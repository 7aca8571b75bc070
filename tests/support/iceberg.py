"""The live stack's Iceberg catalog for tests (namespaces and events built in code are in `testkit.iceberg`)."""

from __future__ import annotations

from pyiceberg.catalog import Catalog

from pipelines.sinks.iceberg.catalog import load_rest_catalog
from tests.support.stack import StackOutputs


def catalog_of(stack: StackOutputs) -> Catalog:
    """The stack's catalog, checked healthy first, every request bounded by a timeout."""
    return load_rest_catalog(stack.iceberg_catalog_properties)
