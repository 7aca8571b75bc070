"""Delta Lake for tests and the bench: metastore databases a caller owns, and removing a table's or a
database's files (delta-rs' options for the store are `pipelines.object_store.S3Access`'s)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from testkit.names import unique_name

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def object_keys(s3: Any, bucket: str, root: str) -> list[str]:
    """The keys of every object under `<root>/` of the bucket, in the store's order."""
    paginator = s3.get_paginator("list_objects_v2")
    return [item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=f"{root.strip('/')}/") for item in page.get("Contents", [])]


def delete_objects(s3: Any, bucket: str, root: str) -> None:
    """Every object under `<root>/` of the bucket (a table or a database folder)."""
    keys = object_keys(s3, bucket, root)
    for start in range(0, len(keys), 1000):  # one DeleteObjects call takes at most 1000 keys
        s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]]})


@contextmanager
def owned_database(
    spark: SparkSession, s3: Any, bucket: str, prefix: str = "test_delta", folder: str = "delta-tests"
) -> Iterator[tuple[str, str]]:
    """(database, s3a location) of the caller's own in the stack's metastore, at
    `s3a://<bucket>/<folder>/<database>`; dropped with its files afterwards."""
    database = unique_name(prefix)
    root = f"{folder}/{database}"
    location = f"s3a://{bucket}/{root}"
    spark.sql(f"CREATE DATABASE {database} LOCATION '{location}'")
    try:
        yield database, location
    finally:
        spark.sql(f"DROP DATABASE IF EXISTS {database} CASCADE")
        delete_objects(s3, bucket, root)
