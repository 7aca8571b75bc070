"""The live stack as the tests see it: its outputs, its services' health, and the Pulumi CLI."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

import stack_config
import stack_outputs as out
from providers import health, processes
from tests.support.names import unique_name

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STACK = "dev"
PULUMI_TIMEOUT_SECONDS = 600


@functools.cache
def toolchain_env() -> dict[str, str]:
    """The environment `make` runs with (toolchain/env.sh), so pytest works when started directly too."""
    dump = subprocess.run(
        ["bash", "-c", "source toolchain/env.sh && env -0"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
        env=dict(os.environ),
    ).stdout.decode()
    return dict(entry.split("=", 1) for entry in dump.split("\0") if "=" in entry)


@dataclass(frozen=True)
class PulumiCli:
    """`pulumi` against one stack of this project, with the project's offline settings."""

    stack: str

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = PULUMI_TIMEOUT_SECONDS,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["pulumi", *args, "--stack", self.stack, "--non-interactive"],
            cwd=PROJECT_ROOT,
            env={**toolchain_env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"`pulumi {' '.join(args)}` on stack {self.stack} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout or "{}")

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", *extra, check=check)

    def refresh(self) -> subprocess.CompletedProcess[str]:
        return self.run("refresh", "--yes", "--skip-preview")

    def destroy(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("destroy", "--yes", "--skip-preview", check=check)

    def config_set(self, key: str, value: str, secret: bool = False) -> None:
        self.run("config", "set", f"cdcstack:{key}", value, *(["--secret"] if secret else []))


@dataclass(frozen=True)
class StackOutputs:
    """Typed access to the outputs named in `stack_outputs`."""

    name: str
    values: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        if key not in self.values:
            pytest.fail(f"stack {self.name} has no output {key!r}: run `make up` to apply the current program")
        return self.values[key]

    @property
    def state_dir(self) -> Path:
        return Path(self[out.STATE_DIR])

    def log_of(self, service: str) -> str:
        return str(self[out.SERVICE_LOGS].get(service, f"(no log recorded for {service})"))

    def require_healthy(self, service: str, spec: Mapping[str, Any]) -> None:
        """Fails the test, naming the fix and the log, when `service` does not pass its health check."""
        try:
            health.probe(spec)
        except health.ProbeFailed as failure:
            pytest.fail(
                f"{service} of stack {self.name} is not healthy ({failure}). "
                f"Run `make up` to bring it back; log: {self.log_of(service)}"
            )

    @property
    def postgres_dsn(self) -> str:
        dsn = self[out.POSTGRES_DSN]
        self.require_healthy("postgres", {"kind": "postgres", "dsn": dsn})
        return dsn

    @property
    def mysql(self) -> dict[str, Any]:
        url = urlparse(self[out.MYSQL_DSN])
        connection = {
            "host": url.hostname,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "database": url.path.lstrip("/"),
        }
        self.require_healthy("mysql", {"kind": "mysql", **connection})
        return connection

    @property
    def kafka_bootstrap(self) -> str:
        bootstrap = self[out.KAFKA_BOOTSTRAP]
        self.require_healthy("kafka", {"kind": "kafka", "bootstrap_servers": bootstrap})
        return bootstrap


    @property
    def connect_url(self) -> str:
        url = self[out.CONNECT_URL]
        self.require_healthy("connect", {"kind": "connect", "url": url, "plugins": []})
        return url

    def s3_client(self) -> Any:
        """A boto3 client for the stack's object store, checked healthy first."""
        from providers.s3_bucket import s3_client

        endpoint = self[out.S3_ENDPOINT]
        self.require_healthy("object-store", {"kind": "http", "url": f"{endpoint}/health"})
        return s3_client(endpoint, self[out.S3_ACCESS_KEY_ID], self[out.S3_SECRET_ACCESS_KEY], self[out.S3_REGION])

    @property
    def iceberg_catalog_properties(self) -> dict[str, str]:
        properties = dict(self[out.ICEBERG_CATALOG_PROPERTIES])
        self.require_healthy("iceberg-catalog", {"kind": "http", "url": f"{properties['uri']}/v1/config"})
        return properties

    def require_connector_running(self, name: str) -> None:
        """Fails naming the fix unless connector `name` and all its tasks are RUNNING."""
        from providers.connect_client import ConnectClient
        from providers.errors import CdcstackError

        client = ConnectClient(self.connect_url, log_hint=self.log_of("connect"))
        try:
            status = client.status(name)
        except CdcstackError as error:
            pytest.fail(f"connector {name} of stack {self.name} is missing ({error}); run `make up`")
        if not status.running:
            pytest.fail(
                f"connector {name} is {status.state} with tasks {[state for _, state, _ in status.tasks]}"
                f" ({status.failure or 'not running'}); run `make up`. Worker log: {self.log_of('connect')}"
            )


PORT_CONFIG_KEYS = stack_config.PORT_KEYS
"""Every port a stack's config sets; a throwaway stack gets free ones for all of them."""


def free_ports(count: int) -> list[int]:
    """Ports free right now on 127.0.0.1 (held together while choosing, so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def init_throwaway_stack(prefix: str, postgres_password: str, mysql_password: str) -> tuple[PulumiCli, dict[str, int]]:
    """A new stack of this project on the process runtime with free ports; the caller destroys and removes it."""
    cli = PulumiCli(unique_name(prefix).replace("_", "-"))
    cli.run("stack", "init")
    ports = dict(zip(PORT_CONFIG_KEYS, free_ports(len(PORT_CONFIG_KEYS))))
    cli.config_set("runtime", "process")
    for key, port in ports.items():
        cli.config_set(key, str(port))
    cli.config_set("postgresPassword", postgres_password, secret=True)
    cli.config_set("mysqlRootPassword", mysql_password, secret=True)
    cli.config_set("objectStoreSecretKey", f"{postgres_password}-s3", secret=True)
    return cli, ports


def remove_throwaway_stack(cli: PulumiCli) -> None:
    """Destroys and removes a throwaway stack; no process of it may outlive its state."""
    if cli.destroy(check=False).returncode != 0:
        # A service that died or a worker that hangs can fail the plain destroy: refresh first.
        cli.run("destroy", "--yes", "--skip-preview", "--refresh", check=False)
    stack_dir = Path(toolchain_env()["CDCSTACK_STATE_DIR"]) / "stacks" / cli.stack
    for pid in processes_mentioning(stack_dir):
        processes.stop_process(pid, grace_seconds=10)
    cli.run("stack", "rm", "--yes", "--force", check=False)
    shutil.rmtree(stack_dir, ignore_errors=True)


def processes_mentioning(path: Path) -> list[int]:
    """Pids of live processes whose command line mentions `path` (a stack's state dir)."""
    needle = str(path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def read_stack_outputs(stack: str | None = None) -> StackOutputs:
    name = stack or os.environ.get("STACK", DEFAULT_STACK)
    try:
        values = PulumiCli(name).outputs()
    except (AssertionError, FileNotFoundError, json.JSONDecodeError) as error:
        pytest.fail(f"cannot read the outputs of stack {name}: run `make up` first ({error})")
    if not values:
        pytest.fail(f"stack {name} is not up (it has no outputs): run `make up`")
    return StackOutputs(name, values)
