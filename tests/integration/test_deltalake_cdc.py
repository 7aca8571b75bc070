"""The Delta writer against the stack's Spark cluster, metastore and object store: tables with Change
Data Feed, one MERGE per batch, ACID, idempotent replays, time travel, history, CDF, schema
evolution, and table metadata that outlives the Spark session (spec user story 2, FR-007..FR-011)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

import stack_outputs as out
from pipelines.sinks.delta.writer import KEY_COLUMNS_PROPERTY, DeltaTableWriter
from pipelines.sinks.errors import StorageError, TerminalSinkError
from pipelines.spark import bucket_of
from testkit.delta import object_keys
from testkit.iceberg import ITEM_SCHEMA, change
from testkit.stack import PROJECT_ROOT
from tests.support.delta import DeltaLake, owned_database
from tests.support.object_store import refusing_new_objects
from tests.support.stack import StackOutputs

TOPIC = "pg.inventory.items"


def offsets(next_offset: int) -> dict[str, int]:
    return {f"{TOPIC}:0": next_offset}


def item(row_id: int, name: str, qty: int) -> dict[str, Any]:
    return {"id": row_id, "name": name, "qty": qty}


def spark_rows(spark: SparkSession, query: str) -> list[dict[str, Any]]:
    return sorted((row.asDict() for row in spark.sql(query).collect()), key=lambda row: row["id"])


def history(spark: SparkSession, identifier: str) -> list[dict[str, Any]]:
    rows = spark.sql(f"DESCRIBE HISTORY {identifier}").select("version", "timestamp", "operation", "userMetadata").collect()
    return sorted((row.asDict() for row in rows), key=lambda row: row["version"])


def feed_entries(rows: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Change Data Feed rows (Spark's or delta-rs's) as (version, change type, id, name, qty), in that order."""
    return sorted((row["_commit_version"], row["_change_type"], row["id"], row["name"], row["qty"]) for row in rows)


def change_feed(spark: SparkSession, identifier: str, start: int, end: int) -> list[tuple[Any, ...]]:
    """The table's Change Data Feed from version `start` to `end`, both included."""
    return feed_entries(spark.sql(f"SELECT * FROM table_changes('{identifier}', {start}, {end})").collect())


class Owned:
    """A database of the test's own and a writer for table `items` in it."""

    def __init__(self, spark: SparkSession, database: str, location: str, bucket: str) -> None:
        self.spark = spark
        self.identifier = f"{database}.items"
        self.location = location
        self.bucket = bucket
        self.writer = self.new_writer()

    def new_writer(self) -> DeltaTableWriter:
        """A writer as a restarted sink has one: nothing cached."""
        return DeltaTableWriter(self.spark, self.identifier, self.bucket, location_root=self.location)

    @property
    def table_root(self) -> str:
        return f"{self.location.split('/', 3)[3]}"

    def version(self) -> int:
        return int(history(self.spark, self.identifier)[-1]["version"])

    def rows(self, version: int | None = None) -> list[dict[str, Any]]:
        travel = f" VERSION AS OF {version}" if version is not None else ""
        return spark_rows(self.spark, f"SELECT * FROM {self.identifier}{travel}")


@pytest.fixture
def owned(spark: SparkSession, delta_lake: DeltaLake, stack: StackOutputs) -> Iterator[Owned]:
    with owned_database(spark, delta_lake, stack.s3_client()) as (database, location):
        yield Owned(spark, database, location, bucket_of(stack[out.WAREHOUSE]))


def seed(owned: Owned, rows: int = 3) -> int:
    commit = owned.writer.apply([change("c", after=item(n, f"item {n}", n)) for n in range(1, rows + 1)], offsets(rows))
    assert isinstance(commit.version, int)
    return commit.version


def test_the_first_event_creates_a_delta_table_with_change_data_feed(owned: Owned, spark: SparkSession, delta_lake: DeltaLake) -> None:
    version = seed(owned)
    properties = {row["key"]: row["value"] for row in spark.sql(f"SHOW TBLPROPERTIES {owned.identifier}").collect()}
    assert properties["delta.enableChangeDataFeed"] == "true"
    assert json.loads(properties[KEY_COLUMNS_PROPERTY]) == ["id"]
    schema = {field.name: (field.dataType.simpleString(), field.nullable) for field in spark.table(owned.identifier).schema.fields}
    assert schema == {"id": ("int", False), "name": ("string", True), "qty": ("int", True)}
    detail = spark.sql(f"DESCRIBE DETAIL {owned.identifier}").first()
    assert detail["format"] == "delta" and detail["location"] == f"{owned.location}/items"
    expected = [item(n, f"item {n}", n) for n in (1, 2, 3)]
    assert owned.rows() == expected
    # delta-rs reads the same table, at the same version, without a JVM.
    assert sorted(delta_lake.rows("items", root=f"{owned.table_root}"), key=lambda row: row["id"]) == expected
    assert delta_lake.version("items", root=owned.table_root) == version


def test_a_batch_is_one_merge_keyed_by_the_primary_key(owned: Owned, spark: SparkSession) -> None:
    before = seed(owned)
    batch = [
        change("u", before=item(1, "item 1", 1), after=item(1, "renamed", 10)),
        change("d", before=item(2, "item 2", 2)),
        change("c", after=item(4, "item 4", 4)),
        change("u", before=item(4, "item 4", 4), after=item(4, "item 4", 40)),
        change("d", before=item(3, "item 3", 3)),
        change("c", after=item(3, "item 3 again", 33)),
    ]
    commit = owned.writer.apply(batch, offsets(9))
    assert commit.version == before + 1
    assert owned.rows() == [item(1, "renamed", 10), item(3, "item 3 again", 33), item(4, "item 4", 40)]
    commits = history(spark, owned.identifier)
    assert [entry["operation"] for entry in commits] == ["CREATE TABLE", "MERGE", "MERGE"]


def test_a_batch_failing_before_or_at_its_commit_leaves_version_rows_and_feed_unchanged_and_lands_once_on_retry(
    owned: Owned, spark: SparkSession, stack: StackOutputs
) -> None:
    before = seed(owned)
    rows_before = owned.rows()
    feed_before = change_feed(spark, owned.identifier, 0, before)
    # A value that does not fit is refused while the MERGE source is built: nothing of the batch may land.
    unfit = [
        change("u", before=item(1, "item 1", 1), after=item(1, "half applied", 100)),
        change("c", after=item(7, "item 7", 7)),
        change("c", after={"id": 8, "name": "bad", "qty": "not a number"}),
    ]
    with pytest.raises(TerminalSinkError, match="does not fit"):
        owned.writer.apply(unfit, offsets(6))
    assert owned.version() == before
    assert owned.rows() == rows_before
    # This batch fits, and the MERGE runs: its data and change files are written, then the store
    # refuses the commit file in _delta_log. Delta must not have committed any of it.
    batch = [
        change("u", before=item(1, "item 1", 1), after=item(1, "renamed", 100)),
        change("d", before=item(2, "item 2", 2)),
        change("c", after=item(7, "item 7", 7)),
    ]
    table_root = f"{owned.table_root}/items"
    s3 = stack.s3_client()
    stored_before = set(object_keys(s3, owned.bucket, table_root))
    with refusing_new_objects(stack, owned.bucket, f"{table_root}/_delta_log"):
        with pytest.raises(StorageError, match="object store refused or did not answer, nothing was committed"):
            owned.writer.apply(batch, offsets(6))
    written = set(object_keys(s3, owned.bucket, table_root)) - stored_before
    assert any(key.endswith(".parquet") and "/_change_data/" not in key for key in written), written
    assert any("/_change_data/" in key for key in written), written
    assert not any("/_delta_log/" in key for key in written), written
    assert owned.version() == before
    assert owned.rows() == rows_before
    assert change_feed(spark, owned.identifier, 0, before) == feed_before
    assert owned.new_writer().committed_offsets() == offsets(3)
    # The store writes again: the same batch, retried, lands once, in one commit.
    retried = owned.writer.apply(batch, offsets(6))
    assert retried.version == before + 1 == owned.version()
    assert owned.rows() == [item(1, "renamed", 100), item(3, "item 3", 3), item(7, "item 7", 7)]
    assert change_feed(spark, owned.identifier, 0, owned.version()) == [
        *feed_before,
        (before + 1, "delete", 2, "item 2", 2),
        (before + 1, "insert", 7, "item 7", 7),
        (before + 1, "update_postimage", 1, "renamed", 100),
        (before + 1, "update_preimage", 1, "item 1", 1),
    ]
    assert owned.new_writer().committed_offsets() == offsets(6)


def test_a_replayed_batch_is_a_no_op_for_delta_itself(owned: Owned) -> None:
    seed(owned)
    batch = [change("u", before=item(2, "item 2", 2), after=item(2, "item 2", 200)), change("c", after=item(5, "item 5", 5))]
    applied = owned.writer.apply(batch, offsets(5))
    # A restarted sink that lost the group commit applies the same batch again: Delta's
    # txnAppId/txnVersion skips it, so neither the version nor the rows move.
    replayed = owned.new_writer().apply(batch, offsets(5))
    assert replayed.version == applied.version == owned.version()
    assert owned.rows() == [item(1, "item 1", 1), item(2, "item 2", 200), item(3, "item 3", 3), item(5, "item 5", 5)]
    assert owned.new_writer().committed_offsets() == offsets(5)


def test_time_travel_by_version_and_by_timestamp(owned: Owned, spark: SparkSession, delta_lake: DeltaLake) -> None:
    first = seed(owned)
    owned.writer.apply([change("d", before=item(1, "item 1", 1)), change("u", before=item(2, "item 2", 2), after=item(2, "two", 22))], offsets(5))
    at_first = [item(1, "item 1", 1), item(2, "item 2", 2), item(3, "item 3", 3)]
    assert owned.rows(version=first) == at_first
    committed_at = next(entry["timestamp"] for entry in history(spark, owned.identifier) if entry["version"] == first)
    assert spark_rows(spark, f"SELECT * FROM {owned.identifier} TIMESTAMP AS OF '{committed_at.isoformat(sep=' ')}'") == at_first
    assert owned.rows() == [item(2, "two", 22), item(3, "item 3", 3)]
    assert sorted(delta_lake.rows("items", version=first, root=owned.table_root), key=lambda row: row["id"]) == at_first


def test_history_lists_every_commit_with_the_offsets_it_applied(owned: Owned, spark: SparkSession) -> None:
    seed(owned)
    owned.writer.apply([change("c", after=item(4, "item 4", 4))], offsets(4))
    owned.writer.apply([change("d", before=item(4, "item 4", 4))], offsets(6))
    commits = history(spark, owned.identifier)
    assert [entry["version"] for entry in commits] == list(range(len(commits)))
    assert [entry["operation"] for entry in commits] == ["CREATE TABLE", "MERGE", "MERGE", "MERGE"]
    assert [json.loads(entry["userMetadata"]) for entry in commits[1:]] == [offsets(3), offsets(4), offsets(6)]
    assert owned.new_writer().committed_offsets() == offsets(6)


def test_the_change_data_feed_between_versions_equals_the_changes_applied(owned: Owned, spark: SparkSession, delta_lake: DeltaLake) -> None:
    start = seed(owned)
    owned.writer.apply([change("u", before=item(1, "item 1", 1), after=item(1, "item 1", 11))], offsets(4))
    owned.writer.apply([change("d", before=item(2, "item 2", 2)), change("c", after=item(9, "item 9", 9))], offsets(6))
    end = owned.version()
    feed = change_feed(spark, owned.identifier, start, end)
    assert feed == [
        (start, "insert", 1, "item 1", 1),
        (start, "insert", 2, "item 2", 2),
        (start, "insert", 3, "item 3", 3),
        (start + 1, "update_postimage", 1, "item 1", 11),
        (start + 1, "update_preimage", 1, "item 1", 1),
        (start + 2, "delete", 2, "item 2", 2),
        (start + 2, "insert", 9, "item 9", 9),
    ]
    assert feed_entries(delta_lake.changes("items", start, end, root=owned.table_root)) == feed


def test_a_column_added_at_the_source_is_merged_into_the_table(owned: Owned, spark: SparkSession) -> None:
    seed(owned, rows=2)
    wider = {"fields": [*ITEM_SCHEMA["fields"], {"field": "colour", "type": "string", "optional": True}]}
    owned.writer.apply(
        [
            change("c", after={**item(3, "item 3", 3), "colour": "red"}, row_schema=wider),
            change("u", before=item(1, "item 1", 1), after={**item(1, "item 1", 1), "colour": "blue"}, row_schema=wider),
        ],
        offsets(4),
    )
    assert [field.name for field in spark.table(owned.identifier).schema.fields] == ["id", "name", "qty", "colour"]
    assert owned.rows() == [{**item(1, "item 1", 1), "colour": "blue"}, {**item(2, "item 2", 2), "colour": None}, {**item(3, "item 3", 3), "colour": "red"}]


RESTARTED_DRIVER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from pipelines.spark import open_session
    conf_file, identifier, work_dir = sys.argv[1:4]
    spark = open_session(json.loads(Path(conf_file).read_text()), "cdcstack-tests-restarted", Path(work_dir))
    database, table = identifier.split(".")
    properties = {row["key"]: row["value"] for row in spark.sql(f"SHOW TBLPROPERTIES {identifier}").collect()}
    print(json.dumps({
        "tables": [row["tableName"] for row in spark.sql(f"SHOW TABLES IN {database}").collect()],
        "rows": sorted([row.asDict() for row in spark.table(identifier).collect()], key=lambda row: row["id"]),
        "cdf": properties.get("delta.enableChangeDataFeed"),
    }))
    spark.stop()
    """
)


def test_table_metadata_survives_a_spark_session_restart(owned: Owned, stack: StackOutputs, tmp_path: Path) -> None:
    seed(owned)
    conf_file = tmp_path / "spark-conf.json"
    conf_file.write_text(json.dumps(stack[out.SPARK_CONF]))
    conf_file.chmod(0o600)
    # A new Python process is a new driver JVM: all it has is the metastore and the object store.
    result = subprocess.run(
        [sys.executable, "-c", RESTARTED_DRIVER, str(conf_file), owned.identifier, str(tmp_path / "driver")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    assert result.returncode == 0, f"the restarted driver failed:\n{result.stderr[-3000:]}"
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"tables": ["items"], "rows": [item(n, f"item {n}", n) for n in (1, 2, 3)], "cdf": "true"}
