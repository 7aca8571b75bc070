"""`ObjectStore`: an S3-compatible store with its buckets (the lakehouse warehouse among them).

Process runtime: Versity's S3 gateway over a folder of the stack's state dir (multipart uploads and
conditional PUT, which delta-rs' concurrent writers need). Docker runtime: MinIO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.docker_service import DockerServiceSpec, docker_log_hint, docker_service
from components.network import ServiceArgs
from components.runtime import LOOPBACK, Runtime
from providers.local_service import LocalService, LocalServiceArgs
from providers.s3_bucket import S3Bucket, S3BucketArgs

CONTAINER_PORT = 9000
REGION = "us-east-1"
HEALTH_PATH = "/health"


@dataclass(frozen=True)
class ObjectStoreArgs(ServiceArgs):
    access_key_id: str
    """Root access key."""
    secret_access_key: pulumi.Input[str]
    """Root secret key (a Pulumi secret)."""
    buckets: Sequence[str] = ("warehouse",)
    """Buckets created by `pulumi up` (the first is the lakehouse warehouse)."""


class ObjectStore(pulumi.ComponentResource):
    """An S3 endpoint on 127.0.0.1 with its buckets; healthy once its health endpoint answers."""

    endpoint: pulumi.Output[str]
    internal_endpoint: pulumi.Output[str]
    """How other services of the stack reach it (container alias on docker)."""
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    region: pulumi.Output[str]
    warehouse: pulumi.Output[str]
    """`s3://<first bucket>/`, once the bucket exists."""
    log_path: pulumi.Output[str]

    def __init__(self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:ObjectStore", name, None, opts)
        endpoint = f"http://{LOOPBACK}:{args.port}"
        if args.placement.runtime is Runtime.PROCESS:
            server = self._process_store(name, args, endpoint)
            self.log_path = server.log_path
            self.internal_endpoint = pulumi.Output.from_input(endpoint)
        else:
            server = self._docker_store(name, args)
            self.log_path = docker_log_hint(server)
            self.internal_endpoint = pulumi.Output.from_input(f"http://{name}:{CONTAINER_PORT}")

        credentials = pulumi.Output.secret(
            pulumi.Output.from_input(args.secret_access_key).apply(
                lambda secret: {"access_key_id": args.access_key_id, "secret_access_key": secret}
            )
        )
        buckets = [
            S3Bucket(
                f"{name}-bucket-{bucket}",
                S3BucketArgs(bucket=bucket, endpoint=endpoint, credentials=credentials, region=REGION),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[server]),
            )
            for bucket in args.buckets
        ]
        self.endpoint = pulumi.Output.from_input(endpoint)
        self.access_key_id = pulumi.Output.from_input(args.access_key_id)
        self.secret_access_key = pulumi.Output.secret(args.secret_access_key)
        self.region = pulumi.Output.from_input(REGION)
        self.warehouse = buckets[0].id.apply(lambda bucket: f"s3://{bucket}/")
        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "internal_endpoint": self.internal_endpoint,
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
                "region": self.region,
                "warehouse": self.warehouse,
                "log_path": self.log_path,
            }
        )

    def _process_store(self, name: str, args: ObjectStoreArgs, endpoint: str) -> LocalService:
        toolchain = args.placement.toolchain
        workdir = args.placement.service_dir(name)
        return LocalService(
            f"{name}-process",
            LocalServiceArgs(
                service=name,
                argv=[
                    toolchain.executable("versitygw", (toolchain.versitygw_bin_dir,)),
                    "--port",
                    f"{LOOPBACK}:{args.port}",
                    "--health",
                    HEALTH_PATH,
                    "--quiet",
                    "posix",
                    str(workdir / "data"),
                ],
                workdir=str(workdir),
                ports=[args.port],
                health={"kind": "http", "url": f"{endpoint}{HEALTH_PATH}"},
                # The posix backend serves an existing folder; each top-level folder is a bucket.
                init=[["mkdir", "-p", "data"]],
                secret_env=pulumi.Output.from_input(args.secret_access_key).apply(
                    lambda secret: {"ROOT_ACCESS_KEY_ID": args.access_key_id, "ROOT_SECRET_ACCESS_KEY": secret}
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.network.dependency()),
        )

    def _docker_store(self, name: str, args: ObjectStoreArgs) -> pulumi.Resource:
        return docker_service(
            self,
            name,
            args.network,
            DockerServiceSpec(
                service=name,
                image=args.placement.toolchain.image("MINIO_IMAGE"),
                ports={CONTAINER_PORT: args.port},
                health_test=["CMD-SHELL", f"curl -fs http://localhost:{CONTAINER_PORT}/minio/health/ready"],
                volume_path="/data",
                envs=pulumi.Output.secret(
                    pulumi.Output.from_input(args.secret_access_key).apply(
                        lambda secret: [f"MINIO_ROOT_USER={args.access_key_id}", f"MINIO_ROOT_PASSWORD={secret}"]
                    )
                ),
                command=["server", "/data"],
                memory_mb=512,
            ),
        )
