"""The Spark cluster (metastore, master, worker) and the Delta sink under Pulumi mocks, for both runtimes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import service_catalogue
from components.runtime import Placement
from components.spark import CONTAINER_JARS, MASTER_CLASS, WORKER_CLASS
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import S3_SECRET, UNIT_SETTINGS, stack_graph

CONTAINER = "docker:index/container:Container"
SPARK_CONTAINERS = ("spark-metastore-container", "spark-master-container", "spark-worker-container", "delta-sink-container")
SPARK_METASTORE_PORTS = UNIT_SETTINGS.ports[service_catalogue.SPARK_METASTORE]
SPARK_MASTER_PORTS = UNIT_SETTINGS.ports[service_catalogue.SPARK_MASTER]


def container_values(envs: list[str]) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in envs)


def test_spark_services_and_the_delta_sink_run_the_pinned_spark_image(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    images = {args.name: args.inputs["name"] for args in graph.mocks.registered if args.typ.endswith("remoteImage:RemoteImage")}
    spark_image = docker_placement.toolchain.image("SPARK_IMAGE")
    assert spark_image.startswith("apache/spark:")
    for service in ("spark-metastore", "spark-master", "spark-worker", "delta-sink"):
        assert images[f"{service}-image"] == spark_image, service


def test_the_worker_registers_with_the_master_by_its_network_alias(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    master = graph.inputs_named("spark-master-container")
    assert master["networksAdvanced"] == [{"name": "cdcstack-unit", "aliases": ["spark-master"]}]
    worker = graph.inputs_named("spark-worker-container")["command"]
    assert worker[:2] == ["/opt/spark/bin/spark-class", WORKER_CLASS]
    assert worker[-1] == "spark://spark-master:7077"
    # Executors and the master reach the worker by its own alias, not by a container id.
    assert worker[worker.index("--host") + 1] == "spark-worker"


def test_the_jars_are_mounted_read_only_at_one_path_wherever_a_jvm_loads_them(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    mount = {"containerPath": CONTAINER_JARS, "hostPath": str(docker_placement.toolchain.spark_lib_dir), "readOnly": True}
    for container in ("spark-metastore-container", "spark-worker-container", "delta-sink-container"):
        assert mount in graph.inputs_named(container)["volumes"], container
    # The sink's driver hands executors `local:` URIs of that same path, so each finds them in place.
    envs, _ = settle(graph.named("delta-sink-container").props["envs"])
    conf = json.loads(container_values(envs)["SPARK_CONF"])
    jars = conf["spark.jars"].split(",")
    assert jars == [f"local:{CONTAINER_JARS}/{jar.name}" for jar in docker_placement.toolchain.spark_jars()]
    assert conf["spark.master"] == "spark://spark-master:7077" and conf["spark.driver.host"] == "delta-sink"


def test_the_delta_sink_container_installs_the_spark_requirements(docker_placement: Placement) -> None:
    script = stack_graph(docker_placement).inputs_named("delta-sink-container")["command"][2]
    assert "-r /project/requirements-spark.txt" in script and "-r /project/requirements.txt" not in script
    assert "-m pipelines.sinks.delta.job" in script and "--health-host 0.0.0.0" in script
    # The conf file is written from the environment at start, so the command holds no secret.
    assert 'printf %s "$SPARK_CONF" > /tmp/spark-conf.json' in script


@pytest.mark.parametrize("container", SPARK_CONTAINERS)
def test_the_s3_secret_is_never_a_plain_container_env_or_command(docker_placement: Placement, container: str) -> None:
    child = stack_graph(docker_placement).named(container)
    envs, envs_secret = settle(child.props.get("envs") or [])
    command, _ = settle(child.props.get("command") or [])
    assert not any(S3_SECRET in word for word in command)
    if any(S3_SECRET in entry for entry in envs):
        assert envs_secret, f"{container}'s envs hold the S3 secret but are not a Pulumi secret"


def test_the_delta_sink_gets_the_s3_secret_only_through_its_secret_envs(docker_placement: Placement) -> None:
    envs, secret = settle(stack_graph(docker_placement).named("delta-sink-container").props["envs"])
    assert secret
    assert json.loads(container_values(envs)["SPARK_CONF"])["spark.hadoop.fs.s3a.secret.key"] == S3_SECRET


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
