"""What a test run leaves behind on the live stack (house rule 4: a run leaves the stack as it found it).

Tests own their names (:func:`testkit.names.unique_name`: `<prefix>_<8 hex>`). The stack is
inventoried before the first test that reaches it and again after the last: a topic, connector,
Iceberg namespace or sink table, or Delta table folder with such a name that was not there before is
left over, and the run fails naming each, so a topic a replay brought back, or a table a sink made
of it, cannot hide behind a green run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from confluent_kafka.admin import AdminClient

import stack_outputs as out
from pipelines.spark import DELTA_PREFIX, bucket_of
from tests.support.iceberg import catalog_of
from tests.support.stack import StackOutputs

TEST_OWNED = re.compile(r"_[0-9a-f]{8}(?![0-9a-z])")
"""A name made by `unique_name`, wherever it sits in a topic, table or folder name."""
LIST_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Inventory:
    """The test-owned names on the stack, by kind."""

    names: dict[str, frozenset[str]]

    def left_over_since(self, before: Inventory) -> dict[str, list[str]]:
        return {
            kind: sorted(names - before.names.get(kind, frozenset()))
            for kind, names in self.names.items()
            if names - before.names.get(kind, frozenset())
        }


def _owned(names: object) -> frozenset[str]:
    return frozenset(name for name in names if TEST_OWNED.search(name))  # type: ignore[attr-defined]


def take_inventory(stack: StackOutputs) -> Inventory:
    """Every test-owned name on the stack now (a service that does not answer fails with its name)."""
    names: dict[str, frozenset[str]] = {}
    try:
        listed = AdminClient({"bootstrap.servers": stack.kafka_bootstrap}).list_topics(timeout=LIST_TIMEOUT_SECONDS).topics
    except Exception as error:  # noqa: BLE001 - whatever librdkafka raises, the check names Kafka
        raise AssertionError(f"kafka at {stack.kafka_bootstrap}: topics not listed for the leftovers check: {error}; log: {stack.log_of('kafka')}") from error
    names["kafka topics"] = _owned(listed)
    connectors = httpx.get(f"{stack.connect_url}/connectors", timeout=LIST_TIMEOUT_SECONDS)
    assert connectors.status_code == 200, f"connect at {stack.connect_url}: {connectors.status_code} {connectors.text}; log: {stack.log_of('connect')}"
    names["connectors"] = _owned(connectors.json())
    catalog = catalog_of(stack)
    names["iceberg namespaces"] = _owned(".".join(namespace) for namespace in catalog.list_namespaces())
    names["iceberg sink tables"] = _owned(".".join(table) for table in catalog.list_tables(stack[out.ICEBERG_SINK_NAMESPACE]))
    bucket = bucket_of(stack[out.WAREHOUSE])
    folders: set[str] = set()
    for page in stack.s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{DELTA_PREFIX}/", Delimiter="/"):
        folders.update(prefix["Prefix"] for prefix in page.get("CommonPrefixes", []))
    names["delta table folders"] = _owned(folders)
    return Inventory(names)


def assert_nothing_left_over(stack: StackOutputs, before: Inventory) -> None:
    left = take_inventory(stack).left_over_since(before)
    assert not left, (
        "the test run left these behind on the stack (a test's teardown missed them, or a connector or sink "
        f"brought them back after it): {left}"
    )
