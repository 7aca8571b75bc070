"""The docker runtime's resource graph, checked with Pulumi mocks (no Docker daemon runs here)."""

from __future__ import annotations

import json

import pytest

import service_catalogue
from components.runtime import Placement
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import POSTGRES_PASSWORD, UNIT_SETTINGS, service_graph, stack_graph
from toolchain.layout import PROJECT_ROOT

SERVICES = [service.name for service in service_catalogue.SERVICES]
POSTGRES_PORTS = UNIT_SETTINGS.ports[service_catalogue.POSTGRES]
MYSQL_PORTS = UNIT_SETTINGS.ports[service_catalogue.MYSQL]
KAFKA_PORTS = UNIT_SETTINGS.ports[service_catalogue.KAFKA]
OBJECT_STORE_PORTS = UNIT_SETTINGS.ports[service_catalogue.OBJECT_STORE]
ICEBERG_SINK_PORTS = UNIT_SETTINGS.ports[service_catalogue.ICEBERG_SINK]

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"


def test_postgres_container_uses_pinned_image_and_loopback_port(docker_placement: Placement) -> None:
    graph = service_graph("postgres", docker_placement)
    assert graph.inputs_of(IMAGE)["name"] == docker_placement.toolchain.image("POSTGRES_IMAGE")
    container = graph.inputs_of(CONTAINER)
    assert container["ports"] == [{"internal": 5432, "external": POSTGRES_PORTS.main, "ip": "127.0.0.1"}]
    assert container["volumes"][0]["containerPath"] == "/var/lib/postgresql/data"
    assert container["networksAdvanced"] == [{"name": "cdcstack-unit", "aliases": ["postgres"]}]


def test_postgres_container_runs_logical_wal_and_waits_for_pg_isready(docker_placement: Placement) -> None:
    container = service_graph("postgres", docker_placement).inputs_of(CONTAINER)
    command = container["command"]
    assert "wal_level=logical" in command and "max_replication_slots=16" in command
    assert container["healthcheck"]["tests"] == ["CMD-SHELL", "pg_isready -U postgres -d inventory"]
    assert container["wait"] is True and container["waitTimeout"] == 180


def test_postgres_credentials_stay_secret(docker_placement: Placement) -> None:
    graph = service_graph("postgres", docker_placement)
    envs, envs_secret = settle(graph.child(CONTAINER).props["envs"])
    assert envs_secret and "POSTGRES_PASSWORD=pg-secret" in envs
    dsn, dsn_secret = settle(graph.component.dsn)
    assert dsn_secret and dsn == f"postgresql://postgres:pg-secret@127.0.0.1:{POSTGRES_PORTS.main}/inventory"
    assert settle(graph.component.password) == ("pg-secret", True)


def test_postgres_seed_waits_for_the_sql_ping_after_the_container(docker_placement: Placement) -> None:
    graph = service_graph("postgres", docker_placement)
    seed = graph.child(":SqlSeed")
    assert [dependency._name for dependency in seed.opts.depends_on] == ["postgres-health"]
    assert settle(seed.props["connection"])[1] is True
    assert graph.inputs_of(":SqlSeed")["instance"] == "postgres-container-id"


def test_mysql_container_is_real_mysql_with_row_binlog(docker_placement: Placement) -> None:
    graph = service_graph("mysql", docker_placement)
    assert graph.inputs_of(IMAGE)["name"].startswith("mysql:8")
    container = graph.inputs_of(CONTAINER)
    for flag in ("--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id=1", "--log-bin=binlog"):
        assert flag in container["command"]
    assert container["ports"][0]["external"] == MYSQL_PORTS.main and container["ports"][0]["ip"] == "127.0.0.1"
    assert "mysqladmin ping" in container["healthcheck"]["tests"][1]


def test_mysql_root_password_stays_secret(docker_placement: Placement) -> None:
    graph = service_graph("mysql", docker_placement)
    envs, secret = settle(graph.child(CONTAINER).props["envs"])
    assert secret and "MYSQL_ROOT_PASSWORD=my'secret" in envs
    assert settle(graph.component.dsn) == (f"mysql://root:my'secret@127.0.0.1:{MYSQL_PORTS.main}/inventory", True)


def test_kafka_container_is_kraft_with_host_and_internal_listeners(docker_placement: Placement) -> None:
    graph = service_graph("kafka", docker_placement)
    assert graph.inputs_of(IMAGE)["name"] == docker_placement.toolchain.image("KAFKA_IMAGE")
    envs = dict(entry.split("=", 1) for entry in graph.inputs_of(CONTAINER)["envs"])
    assert envs["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert envs["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://127.0.0.1:{KAFKA_PORTS.main},INTERNAL://kafka:19092"
    assert envs["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert settle(graph.component.bootstrap_servers) == (f"127.0.0.1:{KAFKA_PORTS.main}", False)
    assert settle(graph.component.internal_bootstrap_servers)[0] == "kafka:19092"


def test_docker_runtime_creates_the_stack_network(docker_placement: Placement) -> None:
    assert stack_graph(docker_placement).inputs_of("docker:index/network:Network")["name"] == "cdcstack-unit"
    container = service_graph("kafka", docker_placement).child(CONTAINER)
    assert "network-bridge" in [dependency._name for dependency in container.opts.depends_on]


@pytest.mark.parametrize("service", SERVICES)
def test_every_docker_child_is_parented_to_its_component(docker_placement: Placement, service: str) -> None:
    graph = service_graph(service, docker_placement)
    service_children = [child for child in graph.children if child.name.startswith(f"{service}-")]
    assert {child.name for child in service_children} >= {f"{service}-{part}" for part in ("image", "data", "container", "health")}
    for child in service_children:
        assert child.opts.parent is graph.component, f"{child.name} is not parented to {graph.component._name}"


@pytest.mark.parametrize("service", SERVICES)
def test_docker_runtime_starts_no_local_process(docker_placement: Placement, service: str) -> None:
    assert not [typ for typ in service_graph(service, docker_placement).types() if typ.endswith(":LocalService")]


@pytest.mark.parametrize("service", SERVICES)
def test_docker_health_is_the_process_runtimes_check_after_the_container(
    docker_placement: Placement, process_placement: Placement, service: str
) -> None:
    docker_graph = service_graph(service, docker_placement)
    process_graph = service_graph(service, process_placement)
    gate = docker_graph.named(f"{service}-health")
    assert [dependency._name for dependency in gate.opts.depends_on] == [f"{service}-container"]
    inputs = docker_graph.inputs_named(f"{service}-health")
    assert inputs["service"] == service and inputs["instance"] == f"{service}-container-id"
    docker_health, secret = settle(gate.props["health"])
    process_health, _ = settle(process_graph.named(f"{service}-process").props["health"])
    assert secret
    if service == "object-store":
        # The same endpoint question, at the path each server answers it on (gateway vs MinIO).
        assert docker_health == {"kind": "http", "url": f"http://127.0.0.1:{OBJECT_STORE_PORTS.main}/minio/health/ready"}
    else:
        assert docker_health == process_health


def test_the_sink_job_is_the_python_image_running_the_project_read_only(docker_placement: Placement) -> None:
    graph = service_graph("iceberg-sink", docker_placement)
    assert graph.inputs_named("iceberg-sink-image")["name"] == docker_placement.toolchain.image("PYTHON_IMAGE")
    container = graph.inputs_named("iceberg-sink-container")
    assert {"containerPath": "/project", "hostPath": str(PROJECT_ROOT), "readOnly": True} in container["volumes"]
    assert container["ports"] == [{"internal": 8190, "external": ICEBERG_SINK_PORTS.main, "ip": "127.0.0.1"}]
    script = container["command"][2]
    assert "pip install" in script and "-r /project/requirements.txt" in script and "--health-host 0.0.0.0" in script
    envs, secret = settle(graph.named("iceberg-sink-container").props["envs"])
    assert secret
    values = dict(entry.split("=", 1) for entry in envs)
    assert values["BOOTSTRAP"] == "kafka:19092"
    properties = json.loads(values["CATALOG_PROPERTIES"])
    assert properties["uri"] == "http://iceberg-catalog:8181" and properties["s3.endpoint"] == "http://object-store:9000"
