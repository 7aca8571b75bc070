"""`DeltaSinkJob`: the CDC → Delta Lake sink running as a service of the stack.

It consumes the Debezium topics of the stack's connectors for the tables it is given and keeps one
Delta table per source table in the metastore database `cdc_delta`, stored at
`s3a://<bucket>/delta/<table>` with Change Data Feed on; healthy once its /health answers 200. Its
Spark driver runs in the job's process against the stack's Spark master, so the same job runs on
any Spark cluster given its master URL and conf.

One writer per table: every Delta table is written by this job only (one driver, one thread), which
is what makes Delta's default S3 log store safe here (S3 has no put-if-absent for the commit file).

Process runtime: the project's venv runs `pipelines.sinks.delta.job`. Docker runtime: the pinned
Spark image runs the same module from the project mounted read-only, with requirements-spark.txt
installed into a venv on its volume at first start (checked only with Pulumi mocks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.docker_service import DockerServiceSpec
from components.object_store import ObjectStoreAccess
from components.runtime import LOOPBACK
from components.service import ProcessLaunch
from components.sink_job import CONTAINER_VENV, PROJECT_MOUNT, SEEDED_TABLES, SinkJobArgs, SinkJobComponent, container_script, sink_argv, topics_regex
from components.spark import CONTAINER_JARS, Spark
from pipelines.spark import DELTA_DATABASE, bucket_of

CONF_FILE = "spark-conf.json"
CONTAINER_PORT = 8191
# pyspark comes as a 300 MB source distribution that pip builds at first start.
CONTAINER_START_SECONDS = 1200
START_TIMEOUT_SECONDS = 180.0
"""A cold driver JVM, the metastore's first schema and the first executor take about a minute here."""


@dataclass(frozen=True)
class DeltaSinkJobArgs(SinkJobArgs):
    spark: Spark
    """The cluster it runs its driver against, and the conf for it."""
    store: ObjectStoreAccess
    """The object store: the tables go under `delta/` of its warehouse."""
    tables: tuple[str, ...] = SEEDED_TABLES
    """Source tables (of the `inventory` schema/database) to replicate."""
    replicated_prefixes: tuple[str, ...] = ("delta_", "both_")
    """Tables whose name starts with one of them are replicated too (`both_`: into Iceberg as well)."""
    group: str = "cdcstack-delta-sink"
    """Consumer groups are `<group>.<topic>`."""


def job_argv(
    python: str,
    args: DeltaSinkJobArgs,
    bootstrap: str,
    topics: str,
    conf: str,
    bucket: str,
    work_dir: str,
    port: int,
    registry_url: str,
    master_ui_url: str,
) -> list[str]:
    """The job's command line: the same module and options on both runtimes."""
    options = ["--spark-conf", conf, "--bucket", bucket, "--work-dir", work_dir, "--spark-master-ui-url", master_ui_url]
    return sink_argv(python, "pipelines.sinks.delta.job", bootstrap, topics, DELTA_DATABASE, options, args.group, port, registry_url)


class DeltaSinkJob(SinkJobComponent):
    """The Delta sink as a service: its health URL and the database its tables are in."""

    database: pulumi.Output[str]

    def __init__(self, name: str, args: DeltaSinkJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:DeltaSinkJob", name, service_catalogue.DELTA_SINK, opts)
        topics = topics_regex(args.change_capture, args.tables, args.replicated_prefixes)
        self._serve_job(
            args,
            CONTAINER_PORT,
            lambda workdir: self._process_job(args, topics, workdir),
            lambda: self._docker_job(args, topics),
            (args.spark.metastore, args.spark.master, args.spark.worker, args.change_capture),
            START_TIMEOUT_SECONDS,
        )
        self.database = pulumi.Output.from_input(DELTA_DATABASE)
        self._register({"health_url": self.health_url, "metrics_address": self.metrics_address, "database": self.database})

    @staticmethod
    def _process_job(args: DeltaSinkJobArgs, topics: pulumi.Output[str], workdir: Path) -> ProcessLaunch:
        return ProcessLaunch(
            argv=pulumi.Output.all(
                args.kafka.internal_bootstrap_servers, topics, args.store.warehouse, args.schema_registry.internal_url, args.spark.master.internal_ui_url
            ).apply(
                lambda values: job_argv(
                    args.python,
                    args,
                    values[0],
                    values[1],
                    str(workdir / CONF_FILE),
                    bucket_of(values[2]),
                    str(workdir / "driver"),
                    args.ports.main,
                    values[3],
                    values[4],
                )
            ),
            secret_files=args.spark.internal_spark_conf.apply(lambda conf: {CONF_FILE: json.dumps(conf)}),
            env={"SPARK_LOCAL_IP": LOOPBACK, "PYSPARK_PYTHON": args.python},
        )

    @staticmethod
    def _docker_job(args: DeltaSinkJobArgs, topics: pulumi.Output[str]) -> DockerServiceSpec:
        conf_path = f"/tmp/{CONF_FILE}"
        argv = job_argv(
            f"{CONTAINER_VENV}/bin/python",
            args,
            "$BOOTSTRAP",
            "$TOPICS_REGEX",
            conf_path,
            "$BUCKET",
            "/data/driver",
            CONTAINER_PORT,
            "$SCHEMA_REGISTRY_URL",
            "$SPARK_MASTER_UI_URL",
        )
        script = container_script("requirements-spark.txt", {conf_path: "SPARK_CONF"}, argv)
        envs = pulumi.Output.secret(
            pulumi.Output.all(
                args.kafka.internal_bootstrap_servers,
                topics,
                args.store.warehouse,
                args.spark.internal_spark_conf,
                args.schema_registry.internal_url,
                args.spark.master.internal_ui_url,
            ).apply(
                lambda values: [
                    f"BOOTSTRAP={values[0]}",
                    f"TOPICS_REGEX={values[1]}",
                    f"BUCKET={bucket_of(values[2])}",
                    f"SPARK_CONF={json.dumps(values[3])}",
                    f"SCHEMA_REGISTRY_URL={values[4]}",
                    f"SPARK_MASTER_UI_URL={values[5]}",
                    "PYTHONDONTWRITEBYTECODE=1",
                ]
            )
        )
        probe = f"import urllib.request; urllib.request.urlopen('http://localhost:{CONTAINER_PORT}/health', timeout=3)"
        return DockerServiceSpec(
            image=args.placement.toolchain.image("SPARK_IMAGE"),
            ports={CONTAINER_PORT: args.ports.main},
            health_test=["CMD", f"{CONTAINER_VENV}/bin/python", "-c", probe],
            volume_path="/data",
            binds={args.project_dir: PROJECT_MOUNT, str(args.placement.toolchain.spark_lib_dir): CONTAINER_JARS},
            envs=envs,
            command=["sh", "-c", script],
            memory_mb=2048,
            start_timeout_seconds=CONTAINER_START_SECONDS,
            health_start_period_seconds=CONTAINER_START_SECONDS,
        )
