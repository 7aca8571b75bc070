"""The Debezium source connector configs of the stack, as plain dicts: no Pulumi here.

`ChangeCapture` registers them through the database components; tests and the bench build the same
configs for the connectors they register themselves, without importing a Pulumi component.
"""

from __future__ import annotations

import json

from pipelines import kafka_limits

POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
MYSQL_CONNECTOR = "io.debezium.connector.mysql.MySqlConnector"
MARIADB_CONNECTOR = "io.debezium.connector.mariadb.MariaDbConnector"
DEBEZIUM_CONNECTORS = (POSTGRES_CONNECTOR, MYSQL_CONNECTOR, MARIADB_CONNECTOR)
"""Connector classes a Connect worker must list to count as healthy."""

MYSQL_SERVER_ID = "184054"
"""The connector's replication client id; must differ from the server's own server_id."""

# Shared by both sources: exact decimals, every operation, topics created as the tables appear.
# A 100 ms poll takes streaming lag from about 300 ms (the 500 ms default) to well under 100 ms; a
# 10 ms one bought 15 ms of lag for 28 % of a core spent by an idle Connect worker (6 % at 100 ms), a
# cost every test on two cores paid. Larger batches with a 5 ms linger take a 100k-row snapshot from
# about 4k to about 19k rows/s (`make bench`).
COMMON_SETTINGS: dict[str, str] = {
    "tasks.max": "1",
    "poll.interval.ms": "100",
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


AVRO_TABLE_PREFIX = "avro_"
"""Tables `inventory.avro_*` are captured by the Avro connector, every other one by the JSON connector."""
AVRO_TABLES = rf"inventory\.{AVRO_TABLE_PREFIX}.*"
AVRO_CONVERTER = "io.apicurio.registry.utils.converter.AvroConverter"


def avro_converter_settings(registry_url: str) -> dict[str, str]:
    """Connector-level converter overrides: keys and values as Avro in the Confluent wire format (magic
    byte, 4-byte schema id), registering each new schema under `<topic>-key`/`<topic>-value` through
    Apicurio's own API at `registry_url`."""
    per_side = {
        "": AVRO_CONVERTER,
        ".apicurio.registry.url": registry_url,
        ".apicurio.registry.auto-register": "true",
        # The schema id travels in the payload (Confluent's format), not in record headers.
        ".apicurio.registry.headers.enabled": "false",
        ".apicurio.registry.as-confluent": "true",
        # Content ids are what the Confluent API serves at /schemas/ids/{id}.
        ".apicurio.registry.use-id": "contentId",
    }
    return {f"{side}.converter{suffix}": value for side in ("key", "value") for suffix, value in per_side.items()}


def postgres_source_config(
    host: str,
    port: int,
    user: str,
    password: str,
    database: str,
    topic_prefix: str,
    slot: str,
    tables: dict[str, str] | None = None,
) -> dict[str, str]:
    """A Postgres connector capturing the `inventory` schema through `pgoutput`; `slot` names both the
    replication slot and the publication. `tables` narrows it (`table.include.list` or
    `table.exclude.list`, never both: Debezium refuses that)."""
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
        **(tables or {}),
        # Debezium skips truncates unless told otherwise.
        "skipped.operations": "none",
        **COMMON_SETTINGS,
    }


MYSQL_HEARTBEAT_INTERVAL_MS = "1000"
"""Heartbeats (to `__debezium-heartbeat.<prefix>`) carry the binlog position the connector has read."""


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
    """A MySQL or MariaDB connector (`connector_class`) capturing `database`, keeping its schema history
    in Kafka at `history_bootstrap`."""
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
        # A change record's offset is the start of its transaction, and DDL emits none: without
        # heartbeats the committed offset never passes a table's last change or its DROP.
        "heartbeat.interval.ms": MYSQL_HEARTBEAT_INTERVAL_MS,
        **COMMON_SETTINGS,
    }


def debezium_key_schema(topic: str, columns: list[tuple[str, str]]) -> str:
    """The Avro schema Debezium's key converter registers for `topic`'s primary key, `columns` as
    (name, Avro type) in key order: a record `<topic>.Key` carrying Connect's name for it."""
    return json.dumps(
        {
            "type": "record",
            "name": "Key",
            "namespace": topic,
            "fields": [{"name": name, "type": kind} for name, kind in columns],
            "connect.name": f"{topic}.Key",
        },
        # The converter's compact text: the registry dedups identical text only.
        separators=(",", ":"),
    )
