"""What every service component has on both runtimes (components/service.py), under Pulumi mocks:
a log, a `ready` gated on its health check, the address other services use, and its catalogue entry."""

from __future__ import annotations

import pytest

import service_catalogue
from components.runtime import Placement
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import SERVICE_GRAPHS

RUNTIMES = ["process_placement", "docker_placement"]
CONTAINER_PORTS = {
    "postgres": 5432,
    "mysql": 3306,
    "kafka": 19092,
    "connect": 8083,
    "schema-registry": 8080,
    "object-store": 9000,
    "iceberg-catalog": 8181,
    "iceberg-sink": 8190,
    "spark-metastore": 1527,
    "spark-master": 7077,
    "spark-worker": 7078,
    "delta-sink": 8191,
    "mail-capture": 8025,
    "alertmanager": 9093,
    "prometheus": 9090,
    "webhook-capture": 8026,
}
"""The port other containers reach each service on: Kafka's INTERNAL listener, else the service's own."""


def test_every_catalogue_service_has_a_graph() -> None:
    assert list(SERVICE_GRAPHS) == [service.name for service in service_catalogue.SERVICES]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("service", SERVICE_GRAPHS)
def test_every_service_has_a_log_and_a_ready_on_both_runtimes(service: str, runtime: str, request: pytest.FixtureRequest) -> None:
    placement: Placement = request.getfixturevalue(runtime)
    component = SERVICE_GRAPHS[service](placement).component
    assert component.service is service_catalogue.service(service)
    log_path, _ = settle(component.log_path)
    ready, _ = settle(component.ready)
    assert log_path and ready
    if runtime == "process_placement":
        assert log_path == str(placement.service_dir(service) / "service.log")
    else:
        assert log_path == f"docker logs {placement.docker_network}-{service}"
    ports, _ = settle(component.ports)
    assert ports == [port.default for port in service_catalogue.service(service).ports]


@pytest.mark.parametrize("service", SERVICE_GRAPHS)
def test_ready_waits_for_the_health_check(service: str, process_placement: Placement, docker_placement: Placement) -> None:
    """Process: LocalService's create waits on the check; docker: the ServiceHealth after the container.
    A database is ready once seeded, after that."""
    expected = {"postgres": "postgres-seed-id", "mysql": "mysql-seed-id"}
    assert settle(SERVICE_GRAPHS[service](process_placement).component.ready)[0] == expected.get(service, "4242@0")
    assert settle(SERVICE_GRAPHS[service](docker_placement).component.ready)[0] == expected.get(service, f"{service}-container-id")


@pytest.mark.parametrize("service", SERVICE_GRAPHS)
def test_the_internal_address_is_loopback_on_process_and_the_alias_on_docker(
    service: str, process_placement: Placement, docker_placement: Placement
) -> None:
    main_port = service_catalogue.service(service).ports[0].default
    on_process = SERVICE_GRAPHS[service](process_placement).component
    on_docker = SERVICE_GRAPHS[service](docker_placement).component
    assert (settle(on_process.internal_host)[0], settle(on_process.internal_port)[0]) == ("127.0.0.1", main_port)
    assert (settle(on_docker.internal_host)[0], settle(on_docker.internal_port)[0]) == (service, CONTAINER_PORTS[service])
