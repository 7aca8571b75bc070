"""`Postgres`: a PostgreSQL server ready for Debezium (logical WAL, slots, senders) with a seeded schema."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.database import SqlDatabase
from components.docker_service import DockerServiceSpec, docker_log_hint, docker_service
from components.network import ServiceArgs
from components.runtime import LOOPBACK, Runtime
from providers.local_service import LocalService, LocalServiceArgs

CONTAINER_PORT = 5432
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


@dataclass(frozen=True)
class PostgresArgs(ServiceArgs):
    password: pulumi.Input[str]
    """Superuser password (a Pulumi secret)."""
    database: str = "inventory"
    """Database holding the seeded `inventory` schema."""


def dsn(user: str, password: pulumi.Input[str], port: int, database: str) -> pulumi.Output[str]:
    """The libpq URL for a database on this server; secret since it carries the password."""
    return pulumi.Output.secret(
        pulumi.Output.concat("postgresql://", user, ":", password, f"@{LOOPBACK}:{port}/{database}")
    )


class Postgres(SqlDatabase):
    """PostgreSQL with wal_level=logical, seeded with the `inventory` sample schema."""

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:Postgres", name, None, opts)
        admin_dsn = dsn(SUPERUSER, args.password, args.port, MAINTENANCE_DATABASE)

        if args.placement.runtime is Runtime.PROCESS:
            server, instance, log_path = self._process_server(name, args, admin_dsn)
        else:
            server, instance, log_path = self._docker_server(name, args)

        seed = self._seed(
            "postgres",
            pulumi.Output.all(admin_dsn, dsn(SUPERUSER, args.password, args.port, args.database)).apply(
                lambda dsns: {"maintenance_dsn": dsns[0], "dsn": dsns[1], "database": args.database}
            ),
            instance,
            server,
        )

        self._publish(
            args.placement.runtime,
            args.port,
            CONTAINER_PORT,
            args.database,
            SUPERUSER,
            args.password,
            dsn(SUPERUSER, args.password, args.port, args.database),
            log_path,
            seed.id,
        )

    def _process_server(
        self, name: str, args: PostgresArgs, admin_dsn: pulumi.Output[str]
    ) -> tuple[pulumi.Resource, pulumi.Output[str], pulumi.Output[str]]:
        toolchain = args.placement.toolchain
        bin_dir = (toolchain.postgres_bin_dir,)
        workdir = args.placement.service_dir(name)
        settings = {
            **SERVER_SETTINGS,
            "listen_addresses": LOOPBACK,
            "port": str(args.port),
            # No Unix socket: the system default dir belongs to the distribution's own cluster.
            "unix_socket_directories": "",
        }
        argv = [toolchain.executable("postgres", bin_dir), "-D", str(workdir / "data")]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        server = LocalService(
            f"{name}-process",
            LocalServiceArgs(
                service=name,
                argv=argv,
                workdir=str(workdir),
                ports=[args.port],
                health=admin_dsn.apply(lambda url: {"kind": "postgres", "dsn": url}),
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
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.network.dependency()),
        )
        return server, server.instance, server.log_path

    def _docker_server(self, name: str, args: PostgresArgs) -> tuple[pulumi.Resource, pulumi.Output[str], pulumi.Output[str]]:
        command = ["postgres"]
        for key, value in SERVER_SETTINGS.items():
            command += ["-c", f"{key}={value}"]
        container = docker_service(
            self,
            name,
            args.network,
            DockerServiceSpec(
                service=name,
                image=args.placement.toolchain.image("POSTGRES_IMAGE"),
                ports={CONTAINER_PORT: args.port},
                health_test=["CMD-SHELL", f"pg_isready -U {SUPERUSER} -d {args.database}"],
                volume_path="/var/lib/postgresql/data",
                envs=pulumi.Output.secret(
                    pulumi.Output.all(args.password).apply(
                        lambda values: [f"POSTGRES_USER={SUPERUSER}", f"POSTGRES_PASSWORD={values[0]}", f"POSTGRES_DB={args.database}"]
                    )
                ),
                command=command,
                memory_mb=1024,
            ),
        )
        return container, container.id, docker_log_hint(container)
