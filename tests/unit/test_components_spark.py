"""The Spark cluster (metastore, master, worker) and the Delta sink under Pulumi mocks, for both runtimes."""

from __future__ import annotations

from pathlib import Path

import pytest

import service_catalogue
from components.runtime import Placement
from components.spark import MASTER_CLASS, WORKER_CLASS
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import S3_SECRET, UNIT_SETTINGS, stack_graph

SPARK_METASTORE_PORTS = UNIT_SETTINGS.ports[service_catalogue.SPARK_METASTORE]
SPARK_MASTER_PORTS = UNIT_SETTINGS.ports[service_catalogue.SPARK_MASTER]


@pytest.mark.parametrize(("service", "main_class"), [("spark-master", MASTER_CLASS), ("spark-worker", WORKER_CLASS)])
def test_process_master_and_worker_are_java_run_directly_with_spark_home(
    process_placement: Placement, service: str, main_class: str
) -> None:
    toolchain = process_placement.toolchain
    inputs = stack_graph(process_placement).inputs_named(f"{service}-process")
    argv, env = inputs["argv"], inputs["env"]
    # java itself, not the spark-class script: the supervisor owns the pid it started.
    assert Path(argv[0]).name == "java" and not any("spark-class" in word for word in argv)
    assert main_class in argv
    assert argv[argv.index("-cp") + 1].endswith(f":{toolchain.spark_home / 'jars'}/*")
    assert env["SPARK_HOME"] == str(toolchain.spark_home)
    assert env["SPARK_SCALA_VERSION"] == toolchain.versions["SPARK_SCALA_BINARY_VERSION"]
    assert env["SPARK_CONF_DIR"] == str(process_placement.stack_dir / "services" / service / "conf")


def test_process_worker_registers_on_loopback_and_is_healthy_once_the_master_lists_it(process_placement: Placement) -> None:
    graph = stack_graph(process_placement)
    assert graph.inputs_named("spark-worker-process")["argv"][-1] == f"spark://127.0.0.1:{SPARK_MASTER_PORTS.main}"
    worker_health, _ = settle(graph.named("spark-worker-process").props["health"])
    master_health, _ = settle(graph.named("spark-master-process").props["health"])
    assert worker_health == {"kind": "spark", "url": f"http://127.0.0.1:{SPARK_MASTER_PORTS.of('ui')}", "alive_workers": 1}
    assert master_health == {"kind": "spark", "url": f"http://127.0.0.1:{SPARK_MASTER_PORTS.of('ui')}"}
    assert [dependency._name for dependency in graph.named("spark-worker-process").opts.depends_on] == ["spark-master"]


def test_spark_conf_is_secret_with_local_jar_uris_and_kept_directory_markers(process_placement: Placement) -> None:
    conf, secret = settle(stack_graph(process_placement).component.spark.spark_conf)
    assert secret
    assert conf["spark.jars"].split(",") == [f"local:{jar}" for jar in process_placement.toolchain.spark_jars()]
    assert conf["spark.hadoop.fs.s3a.directory.marker.retention"] == "keep"
    assert conf["spark.master"] == f"spark://127.0.0.1:{SPARK_MASTER_PORTS.main}"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == S3_SECRET
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"].startswith(f"jdbc:derby://127.0.0.1:{SPARK_METASTORE_PORTS.main}/")
