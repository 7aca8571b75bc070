"""How a client reaches the stack's object store, and every client's settings derived from it in one
place: PyIceberg's properties, Spark's S3A and Iceberg keys, delta-rs' storage options. No Pulumi here:
`components.object_store.ObjectStoreAccess.resolved` builds one from the stack, `from_outputs` from
its outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import stack_outputs as out


@dataclass(frozen=True)
class S3Access:
    """One address of the store and its credentials."""

    endpoint: str
    """`http://host:port`: 127.0.0.1 from the host, the container alias from another container."""
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any]) -> S3Access:
        """The store as the stack's outputs give it (tests, the bench, your scripts on the host)."""
        return cls(outputs[out.S3_ENDPOINT], outputs[out.S3_ACCESS_KEY_ID], outputs[out.S3_SECRET_ACCESS_KEY], outputs[out.S3_REGION])

    def pyiceberg_properties(self) -> dict[str, str]:
        """The `s3.*` properties of a PyIceberg catalog (path-style: the local store has no per-bucket host names)."""
        return {
            "s3.endpoint": self.endpoint,
            "s3.access-key-id": self.access_key_id,
            "s3.secret-access-key": self.secret_access_key,
            "s3.region": self.region,
            "s3.force-virtual-addressing": "false",
        }

    def s3a_conf(self) -> dict[str, str]:
        """Hadoop S3A's `spark.hadoop.fs.s3a.*` settings (holds the secret)."""
        return {
            "spark.hadoop.fs.s3a.endpoint": self.endpoint,
            "spark.hadoop.fs.s3a.endpoint.region": self.region,
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
            "spark.hadoop.fs.s3a.access.key": self.access_key_id,
            "spark.hadoop.fs.s3a.secret.key": self.secret_access_key,
            "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        }

    def iceberg_file_io_conf(self, prefix: str) -> dict[str, str]:
        """Iceberg's S3FileIO settings under `prefix` (a Spark catalog's `spark.sql.catalog.<name>`; holds the secret)."""
        return {
            f"{prefix}.io-impl": "org.apache.iceberg.aws.s3.S3FileIO",
            f"{prefix}.s3.endpoint": self.endpoint,
            f"{prefix}.s3.path-style-access": "true",
            f"{prefix}.s3.access-key-id": self.access_key_id,
            f"{prefix}.s3.secret-access-key": self.secret_access_key,
            f"{prefix}.client.region": self.region,
        }

    def delta_rs_storage_options(self) -> dict[str, str]:
        """What delta-rs needs to read `s3://<bucket>/...` on this store."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_REGION": self.region,
            "AWS_ALLOW_HTTP": "true",
            "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
        }
