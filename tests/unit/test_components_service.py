"""What every service component has on both runtimes (components/service.py), under Pulumi mocks:
a log, a `ready` gated on its health check, the address other services use, and its catalogue entry."""

from __future__ import annotations

import pytest

import service_catalogue
from components.runtime import Placement
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import service_graph, stack_graph

RUNTIMES = ["process_placement", "docker_placement"]
SERVICES = [service.name for service in service_catalogue.SERVICES]
CONTAINER = ":DockerContainer"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_stack_builds_one_component_per_catalogue_service(runtime: str, request: pytest.FixtureRequest) -> None:
    stack = stack_graph(request.getfixturevalue(runtime)).component
    assert [component.service for component in stack.services] == list(service_catalogue.SERVICES)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_a_log_and_a_ready_on_both_runtimes(service: str, runtime: str, request: pytest.FixtureRequest) -> None:
    placement: Placement = request.getfixturevalue(runtime)
    component = service_graph(service, placement).component
    assert component.service is service_catalogue.service(service)
    log_path, _ = settle(component.log_path)
    ready, _ = settle(component.ready)
    assert log_path and ready
    if runtime == "process_placement":
        assert log_path == str(placement.service_dir(service) / "service.log")
    else:
        assert log_path == f"docker -H {placement.docker_engine} logs {placement.docker_network}-{service}"
    ports, _ = settle(component.ports)
    assert ports == [port.default for port in service_catalogue.service(service).ports]


@pytest.mark.parametrize("service", SERVICES)
def test_ready_waits_for_the_health_check(service: str, process_placement: Placement, docker_placement: Placement) -> None:
    """LocalService's and DockerContainer's create wait on the check. A database is ready once seeded, after that."""
    expected = {"postgres": "postgres-seed-id", "mysql": "mysql-seed-id"}
    assert settle(service_graph(service, process_placement).component.ready)[0] == expected.get(service, "4242@0")
    assert settle(service_graph(service, docker_placement).component.ready)[0] == expected.get(service, f"{service}-container-id@0")


@pytest.mark.parametrize("service", SERVICES)
def test_the_internal_address_is_loopback_on_process_and_the_alias_on_docker(
    service: str, process_placement: Placement, docker_placement: Placement
) -> None:
    """On docker, other containers use the service's alias on a port its container listens on: the
    main one (published at the same number), or (Kafka) the listener it advertises to other containers."""
    main_port = service_catalogue.service(service).ports[0].default
    on_process = service_graph(service, process_placement).component
    assert (settle(on_process.internal_host)[0], settle(on_process.internal_port)[0]) == ("127.0.0.1", main_port)
    graph = service_graph(service, docker_placement)
    host, port = settle(graph.component.internal_host)[0], settle(graph.component.internal_port)[0]
    assert host == service
    [container] = [args.inputs for args in graph.mocks.registered if args.typ.endswith(CONTAINER)]
    assert container["alias"] == service
    advertised = [line for line in container["launch"]["files"].get("server.properties", "").splitlines() if line.startswith("advertised.listeners=")]
    assert port == main_port in container["ports"] or any(f"INTERNAL://{service}:{port}" in line for line in advertised), (port, container["ports"], advertised)
