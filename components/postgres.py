"""`Postgres`: a PostgreSQL server ready for Debezium (logical WAL, slots, senders) with a seeded schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi

import service_catalogue
from components.database import SqlDatabase
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceDefinition
from components.schema_registry import SchemaRegistry
from pipelines.connectors import AVRO_TABLES, avro_converter_settings, postgres_source_config

SUPERUSER = "postgres"
MAINTENANCE_DATABASE = "postgres"

# What Debezium's pgoutput connector needs, and what keeps a test server light.
SERVER_SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_replication_slots": "16",
    "max_wal_senders": "16",
    "shared_buffers": "128MB",
    "max_connections": "100",
    # A disposable test database: trading crash durability of the OS for speed is fine here.
    # synchronous_commit stays on: logical decoding only sees flushed WAL, so turning it off
    # would add up to three WAL-writer delays of CDC lag.
    "fsync": "off",
    "full_page_writes": "off",
}


HBA_FILE = "pg_hba.conf"
CONTAINER_HBA = (
    "local all all peer\n"
    "host all all all scram-sha-256\n"
    "host replication all all scram-sha-256\n"
)


@dataclass(frozen=True)
class PostgresArgs(ServiceArgs):
    password: pulumi.Input[str]
    """Superuser password (a Pulumi secret)."""
    database: str = "inventory"
    """Database holding the seeded `inventory` schema."""
    connector_name: str = "cdcstack-postgres"
    """Its Debezium connector (and, with dashes as underscores, its slot and publication)."""
    topic_prefix: str = "pg"
    """Change topics are `<prefix>.<schema>.<table>`."""


def dsn(user: str, password: pulumi.Input[str], port: int, database: str) -> pulumi.Output[str]:
    """The libpq URL for a database on this server; secret since it carries the password."""
    return pulumi.Output.secret(
        pulumi.Output.concat("postgresql://", user, ":", password, f"@{LOOPBACK}:{port}/{database}")
    )


class Postgres(SqlDatabase):
    """PostgreSQL with wal_level=logical, seeded with the `inventory` sample schema."""

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:Postgres", name, service_catalogue.POSTGRES, opts)
        admin_dsn = dsn(SUPERUSER, args.password, args.ports.main, MAINTENANCE_DATABASE)
        served = self._serve(
            args,
            ServiceDefinition(
                health=admin_dsn.apply(lambda url: {"kind": "postgres", "dsn": url}),
                process=lambda workdir: self._process_server(args, workdir),
            ),
        )
        seed = self._seed(
            "postgres",
            pulumi.Output.all(admin_dsn, dsn(SUPERUSER, args.password, args.ports.main, args.database)).apply(
                lambda dsns: {"maintenance_dsn": dsns[0], "dsn": dsns[1], "database": args.database}
            ),
            served,
        )
        self._publish(
            args.ports.main,
            args.database,
            SUPERUSER,
            args.password,
            dsn(SUPERUSER, args.password, args.ports.main, args.database),
            seed,
            (args.connector_name, args.topic_prefix),
        )

    def debezium_config(self, kafka_bootstrap: pulumi.Input[str]) -> pulumi.Output[dict[str, str]]:
        """The pgoutput connector; its slot and publication are the connector name with underscores.
        It leaves the `inventory.avro_*` tables to `PostgresAvroCapture`."""
        slot = self.connector_name.replace("-", "_")
        return pulumi.Output.all(
            self.internal_host, self.internal_port, self.user, self.password, self.database, self.ready
        ).apply(
            # The Avro connector's tables are not this connector's.
            lambda values: postgres_source_config(*values[:5], self.topic_prefix, slot, {"table.exclude.list": AVRO_TABLES})
        )

    @staticmethod
    def _process_server(args: PostgresArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        bin_dir = (toolchain.postgres_bin_dir,)
        settings = {
            **SERVER_SETTINGS,
            "listen_addresses": args.placement.listen_host,
            "port": str(args.ports.main),
            # No Unix socket: the system default dir belongs to the distribution's own cluster.
            "unix_socket_directories": "",
        }
        files: dict[str, str] = {}
        if args.placement.listen_host != LOOPBACK:
            # In a container, clients (the host through the published port, Connect) come from the
            # container network: password logins from any address, replication included.
            files[HBA_FILE] = CONTAINER_HBA
            settings["hba_file"] = str(workdir / HBA_FILE)
        argv = [toolchain.executable("postgres", bin_dir), "-D", str(workdir / "data")]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return ProcessLaunch(
            files=files,
            argv=argv,
            init=[
                [
                    toolchain.executable("initdb", bin_dir),
                    "--pgdata=data",
                    f"--username={SUPERUSER}",
                    "--pwfile=superuser.password",
                    "--auth-host=scram-sha-256",
                    "--auth-local=peer",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            ],
            secret_files=pulumi.Output.from_input(args.password).apply(lambda pw: {"superuser.password": pw}),
            run_as="postgres",
        )


@dataclass(frozen=True)
class PostgresAvroCapture:
    """A second Postgres connector, for the `inventory.avro_*` tables only, writing Avro through the
    schema registry: every schema change of those tables becomes a new registered version. The
    stack's JSON connector leaves these tables alone (pipelines/connectors.py)."""

    postgres: Postgres
    registry: SchemaRegistry
    connector_name: str = "cdcstack-postgres-avro"
    """Its connector (and, with dashes as underscores, its own slot and publication)."""
    topic_prefix: str = "pgavro"
    """Its change topics are `<prefix>.inventory.avro_<table>`, its subjects `<topic>-key`/`-value`."""
    service: service_catalogue.ServiceSpec = field(default_factory=lambda: service_catalogue.POSTGRES)

    @property
    def capture_key(self) -> str:
        return "postgres-avro"

    @property
    def host_address(self) -> pulumi.Output[str]:
        return self.postgres.host_address

    def debezium_config(self, kafka_bootstrap: pulumi.Input[str]) -> pulumi.Output[dict[str, str]]:
        """The pgoutput connector with Avro converters; secret like the JSON one."""
        postgres = self.postgres
        slot = self.connector_name.replace("-", "_")
        return pulumi.Output.all(
            postgres.internal_host, postgres.internal_port, postgres.user, postgres.password, postgres.database,
            self.registry.converter_url, postgres.ready,
        ).apply(
            lambda values: {
                **postgres_source_config(*values[:5], self.topic_prefix, slot, {"table.include.list": AVRO_TABLES}),
                **avro_converter_settings(values[5]),
            }
        )
