"""`S3Bucket`: a bucket on the stack's object store as a Pulumi resource (the warehouse is one).

The natural id is the bucket name. create adopts a bucket that already exists; delete empties and
removes it, and a bucket already gone is success. Credentials are secret inputs, never on the
provider object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pulumi
from pulumi.dynamic import CreateResult, ReadResult, UpdateResult

from pipelines.object_store import S3Access
from providers.base import DeclaredProvider, DeclaredResource, Input, ResourceSchema
from providers.errors import ObjectStoreError

ADOPTABLE = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
GONE = ("NoSuchBucket", "404", "NotFound")
SCHEMA = ResourceSchema(
    id_key="bucket",
    inputs=(Input("bucket"), Input("endpoint"), Input("region"), Input("credentials", secret=True)),
)
"""A new name is a new bucket; a new endpoint, region or credentials only change how it is reached."""


def s3_client(access: S3Access) -> Any:
    """A boto3 S3 client for a local S3-compatible server: path-style, bounded timeouts and retries."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=access.endpoint,
        aws_access_key_id=access.access_key_id,
        aws_secret_access_key=access.secret_access_key,
        region_name=access.region,
        config=Config(
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    )


def _client(props: Mapping[str, Any]) -> Any:
    credentials = props["credentials"]
    return s3_client(S3Access(props["endpoint"], credentials["access_key_id"], credentials["secret_access_key"], props["region"]))


def _code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


class S3BucketProvider(DeclaredProvider):
    schema = SCHEMA

    def create(self, props: dict[str, Any]) -> CreateResult:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket = props["bucket"]
        try:
            _client(props).create_bucket(Bucket=bucket)
        except ClientError as error:
            if _code(error) not in ADOPTABLE:
                raise ObjectStoreError(f"object store at {props['endpoint']}: cannot create bucket {bucket}: {error}") from error
        except BotoCoreError as error:
            raise ObjectStoreError(f"object store at {props['endpoint']} did not answer creating bucket {bucket}: {error}") from error
        return CreateResult(id_=bucket, outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=news)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            _client(props).head_bucket(Bucket=id_)
        except ClientError as error:
            if _code(error) in GONE:
                return ReadResult(None, {})
            raise
        except BotoCoreError:
            # An object store that does not answer tells nothing about the bucket: keep the state.
            return ReadResult(id_, props)
        return ReadResult(id_, props)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        client = _client(props)
        try:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=id_):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    client.delete_objects(Bucket=id_, Delete={"Objects": keys, "Quiet": True})
            client.delete_bucket(Bucket=id_)
        except ClientError as error:
            if _code(error) not in GONE:
                raise ObjectStoreError(f"object store at {props['endpoint']}: cannot delete bucket {id_}: {error}") from error
        except BotoCoreError:
            # The store itself is gone (its own delete removes its data): nothing left to delete.
            return


@dataclass(frozen=True)
class S3BucketArgs:
    bucket: str
    """Bucket name: the natural id."""
    endpoint: pulumi.Input[str]
    """The object store's S3 endpoint URL."""
    credentials: pulumi.Input[Mapping[str, str]]
    """{"access_key_id", "secret_access_key"}; kept secret."""
    region: str = "us-east-1"
    """Signing region the store expects."""


class S3Bucket(DeclaredResource, module="cdcstack", name="S3Bucket"):
    def __init__(self, name: str, args: S3BucketArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(S3BucketProvider(), name, args, opts)
