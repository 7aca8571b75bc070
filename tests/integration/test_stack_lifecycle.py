"""The stack's life cycle through the Pulumi CLI, on a throwaway stack with its own ports and state dir.

The tests run in file order on one stack: up, no-change up, kill + refresh + up, bad input, destroy.
Every service of the service catalogue is checked (its ports, its log, its process, freed by destroy),
so a service added to the catalogue is covered here without a line of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

import service_catalogue
import stack_outputs as out
from providers import health, processes
from testkit.stack import (
    PROJECT_ROOT,
    PulumiCli,
    init_throwaway_stack,
    processes_mentioning,
    remove_throwaway_stack,
    toolchain_env,
)
from tests.support.services import service_urn

SERVICE_NAMES = [service.name for service in service_catalogue.SERVICES]


@dataclass
class ThrowawayStack:
    cli: PulumiCli
    ports: dict[str, int]
    outputs: dict[str, Any]

    @property
    def state_dir(self) -> Path:
        return Path(self.outputs[out.STATE_DIR])

    def pid_of(self, service: str) -> int:
        pid = processes.read_pid(self.state_dir / "services" / service / "service.pid")
        assert pid is not None, f"{service} has no pid file under {self.state_dir}"
        return pid

    def service_ports(self) -> dict[str, list[int]]:
        """The `service_ports` output: every port of every service, keyed by catalogue name."""
        return self.outputs[out.SERVICE_PORTS]

    def mysql_connection(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.ports["mysqlPort"],
            "user": "root",
            "password": "throwaway-mysql",
        }


@pytest.fixture(scope="module")
def throwaway() -> Iterator[ThrowawayStack]:
    cli, ports = init_throwaway_stack("itest", "throwaway-postgres", "throwaway-mysql")
    try:
        cli.up()
        yield ThrowawayStack(cli, ports, cli.outputs())
    finally:
        remove_throwaway_stack(cli)


def test_up_brings_every_service_up_healthy(throwaway: ThrowawayStack) -> None:
    outputs = throwaway.outputs
    assert outputs[out.RUNTIME] == "process"
    assert outputs[out.POSTGRES_PORT] == throwaway.ports["postgresPort"]
    health.probe({"kind": "postgres", "dsn": outputs[out.POSTGRES_DSN]})
    health.probe({"kind": "mysql", **throwaway.mysql_connection()})
    health.probe({"kind": "kafka", "bootstrap_servers": outputs[out.KAFKA_BOOTSTRAP]})
    assert outputs[out.POSTGRES_DSN] == f"postgresql://postgres:throwaway-postgres@127.0.0.1:{throwaway.ports['postgresPort']}/inventory"


def test_every_catalogue_service_runs_on_the_ports_it_was_given_with_a_log(throwaway: ThrowawayStack) -> None:
    ports, logs = throwaway.service_ports(), throwaway.outputs[out.SERVICE_LOGS]
    assert sorted(ports) == sorted(logs) == sorted(SERVICE_NAMES)
    for service in service_catalogue.SERVICES:
        assert ports[service.name] == [throwaway.ports[key] for key in service.port_keys], service.name
        assert Path(logs[service.name]).is_file(), f"{service.name}: no log at {logs[service.name]}"
        assert processes.is_running(throwaway.pid_of(service.name)), f"{service.name} is not running; log: {logs[service.name]}"


def test_credentials_are_secrets_in_the_outputs(throwaway: ThrowawayStack) -> None:
    plain = throwaway.cli.run("stack", "output", "--json").stdout
    assert "throwaway-postgres" not in plain and "throwaway-mysql" not in plain
    exported = throwaway.cli.run("stack", "export").stdout
    assert "throwaway-postgres" not in exported and "throwaway-mysql" not in exported


def test_a_second_up_without_changes_changes_nothing(throwaway: ThrowawayStack) -> None:
    result = throwaway.cli.run("preview", "--expect-no-changes", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_killed_service_reads_as_gone_and_up_brings_it_back_with_its_data(throwaway: ThrowawayStack) -> None:
    connection = throwaway.mysql_connection()
    with pymysql.connect(**connection, autocommit=True) as session, session.cursor() as cursor:
        cursor.execute("INSERT INTO inventory.customers (first_name, last_name, email) VALUES ('Kill', 'Test', 'kill@test.example')")
    pid = throwaway.pid_of("mysql")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes.is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)

    refresh = throwaway.cli.refresh()
    assert "mysql-process deleted" in refresh.stdout, refresh.stdout
    throwaway.cli.up()

    assert throwaway.pid_of("mysql") != pid
    with pymysql.connect(**connection) as session, session.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM inventory.customers WHERE email = 'kill@test.example'")
        assert cursor.fetchone() == (1,)


def test_an_unknown_runtime_fails_preview_with_one_clear_message(throwaway: ThrowawayStack) -> None:
    throwaway.cli.config_set("runtime", "kubernetes")
    try:
        result = throwaway.cli.run("preview", check=False)
    finally:
        throwaway.cli.config_set("runtime", "process")
    assert result.returncode != 0
    assert "cdcstack:runtime is 'kubernetes'; expected auto, process or docker" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["up", "ensure"])
def test_a_bad_config_stops_stack_sh_before_pulumi_up_and_keeps_the_outputs(throwaway: ThrowawayStack, command: str) -> None:
    """A program that raised used to wipe the stack's outputs (`make outputs` printed {}): the preflight applies nothing."""
    before = throwaway.cli.outputs()
    throwaway.cli.config_set("runtime", "bogus")
    try:
        result = subprocess.run(
            [str(PROJECT_ROOT / "scripts" / "stack.sh"), command],
            cwd=PROJECT_ROOT,
            env={**toolchain_env(), "STACK": throwaway.cli.stack},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        throwaway.cli.config_set("runtime", "process")
    assert result.returncode != 0
    expected = (
        "error: cdcstack:runtime is 'bogus'; expected auto, process or docker"
        " (fix with `pulumi config set cdcstack:runtime process`)"
    )
    assert result.stderr.strip().splitlines()[-1:] == [expected], result.stderr
    assert result.stdout == "" and "Traceback" not in result.stderr
    assert throwaway.cli.outputs() == before


def test_a_missing_toolchain_piece_fails_preview_naming_the_fix(throwaway: ThrowawayStack, tmp_path: Path) -> None:
    result = throwaway.cli.run("preview", check=False, env={"CDCSTACK_TOOLCHAIN_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert f"Kafka broker jars are missing from {tmp_path}/kafka/lib; run `make toolchain`" in result.stdout + result.stderr


def test_a_port_in_use_fails_up_clearly_and_starts_nothing_on_it(throwaway: ThrowawayStack) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy_port = squatter.getsockname()[1]
        throwaway.cli.config_set("kafkaPort", str(busy_port))
        try:
            result = throwaway.cli.up(check=False)
        finally:
            throwaway.cli.config_set("kafkaPort", str(throwaway.ports["kafkaPort"]))
        assert result.returncode != 0
        assert f"kafka: port(s) [{busy_port}] on 127.0.0.1 already in use by another process" in result.stdout
        assert not (throwaway.state_dir / "services" / "kafka" / "service.pid").exists()
    # The failed update stopped the old Kafka and left its outputs in state; refresh reads the
    # process as gone, and only it is started again (what depends on Kafka reconnects by itself).
    throwaway.cli.up("--refresh", "--target", service_urn(throwaway.cli.stack, "kafka"))
    health.probe({"kind": "kafka", "bootstrap_servers": f"127.0.0.1:{throwaway.ports['kafkaPort']}"})


def test_destroy_leaves_no_process_and_frees_every_port(throwaway: ThrowawayStack) -> None:
    pids = {service: throwaway.pid_of(service) for service in SERVICE_NAMES}
    ports = throwaway.service_ports()
    throwaway.cli.destroy()
    assert {service: pid for service, pid in pids.items() if processes.is_running(pid)} == {}
    assert processes_mentioning(throwaway.state_dir) == []
    assert {service: processes.busy_ports("127.0.0.1", ports[service]) for service in SERVICE_NAMES} == {
        service: [] for service in SERVICE_NAMES
    }
    assert processes.busy_ports("127.0.0.1", throwaway.ports.values()) == []
    assert not (throwaway.state_dir / "services").exists() or not any((throwaway.state_dir / "services").iterdir())
