"""The docker runtime's resource graph under Pulumi mocks: one runtime image, one network, and per
service a volume and a container running the process runtime's own launch (the live behaviour is
`tests/docker/`, against a real daemon)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import service_catalogue
from components.runtime import CONTAINER_STATE_DIR, Placement
from tests.support.pulumi_mocks import Graph, settle
from tests.support.stack_graphs import ALERT_SECRETS, POSTGRES_PASSWORD, S3_SECRET, UNIT_SETTINGS, service_graph, stack_graph
from toolchain.layout import IMAGE_ROOT, PROJECT_ROOT

SERVICES = [service.name for service in service_catalogue.SERVICES]
CONTAINER = ":DockerContainer"
KAFKA_PORTS = UNIT_SETTINGS.ports[service_catalogue.KAFKA]
CONNECT_PORTS = UNIT_SETTINGS.ports[service_catalogue.CONNECT]


def container(graph: Graph[Any], service: str) -> dict[str, Any]:
    return graph.inputs_named(f"{service}-container")


def launch_of(graph: Graph[Any], service: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(launch, secret_launch) of the service's container, checked plain and secret."""
    child = graph.named(f"{service}-container")
    launch, launch_secret = settle(child.props["launch"])
    secret_launch, secret = settle(child.props["secret_launch"])
    assert not launch_secret and secret
    return launch, secret_launch


def test_one_image_and_one_network_for_the_stack(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    [image] = [args.inputs for args in graph.mocks.registered if args.typ.endswith(":DockerImage")]
    assert image["reference"] == docker_placement.docker_image and image["reference"].startswith("cdcstack/runtime:")
    assert image["platform"] == "linux/amd64"
    [network] = [args.inputs for args in graph.mocks.registered if args.typ.endswith(":DockerNetwork")]
    assert network["name"] == "cdcstack-unit"
    assert not [args.typ for args in graph.mocks.registered if args.typ.startswith("docker:")], "pulumi-docker resources are gone"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_a_container_of_the_runtime_image_with_its_work_dir_on_a_volume(docker_placement: Placement, service: str) -> None:
    graph = service_graph(service, docker_placement)
    spec = container(graph, service)
    assert spec["name"] == f"cdcstack-unit-{service}" and spec["alias"] == service
    assert spec["image"] == docker_placement.docker_image
    assert spec["python"] == str(IMAGE_ROOT / ".venv" / "bin" / "python")
    assert spec["ports"] == [port.default for port in service_catalogue.service(service).ports]
    [volume] = [args.inputs for args in graph.mocks.registered if args.typ.endswith(":DockerVolume")]
    assert spec["volume"] == volume["name"] == spec["name"]
    launch, _ = launch_of(graph, service)
    assert launch["workdir"] == str(CONTAINER_STATE_DIR / service)
    depends = {dependency._name for dependency in graph.named(f"{service}-container").opts.depends_on}
    assert {"network-bridge", "network-image"} <= depends


@pytest.mark.parametrize("service", SERVICES)
def test_the_launch_names_only_paths_of_the_image_never_of_the_host(docker_placement: Placement, service: str) -> None:
    """No host binary or checkout path goes into a container: the image has its own (and may be another platform's)."""
    launch, secret_launch = launch_of(stack_graph(docker_placement), service)
    text = json.dumps([launch, secret_launch])
    assert str(PROJECT_ROOT) not in text
    assert str(docker_placement.stack_dir) not in text
    assert launch["argv"][0].startswith(("/usr/", str(IMAGE_ROOT)))
    for command in launch["init"]:
        assert not command[0].startswith(str(PROJECT_ROOT))


@pytest.mark.parametrize("service", SERVICES)
def test_health_is_the_process_runtimes_check_on_the_published_port(docker_placement: Placement, process_placement: Placement, service: str) -> None:
    on_docker = settle(service_graph(service, docker_placement).named(f"{service}-container").props["health"])
    on_process = settle(service_graph(service, process_placement).named(f"{service}-process").props["health"])
    assert on_docker == on_process


@pytest.mark.parametrize("service", SERVICES)
def test_secrets_are_only_in_secret_inputs(docker_placement: Placement, service: str) -> None:
    child = stack_graph(docker_placement).named(f"{service}-container")
    for key, value in child.props.items():
        resolved, secret = settle(value)
        text = json.dumps(resolved, default=str)
        held = [needle for needle in (POSTGRES_PASSWORD, S3_SECRET, *ALERT_SECRETS) if needle in text]
        assert secret or not held, f"{service}-container.{key} holds {held} in plain text"


def test_kafka_advertises_loopback_to_the_host_and_its_alias_to_the_containers(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    launch, _ = launch_of(graph, "kafka")
    properties = dict(line.split("=", 1) for line in launch["files"]["server.properties"].splitlines() if "=" in line)
    assert properties["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{KAFKA_PORTS.main},INTERNAL://kafka:19092"
    assert properties["listeners"].startswith(f"PLAINTEXT://0.0.0.0:{KAFKA_PORTS.main},INTERNAL://0.0.0.0:19092")
    assert properties["inter.broker.listener.name"] == "INTERNAL"
    assert settle(graph.component.kafka.internal_bootstrap_servers)[0] == "kafka:19092"
    connect, _ = launch_of(graph, "connect")
    assert "bootstrap.servers=kafka:19092\n" in connect["files"]["connect-distributed.properties"]


def test_jvm_exporters_listen_on_the_containers_interfaces(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    for service, ports in (("kafka", KAFKA_PORTS), ("connect", CONNECT_PORTS)):
        launch, _ = launch_of(graph, service)
        [agent] = [option for option in launch["argv"] if option.startswith("-javaagent:")]
        assert agent.startswith(f"-javaagent:{IMAGE_ROOT}/.toolchain/jmx-exporter/") and f"=0.0.0.0:{ports.of('metrics')}:" in agent


def test_postgres_takes_password_logins_from_the_container_network(docker_placement: Placement) -> None:
    launch, _ = launch_of(stack_graph(docker_placement), "postgres")
    assert "listen_addresses=0.0.0.0" in launch["argv"]
    assert f"hba_file={CONTAINER_STATE_DIR}/postgres/pg_hba.conf" in launch["argv"]
    assert "host all all all scram-sha-256" in launch["files"]["pg_hba.conf"]
    assert launch["run_as"] == "postgres"


def test_mariadb_serves_mysql_and_root_logs_in_from_the_container_network(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    launch, secret_launch = launch_of(graph, "mysql")
    assert launch["argv"][0] == "/usr/sbin/mariadbd" and "--bind-address=0.0.0.0" in launch["argv"]
    assert "CREATE USER IF NOT EXISTS 'root'@'%'" in secret_launch["secret_files"]["root-account.sql"]
    configs = {child.name: settle(child.props["config"])[0] for child in graph.children if child.type_.endswith(":DebeziumConnector")}
    assert configs["cdc-mysql"]["connector.class"] == "io.debezium.connector.mariadb.MariaDbConnector"
    assert configs["cdc-mysql"]["database.hostname"] == "mysql"


def test_the_delta_sinks_driver_is_reached_by_its_alias_with_the_images_jars(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    launch, secret_launch = launch_of(graph, "delta-sink")
    assert launch["env"]["SPARK_LOCAL_HOSTNAME"] == "delta-sink"
    conf = json.loads(secret_launch["secret_files"]["spark-conf.json"])
    assert conf["spark.driver.host"] == "delta-sink"
    assert all(jar.startswith(f"local:{IMAGE_ROOT}/.toolchain/spark/lib/") for jar in conf["spark.jars"].split(","))
    host_conf, _ = settle(graph.component.spark.spark_conf)
    assert all(jar.startswith(str(docker_placement.toolchain.on_host.spark_lib_dir)) for jar in host_conf["spark.jars"].split(","))  # type: ignore[attr-defined]


def test_the_spark_daemons_advertise_their_aliases(docker_placement: Placement) -> None:
    graph = stack_graph(docker_placement)
    master, _ = launch_of(graph, "spark-master")
    worker, _ = launch_of(graph, "spark-worker")
    assert master["argv"][master["argv"].index("--host") + 1] == "spark-master"
    assert worker["argv"][worker["argv"].index("--host") + 1] == "spark-worker"
    assert worker["argv"][-1] == f"spark://spark-master:{UNIT_SETTINGS.ports[service_catalogue.SPARK_MASTER].main}"
    assert master["env"]["JAVA_HOME"] == "/usr/lib/jvm/java-17-openjdk-amd64"
