"""Spike for the Delta Lake issue: Spark standalone + Delta 3.3 on the S3 gateway, measured.

Not product code. It documents what works on this machine, and FINDINGS.md quotes its figures.

    /tmp/i9venv/bin/python spike/spark_delta_spike.py [--jars-mode spark.jars|classpath] [--keep]

Needs: a venv with pyspark==3.5.9 delta-spark==3.3.3 deltalake==1.6.6 pyarrow; the Maven jars of
toolchain/maven/spark.pom.xml in SPIKE_SPARK_LIB (default /tmp/i9spark/lib); versitygw in
SPIKE_VERSITYGW. Everything else (ports, data, logs) is a fresh temp dir on 127.0.0.1 ports 3xxxx.

The orchestrator starts the S3 gateway, the master and the worker, then runs each driver phase in a
subprocess of its own, so that "session restart" is a new driver JVM against the same embedded Derby
metastore (Derby allows one JVM at a time), not pyspark reusing its gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ACCESS_KEY = "spike"
SECRET_KEY = "spike-secret-key"
REGION = "us-east-1"
DEV_STACK_PORTS = {25432, 23306, 29092, 29093, 28083, 29000, 28181, 28190}
ROLES = {
    "org.apache.spark.deploy.master.Master": "master",
    "org.apache.spark.deploy.worker.Worker": "worker",
    "org.apache.spark.executor.CoarseGrainedExecutorBackend": "executor",
    "org.apache.spark.deploy.SparkSubmit": "driver",
}


def free_port(taken: set[int]) -> int:
    while True:
        port = random.randint(31000, 39999)
        if port in taken or port in DEV_STACK_PORTS:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port


def wait_for(what: str, check, timeout: float = 90.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if check():
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout}s")


def http_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def process_memory(marker: str) -> dict[str, dict[str, int]]:
    """RSS and peak RSS (MiB) of our JVMs, found by the temp dir in their command lines."""
    found: dict[str, dict[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if marker not in cmdline:
            continue
        role = next((name for cls, name in ROLES.items() if cls in cmdline), None)
        if role is None:
            continue
        fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
        found[role] = {"pid": int(entry.name), "rss_mib": int(fields["VmRSS"]) // 1024, "peak_rss_mib": int(fields["VmHWM"]) // 1024}
    return found


# ---------------------------------------------------------------- driver side (subprocesses)


def build_session(conf: dict, app: str):
    from pyspark.sql import SparkSession

    jars = sorted(str(jar) for jar in Path(conf["spark_lib"]).glob("*.jar"))
    builder = (
        SparkSession.builder.appName(app)
        .master(conf["master_url"])
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", "1g")
        .config("spark.executor.memory", "1g")
        .config("spark.executor.cores", "1")
        .config("spark.cores.max", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # 200 shuffle partitions of a 1,000-row MERGE on one core is the single largest cost.
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension,org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.catalog.iceberg", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.iceberg.type", "hadoop")
        .config("spark.sql.catalog.iceberg.warehouse", "s3a://warehouse/iceberg")
        # The persistent table catalog: Spark's built-in Hive 2.3.9 client over embedded Derby.
        .config("spark.sql.catalogImplementation", "hive")
        .config("spark.hadoop.javax.jdo.option.ConnectionURL", f"jdbc:derby:;databaseName={conf['metastore_dir']}/metastore_db;create=true")
        .config("spark.hadoop.datanucleus.schema.autoCreateAll", "true")
        .config("spark.hadoop.hive.metastore.schema.verification", "false")
        .config("spark.sql.warehouse.dir", "s3a://warehouse/spark-warehouse")
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={conf['metastore_dir']}")
        .config("spark.hadoop.fs.s3a.endpoint", conf["s3_endpoint"])
        .config("spark.hadoop.fs.s3a.endpoint.region", REGION)
        .config("spark.hadoop.fs.s3a.path.style.access", "true")
        .config("spark.hadoop.fs.s3a.connection.ssl.enabled", "false")
        .config("spark.hadoop.fs.s3a.access.key", ACCESS_KEY)
        .config("spark.hadoop.fs.s3a.secret.key", SECRET_KEY)
        # S3A deletes the parent "directory marker" objects after every write; the S3 gateway's posix
        # backend refuses (ErrDirectoryNotEmpty) and S3A retries each refusal with backoff up to a minute.
        .config("spark.hadoop.fs.s3a.directory.marker.retention", "keep")
        .config("spark.hadoop.fs.s3a.aws.credentials.provider", "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider")
        .config("spark.sql.session.timeZone", "UTC")
        .enableHiveSupport()
    )
    if conf["jars_mode"] == "classpath":
        classpath = f"{conf['spark_lib']}/*"
        builder = builder.config("spark.driver.extraClassPath", classpath).config("spark.executor.extraClassPath", classpath)
    else:
        builder = builder.config("spark.jars", ",".join(jars))
    if conf.get("snapshot_partitions"):
        builder = builder.config("spark.databricks.delta.snapshotPartitions", str(conf["snapshot_partitions"]))
    return builder.getOrCreate()


def timed(results: dict, key: str, action):
    started = time.monotonic()
    value = action()
    results[key] = round(time.monotonic() - started, 3)
    return value


MERGE = """
MERGE INTO {table} AS t USING batch AS s ON t.id = s.id
WHEN MATCHED AND s.op = 'd' THEN DELETE
WHEN MATCHED THEN UPDATE SET t.name = s.name, t.amount = s.amount, t.batch = s.batch
WHEN NOT MATCHED AND s.op <> 'd' THEN INSERT (id, name, amount, batch) VALUES (s.id, s.name, s.amount, s.batch)
"""


def batch_frame(spark, batch: int):
    """1,000 rows: half updates of the previous batch's rows (every tenth of those a delete), half new."""
    start = (batch - 1) * 500
    return spark.range(start, start + 1000).selectExpr(
        "id",
        f"concat('name-', id, '-b{batch}') AS name",
        f"CAST(id * {batch} AS DECIMAL(18,2)) AS amount",
        f"{batch} AS batch",
        f"CASE WHEN {batch} > 1 AND id < {start + 500} AND id % 10 = 0 THEN 'd' ELSE 'u' END AS op",
    )


def table_version(spark, table: str) -> int:
    return spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").collect()[0]["version"]


def merge_batch(spark, table: str, batch: int, app_id: str) -> None:
    batch_frame(spark, batch).createOrReplaceTempView("batch")
    # Idempotence: Delta skips a write whose (txnAppId, txnVersion) is not above the table's last
    # SetTransaction for that app id. The confs stay set on the session, so unset them after.
    spark.conf.set("spark.databricks.delta.write.txnAppId", app_id)
    spark.conf.set("spark.databricks.delta.write.txnVersion", str(batch))
    try:
        spark.sql(MERGE.format(table=table))
    finally:
        spark.conf.unset("spark.databricks.delta.write.txnAppId")
        spark.conf.unset("spark.databricks.delta.write.txnVersion")


def phase_write(conf: dict) -> dict:
    results: dict = {"phase": "write", "snapshot_partitions": conf.get("snapshot_partitions") or "default (50)"}
    started = time.monotonic()
    spark = build_session(conf, f"spike-write-{conf['table']}")
    results["session_create_s"] = round(time.monotonic() - started, 3)
    spark.sparkContext.setLogLevel("WARN")
    timed(results, "first_job_s", lambda: spark.range(1).count())
    results["session_ready_s"] = round(time.monotonic() - started, 3)
    results["spark_version"] = spark.version

    table = f"cdc_delta.{conf['table']}"
    location = f"s3a://warehouse/delta/{conf['table']}"
    try:
        timed(results, "create_database_s", lambda: spark.sql("CREATE DATABASE IF NOT EXISTS cdc_delta LOCATION 's3a://warehouse/delta'"))
        results["database_location"] = "s3a://warehouse/delta"
    except Exception as error:  # noqa: BLE001 - the spike records what fails
        results["create_database_error"] = str(error)[:500]
        spark.sql("CREATE DATABASE IF NOT EXISTS cdc_delta")
    timed(
        results,
        "create_table_s",
        lambda: spark.sql(
            f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT, name STRING, amount DECIMAL(18,2), batch INT) USING DELTA "
            f"LOCATION '{location}' TBLPROPERTIES (delta.enableChangeDataFeed = true)"
        ),
    )
    app_id = f"cdc-sink-{conf['table']}"
    timed(results, "merge_cold_s", lambda: merge_batch(spark, table, 1, app_id))
    warm = []
    for batch in (2, 3, 4):
        started_merge = time.monotonic()
        merge_batch(spark, table, batch, app_id)
        warm.append(round(time.monotonic() - started_merge, 3))
    results["merge_warm_s"] = warm
    version_before = table_version(spark, table)
    timed(results, "merge_replay_s", lambda: merge_batch(spark, table, 4, app_id))
    version_after = table_version(spark, table)
    results["replayed_merge"] = {"version_before": version_before, "version_after": version_after, "no_op": version_before == version_after}
    results["row_count"] = spark.table(table).count()
    results["expected_row_count"] = 2500 - 3 * 50  # ids 0..2499, minus 50 deletes in each of batches 2-4

    cdf = timed(
        results,
        "cdf_read_s",
        lambda: spark.sql(f"SELECT _change_type, count(*) AS n FROM table_changes('{table}', 2, 3) GROUP BY _change_type").collect(),
    )
    results["cdf_v2_v3"] = {row["_change_type"]: row["n"] for row in cdf}
    history = spark.sql(f"DESCRIBE HISTORY {table}").select("version", "timestamp", "operation").orderBy("version").collect()
    results["history"] = [[row["version"], row["timestamp"].isoformat(), row["operation"]] for row in history]
    v2 = spark.sql(f"SELECT count(*) AS n FROM {table} VERSION AS OF 2").collect()[0]["n"]
    ts2 = next(row["timestamp"] for row in history if row["version"] == 2).isoformat(sep=" ")
    at_ts2 = spark.sql(f"SELECT count(*) AS n FROM {table} TIMESTAMP AS OF '{ts2}'").collect()[0]["n"]
    results["time_travel"] = {"version_2_rows": v2, "timestamp_of_v2": ts2, "timestamp_rows": at_ts2}
    from delta.tables import DeltaTable

    detail = DeltaTable.forName(spark, table).detail().select("location", "minReaderVersion", "minWriterVersion", "properties").collect()[0]
    results["detail"] = {"location": detail["location"], "reader": detail["minReaderVersion"], "writer": detail["minWriterVersion"], "properties": detail["properties"]}
    results["log_store"] = spark.sparkContext._jsc.hadoopConfiguration().get("delta.logStore.s3a.impl") or "default (S3SingleDriverLogStore)"

    if conf.get("iceberg"):
        try:
            spark.sql("CREATE TABLE IF NOT EXISTS iceberg.spike.t (id BIGINT, name STRING) USING iceberg")
            spark.sql("INSERT INTO iceberg.spike.t VALUES (1, 'a'), (2, 'b')")
            results["iceberg_rows"] = spark.table("iceberg.spike.t").count()
        except Exception as error:  # noqa: BLE001
            results["iceberg_error"] = str(error)[:500]
    results["memory"] = process_memory(conf["marker"])
    spark.stop()
    return results


def phase_restart(conf: dict) -> dict:
    results: dict = {"phase": "restart"}
    started = time.monotonic()
    spark = build_session(conf, "spike-restart")
    spark.sparkContext.setLogLevel("WARN")
    results["session_create_s"] = round(time.monotonic() - started, 3)
    results["tables"] = [row["tableName"] for row in spark.sql("SHOW TABLES IN cdc_delta").collect()]
    results["spark_table_rows"] = {
        name: timed(results, f"count_{name}_s", lambda name=name: spark.table(f"cdc_delta.{name}").count()) for name in results["tables"]
    }
    spark.stop()
    return results


# ---------------------------------------------------------------- orchestrator


def delta_rs_read(conf: dict, table: str) -> dict:
    from deltalake import DeltaTable

    options = {
        "AWS_ENDPOINT_URL": conf["s3_endpoint"],
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
    }
    results: dict = {}
    started = time.monotonic()
    delta = DeltaTable(f"s3://warehouse/delta/{table}", storage_options=options)
    results["open_s"] = round(time.monotonic() - started, 3)
    arrow = delta.to_pyarrow_table()
    results["open_and_read_s"] = round(time.monotonic() - started, 3)
    results["rows"] = arrow.num_rows
    results["version"] = delta.version()
    results["protocol"] = str(delta.protocol())
    started = time.monotonic()
    changes = delta.load_cdf(starting_version=2, ending_version=3).read_all()
    results["cdf_read_s"] = round(time.monotonic() - started, 3)
    kinds: dict[str, int] = {}
    for kind in changes.column("_change_type").to_pylist():
        kinds[kind] = kinds.get(kind, 0) + 1
    results["cdf_v2_v3"] = kinds
    return results


def run_phase(conf: dict, phase: str, log: Path) -> dict:
    conf_file = Path(conf["root"]) / f"{phase}-{conf.get('table', '')}.json"
    env = conf.pop("env")
    conf_file.write_text(json.dumps(conf))
    with log.open("ab") as out:
        subprocess.run([sys.executable, __file__, "--phase", phase, "--conf", str(conf_file)], check=True, stdout=out, stderr=out, env=env)
    return json.loads(conf_file.with_suffix(".out.json").read_text())


def orchestrate(args: argparse.Namespace) -> dict:
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    root = Path(tempfile.mkdtemp(prefix="i9spike-"))
    taken: set[int] = set()
    ports = {name: free_port(taken) for name in ("s3", "master", "master_ui", "worker", "worker_ui")}
    (root / "s3" / "warehouse").mkdir(parents=True)
    (root / "conf").mkdir()
    (root / "metastore").mkdir()
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_CONF_DIR": str(root / "conf"),
        "SPARK_LOG_DIR": str(root / "logs"),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOCAL_DIRS": str(root / "local"),
        "SPARK_DAEMON_MEMORY": args.daemon_memory,
        "PYSPARK_PYTHON": sys.executable,
    }
    processes: list[subprocess.Popen] = []
    results: dict = {"root": str(root), "ports": ports, "jars_mode": args.jars_mode, "daemon_memory": args.daemon_memory}

    def launch(name: str, argv: list[str], extra_env: dict | None = None) -> None:
        log = (root / f"{name}.log").open("wb")
        processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**env, **(extra_env or {})}, start_new_session=True))

    try:
        started = time.monotonic()
        launch(
            "versitygw",
            [args.versitygw, "--port", f"127.0.0.1:{ports['s3']}", "--health", "/health", "--quiet", "posix", str(root / "s3")],
            {"ROOT_ACCESS_KEY_ID": ACCESS_KEY, "ROOT_SECRET_ACCESS_KEY": SECRET_KEY},
        )
        results["s3_ready_s"] = round(
            wait_for("s3", lambda: urllib.request.urlopen(f"http://127.0.0.1:{ports['s3']}/health", timeout=2).status == 200), 3
        )
        spark_class = str(spark_home / "bin" / "spark-class")
        started = time.monotonic()
        launch(
            "master",
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(ports["master"]), "--webui-port", str(ports["master_ui"])],
        )
        master_json = f"http://127.0.0.1:{ports['master_ui']}/json/"
        results["master_ready_s"] = round(wait_for("master", lambda: http_json(master_json)["status"] == "ALIVE"), 3)
        launch(
            "worker",
            [
                spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(ports["worker"]),
                "--webui-port", str(ports["worker_ui"]), "--cores", "1", "--memory", "1g", "--work-dir", str(root / "work"),
                f"spark://127.0.0.1:{ports['master']}",
            ],
        )
        wait_for("worker", lambda: any(worker["state"] == "ALIVE" for worker in http_json(master_json)["workers"]))
        results["master_and_worker_ready_s"] = round(time.monotonic() - started, 3)
        results["master_json"] = http_json(master_json)
        results["idle_memory"] = process_memory(str(root))

        conf = {
            "root": str(root),
            "marker": str(root),
            "master_url": f"spark://127.0.0.1:{ports['master']}",
            "s3_endpoint": f"http://127.0.0.1:{ports['s3']}",
            "spark_lib": args.spark_lib,
            "metastore_dir": str(root / "metastore"),
            "jars_mode": args.jars_mode,
            "env": env,
        }
        driver_log = root / "driver.log"
        results["write_default"] = run_phase({**conf, "table": "t", "iceberg": True}, "write", driver_log)
        results["write_snapshot_partitions_1"] = run_phase({**conf, "table": "t_sp1", "snapshot_partitions": 1}, "write", driver_log)
        results["restart"] = run_phase({**conf, "table": ""}, "restart", driver_log)
        results["delta_rs"] = delta_rs_read(conf, "t")
        results["master_json_after"] = http_json(master_json)
        work = root / "work"
        results["executor_work_dir_mib"] = sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) // (1024 * 1024)
        results["s3_data_mib"] = sum(f.stat().st_size for f in (root / "s3").rglob("*") if f.is_file()) // (1024 * 1024)
        results["metastore_mib"] = sum(f.stat().st_size for f in (root / "metastore").rglob("*") if f.is_file()) // (1024 * 1024)
        return results
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", choices=("write", "restart"))
    parser.add_argument("--conf")
    parser.add_argument("--jars-mode", choices=("spark.jars", "classpath"), default="spark.jars")
    parser.add_argument("--daemon-memory", default="256m", help="SPARK_DAEMON_MEMORY of master and worker")
    parser.add_argument("--spark-lib", default=os.environ.get("SPIKE_SPARK_LIB", "/tmp/i9spark/lib"))
    parser.add_argument("--versitygw", default=os.environ.get("SPIKE_VERSITYGW", "/work/main/.toolchain/versitygw/bin/versitygw"))
    parser.add_argument("--out", default="")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.phase:
        conf = json.loads(Path(args.conf).read_text())
        result = phase_write(conf) if args.phase == "write" else phase_restart(conf)
        Path(args.conf).with_suffix(".out.json").write_text(json.dumps(result, default=str))
        return
    results = orchestrate(args)
    text = json.dumps(results, indent=1, default=str)
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
