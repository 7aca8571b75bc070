"""`pipelines.spark.lakehouse_conf`: the session conf a driver needs, and which of its keys are secret."""

from __future__ import annotations

from pipelines.object_store import S3Access
from pipelines.spark import SECRET_KEYS, LakehouseEndpoints, lakehouse_conf, local_jar_uris

S3_SECRET = "s3-secret-value"
ENDPOINTS = LakehouseEndpoints(
    master_url="spark://127.0.0.1:27077",
    metastore_host="127.0.0.1",
    metastore_port=21527,
    store=S3Access("http://127.0.0.1:29000", "cdcstack", S3_SECRET, "us-east-1"),
    bucket="warehouse",
    iceberg_catalog_uri="http://127.0.0.1:28181",
)


def test_the_secret_keys_are_exactly_the_ones_holding_the_secret() -> None:
    conf = lakehouse_conf(ENDPOINTS, ["local:/jars/delta.jar"], ["/jars/derbyclient.jar"])
    assert {key for key, value in conf.items() if S3_SECRET in value} == set(SECRET_KEYS)
    assert all(conf[key] == S3_SECRET for key in SECRET_KEYS)


def test_the_conf_points_at_the_stacks_services_and_keeps_directory_markers() -> None:
    conf = lakehouse_conf(ENDPOINTS, local_jar_uris([]), [])
    assert conf["spark.master"] == "spark://127.0.0.1:27077"
    assert conf["spark.hadoop.javax.jdo.option.ConnectionURL"] == "jdbc:derby://127.0.0.1:21527/metastore_db;create=true"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:29000"
    assert conf["spark.sql.catalog.iceberg.uri"] == "http://127.0.0.1:28181"
    assert conf["spark.sql.warehouse.dir"] == "s3a://warehouse/spark-warehouse"
    assert conf["spark.hadoop.fs.s3a.directory.marker.retention"] == "keep"
