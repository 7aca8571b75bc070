"""ObjectStore and IcebergRestCatalog under Pulumi mocks, for both runtimes."""

from __future__ import annotations

import pytest

import service_catalogue
from components.runtime import Placement
from tests.support.pulumi_mocks import settle
from tests.support.stack_graphs import S3_SECRET, UNIT_SETTINGS, stack_graph

OBJECT_STORE_PORTS = UNIT_SETTINGS.ports[service_catalogue.OBJECT_STORE]
ICEBERG_CATALOG_PORTS = UNIT_SETTINGS.ports[service_catalogue.ICEBERG_CATALOG]


def test_process_store_is_the_s3_gateway_on_loopback_with_a_secret_root_key(process_placement: Placement) -> None:
    graph = stack_graph(process_placement)
    store = graph.named("object-store-process")
    argv = settle(store.props["argv"])[0]
    assert argv[0].endswith("/versitygw") and argv[1:3] == ["--port", f"127.0.0.1:{OBJECT_STORE_PORTS.main}"] and "posix" in argv
    assert settle(store.props["secret_env"]) == ({"ROOT_ACCESS_KEY_ID": "cdcstack", "ROOT_SECRET_ACCESS_KEY": S3_SECRET}, True)
    assert settle(store.props["health"])[0] == {"kind": "http", "url": f"http://127.0.0.1:{OBJECT_STORE_PORTS.main}/health"}


def test_the_warehouse_bucket_is_a_resource_waiting_for_the_store(process_placement: Placement) -> None:
    graph = stack_graph(process_placement)
    bucket = graph.named("object-store-bucket-warehouse")
    assert settle(bucket.props["bucket"])[0] == "warehouse"
    assert [dependency._name for dependency in bucket.opts.depends_on] == ["object-store-process"]
    assert settle(bucket.props["credentials"])[1] is True


@pytest.mark.parametrize(("persistent", "uri_suffix"), [(True, "/data/catalog.db"), (False, "::memory:")])
def test_process_catalog_keeps_metadata_in_sqlite_unless_told_not_to(
    process_placement: Placement, persistent: bool, uri_suffix: str
) -> None:
    catalog = stack_graph(process_placement, iceberg_catalog_persistent=persistent).named("iceberg-catalog-process")
    env = settle(catalog.props["env"])[0]
    assert env["CATALOG_URI"].endswith(uri_suffix)
    assert env["CATALOG_WAREHOUSE"] == "s3://warehouse/" and env["CATALOG_S3_ENDPOINT"] == f"http://127.0.0.1:{OBJECT_STORE_PORTS.main}"
    assert env["CATALOG_REST_HOST"] == "127.0.0.1" and env["CATALOG_REST_PORT"] == str(ICEBERG_CATALOG_PORTS.main)
    assert "CATALOG_S3_SECRET__ACCESS__KEY" not in env
    assert settle(catalog.props["secret_env"]) == ({"CATALOG_S3_SECRET__ACCESS__KEY": S3_SECRET}, True)


def test_catalog_properties_are_what_pyiceberg_needs_and_secret(process_placement: Placement) -> None:
    properties, secret = settle(stack_graph(process_placement).component.iceberg_catalog.catalog_properties)
    assert secret
    assert properties == {
        "uri": f"http://127.0.0.1:{ICEBERG_CATALOG_PORTS.main}",
        "warehouse": "s3://warehouse/",
        "s3.endpoint": f"http://127.0.0.1:{OBJECT_STORE_PORTS.main}",
        "s3.access-key-id": "cdcstack",
        "s3.secret-access-key": S3_SECRET,
        "s3.region": "us-east-1",
        "s3.force-virtual-addressing": "false",
    }
