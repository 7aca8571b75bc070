"""`ObjectStore`: an S3-compatible store with its buckets (the lakehouse warehouse among them).

Versity's S3 gateway over a folder of its work dir (multipart uploads and conditional PUT, which
delta-rs' concurrent writers need), on both runtimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition
from pipelines.object_store import S3Access
from providers.s3_bucket import S3Bucket, S3BucketArgs

REGION = "us-east-1"
HEALTH_PATH = "/health"
"""Where the S3 gateway is told to answer health checks."""


@dataclass(frozen=True)
class ObjectStoreAccess:
    """The store as its clients are given it: both its addresses, the warehouse bucket and the
    credentials. Who takes it derives its own settings with :meth:`resolved`."""

    service: pulumi.Resource
    """The store's component: what a client service depends on to start after it."""
    endpoint: pulumi.Output[str]
    """On 127.0.0.1, for clients on the host."""
    internal_endpoint: pulumi.Output[str]
    """For other services of the stack (the container alias on docker)."""
    warehouse: pulumi.Output[str]
    """`s3://<bucket>/`, once the bucket exists."""
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    """A Pulumi secret."""
    region: pulumi.Output[str]

    def resolved(self, endpoint: pulumi.Input[str]) -> pulumi.Output[S3Access]:
        """The store at `endpoint` (`self.endpoint` or `self.internal_endpoint`) with its credentials; secret."""
        return pulumi.Output.secret(
            pulumi.Output.all(endpoint, self.access_key_id, self.secret_access_key, self.region).apply(lambda values: S3Access(*values))
        )


@dataclass(frozen=True)
class ObjectStoreArgs(ServiceArgs):
    access_key_id: str
    """Root access key."""
    secret_access_key: pulumi.Input[str]
    """Root secret key (a Pulumi secret)."""
    buckets: Sequence[str] = ("warehouse",)
    """Buckets created by `pulumi up` (the first is the lakehouse warehouse)."""


class ObjectStore(ServiceComponent):
    """An S3 endpoint on 127.0.0.1 with its buckets; healthy once its health endpoint answers."""

    access: ObjectStoreAccess
    """What the catalog, Spark, the sinks and the stack's outputs take."""

    def __init__(self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:ObjectStore", name, service_catalogue.OBJECT_STORE, opts)
        endpoint = f"http://{LOOPBACK}:{args.ports.main}"
        served = self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": f"{endpoint}{HEALTH_PATH}"},
                process=lambda workdir: self._process_store(args, workdir),
                memory_mb=512,
            ),
        )
        credentials = pulumi.Output.secret(
            pulumi.Output.from_input(args.secret_access_key).apply(
                lambda secret: {"access_key_id": args.access_key_id, "secret_access_key": secret}
            )
        )
        buckets = [
            S3Bucket(
                f"{name}-bucket-{bucket}",
                S3BucketArgs(bucket=bucket, endpoint=endpoint, credentials=credentials, region=REGION),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[served.healthy]),
            )
            for bucket in args.buckets
        ]
        self.access = ObjectStoreAccess(
            service=self,
            endpoint=pulumi.Output.from_input(endpoint),
            internal_endpoint=pulumi.Output.from_input(f"http://{self._internal_address()}"),
            warehouse=buckets[0].id.apply(lambda bucket: f"s3://{bucket}/"),
            access_key_id=pulumi.Output.from_input(args.access_key_id),
            secret_access_key=pulumi.Output.secret(args.secret_access_key),
            region=pulumi.Output.from_input(REGION),
        )
        self._register(
            {
                "endpoint": self.access.endpoint,
                "internal_endpoint": self.access.internal_endpoint,
                "access_key_id": self.access.access_key_id,
                "secret_access_key": self.access.secret_access_key,
                "region": self.access.region,
                "warehouse": self.access.warehouse,
            }
        )

    @staticmethod
    def _process_store(args: ObjectStoreArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        return ProcessLaunch(
            argv=[
                toolchain.executable("versitygw", (toolchain.versitygw_bin_dir,)),
                "--port",
                f"{args.placement.listen_host}:{args.ports.main}",
                "--health",
                HEALTH_PATH,
                "--quiet",
                "posix",
                str(workdir / "data"),
            ],
            # The posix backend serves an existing folder; each top-level folder is a bucket.
            init=[["mkdir", "-p", "data"]],
            secret_env=pulumi.Output.from_input(args.secret_access_key).apply(
                lambda secret: {"ROOT_ACCESS_KEY_ID": args.access_key_id, "ROOT_SECRET_ACCESS_KEY": secret}
            ),
        )
