"""SchemaRegistry, the Avro capture of Postgres and the sinks' registry option under Pulumi mocks, for both runtimes."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.sync_await import _sync_await

import service_catalogue
from components.runtime import Placement
from pipelines.connectors import AVRO_CONVERTER
from tests.support.pulumi_mocks import Graph, settle
from tests.support.stack_graphs import CONNECTOR, POSTGRES_PASSWORD, UNIT_SETTINGS, cdc_graph, connector_configs, service_graph, stack_graph

PROCESS = "schema-registry-process"
CONTAINER = "schema-registry-container"
RUNTIMES = ["process_placement", "docker_placement"]
SCHEMA_REGISTRY_PORTS = UNIT_SETTINGS.ports[service_catalogue.SCHEMA_REGISTRY]
KAFKA_PORTS = UNIT_SETTINGS.ports[service_catalogue.KAFKA]
SUBJECTS_PROBE = {"kind": "http", "url": f"http://127.0.0.1:{SCHEMA_REGISTRY_PORTS.main}/apis/ccompat/v7/subjects"}
AVRO_TABLES = r"inventory\.avro_.*"
CONVERTER_URL = {"process_placement": f"http://127.0.0.1:{SCHEMA_REGISTRY_PORTS.main}/apis/registry/v2", "docker_placement": f"http://schema-registry:{SCHEMA_REGISTRY_PORTS.main}/apis/registry/v2"}
"""Apicurio's own API as the Connect worker reaches it: loopback on process, the registry's alias on docker."""
SINK_REGISTRY_URL = {"process_placement": f"http://127.0.0.1:{SCHEMA_REGISTRY_PORTS.main}/apis/ccompat/v7", "docker_placement": f"http://schema-registry:{SCHEMA_REGISTRY_PORTS.main}/apis/ccompat/v7"}
SINKS: list[tuple[str, Callable[[Placement], Graph[Any]]]] = [("iceberg-sink", stack_graph), ("delta-sink", stack_graph)]


def registry_env(placement_fixture: str, graph: Graph[Any]) -> dict[str, str]:
    """The registry's environment on either runtime."""
    if placement_fixture == "process_placement":
        return settle(graph.named(PROCESS).props["env"])[0]
    return settle(graph.named(CONTAINER).props["launch"])[0]["env"]


def resource_names(output: Any) -> set[str]:
    """Names of the resources an output waits for (what the engine makes its dependents wait on)."""
    return {resource._name for resource in _sync_await(output.resources())}


def test_process_registry_is_the_pinned_apicurio_jar_run_by_java_on_loopback(process_placement: Placement) -> None:
    toolchain = process_placement.toolchain
    graph = service_graph("schema-registry", process_placement)
    service = graph.inputs_named(PROCESS)
    argv = service["argv"]
    assert Path(argv[0]).name == "java" and argv[-2:] == ["-jar", str(toolchain.schema_registry_jar)]
    assert Path(argv[-1]).name == f"apicurio-registry-app-{toolchain.versions['APICURIO_VERSION']}-runner.jar"
    assert service["ports"] == [SCHEMA_REGISTRY_PORTS.main] and service["host"] == "127.0.0.1"
    env = settle(graph.named(PROCESS).props["env"])[0]
    assert (env["QUARKUS_HTTP_HOST"], env["HTTP_PORT"]) == ("127.0.0.1", str(SCHEMA_REGISTRY_PORTS.main))


def test_process_registry_keeps_its_h2_database_file_in_its_work_dir(process_placement: Placement) -> None:
    graph = service_graph("schema-registry", process_placement)
    service = graph.inputs_named(PROCESS)
    workdir = Path(service["workdir"])
    assert workdir == process_placement.service_dir("schema-registry")
    url = settle(graph.named(PROCESS).props["env"])[0]["REGISTRY_DATASOURCE_URL"]
    # A file, so subjects survive a restart; in a folder the first start creates.
    assert url.startswith("jdbc:h2:file:") and not url.startswith("jdbc:h2:mem:")
    database = Path(url.removeprefix("jdbc:h2:file:"))
    assert database.is_relative_to(workdir) and database.parent == workdir / "data"
    assert ["mkdir", "-p", "data"] in service["init"]


@pytest.mark.parametrize(("placement_fixture", "bootstrap"), [("process_placement", f"127.0.0.1:{KAFKA_PORTS.main}"), ("docker_placement", "kafka:19092")])
def test_registry_publishes_its_schema_events_to_the_stacks_kafka(
    placement_fixture: str, bootstrap: str, request: pytest.FixtureRequest
) -> None:
    graph = service_graph("schema-registry", request.getfixturevalue(placement_fixture))
    env = registry_env(placement_fixture, graph)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == bootstrap
    assert env["REGISTRY_EVENTS_KAFKA_TOPIC"] == settle(graph.component.events_topic)[0] == "registry-events"
    server = graph.named(PROCESS if placement_fixture == "process_placement" else CONTAINER)
    assert {"kafka", "schema-registry-events-topic"} <= {dependency._name for dependency in server.opts.depends_on}
    # The broker creates no topic on demand: the stack makes it, from the host, once Kafka is up.
    topic = graph.named("schema-registry-events-topic")
    assert topic.type_.endswith(":KafkaTopic")
    inputs = graph.inputs_named("schema-registry-events-topic")
    assert {key: inputs[key] for key in ("topic", "bootstrap_servers", "partitions")} == {"topic": "registry-events", "bootstrap_servers": f"127.0.0.1:{KAFKA_PORTS.main}", "partitions": 1}
    assert "kafka" in {dependency._name for dependency in topic.opts.depends_on}


def test_health_is_the_http_probe_of_the_confluent_subjects_on_both_runtimes(process_placement: Placement, docker_placement: Placement) -> None:
    assert settle(service_graph("schema-registry", process_placement).named(PROCESS).props["health"])[0] == SUBJECTS_PROBE
    assert settle(service_graph("schema-registry", docker_placement).named(CONTAINER).props["health"])[0] == SUBJECTS_PROBE


@pytest.mark.parametrize("placement_fixture", RUNTIMES)
def test_url_is_the_confluent_api_and_converter_url_apicurios_own_at_the_internal_address(
    placement_fixture: str, request: pytest.FixtureRequest
) -> None:
    registry = service_graph("schema-registry", request.getfixturevalue(placement_fixture)).component
    internal = f"http://{settle(registry.internal_host)[0]}:{settle(registry.internal_port)[0]}"
    url, internal_url, converter_url = (settle(output)[0] for output in (registry.url, registry.internal_url, registry.converter_url))
    assert url == f"http://127.0.0.1:{SCHEMA_REGISTRY_PORTS.main}/apis/ccompat/v7"
    assert internal_url == f"{internal}/apis/ccompat/v7" == SINK_REGISTRY_URL[placement_fixture]
    assert converter_url == f"{internal}/apis/registry/v2" == CONVERTER_URL[placement_fixture]


@pytest.mark.parametrize("placement_fixture", RUNTIMES)
def test_the_registry_urls_resolve_only_once_it_is_healthy(placement_fixture: str, request: pytest.FixtureRequest) -> None:
    registry = service_graph("schema-registry", request.getfixturevalue(placement_fixture)).component
    gate = PROCESS if placement_fixture == "process_placement" else CONTAINER
    for output in (registry.url, registry.internal_url, registry.converter_url):
        assert gate in resource_names(output)


@pytest.mark.parametrize("placement_fixture", RUNTIMES)
def test_the_avro_connector_converts_keys_and_values_through_the_registry(placement_fixture: str, request: pytest.FixtureRequest) -> None:
    config = connector_configs(cdc_graph(request.getfixturevalue(placement_fixture)))["cdc-postgres-avro"]
    for side in ("key", "value"):
        assert config[f"{side}.converter"] == AVRO_CONVERTER
        assert config[f"{side}.converter.apicurio.registry.url"] == CONVERTER_URL[placement_fixture]
        assert config[f"{side}.converter.apicurio.registry.auto-register"] == "true"
        # Confluent's wire format (schema id in the payload), with the ids the Confluent API serves.
        assert config[f"{side}.converter.apicurio.registry.as-confluent"] == "true"
        assert config[f"{side}.converter.apicurio.registry.headers.enabled"] == "false"
        assert config[f"{side}.converter.apicurio.registry.use-id"] == "contentId"
    assert config["database.password"] == POSTGRES_PASSWORD


@pytest.mark.parametrize("placement_fixture", RUNTIMES)
def test_the_avro_connector_takes_only_the_avro_tables_on_its_own_slot_and_prefix(placement_fixture: str, request: pytest.FixtureRequest) -> None:
    graph = cdc_graph(request.getfixturevalue(placement_fixture))
    config = connector_configs(graph)["cdc-postgres-avro"]
    assert graph.inputs_named("cdc-postgres-avro")["name"] == "cdcstack-postgres-avro"
    assert config["table.include.list"] == AVRO_TABLES and "table.exclude.list" not in config
    assert config["slot.name"] == config["publication.name"] == "cdcstack_postgres_avro"
    assert config["topic.prefix"] == "pgavro"
    json_config = connector_configs(graph)["cdc-postgres"]
    assert (config["database.hostname"], config["database.port"]) == (json_config["database.hostname"], json_config["database.port"])


@pytest.mark.parametrize("placement_fixture", RUNTIMES)
def test_the_json_postgres_connector_leaves_the_avro_tables_alone(placement_fixture: str, request: pytest.FixtureRequest) -> None:
    config = connector_configs(cdc_graph(request.getfixturevalue(placement_fixture)))["cdc-postgres"]
    assert config["table.exclude.list"] == AVRO_TABLES and "table.include.list" not in config
    assert not [key for key in config if key.startswith(("key.converter", "value.converter"))]
    assert config["slot.name"] == "cdcstack_postgres" and config["topic.prefix"] == "pg"


def test_the_avro_tables_filter_matches_the_avro_tables_and_no_other() -> None:
    """Debezium matches the list against the whole `schema.table` name."""
    for table in ("inventory.avro_customers", "inventory.avro_orders_2024"):
        assert re.fullmatch(AVRO_TABLES, table), table
    for table in ("inventory.customers", "inventory.lake_avro_items", "inventoryXavro_customers", "other.avro_customers"):
        assert not re.fullmatch(AVRO_TABLES, table), table


def test_the_avro_connector_is_registered_once_the_worker_and_the_registry_are_ready(process_placement: Placement) -> None:
    graph = cdc_graph(process_placement)
    connector = graph.named("cdc-postgres-avro")
    assert connector.type_.endswith(CONNECTOR) and connector.opts.parent is graph.component
    assert [dependency._name for dependency in connector.opts.depends_on] == ["connect"]
    assert {"schema-registry-process", "postgres-seed"} <= resource_names(connector.props["config"])


@pytest.mark.parametrize(("service", "graph_of"), SINKS)
def test_process_sinks_take_the_registrys_internal_confluent_url(
    service: str, graph_of: Callable[[Placement], Graph[Any]], process_placement: Placement
) -> None:
    argv = graph_of(process_placement).inputs_named(f"{service}-process")["argv"]
    assert argv.count("--schema-registry-url") == 1
    assert argv[argv.index("--schema-registry-url") + 1] == SINK_REGISTRY_URL["process_placement"]


@pytest.mark.parametrize(("service", "graph_of", "replicated"), [("iceberg-sink", stack_graph, True), ("delta-sink", stack_graph, False)])
def test_the_iceberg_sink_consumes_the_avro_topics_and_the_delta_sink_does_not(
    service: str, graph_of: Callable[[Placement], Graph[Any]], replicated: bool, process_placement: Placement
) -> None:
    argv = graph_of(process_placement).inputs_named(f"{service}-process")["argv"]
    topics = argv[argv.index("--topics-regex") + 1]
    assert bool(re.fullmatch(topics, "pgavro.inventory.avro_customers")) is replicated
    # The seeded tables still come from the JSON connector.
    assert re.fullmatch(topics, "pg.inventory.customers")
