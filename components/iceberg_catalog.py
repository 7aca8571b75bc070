"""`IcebergRestCatalog`: an Apache Iceberg REST catalog whose warehouse is on the object store.

iceberg-core's REST adapter (Maven Central) behind cdcstack's small launcher, which binds the
placement's listen host only (127.0.0.1 on the process runtime), with a JDBC (SQLite) catalog in its
data dir so table metadata survives a restart; `persistent=False` keeps it in memory instead.
Healthy once `GET /v1/config` answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.object_store import ObjectStoreAccess
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceComponent, ServiceDefinition
from pipelines.object_store import S3Access

HEAP = ["-Xms64m", "-Xmx384m"]
LAUNCHER = "LocalRestCatalogServer"
CATALOG_DB = "data/catalog.db"


@dataclass(frozen=True)
class IcebergRestCatalogArgs(ServiceArgs):
    store: ObjectStoreAccess
    """Holds the warehouse; the catalog starts once its buckets exist."""
    persistent: bool = True
    """Keep catalog metadata across restarts (SQLite in the data dir); False keeps it in memory."""


def catalog_environment(
    warehouse: str, s3_endpoint: str, access_key_id: str, region: str, catalog_uri: str, port: int, rest_host: str = LOOPBACK
) -> dict[str, str]:
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
        "CATALOG_REST_HOST": rest_host,
        "CATALOG_REST_PORT": str(port),
    }


class IcebergRestCatalog(ServiceComponent):
    """An Iceberg REST catalog; `catalog_properties` is what `pyiceberg.catalog.load_catalog` needs."""

    uri: pulumi.Output[str]
    internal_uri: pulumi.Output[str]
    """How other services of the stack reach it (container alias on docker)."""
    warehouse: pulumi.Output[str]
    catalog_properties: pulumi.Output[dict]
    internal_catalog_properties: pulumi.Output[dict]
    """`catalog_properties` with the internal catalog and object store addresses, for services of the stack."""

    def __init__(self, name: str, args: IcebergRestCatalogArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:IcebergRestCatalog", name, service_catalogue.ICEBERG_CATALOG, opts)
        uri = f"http://{LOOPBACK}:{args.ports.main}"
        store = args.store
        self._serve(
            args,
            ServiceDefinition(
                health={"kind": "http", "url": f"{uri}/v1/config"},
                process=lambda workdir: self._process_catalog(args, workdir),
                depends_on=(store.service,),
                memory_mb=768,
            ),
        )
        self.uri = pulumi.Output.from_input(uri)
        self.internal_uri = pulumi.Output.from_input(f"http://{self._internal_address()}")
        self.warehouse = store.warehouse
        self.catalog_properties = self._properties(uri, store.resolved(store.endpoint), store.warehouse)
        self.internal_catalog_properties = self._properties(self.internal_uri, store.resolved(store.internal_endpoint), store.warehouse)
        self._register(
            {
                "uri": self.uri,
                "internal_uri": self.internal_uri,
                "warehouse": self.warehouse,
                "catalog_properties": self.catalog_properties,
                "internal_catalog_properties": self.internal_catalog_properties,
            }
        )

    def _properties(self, uri: pulumi.Input[str], store: pulumi.Output[S3Access], warehouse: pulumi.Input[str]) -> pulumi.Output[dict]:
        """PyIceberg's properties for a client reaching the catalog at `uri` and the store as `store`; secret."""
        return pulumi.Output.secret(
            pulumi.Output.all(uri, warehouse, store, self.ready).apply(
                lambda values: {"uri": values[0], "warehouse": values[1], **values[2].pyiceberg_properties()}
            )
        )

    @staticmethod
    def _process_catalog(args: IcebergRestCatalogArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        lib = toolchain.require_jars(toolchain.iceberg_rest_lib_dir, "Iceberg REST catalog")
        catalog_uri = f"jdbc:sqlite:file:{workdir / CATALOG_DB}" if args.persistent else "jdbc:sqlite::memory:"
        store = args.store
        return ProcessLaunch(
            argv=[toolchain.executable("java"), *HEAP, "-cp", f"{toolchain.iceberg_rest_classes_dir}:{lib}/*", LAUNCHER],
            init=[["mkdir", "-p", "data"]],
            env=pulumi.Output.all(store.warehouse, store.internal_endpoint, store.access_key_id, store.region).apply(
                lambda values: catalog_environment(*values, catalog_uri, args.ports.main, args.placement.listen_host)
            ),
            secret_env=pulumi.Output.from_input(store.secret_access_key).apply(
                lambda secret: {"CATALOG_S3_SECRET__ACCESS__KEY": secret}
            ),
        )
