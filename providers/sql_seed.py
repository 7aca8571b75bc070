"""`SqlSeed`: idempotent SQL run against a database once it is healthy (roles, sample schema, rows).

Runtime-independent: it connects over TCP to 127.0.0.1 whichever runtime serves the database.
Statements must be idempotent (IF NOT EXISTS, ON CONFLICT DO NOTHING, INSERT IGNORE), because the
seed runs again whenever its database instance is replaced or restarted by `pulumi up`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pulumi
from pulumi.dynamic import CreateResult

from providers.base import DeclaredProvider, DeclaredResource, Input, ResourceSchema
from providers.errors import SeedError

SCHEMA = ResourceSchema(
    id_key="seed",
    inputs=(Input("seed"), Input("engine"), Input("connection", secret=True), Input("statements"), Input("instance")),
    outputs=("statement_count",),
    # No update: running the (idempotent) statements again is how any change, a new instance
    # included, is applied.
    replace_on_change=True,
    delete_before_replace=False,
)


def _run_postgres(connection: Mapping[str, Any], statements: Sequence[str]) -> None:
    import psycopg
    from psycopg import sql

    # CREATE DATABASE has no IF NOT EXISTS and cannot run in a transaction or DO block.
    if connection.get("maintenance_dsn"):
        with psycopg.connect(connection["maintenance_dsn"], autocommit=True, connect_timeout=10) as session:
            database = connection["database"]
            if session.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is None:
                session.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with psycopg.connect(connection["dsn"], autocommit=True, connect_timeout=10) as session:
        for statement in statements:
            session.execute(statement)


def _run_mysql(connection: Mapping[str, Any], statements: Sequence[str]) -> None:
    import pymysql

    session = pymysql.connect(
        host=connection["host"],
        port=int(connection["port"]),
        user=connection["user"],
        password=connection["password"],
        autocommit=True,
        connect_timeout=10,
    )
    with session, session.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


_RUNNERS = {"postgres": _run_postgres, "mysql": _run_mysql}


class SqlSeedProvider(DeclaredProvider):
    schema = SCHEMA

    def create(self, props: dict[str, Any]) -> CreateResult:
        runner = _RUNNERS[props["engine"]]
        statements: list[str] = props["statements"]
        try:
            runner(props["connection"], statements)
        except Exception as error:
            raise SeedError(
                f"{props['seed']}: seeding {props['engine']} failed: {error}. "
                "The database's log is in the stack's state dir (`make outputs` lists it)."
            ) from error
        return CreateResult(id_=props["seed"], outs={**props, "statement_count": len(statements)})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # The seeded objects live and die with their database service; nothing to undo here.
        return None


@dataclass(frozen=True)
class SqlSeedArgs:
    seed: str
    """Natural id of the seed."""
    engine: str
    """"postgres" or "mysql"."""
    connection: pulumi.Input[Mapping[str, Any]]
    """postgres: {"dsn"} plus {"maintenance_dsn", "database"} to create the database first;
    mysql: {"host", "port", "user", "password"}. Kept secret."""
    statements: Sequence[str]
    """Idempotent statements, run in order with autocommit."""
    instance: pulumi.Input[str]
    """The database instance's identity: a new instance runs the seed again."""


class SqlSeed(DeclaredResource, module="cdcstack", name="SqlSeed"):
    statement_count: pulumi.Output[int]

    def __init__(self, name: str, args: SqlSeedArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(SqlSeedProvider(), name, args, opts)
