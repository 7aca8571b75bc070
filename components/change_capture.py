"""`ChangeCapture`: the Debezium source connectors of the stack, registered on its Connect worker.

One connector per source database, capturing the whole `inventory` schema (tables created later
included), with truncates and delete tombstones passed through so consumers see every operation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.kafka import Kafka
from components.kafka_connect import MARIADB_CONNECTOR, MYSQL_CONNECTOR, POSTGRES_CONNECTOR, KafkaConnect
from components.mysql import MySql
from components.postgres import Postgres
from components.runtime import Runtime
from pipelines import kafka_limits
from providers.debezium_connector import DebeziumConnector, DebeziumConnectorArgs

MYSQL_SERVER_ID = "184054"
"""The connector's replication client id; must differ from the server's own server_id."""

# Shared by both sources: exact decimals, every operation, topics created as the tables appear.
# A 10 ms poll takes streaming lag from about 300 ms to about 15 ms; larger batches with a 5 ms
# linger take a 100k-row snapshot from about 4k to about 19k rows/s (`make bench`).
COMMON_SETTINGS: dict[str, str] = {
    "tasks.max": "1",
    "poll.interval.ms": "10",
    "max.batch.size": "8192",
    "max.queue.size": "32768",
    "producer.override.linger.ms": "5",
    "producer.override.batch.size": "262144",
    "snapshot.mode": "initial",
    "decimal.handling.mode": "precise",
    "tombstones.on.delete": "true",
    "topic.creation.default.replication.factor": "1",
    "topic.creation.default.partitions": "1",
    # Topics Connect creates take the pipeline's record size limit explicitly (pipelines/kafka_limits.py).
    "topic.creation.default.max.message.bytes": kafka_limits.TOPIC_MAX_MESSAGE_BYTES,
}


@dataclass(frozen=True)
class ChangeCaptureArgs:
    runtime: Runtime
    """Picks the MySQL connector flavour: MariaDB's on the process runtime, MySQL's on docker."""
    connect: KafkaConnect
    """The worker the connectors run on."""
    kafka: Kafka
    """Where the MySQL connector keeps its schema history."""
    postgres: Postgres
    """Source database for the `postgres` connector."""
    mysql: MySql
    """Source database for the `mysql` connector."""
    postgres_connector: str = "cdcstack-postgres"
    """Connector name (and slot/publication name, with dashes as underscores)."""
    mysql_connector: str = "cdcstack-mysql"
    """Connector name."""
    postgres_topic_prefix: str = "pg"
    """Topics are `<prefix>.<schema>.<table>`."""
    mysql_topic_prefix: str = "my"
    """Topics are `<prefix>.<database>.<table>`."""


def postgres_source_config(
    host: str, port: int, user: str, password: str, database: str, topic_prefix: str, slot: str
) -> dict[str, str]:
    return {
        "connector.class": POSTGRES_CONNECTOR,
        "database.hostname": host,
        "database.port": str(port),
        "database.user": user,
        "database.password": password,
        "database.dbname": database,
        "topic.prefix": topic_prefix,
        "plugin.name": "pgoutput",
        "slot.name": slot,
        "publication.name": slot,
        # FOR ALL TABLES: tables created after the connector starts are published too.
        "publication.autocreate.mode": "all_tables",
        "schema.include.list": "inventory",
        # Debezium skips truncates unless told otherwise.
        "skipped.operations": "none",
        **COMMON_SETTINGS,
    }


def mysql_source_config(
    connector_class: str,
    host: str,
    port: int,
    user: str,
    password: str,
    database: str,
    topic_prefix: str,
    history_bootstrap: str,
) -> dict[str, str]:
    return {
        "connector.class": connector_class,
        "database.hostname": host,
        "database.port": str(port),
        "database.user": user,
        "database.password": password,
        "database.server.id": MYSQL_SERVER_ID,
        "database.include.list": database,
        "topic.prefix": topic_prefix,
        "schema.history.internal.kafka.bootstrap.servers": history_bootstrap,
        "schema.history.internal.kafka.topic": f"{topic_prefix}.schema-history",
        "include.schema.changes": "false",
        "skipped.operations": "none",
        **COMMON_SETTINGS,
    }


class ChangeCapture(pulumi.ComponentResource):
    """Registers the Postgres and MySQL Debezium connectors once their databases are seeded."""

    postgres_connector: pulumi.Output[str]
    mysql_connector: pulumi.Output[str]
    postgres_topic_prefix: pulumi.Output[str]
    mysql_topic_prefix: pulumi.Output[str]
    status_url: pulumi.Output[str]

    def __init__(self, name: str, args: ChangeCaptureArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdcstack:components:ChangeCapture", name, None, opts)
        slot = args.postgres_connector.replace("-", "_")
        postgres_config = pulumi.Output.all(
            args.postgres.internal_host,
            args.postgres.internal_port,
            args.postgres.user,
            args.postgres.password,
            args.postgres.database,
            args.postgres.ready,
        ).apply(lambda values: postgres_source_config(*values[:5], args.postgres_topic_prefix, slot))
        mysql_class = MARIADB_CONNECTOR if args.runtime is Runtime.PROCESS else MYSQL_CONNECTOR
        mysql_config = pulumi.Output.all(
            args.mysql.internal_host,
            args.mysql.internal_port,
            args.mysql.user,
            args.mysql.password,
            args.mysql.database,
            args.kafka.internal_bootstrap_servers,
            args.mysql.ready,
        ).apply(lambda values: mysql_source_config(mysql_class, *values[:5], args.mysql_topic_prefix, values[5]))

        child = pulumi.ResourceOptions(parent=self, depends_on=[args.connect])
        postgres_connector = DebeziumConnector(
            f"{name}-postgres",
            DebeziumConnectorArgs(
                name=args.postgres_connector,
                connect_url=args.connect.url,
                config=postgres_config,
                worker_log=args.connect.log_path,
            ),
            opts=child,
        )
        mysql_connector = DebeziumConnector(
            f"{name}-mysql",
            DebeziumConnectorArgs(
                name=args.mysql_connector,
                connect_url=args.connect.url,
                config=mysql_config,
                worker_log=args.connect.log_path,
            ),
            opts=child,
        )
        self.postgres_connector = postgres_connector.id
        self.mysql_connector = mysql_connector.id
        self.postgres_topic_prefix = pulumi.Output.from_input(args.postgres_topic_prefix)
        self.mysql_topic_prefix = pulumi.Output.from_input(args.mysql_topic_prefix)
        self.status_url = args.connect.url.apply(lambda url: f"{url}/connectors?expand=status")
        self.register_outputs(
            {
                "postgres_connector": self.postgres_connector,
                "mysql_connector": self.mysql_connector,
                "postgres_topic_prefix": self.postgres_topic_prefix,
                "mysql_topic_prefix": self.mysql_topic_prefix,
                "status_url": self.status_url,
            }
        )
