"""Spark sessions for the lakehouse: Delta and Iceberg catalogs, S3A on the stack's object store,
the stack's Hive metastore. No Pulumi here: the Spark component builds the conf with
:func:`lakehouse_conf` and publishes it; the Delta sink, tests and bench open sessions with
:func:`open_session` from that published conf. :func:`executor_count` and :func:`master_applications`
tell a driver that has lost its cluster (the Delta sink's watchdog asks them).

The conf is plain `spark.*` keys, so the same job runs against any Spark cluster that has these
jars: point `spark.master` elsewhere and pass the jars as that cluster expects.

Why some keys are set (measured on this machine, see docs/spikes/spark-delta.md):

- `spark.jars` are `local:` URIs: every executor reads them where they are instead of fetching a
  383 MiB copy per application into the worker's work dir.
- `fs.s3a.directory.marker.retention=keep`: S3A otherwise deletes parent "directory" markers after
  every write, which on the local S3 gateway turned each MERGE into minutes of listing.
- `spark.databricks.delta.snapshotPartitions=1` and `spark.sql.shuffle.partitions=2`: small tables
  on one or two cores; the defaults (50 and 200 tasks) made every MERGE several seconds slower.
- `spark.ui.enabled=false` for sessions (the master and worker have UIs): a driver UI would take a
  port per session.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipelines.object_store import S3Access

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DELTA_DATABASE = "cdc_delta"
"""The metastore database the Delta sink keeps its tables in (`spark.table("cdc_delta.<table>")`)."""
DELTA_PREFIX = "delta"
"""Folder of the warehouse bucket holding the Delta tables: `s3a://<bucket>/delta/<table>`."""
ICEBERG_CATALOG = "iceberg"
"""Name of the stack's Iceberg REST catalog inside Spark (`iceberg.<namespace>.<table>`)."""
METASTORE_DATABASE = "metastore_db"
SECRET_KEYS = ("spark.hadoop.fs.s3a.secret.key", f"spark.sql.catalog.{ICEBERG_CATALOG}.s3.secret-access-key")
"""The keys of the conf that hold a secret."""
HADOOP_PREFIX = "spark.hadoop."


@dataclass(frozen=True)
class LakehouseEndpoints:
    """Where a Spark driver finds the stack's services."""

    master_url: str
    """`spark://127.0.0.1:<port>`."""
    metastore_host: str
    metastore_port: int
    store: S3Access
    """The object store, at the address this driver reaches it on."""
    bucket: str
    """The warehouse bucket (Delta under `delta/`, Spark's own warehouse under `spark-warehouse/`)."""
    iceberg_catalog_uri: str


@dataclass(frozen=True)
class SessionResources:
    """What one driver and its executor may take (the worker has room for two applications)."""

    driver_memory: str = "768m"
    executor_memory: str = "768m"
    executor_cores: int = 1


def bucket_of(warehouse: str) -> str:
    """`s3://bucket/` -> `bucket`."""
    return warehouse.split("://", 1)[-1].strip("/").split("/", 1)[0]


def delta_location(bucket: str, table: str) -> str:
    """Where the Delta sink keeps table `table` (the part after the database)."""
    return f"s3a://{bucket}/{DELTA_PREFIX}/{table}"


def lakehouse_conf(
    endpoints: LakehouseEndpoints,
    jars: Sequence[str],
    driver_class_path: Sequence[str],
    resources: SessionResources = SessionResources(),
) -> dict[str, str]:
    """Every `spark.*` setting a driver needs for Delta and Iceberg on the stack (holds secrets:
    :data:`SECRET_KEYS`). `jars` are URIs for `spark.jars`; `driver_class_path` the metastore's
    JDBC driver, which Hive's client loads through the system class loader."""
    metastore = f"jdbc:derby://{endpoints.metastore_host}:{endpoints.metastore_port}/{METASTORE_DATABASE};create=true"
    iceberg = f"spark.sql.catalog.{ICEBERG_CATALOG}"
    return {
        "spark.master": endpoints.master_url,
        "spark.jars": ",".join(jars),
        "spark.driver.extraClassPath": ":".join(driver_class_path),
        "spark.driver.memory": resources.driver_memory,
        "spark.executor.memory": resources.executor_memory,
        "spark.executor.cores": str(resources.executor_cores),
        "spark.cores.max": str(resources.executor_cores),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension,"
        "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.databricks.delta.snapshotPartitions": "1",
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": f"s3a://{endpoints.bucket}/spark-warehouse",
        "spark.hadoop.javax.jdo.option.ConnectionURL": metastore,
        "spark.hadoop.javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.ClientDriver",
        "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
        "spark.hadoop.hive.metastore.schema.verification": "false",
        **endpoints.store.s3a_conf(),
        "spark.hadoop.fs.s3a.directory.marker.retention": "keep",
        # A store that is down must fail a write within seconds (the sink retries), not after
        # S3A's default of twenty attempts with backoff.
        "spark.hadoop.fs.s3a.attempts.maximum": "3",
        "spark.hadoop.fs.s3a.retry.limit": "3",
        "spark.hadoop.fs.s3a.connection.establish.timeout": "5000",
        "spark.hadoop.fs.s3a.connection.timeout": "20000",
        iceberg: "org.apache.iceberg.spark.SparkCatalog",
        f"{iceberg}.type": "rest",
        f"{iceberg}.uri": endpoints.iceberg_catalog_uri,
        **endpoints.store.iceberg_file_io_conf(iceberg),
    }


def local_jar_uris(jars: Sequence[Path]) -> list[str]:
    """`local:` URIs: the jars are at these paths on every node (one machine here)."""
    return [f"local:{jar}" for jar in jars]


def open_session(conf: Mapping[str, str], app_name: str, work_dir: Path | None = None) -> SparkSession:
    """A Spark session with `conf` (from the stack's `spark_conf` output, or :func:`lakehouse_conf`).

    `work_dir` takes the driver's scratch files (Derby's log, Spark's local dirs) instead of the
    current directory. Only one session per Python process: a second call returns the first while
    it is active.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    settings = dict(conf)
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        settings.setdefault("spark.local.dir", str(work_dir / "spark-local"))
        settings["spark.driver.extraJavaOptions"] = f"-Dderby.system.home={work_dir}"
    # The driver binds loopback only, like every service of the stack.
    settings.setdefault("spark.driver.host", "127.0.0.1")
    settings.setdefault("spark.driver.bindAddress", "127.0.0.1")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # pyspark hands every launch setting to spark-submit on its command line, which any local user
    # can read in /proc: the secrets are set in the running session instead.
    secrets = {key: settings.pop(key) for key in SECRET_KEYS if key in settings}
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.enableHiveSupport().getOrCreate()
    hadoop = session.sparkContext._jsc.hadoopConfiguration()
    for key, value in secrets.items():
        if key.startswith(HADOOP_PREFIX):
            hadoop.set(key.removeprefix(HADOOP_PREFIX), value)
        else:
            session.conf.set(key, value)
    # Spark's INFO lines (and S3A's statistics at WARN) would drown the caller's own log.
    session.sparkContext.setLogLevel("ERROR")
    return session


def executor_count(session: SparkSession) -> int:
    """Executors the session's driver has now, the driver itself not counted."""
    # The block managers the driver knows: its own and one per live executor. pyspark has no
    # public call for it; the JVM's answers from the driver's memory, even while a job hangs.
    return session.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1  # noqa: SLF001


def master_applications(master_ui_url: str, timeout_seconds: float) -> set[str] | None:
    """Ids of the applications a standalone master runs or has waiting, from its web UI's /json/;
    None while the master is not ALIVE (recovering or standby: it may not list them yet). Raises
    OSError (or ValueError for a body that is not JSON) when the UI does not answer."""
    with urllib.request.urlopen(f"{master_ui_url.rstrip('/')}/json/", timeout=timeout_seconds) as response:
        state = json.load(response)
    if state.get("status", "ALIVE") != "ALIVE":
        return None
    return {application["id"] for application in state.get("activeapps", [])}
