"""`MySql`: a MySQL-protocol server with a row-based binlog for Debezium, and a seeded schema.

The process runtime runs MariaDB (Debian has no MySQL server package; MariaDB speaks the protocol
and writes a binlog Debezium's MariaDB connector reads). The docker runtime runs a real MySQL 8.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

import service_catalogue
from components.database import SqlDatabase
from components.runtime import LOOPBACK
from components.service import ProcessLaunch, ServiceArgs, ServiceDefinition
from pipelines.connectors import MARIADB_CONNECTOR, mysql_source_config

# mariadbd lives outside a non-root PATH.
SYSTEM_SBIN = Path("/usr/sbin")
ROOT_USER = "root"
SERVER_ID = 1

# Debezium reads complete row images from a row-based binlog.
BINLOG_FLAGS = [f"--server-id={SERVER_ID}", "--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL"]


@dataclass(frozen=True)
class MySqlArgs(ServiceArgs):
    root_password: pulumi.Input[str]
    """Password of `root` (a Pulumi secret)."""
    database: str = "inventory"
    """Database holding the seeded sample tables."""
    connector_name: str = "cdcstack-mysql"
    """Its Debezium connector's name."""
    topic_prefix: str = "my"
    """Change topics are `<prefix>.<database>.<table>`."""


def sql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def root_account_sql(password: str, client_host: str = LOOPBACK) -> str:
    """Init SQL run by mariadbd at every start: root over TCP from `client_host` with a password (no
    name resolution). In a container clients come from the container network: any host ('%')."""
    literal = sql_literal(password)
    return "\n".join(
        [
            f"CREATE USER IF NOT EXISTS 'root'@'{client_host}' IDENTIFIED BY {literal};",
            f"ALTER USER 'root'@'{client_host}' IDENTIFIED BY {literal};",
            f"GRANT ALL PRIVILEGES ON *.* TO 'root'@'{client_host}' WITH GRANT OPTION;",
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY {literal};",
            "",
        ]
    )


class MySql(SqlDatabase):
    """A MySQL-protocol server with binlog_format=ROW and binlog_row_image=FULL."""

    def __init__(self, name: str, args: MySqlArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:MySql", name, service_catalogue.MYSQL, opts)
        # MySQL 8 is on no registry reachable here, on either runtime: MariaDB serves, read by
        # Debezium's MariaDB connector.
        self._connector_class = MARIADB_CONNECTOR
        connection = pulumi.Output.secret(
            pulumi.Output.from_input(args.root_password).apply(
                lambda password: {"host": LOOPBACK, "port": args.ports.main, "user": ROOT_USER, "password": password}
            )
        )
        served = self._serve(
            args,
            ServiceDefinition(
                health=connection.apply(lambda values: {"kind": "mysql", **values}),
                process=lambda workdir: self._process_server(args, workdir),
            ),
        )
        seed = self._seed("mysql", connection, served)
        self._publish(
            args.ports.main,
            args.database,
            ROOT_USER,
            args.root_password,
            pulumi.Output.secret(
                pulumi.Output.concat(
                    "mysql://", ROOT_USER, ":", args.root_password, f"@{LOOPBACK}:{args.ports.main}/{args.database}"
                )
            ),
            seed,
            (args.connector_name, args.topic_prefix),
        )

    def debezium_config(self, kafka_bootstrap: pulumi.Input[str]) -> pulumi.Output[dict[str, str]]:
        """The binlog connector, keeping its schema history in Kafka at `kafka_bootstrap`."""
        return pulumi.Output.all(
            self.internal_host, self.internal_port, self.user, self.password, self.database, kafka_bootstrap, self.ready
        ).apply(lambda values: mysql_source_config(self._connector_class, *values[:5], self.topic_prefix, values[5]))

    @staticmethod
    def _process_server(args: MySqlArgs, workdir: Path) -> ProcessLaunch:
        toolchain = args.placement.toolchain
        data_dir = str(workdir / "data")
        client_host = LOOPBACK if args.placement.listen_host == LOOPBACK else "%"
        return ProcessLaunch(
            argv=[
                toolchain.executable("mariadbd", (SYSTEM_SBIN,)),
                "--no-defaults",
                f"--datadir={data_dir}",
                f"--bind-address={args.placement.listen_host}",
                f"--port={args.ports.main}",
                f"--socket={workdir / 'mysqld.sock'}",
                f"--pid-file={workdir / 'mariadbd.pid'}",
                f"--init-file={workdir / 'root-account.sql'}",
                "--skip-name-resolve",
                *BINLOG_FLAGS,
                "--innodb-buffer-pool-size=128M",
                "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=200",
            ],
            init=[
                [
                    toolchain.executable("mariadb-install-db"),
                    "--no-defaults",
                    f"--datadir={data_dir}",
                    "--auth-root-authentication-method=normal",
                    "--skip-test-db",
                ]
            ],
            secret_files=pulumi.Output.from_input(args.root_password).apply(
                lambda password: {"root-account.sql": root_account_sql(password, client_host)}
            ),
            run_as="mysql",
        )
