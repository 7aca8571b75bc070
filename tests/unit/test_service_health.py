"""`ServiceHealth`, the docker runtime's health gate, against real listeners on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from providers.errors import ServiceUnhealthyError
from providers.service_health import ServiceHealthProvider


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def props(port: int, **changes: object) -> dict[str, object]:
    return {
        "service": "db",
        "health": {"kind": "tcp", "host": "127.0.0.1", "port": port},
        "instance": "container-1",
        "timeout": 1.0,
        "log": "docker logs cdcstack-unit-db",
        **changes,
    }


def test_create_returns_once_healthy_with_the_service_as_id(listening_port: int) -> None:
    result = ServiceHealthProvider().create(props(listening_port))
    assert result.id == "db" and result.outs["healthy_after_seconds"] >= 0
    assert result.outs["instance"] == "container-1"


def test_create_fails_naming_the_reason_and_the_log() -> None:
    with pytest.raises(ServiceUnhealthyError, match=r"db: not healthy after 1s: no TCP listener .* `docker logs cdcstack-unit-db`"):
        ServiceHealthProvider().create(props(closed_port()))


def test_read_of_an_unhealthy_service_is_gone_so_up_waits_again(listening_port: int) -> None:
    provider = ServiceHealthProvider()
    assert provider.read("db", props(listening_port)).id == "db"
    assert provider.read("db", props(closed_port())).id is None


def test_a_new_container_waits_again_a_new_timeout_alone_does_not() -> None:
    provider = ServiceHealthProvider()
    assert provider.diff("db", props(1), props(1, instance="container-2")).changes
    assert not provider.diff("db", props(1), props(1, timeout=30.0, log="elsewhere")).changes
    renamed = provider.diff("db", props(1), props(1, service="db2"))
    assert renamed.changes and renamed.replaces == ["service"]
