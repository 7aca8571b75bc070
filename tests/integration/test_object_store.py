"""The S3-compatible object store: the warehouse bucket, exact round trips, multipart, conditional PUT."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

import stack_outputs as out
from providers.s3_bucket import s3_client
from testkit.names import unique_name
from tests.support.stack import StackOutputs

PART_SIZE = 5 * 1024 * 1024


@pytest.fixture
def s3(stack: StackOutputs) -> Any:
    return stack.s3_client()


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    """A bucket of this test's own, emptied and removed afterwards."""
    name = unique_name("test").replace("_", "-")
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def error_code(error: ClientError) -> str:
    return error.response["Error"]["Code"]


def test_pulumi_up_created_the_warehouse_bucket(stack: StackOutputs, s3: Any) -> None:
    warehouse = stack[out.WAREHOUSE]
    assert warehouse == "s3://warehouse/"
    s3.head_bucket(Bucket="warehouse")
    assert "warehouse" in [entry["Name"] for entry in s3.list_buckets()["Buckets"]]


def test_objects_round_trip_byte_for_byte(s3: Any, bucket: str) -> None:
    payload = os.urandom(64 * 1024) + b"\x00tail"
    s3.put_object(Bucket=bucket, Key="data/part-0.parquet", Body=payload)
    assert s3.get_object(Bucket=bucket, Key="data/part-0.parquet")["Body"].read() == payload
    ranged = s3.get_object(Bucket=bucket, Key="data/part-0.parquet", Range="bytes=10-19")["Body"].read()
    assert ranged == payload[10:20]


def test_multipart_upload_assembles_the_parts_in_order(s3: Any, bucket: str) -> None:
    parts = [os.urandom(PART_SIZE), os.urandom(PART_SIZE), os.urandom(1024)]
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big.bin")
    etags = [
        {"PartNumber": number, "ETag": s3.upload_part(Bucket=bucket, Key="big.bin", UploadId=upload["UploadId"], PartNumber=number, Body=part)["ETag"]}
        for number, part in enumerate(parts, start=1)
    ]
    s3.complete_multipart_upload(Bucket=bucket, Key="big.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": etags})
    body = s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(b"".join(parts)).hexdigest()


def test_conditional_put_refuses_to_overwrite_an_existing_key(s3: Any, bucket: str) -> None:
    """Delta's concurrent writers rely on If-None-Match: * to commit a log entry exactly once."""
    s3.put_object(Bucket=bucket, Key="_delta_log/00000.json", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="_delta_log/00000.json", Body=b"second", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=bucket, Key="_delta_log/00000.json")["Body"].read() == b"first"


def test_listing_groups_keys_by_prefix_and_delimiter(s3: Any, bucket: str) -> None:
    for key in ("t/data/a.parquet", "t/data/b.parquet", "t/metadata/v1.json", "u/x"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="t/", Delimiter="/")
    assert sorted(prefix["Prefix"] for prefix in listing["CommonPrefixes"]) == ["t/data/", "t/metadata/"]
    assert [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix="t/data/")["Contents"]] == [
        "t/data/a.parquet",
        "t/data/b.parquet",
    ]


def test_a_wrong_secret_is_refused_with_a_signature_error(stack: StackOutputs, bucket: str) -> None:
    intruder = s3_client(dataclasses.replace(stack.object_store, secret_access_key="not-the-secret"))
    with pytest.raises(ClientError) as refused:
        intruder.put_object(Bucket=bucket, Key="x", Body=b"x")
    assert error_code(refused.value) == "SignatureDoesNotMatch"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
