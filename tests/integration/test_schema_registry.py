"""The stack's schema registry as a service: the subjects it manages, Avro end to end for the seeded
table, and surviving a crash with its subjects intact."""

from __future__ import annotations

import json

import psycopg
from pyiceberg.catalog import Catalog
import pytest

import stack_outputs as out
from pipelines.connectors import debezium_key_schema
from pipelines.sinks.job import table_identifier
from providers.schema_registry_client import canonical
from tests.support.iceberg import catalog_of
from tests.support.lake import iceberg_rows, wait_for_parity
from tests.support.schema_registry import Registry, latest_schema, level_of, registry_of, topic_records, version_id, versions
from tests.support.services import kill_service_process, wait_until_restarted
from tests.support.stack import StackOutputs

SEEDED_AVRO_TABLE = "avro_customers"


@pytest.fixture
def registry(stack: StackOutputs) -> Registry:
    return registry_of(stack)


@pytest.fixture
def seeded_topic(stack: StackOutputs) -> str:
    return f"{stack[out.AVRO_TOPIC_PREFIX]}.inventory.{SEEDED_AVRO_TABLE}"


def test_the_seeded_avro_tables_key_is_a_managed_full_subject_its_records_carry(
    stack: StackOutputs, registry: Registry, seeded_topic: str
) -> None:
    subject = stack[out.AVRO_KEY_SUBJECT]
    assert subject == f"{seeded_topic}-key"
    assert level_of(registry, subject) == "FULL"
    assert canonical(json.dumps(latest_schema(registry, subject))) == canonical(debezium_key_schema(seeded_topic, [("id", "int")]))
    # The stack's declaration and the connector's registration are one version, not two.
    assert versions(registry, subject) == [1]
    key_id = version_id(registry, subject, 1)
    value_ids = {version_id(registry, f"{seeded_topic}-value", version) for version in versions(registry, f"{seeded_topic}-value")}
    records = topic_records(stack, seeded_topic)
    assert len(records) >= 4 and {record.schema_id for record in records} <= value_ids
    assert key_id not in value_ids


def test_the_seeded_avro_table_lands_in_iceberg_equal_to_the_source(stack: StackOutputs, pg: psycopg.Connection, seeded_topic: str) -> None:
    catalog: Catalog = catalog_of(stack)
    identifier = table_identifier(stack[out.ICEBERG_SINK_NAMESPACE], seeded_topic)

    def source() -> list[dict]:
        with pg.cursor(row_factory=psycopg.rows.dict_row) as cursor:
            return cursor.execute(f"SELECT * FROM inventory.{SEEDED_AVRO_TABLE}").fetchall()

    converged = wait_for_parity(source, lambda: iceberg_rows(catalog, identifier), ("id",), f"{identifier} (through Avro)")
    assert len(converged.rows) >= 4 and {row["id"] for row in converged.rows} >= {1001, 1002, 1003, 1004}


def test_a_killed_registry_restarts_itself_with_its_subjects_levels_and_ids(stack: StackOutputs, registry: Registry, seeded_topic: str) -> None:
    subjects = sorted(registry.client.get_subjects())
    before = {subject: (versions(registry, subject), level_of(registry, subject), latest_schema(registry, subject)) for subject in subjects}
    key_id = version_id(registry, f"{seeded_topic}-key", 1)

    killed, restarts = kill_service_process(stack, "schema-registry")
    wait_until_restarted(stack, "schema-registry", killed, restarts, {"kind": "http", "url": f"{registry.url}/subjects"})

    after = {subject: (versions(registry, subject), level_of(registry, subject), latest_schema(registry, subject)) for subject in subjects}
    assert sorted(registry.client.get_subjects()) == subjects
    assert after == before
    assert version_id(registry, f"{seeded_topic}-key", 1) == key_id
