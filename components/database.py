"""What the SQL database components (Postgres, MySql) expose, in the same shape for both."""

from __future__ import annotations

from typing import Any, Mapping

import pulumi

from components import seeds
from components.runtime import LOOPBACK
from components.service import Served, ServiceComponent
from providers.sql_seed import SqlSeed, SqlSeedArgs


class SqlDatabase(ServiceComponent):
    """Connection info in the testcontainers manner (host, port, dsn, …), built in one place.

    Also a change capture source: `ChangeCapture` registers one Debezium connector per database,
    named `connector_name`, with the config `debezium_config` builds (pipelines/connectors.py).
    """

    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database: pulumi.Output[str]
    user: pulumi.Output[str]
    password: pulumi.Output[str]
    dsn: pulumi.Output[str]
    connector_name: str
    """Its Debezium connector's name (the connector's natural id on the worker)."""
    topic_prefix: str
    """Its change topics are `<prefix>.<schema or database>.<table>`."""

    @property
    def capture_key(self) -> str:
        """Its key in `ChangeCapture`'s outputs and in its connector's Pulumi name: the service name."""
        return self.service.name

    @property
    def host_address(self) -> pulumi.Output[str]:
        """`host:port` as this program reaches it, where its connector's config names Connect's address."""
        return pulumi.Output.concat(self.host, ":", self.port.apply(str))

    def debezium_config(self, kafka_bootstrap: pulumi.Input[str]) -> pulumi.Output[dict[str, str]]:
        """Its Debezium source connector's config (secret), resolved once it is healthy and seeded.

        `kafka_bootstrap` is the broker as the Connect worker reaches it, for sources that keep their
        schema history in Kafka.
        """
        raise NotImplementedError

    def _seed(self, engine: str, connection: pulumi.Input[Mapping[str, Any]], served: Served) -> SqlSeed:
        """The `<engine>_inventory` seed, run once the server is healthy and again per new instance."""
        return SqlSeed(
            f"{self._name}-seed",
            SqlSeedArgs(
                seed=f"{self._name}-inventory",
                engine=engine,
                connection=connection,
                statements=seeds.statements(f"{engine}_inventory"),
                instance=served.instance,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[served.healthy]),
        )

    def _publish(
        self,
        port: int,
        database: str,
        user: str,
        password: pulumi.Input[str],
        dsn: pulumi.Output[str],
        seed: SqlSeed,
        capture: tuple[str, str],
    ) -> None:
        """Sets the connection outputs and registers them; `capture` is (connector name, topic prefix)."""
        self.host = pulumi.Output.from_input(LOOPBACK)
        self.port = pulumi.Output.from_input(port)
        self.database = pulumi.Output.from_input(database)
        self.user = pulumi.Output.from_input(user)
        self.password = pulumi.Output.secret(password)
        self.dsn = dsn
        # Ready for clients means seeded, not only answering.
        self.ready = seed.id
        self.connector_name, self.topic_prefix = capture
        self._register(
            {
                "host": self.host,
                "port": self.port,
                "database": self.database,
                "user": self.user,
                "password": self.password,
                "dsn": self.dsn,
                "connector_name": self.connector_name,
                "topic_prefix": self.topic_prefix,
            }
        )
