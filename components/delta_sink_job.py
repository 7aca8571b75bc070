"""`DeltaSinkJob`: the CDC → Delta Lake sink running as a service of the stack.

It consumes the Debezium topics of the stack's connectors for the tables it is given and keeps one
Delta table per source table in the metastore database `cdc_delta`, stored at
`s3a://<bucket>/delta/<table>` with Change Data Feed on; healthy once its /health answers 200. Its
Spark driver runs in the job's process against the stack's Spark master, so the same job runs on
any Spark cluster given its master URL and conf.

One writer per table: every Delta table is written by this job only (one driver, one thread), which
is what makes Delta's default S3 log store safe here (S3 has no put-if-absent for the commit file).

The project's venv runs `pipelines.sinks.delta.job` (on docker, the runtime image's copy of it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.object_store import ObjectStoreAccess
from components.service import ProcessLaunch
from components.sink_job import SEEDED_TABLES, SinkJobArgs, SinkJobComponent, sink_argv, topics_regex
from components.spark import Spark, spark_local_env
from pipelines.spark import DELTA_DATABASE, bucket_of

CONF_FILE = "spark-conf.json"
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
    return sink_argv(
        python, "pipelines.sinks.delta.job", bootstrap, topics, DELTA_DATABASE, options, args.group, port, registry_url, args.placement.listen_host
    )


class DeltaSinkJob(SinkJobComponent):
    """The Delta sink as a service: its health URL and the database its tables are in."""

    database: pulumi.Output[str]

    def __init__(self, name: str, args: DeltaSinkJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:DeltaSinkJob", name, service_catalogue.DELTA_SINK, opts)
        topics = topics_regex(args.change_capture, args.tables, args.replicated_prefixes)
        self._serve_job(
            args,
            lambda workdir: self._process_job(name, args, topics, workdir),
            (args.spark.metastore, args.spark.master, args.spark.worker, args.change_capture),
            START_TIMEOUT_SECONDS,
            2048,
        )
        self.database = pulumi.Output.from_input(DELTA_DATABASE)
        self._register({"health_url": self.health_url, "metrics_address": self.metrics_address, "database": self.database})

    @staticmethod
    def _process_job(name: str, args: DeltaSinkJobArgs, topics: pulumi.Output[str], workdir: Path) -> ProcessLaunch:
        python = args.placement.toolchain.python
        return ProcessLaunch(
            argv=pulumi.Output.all(
                args.kafka.internal_bootstrap_servers, topics, args.store.warehouse, args.schema_registry.internal_url, args.spark.master.internal_ui_url
            ).apply(
                lambda values: job_argv(
                    python,
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
            env={**spark_local_env(args.placement, name), "PYSPARK_PYTHON": python},
        )
