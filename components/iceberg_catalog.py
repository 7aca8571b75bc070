"""`IcebergRestCatalog`: an Apache Iceberg REST catalog whose warehouse is on the object store.

Process runtime: iceberg-core's REST adapter (Maven Central) behind cdcstack's small launcher, which
binds 127.0.0.1 only, with a JDBC (SQLite) catalog in its data dir so table metadata survives a
restart; `persistent=False` keeps it in memory instead. Docker runtime: apache/iceberg-rest-fixture.
Healthy once `GET /v1/config` answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.docker_service import DockerServiceSpec, docker_log_hint, docker_service
from components.network import ServiceArgs
from components.object_store import ObjectStore
from components.runtime import LOOPBACK, Runtime
from providers.local_service import LocalService, LocalServiceArgs

CONTAINER_PORT = 8181
HEAP = ["-Xms64m", "-Xmx384m"]
LAUNCHER = "LocalRestCatalogServer"
CATALOG_DB = "data/catalog.db"


@dataclass(frozen=True)
class IcebergRestCatalogArgs(ServiceArgs):
    store: ObjectStore
    """Holds the warehouse; the catalog starts once its buckets exist."""
    persistent: bool = True
    """Keep catalog metadata across restarts (SQLite in the data dir); False keeps it in memory."""


def catalog_environment(warehouse: str, s3_endpoint: str, access_key_id: str, region: str, catalog_uri: str, port: int) -> dict[str, str]:
    """The catalog's CATALOG_* settings (the REST fixture's convention), without the secret key."""
    return {
        "CATALOG_WAREHOUSE": warehouse,
        "CATALOG_URI": catalog_uri,
        "CATALOG_IO__IMPL": "org.apache.iceberg.aws.s3.S3FileIO",
        "CATALOG_S3_ENDPOINT": s3_endpoint,
        "CATALOG_S3_PATH__STYLE__ACCESS": "true",
        "CATALOG_S3_ACCESS__KEY__ID": access_key_id,
        "CATALOG_CLIENT_REGION": region,
        # The AWS SDK's default Apache client is not on the classpath; its URL-connection one is.
        "CATALOG_HTTP__CLIENT_TYPE": "urlconnection",
        "CATALOG_REST_HOST": LOOPBACK,
        "CATALOG_REST_PORT": str(port),
    }


class IcebergRestCatalog(pulumi.ComponentResource):
    """An Iceberg REST catalog; `catalog_properties` is what `pyiceberg.catalog.load_catalog` needs."""

    uri: pulumi.Output[str]
    warehouse: pulumi.Output[str]
    catalog_properties: pulumi.Output[dict]
    log_path: pulumi.Output[str]

    def __init__(self, name: str, args: IcebergRestCatalogArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:IcebergRestCatalog", name, None, opts)
        uri = f"http://{LOOPBACK}:{args.port}"
        store = args.store
        if args.placement.runtime is Runtime.PROCESS:
            server = self._process_catalog(name, args)
            self.log_path = server.log_path
        else:
            server = self._docker_catalog(name, args)
            self.log_path = docker_log_hint(server)
        self.uri = pulumi.Output.from_input(uri)
        self.warehouse = store.warehouse
        self.catalog_properties = pulumi.Output.secret(
            pulumi.Output.all(store.warehouse, store.endpoint, store.access_key_id, store.secret_access_key, store.region, server.urn).apply(
                lambda values: {
                    "uri": uri,
                    "warehouse": values[0],
                    "s3.endpoint": values[1],
                    "s3.access-key-id": values[2],
                    "s3.secret-access-key": values[3],
                    "s3.region": values[4],
                    # Path-style requests: the local store has no per-bucket host names.
                    "s3.force-virtual-addressing": "false",
                }
            )
        )
        self.register_outputs(
            {"uri": self.uri, "warehouse": self.warehouse, "catalog_properties": self.catalog_properties, "log_path": self.log_path}
        )

    def _process_catalog(self, name: str, args: IcebergRestCatalogArgs) -> LocalService:
        toolchain = args.placement.toolchain
        workdir = args.placement.service_dir(name)
        lib = toolchain.require_jars(toolchain.iceberg_rest_lib_dir, "Iceberg REST catalog")
        catalog_uri = f"jdbc:sqlite:file:{workdir / CATALOG_DB}" if args.persistent else "jdbc:sqlite::memory:"
        store = args.store
        return LocalService(
            f"{name}-process",
            LocalServiceArgs(
                service=name,
                argv=[toolchain.executable("java"), *HEAP, "-cp", f"{toolchain.iceberg_rest_classes_dir}:{lib}/*", LAUNCHER],
                workdir=str(workdir),
                ports=[args.port],
                health={"kind": "http", "url": f"http://{LOOPBACK}:{args.port}/v1/config"},
                init=[["mkdir", "-p", "data"]],
                env=pulumi.Output.all(store.warehouse, store.internal_endpoint, store.access_key_id, store.region).apply(
                    lambda values: catalog_environment(*values, catalog_uri, args.port)
                ),
                secret_env=pulumi.Output.from_input(store.secret_access_key).apply(
                    lambda secret: {"CATALOG_S3_SECRET__ACCESS__KEY": secret}
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[store]),
        )

    def _docker_catalog(self, name: str, args: IcebergRestCatalogArgs) -> pulumi.Resource:
        store = args.store
        catalog_uri = "jdbc:sqlite:file:/data/catalog.db" if args.persistent else "jdbc:sqlite::memory:"
        envs = pulumi.Output.secret(
            pulumi.Output.all(store.warehouse, store.internal_endpoint, store.access_key_id, store.region, store.secret_access_key).apply(
                lambda values: [
                    f"{key}={value}"
                    for key, value in {
                        **catalog_environment(*values[:4], catalog_uri, CONTAINER_PORT),
                        "CATALOG_REST_HOST": "0.0.0.0",
                        "CATALOG_S3_SECRET__ACCESS__KEY": values[4],
                    }.items()
                ]
            )
        )
        return docker_service(
            self,
            name,
            args.network,
            DockerServiceSpec(
                service=name,
                image=args.placement.toolchain.image("ICEBERG_REST_IMAGE"),
                ports={CONTAINER_PORT: args.port},
                health_test=["CMD-SHELL", f"curl -fs http://localhost:{CONTAINER_PORT}/v1/config >/dev/null"],
                volume_path="/data",
                envs=envs,
                memory_mb=768,
                extra_depends_on=(store,),
            ),
        )
