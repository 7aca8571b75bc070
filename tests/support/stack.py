"""The live stack as the tests see it: its outputs and its services' health, failing a test (never
skipping it) with the command to run. The Pulumi CLI and throwaway stacks are `testkit.stack`'s."""

from __future__ import annotations

import time

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

import stack_outputs as out
from pipelines.object_store import S3Access
from providers import health
from testkit.stack import StackNotUp, read_outputs, stack_name


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

    @property
    def object_store_data(self) -> Path:
        """The object store's POSIX backend: a folder per bucket, a file per object."""
        return self.state_dir / "services" / "object-store" / "data"

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

    def internal_address(self, service: str) -> tuple[str, int]:
        """How Connect reaches `service` ("postgres", "mysql" or "kafka"): what a test's own connector names."""
        addresses = self[out.INTERNAL_ADDRESSES]
        if service not in addresses:
            pytest.fail(f"stack {self.name} has no internal address of {service} ({sorted(addresses)}): run `STACK={self.name} make up`")
        host, port = addresses[service].rsplit(":", 1)
        return host, int(port)

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

    @property
    def spark_metastore_address(self) -> dict[str, Any]:
        """{"host", "port"} of the Hive metastore's database (for its health check)."""
        return {"host": "127.0.0.1", "port": self[out.SERVICE_PORTS]["spark-metastore"][0]}

    def s3_client(self) -> Any:
        """A boto3 client for the stack's object store, checked healthy first."""
        from providers.s3_bucket import s3_client

        access = self.object_store
        self.require_healthy("object-store", {"kind": "http", "url": f"{access.endpoint}/health"})
        return s3_client(access)

    @property
    def object_store(self) -> S3Access:
        """The stack's object store and its credentials, as a client on the host reaches it."""
        return S3Access.from_outputs(self)

    @property
    def iceberg_catalog_properties(self) -> dict[str, str]:
        properties = dict(self[out.ICEBERG_CATALOG_PROPERTIES])
        self.require_healthy("iceberg-catalog", {"kind": "http", "url": f"{properties['uri']}/v1/config"})
        return properties

    def require_connector_running(self, name: str, settle_seconds: float = 0.0) -> None:
        """Fails naming the fix unless connector `name` and all its tasks are RUNNING (within
        `settle_seconds`, for a worker that is rejoining its group after a fault)."""
        from providers.connect_client import ConnectClient
        from providers.errors import CdcstackError

        client = ConnectClient(self.connect_url, log_hint=self.log_of("connect"))
        deadline = time.monotonic() + settle_seconds
        while True:
            try:
                status = client.status(name)
            except CdcstackError as error:
                pytest.fail(f"connector {name} of stack {self.name} is missing ({error}); run `make up`")
            if status.running or status.failure or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if not status.running:
            pytest.fail(
                f"connector {name} is {status.state} with tasks {[state for _, state, _ in status.tasks]}"
                f" ({status.failure or 'not running'}); run `make up`. Worker log: {self.log_of('connect')}"
            )


def read_stack_outputs(stack: str | None = None) -> StackOutputs:
    """The outputs of `stack` (else $STACK, else dev); fails the test naming `make up` when it is not up."""
    name = stack_name(stack)
    try:
        values = read_outputs(name)
    except StackNotUp as not_up:
        pytest.fail(str(not_up))
    return StackOutputs(name, values)
