"""The process runtime's resource graph under Pulumi mocks: binaries, ports, health checks, secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import service_catalogue
from components.kafka import Kafka, KafkaArgs
from components.mysql import root_account_sql
from components.runtime import Placement
from providers.errors import MissingToolchainError
from service_catalogue import ServicePorts
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import PROCESS_PINS, UNIT_SETTINGS, process_program_pins, service_graph
from toolchain.layout import Toolchain

SERVICES = [service.name for service in service_catalogue.SERVICES]
POSTGRES_PORTS = UNIT_SETTINGS.ports[service_catalogue.POSTGRES]
MYSQL_PORTS = UNIT_SETTINGS.ports[service_catalogue.MYSQL]
KAFKA_PORTS = UNIT_SETTINGS.ports[service_catalogue.KAFKA]

SERVICE = ":LocalService"
SEED = ":SqlSeed"


def test_postgres_process_runs_the_debian_server_with_logical_wal(process_placement: Placement) -> None:
    service = service_graph("postgres", process_placement).inputs_of(SERVICE)
    argv = service["argv"]
    assert argv[0] == f"/usr/lib/postgresql/{process_placement.toolchain.versions['POSTGRES_MAJOR']}/bin/postgres"
    for setting in ("wal_level=logical", "listen_addresses=127.0.0.1", f"port={POSTGRES_PORTS.main}", "unix_socket_directories="):
        assert setting in argv
    assert service["ports"] == [POSTGRES_PORTS.main] and service["host"] == "127.0.0.1"
    assert service["workdir"] == str(process_placement.stack_dir / "services" / "postgres")


def test_postgres_process_initialises_with_a_password_file_as_postgres_user(process_placement: Placement) -> None:
    graph = service_graph("postgres", process_placement)
    service = graph.inputs_of(SERVICE)
    [initdb] = service["init"]
    assert Path(initdb[0]).name == "initdb" and "--pwfile=superuser.password" in initdb
    assert "--auth-host=scram-sha-256" in initdb
    assert service["run_as"] == "postgres"
    secret_files, secret = settle(graph.child(SERVICE).props["secret_files"])
    assert secret and secret_files == {"superuser.password": "pg-secret"}


def test_postgres_health_is_a_sql_ping_with_a_secret_dsn(process_placement: Placement) -> None:
    graph = service_graph("postgres", process_placement)
    health, secret = settle(graph.child(SERVICE).props["health"])
    assert secret and health == {"kind": "postgres", "dsn": f"postgresql://postgres:pg-secret@127.0.0.1:{POSTGRES_PORTS.main}/postgres"}


def test_postgres_seed_depends_on_the_service_and_reruns_per_instance(process_placement: Placement) -> None:
    graph = service_graph("postgres", process_placement)
    seed = graph.child(SEED)
    assert [dependency._name for dependency in seed.opts.depends_on] == ["postgres-process"]
    seed_inputs = graph.inputs_of(SEED)
    assert seed_inputs["instance"] == "4242@0"
    assert any("CREATE TABLE IF NOT EXISTS inventory.customers" in statement for statement in seed_inputs["statements"])
    assert settle(seed.props["connection"])[0]["database"] == "inventory"


def test_mysql_process_is_mariadb_with_row_binlog(process_placement: Placement) -> None:
    service = service_graph("mysql", process_placement).inputs_of(SERVICE)
    argv = service["argv"]
    assert Path(argv[0]).name == "mariadbd" and argv[1] == "--no-defaults"
    for flag in ("--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id=1", "--bind-address=127.0.0.1", f"--port={MYSQL_PORTS.main}"):
        assert flag in argv
    assert Path(service["init"][0][0]).name == "mariadb-install-db"
    assert service["run_as"] == "mysql"


def test_mysql_root_account_sql_is_secret_and_quotes_the_password(process_placement: Placement) -> None:
    graph = service_graph("mysql", process_placement)
    files, secret = settle(graph.child(SERVICE).props["secret_files"])
    assert secret and files == {"root-account.sql": root_account_sql("my'secret")}
    assert "IDENTIFIED BY 'my''secret'" in files["root-account.sql"]
    health, health_secret = settle(graph.child(SERVICE).props["health"])
    assert health_secret and health["kind"] == "mysql" and health["password"] == "my'secret"


def test_kafka_process_is_kraft_from_the_maven_jars(process_placement: Placement) -> None:
    graph = service_graph("kafka", process_placement)
    service = graph.inputs_of(SERVICE)
    argv = service["argv"]
    assert Path(argv[0]).name == "java" and argv[-2] == "kafka.Kafka"
    assert argv[argv.index("-cp") + 1] == f"{process_placement.toolchain.kafka_lib_dir}/*"
    assert service["ports"] == list(KAFKA_PORTS.numbers)
    assert settle(graph.child(SERVICE).props["health"]) == ({"kind": "kafka", "bootstrap_servers": f"127.0.0.1:{KAFKA_PORTS.main}"}, True)
    properties = service["files"]["server.properties"]
    assert f"listeners=PLAINTEXT://127.0.0.1:{KAFKA_PORTS.main},CONTROLLER://127.0.0.1:{KAFKA_PORTS.of('controller')}\n" in properties
    assert f"controller.quorum.voters=1@127.0.0.1:{KAFKA_PORTS.of('controller')}\n" in properties
    assert service["init"][0][3:5] == ["kafka.tools.StorageTool", "format"]


def test_kafka_without_jars_fails_with_the_command_to_run(tmp_path: Path, process_placement: Placement) -> None:
    empty = Placement(
        runtime=process_placement.runtime,
        stack_dir=tmp_path,
        toolchain=Toolchain(versions=process_placement.toolchain.versions, cache_dir=tmp_path / "no-toolchain"),
    )
    with pytest.raises(MissingToolchainError, match=r"Kafka broker jars are missing .* run `make toolchain`"):
        Kafka("kafka", KafkaArgs(placement=empty, network=None, ports=ServicePorts(service_catalogue.KAFKA, (1, 2))))  # type: ignore[arg-type]


@pytest.mark.parametrize("service", SERVICES)
def test_process_runtime_creates_no_docker_resources(process_placement: Placement, service: str) -> None:
    assert not [typ for typ in service_graph(service, process_placement).types() if typ.startswith("docker:")]


@pytest.mark.parametrize("service", SERVICES)
def test_every_process_child_is_parented_and_named_after_its_component(process_placement: Placement, service: str) -> None:
    graph = service_graph(service, process_placement)
    service_children = [child for child in graph.children if child.opts.parent is graph.component]
    assert service_children
    for child in service_children:
        assert child.name.startswith(f"{graph.component._name}-")


def test_the_process_runtime_is_pinned_so_an_up_restarts_nothing(tmp_path: Path) -> None:
    """Every cdcstack resource the program registers on the process runtime: name, type, parent,
    dependencies and every input. Any difference restarts (or replaces) a running service of an
    existing stack on the next `pulumi up`. Only when that is the point, rewrite the pins with
    `python -c "from tests.support.stack_graphs import write_process_pins; write_process_pins()"`."""
    assert process_program_pins(tmp_path) == json.loads(PROCESS_PINS.read_text())
