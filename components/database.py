"""What the SQL database components (Postgres, MySql) expose, in the same shape for both."""

from __future__ import annotations

from typing import Any, Mapping

import pulumi

from components import seeds
from components.runtime import LOOPBACK, Runtime
from providers.sql_seed import SqlSeed, SqlSeedArgs


class SqlDatabase(pulumi.ComponentResource):
    """Connection info in the testcontainers manner (host, port, dsn, …), built in one place."""

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    password: pulumi.Output[str]
    dsn: pulumi.Output[str]
    log_path: pulumi.Output[str]
    ready: pulumi.Output[str]
    """Resolves once the server is healthy and seeded: dependents wait on it."""
    internal_host: pulumi.Output[str]
    """How other services of the stack reach it (a network alias on docker, loopback otherwise)."""
    internal_port: pulumi.Output[int]

    def _seed(
        self,
        engine: str,
        connection: pulumi.Input[Mapping[str, Any]],
        instance: pulumi.Input[str],
        server: pulumi.Resource,
    ) -> SqlSeed:
        """The `<engine>_inventory` seed, run once the server is healthy and again per new instance."""
        return SqlSeed(
            f"{self._name}-seed",
            SqlSeedArgs(
                seed=f"{self._name}-inventory",
                engine=engine,
                connection=connection,
                statements=seeds.statements(f"{engine}_inventory"),
                instance=instance,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[server]),
        )

    def _publish(
        self,
        runtime: Runtime,
        port: int,
        container_port: int,
        database: str,
        user: str,
        password: pulumi.Input[str],
        dsn: pulumi.Output[str],
        log_path: pulumi.Output[str],
        ready: pulumi.Output[str],
    ) -> None:
        on_docker = runtime is Runtime.DOCKER
        self.host = pulumi.Output.from_input(LOOPBACK)
        self.port = pulumi.Output.from_input(port)
        self.database = pulumi.Output.from_input(database)
        self.user = pulumi.Output.from_input(user)
        self.password = pulumi.Output.secret(password)
        self.dsn = dsn
        self.log_path = log_path
        self.ready = ready
        self.internal_host = pulumi.Output.from_input(self._name if on_docker else LOOPBACK)
        self.internal_port = pulumi.Output.from_input(container_port if on_docker else port)
        self.register_outputs(
            {
                "host": self.host,
                "port": self.port,
                "database": self.database,
                "user": self.user,
                "password": self.password,
                "dsn": self.dsn,
                "log_path": self.log_path,
                "ready": self.ready,
                "internal_host": self.internal_host,
                "internal_port": self.internal_port,
            }
        )
