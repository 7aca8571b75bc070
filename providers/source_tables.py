"""A check Connect does not make: does a connector's `table.include.list` match any table at all?

Debezium accepts an include list that matches nothing and then silently captures nothing; a data
engineer who mistyped a table name wants an error instead.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping

POSTGRES_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
BINLOG_CLASSES = ("io.debezium.connector.mysql.MySqlConnector", "io.debezium.connector.mariadb.MariaDbConnector")


def _patterns(config: Mapping[str, str]) -> list[str]:
    return [pattern.strip() for pattern in config.get("table.include.list", "").split(",") if pattern.strip()]


def _tables(config: Mapping[str, str], source_address: str) -> list[str] | None:
    """`schema.table` (Postgres) or `database.table` (MySQL) names the connector's user can see, or
    None when the database is not reachable from here (e.g. a container-internal host name and no
    `source_address`, `host:port`, to reach it by instead)."""
    if source_address:
        host, _, port_text = source_address.rpartition(":")
        port = int(port_text)
    else:
        host, port = config.get("database.hostname", ""), int(config.get("database.port", "0") or 0)
    try:
        socket.getaddrinfo(host, port)
    except OSError:
        return None
    connector_class = config.get("connector.class")
    if connector_class == POSTGRES_CLASS:
        import psycopg

        with psycopg.connect(
            host=host, port=port, user=config.get("database.user"), password=config.get("database.password"),
            dbname=config.get("database.dbname"), connect_timeout=5,
        ) as session:
            rows = session.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
    elif connector_class in BINLOG_CLASSES:
        import pymysql

        with pymysql.connect(
            host=host, port=port, user=config.get("database.user"), password=config.get("database.password"), connect_timeout=5
        ) as session, session.cursor() as cursor:
            cursor.execute(
                "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.tables "
                "WHERE table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
            )
            rows = cursor.fetchall()
    else:
        return None
    return [row[0] for row in rows]


def unmatched_include_patterns(config: Mapping[str, str], source_address: str = "") -> list[str]:
    """The `table.include.list` patterns that match no existing table (empty when all match, when there
    is no include list, or when the database cannot be reached from here to tell); `source_address`
    is where to reach it when the config's host is one only Connect resolves."""
    patterns = _patterns(config)
    if not patterns:
        return []
    try:
        tables = _tables(config, source_address)
    except Exception:
        # Unreachable or refused: Connect's own validation reports connection problems better.
        return []
    if tables is None:
        return []
    return [pattern for pattern in patterns if not any(re.fullmatch(pattern, table) for table in tables)]
