"""KafkaConnect and ChangeCapture under Pulumi mocks, for both runtimes."""

from __future__ import annotations

import pytest

import service_catalogue
from components.runtime import Placement
from pipelines.connectors import AVRO_CONVERTER, MARIADB_CONNECTOR, MYSQL_CONNECTOR, POSTGRES_CONNECTOR
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import CONNECTOR, POSTGRES_PASSWORD, UNIT_SETTINGS, cdc_graph, connector_configs

PLUGINS = [POSTGRES_CONNECTOR, MYSQL_CONNECTOR, MARIADB_CONNECTOR, AVRO_CONVERTER]
"""What the worker must list to be healthy: Debezium's connectors and the Avro connector's converter."""
MYSQL_PORTS = UNIT_SETTINGS.ports[service_catalogue.MYSQL]
KAFKA_PORTS = UNIT_SETTINGS.ports[service_catalogue.KAFKA]
CONNECT_PORTS = UNIT_SETTINGS.ports[service_catalogue.CONNECT]


def test_process_connect_runs_the_distributed_worker_with_the_debezium_and_converter_plugin_path(process_placement: Placement) -> None:
    graph = cdc_graph(process_placement)
    assert graph.inputs_named("connect-process")["argv"][-2] == "org.apache.kafka.connect.cli.ConnectDistributed"
    properties = settle(graph.named("connect-process").props["files"])[0]["connect-distributed.properties"]
    assert f"bootstrap.servers=127.0.0.1:{KAFKA_PORTS.main}\n" in properties
    toolchain = process_placement.toolchain
    assert f"plugin.path={toolchain.debezium_plugin_dir},{toolchain.converter_plugin_dir}\n" in properties
    assert "plugin.discovery=service_load\n" in properties and f"listeners=http://127.0.0.1:{CONNECT_PORTS.main}\n" in properties
    health, _ = settle(graph.named("connect-process").props["health"])
    assert health == {"kind": "connect", "url": f"http://127.0.0.1:{CONNECT_PORTS.main}", "plugins": PLUGINS}


@pytest.mark.parametrize("placement_fixture", ["process_placement", "docker_placement"])
def test_one_connector_per_source_named_as_before(placement_fixture: str, request: pytest.FixtureRequest) -> None:
    graph = cdc_graph(request.getfixturevalue(placement_fixture))
    names = {child.name: graph.inputs_named(child.name)["name"] for child in graph.children if child.type_.endswith(CONNECTOR)}
    assert names == {"cdc-postgres": "cdcstack-postgres", "cdc-mysql": "cdcstack-mysql", "cdc-postgres-avro": "cdcstack-postgres-avro"}
    capture = graph.component
    assert {source: settle(name)[0] for source, name in capture.connectors.items()} == {
        "postgres": "cdcstack-postgres",
        "mysql": "cdcstack-mysql",
        "postgres-avro": "cdcstack-postgres-avro",
    }
    assert {source: settle(prefix)[0] for source, prefix in capture.topic_prefixes.items()} == {
        "postgres": "pg",
        "mysql": "my",
        "postgres-avro": "pgavro",
    }


def test_process_runtime_uses_the_mariadb_connector(process_placement: Placement) -> None:
    configs = connector_configs(cdc_graph(process_placement))
    assert configs["cdc-mysql"]["connector.class"] == MARIADB_CONNECTOR
    assert configs["cdc-mysql"]["database.hostname"] == "127.0.0.1" and configs["cdc-mysql"]["database.port"] == str(MYSQL_PORTS.main)
    assert configs["cdc-mysql"]["schema.history.internal.kafka.bootstrap.servers"] == f"127.0.0.1:{KAFKA_PORTS.main}"


@pytest.mark.parametrize("placement_fixture", ["process_placement", "docker_placement"])
def test_postgres_connector_captures_every_operation_of_the_inventory_schema(placement_fixture: str, request: pytest.FixtureRequest) -> None:
    config = connector_configs(cdc_graph(request.getfixturevalue(placement_fixture)))["cdc-postgres"]
    assert config["connector.class"] == POSTGRES_CONNECTOR and config["plugin.name"] == "pgoutput"
    assert config["publication.autocreate.mode"] == "all_tables" and config["schema.include.list"] == "inventory"
    assert config["skipped.operations"] == "none" and config["tombstones.on.delete"] == "true"
    assert config["database.password"] == POSTGRES_PASSWORD and config["slot.name"] == "cdcstack_postgres"


def test_connectors_wait_for_the_worker_and_are_parented(process_placement: Placement) -> None:
    graph = cdc_graph(process_placement)
    for child in graph.children:
        if child.type_.endswith(CONNECTOR):
            assert [dependency._name for dependency in child.opts.depends_on] == ["connect"]
            assert child.opts.parent is graph.component
