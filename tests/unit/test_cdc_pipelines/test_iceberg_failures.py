"""Spec edge cases: the catalog down or partitioned, and the object store refusing writes."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from pyiceberg.catalog import Catalog

import stack_outputs as out
from pipelines.sinks.errors import StorageError, TransientSinkError
from pipelines.sinks.iceberg.writer import IcebergTableWriter
from pipelines.sinks.iceberg.catalog import CONNECT_TIMEOUT_PROPERTY, READ_TIMEOUT_PROPERTY, load_rest_catalog
from providers import health
from testkit.iceberg import change
from testkit.stack import free_ports
from tests.support.services import service_stopped
from tests.support.stack import StackOutputs
from toolchain.layout import Toolchain


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers: what a network partition looks like to a client."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_catalog_that_is_down_fails_fast_naming_it(stack: StackOutputs) -> None:
    [closed] = free_ports(1)
    properties = {**stack.iceberg_catalog_properties, "uri": f"http://127.0.0.1:{closed}"}
    started = time.monotonic()
    with pytest.raises(TransientSinkError, match=rf"Iceberg catalog at http://127.0.0.1:{closed} did not answer"):
        load_rest_catalog(properties)
    assert time.monotonic() - started < 5


def test_a_partitioned_catalog_times_out_instead_of_hanging(stack: StackOutputs, silent_server: str) -> None:
    properties = {**stack.iceberg_catalog_properties, "uri": silent_server, CONNECT_TIMEOUT_PROPERTY: "1", READ_TIMEOUT_PROPERTY: "2"}
    started = time.monotonic()
    with pytest.raises(TransientSinkError, match="ReadTimeout"):
        load_rest_catalog(properties)
    assert time.monotonic() - started < 10


def test_a_store_refusing_writes_fails_the_batch_clearly_and_commits_nothing(
    stack: StackOutputs, catalog: Catalog, writer: IcebergTableWriter
) -> None:
    writer.apply([change("c", after={"id": 1, "name": "kept", "qty": 1})], {"t:0": 1})
    snapshots = len(catalog.load_table(writer.identifier).snapshots())
    # A read-only gateway over the stack's own store data: reads work, every write is refused.
    [port] = free_ports(1)
    gateway = Toolchain.discover().versitygw_bin_dir / "versitygw"
    env = {"ROOT_ACCESS_KEY_ID": stack[out.S3_ACCESS_KEY_ID], "ROOT_SECRET_ACCESS_KEY": stack[out.S3_SECRET_ACCESS_KEY]}
    process = subprocess.Popen(
        [str(gateway), "--port", f"127.0.0.1:{port}", "--health", "/health", "--quiet", "--readonly", "posix", str(stack.object_store_data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health.wait_until_healthy({"kind": "http", "url": f"http://127.0.0.1:{port}/health"}, 10)
        read_only = load_rest_catalog({**stack.iceberg_catalog_properties, "s3.endpoint": f"http://127.0.0.1:{port}"})
        refused = IcebergTableWriter(read_only, writer.identifier)
        started = time.monotonic()
        with pytest.raises(StorageError, match="object store refused the batch's data files, nothing was committed"):
            refused.apply([change("c", after={"id": 2, "name": "lost?", "qty": 2})], {"t:0": 2})
        assert time.monotonic() - started < 30
    finally:
        process.terminate()
        process.wait(10)
    table = catalog.load_table(writer.identifier)
    assert len(table.snapshots()) == snapshots
    assert table.scan().to_arrow().to_pylist() == [{"id": 1, "name": "kept", "qty": 1}]


def test_a_catalog_stopped_through_the_stack_fails_writes_fast_and_is_restored(
    stack: StackOutputs, writer: IcebergTableWriter
) -> None:
    writer.apply([change("c", after={"id": 1, "name": "a", "qty": 1})], {"t:0": 1})
    with service_stopped(stack, "iceberg-catalog"):
        started = time.monotonic()
        with pytest.raises(TransientSinkError, match="Iceberg catalog did not answer"):
            writer.apply([change("c", after={"id": 2, "name": "b", "qty": 2})], {"t:0": 2})
        assert time.monotonic() - started < 15
    restored = load_rest_catalog(stack.iceberg_catalog_properties).load_table(writer.identifier)
    assert restored.scan().to_arrow().to_pylist() == [{"id": 1, "name": "a", "qty": 1}]
