"""Suite-wide wiring: no skips, markers by folder, the live stack's outputs and connections to its services
(each checked healthy first: a service that is down fails the test with what to run, never skips it)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from confluent_kafka.admin import AdminClient

import stack_outputs as out
from tests.support.cdc import CapturedTable, captured_mysql_table, captured_postgres_table

from tests.support.stack import StackOutputs, read_stack_outputs

pytest_plugins = ["tests.support.no_skips"]

TESTS_DIR = Path(__file__).resolve().parent
MARKER_BY_FOLDER = {"unit": "unit", "integration": "integration", "e2e": "e2e", "docker": "docker"}
LIVE_STACK_FIXTURE = "stack"
"""Every fixture that reaches the live stack (connections, catalogs, captured tables) goes through this one."""


def marker_for(folder: str, fixture_names: Collection[str]) -> str | None:
    """The marker of a test in `folder` of tests/ using `fixture_names` (their whole closure).

    By folder, except that a test in unit/ which needs the live stack is marked integration: the
    spec fixes the path tests/unit/test_cdc_pipelines/ (a contract), yet most of its tests write to
    the live catalog and object store, so `-m unit` must not pick them up. Its pure planning tests
    stay unit.
    """
    marker = MARKER_BY_FOLDER.get(folder)
    if marker == "unit" and LIVE_STACK_FIXTURE in fixture_names:
        return "integration"
    return marker


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        folder = Path(str(item.fspath)).relative_to(TESTS_DIR).parts[0]
        marker = marker_for(folder, getattr(item, "fixturenames", ()))
        if marker is not None:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def stack() -> StackOutputs:
    """The live stack's outputs; fails (never skips) with what to run when the stack is not up."""
    return read_stack_outputs()


@pytest.fixture(scope="session", autouse=True)
def nothing_left_over(request: pytest.FixtureRequest) -> Iterator[None]:
    """When the run reaches the live stack: fails it if its tests left a name of theirs behind
    (tests/support/leftovers.py). The last test's teardown reports it."""
    if not any(LIVE_STACK_FIXTURE in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield
        return
    from tests.support.leftovers import assert_nothing_left_over, take_inventory

    try:
        live = request.getfixturevalue(LIVE_STACK_FIXTURE)
        before = take_inventory(live)
    except Exception:  # noqa: BLE001 - a stack that is not up fails every test that needs it, saying what to run
        yield
        return
    yield
    assert_nothing_left_over(live, before)


@pytest.fixture
def pg(stack: StackOutputs) -> Iterator[psycopg.Connection]:
    with psycopg.connect(stack.postgres_dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def mysql_settings(stack: StackOutputs) -> dict[str, Any]:
    return stack.mysql


@pytest.fixture
def mysql(mysql_settings: dict[str, Any]) -> Iterator[pymysql.connections.Connection]:
    connection = pymysql.connect(**mysql_settings, autocommit=True)
    with connection:
        yield connection


@pytest.fixture(scope="session")
def kafka_admin(stack: StackOutputs) -> AdminClient:
    return AdminClient({"bootstrap.servers": stack.kafka_bootstrap})


@pytest.fixture
def schema_registry_url(stack: StackOutputs) -> str:
    """The registry's Confluent API base, checked healthy first."""
    url = stack[out.SCHEMA_REGISTRY_URL]
    stack.require_healthy("schema-registry", {"kind": "http", "url": f"{url}/subjects"})
    return url


def postgres_table_captured(stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient, columns_sql: str) -> AbstractContextManager[CapturedTable]:
    """A table in Postgres' captured `inventory` schema, dropped with its topic on exit."""
    return captured_postgres_table(
        pg, kafka_admin, stack.kafka_bootstrap, stack[out.POSTGRES_TOPIC_PREFIX], columns_sql, stack.connect_url, stack[out.POSTGRES_CONNECTOR]
    )


def mysql_table_captured(
    stack: StackOutputs, mysql: pymysql.connections.Connection, kafka_admin: AdminClient, columns_sql: str
) -> AbstractContextManager[CapturedTable]:
    """A table in MySQL's captured `inventory` database, dropped with its topic on exit."""
    return captured_mysql_table(mysql, kafka_admin, stack.kafka_bootstrap, stack[out.MYSQL_TOPIC_PREFIX], columns_sql, stack.connect_url, stack[out.MYSQL_CONNECTOR])


@pytest.fixture
def postgres_capture(stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient):
    """Makes tables in Postgres' captured `inventory` schema; each is dropped with its topic afterwards."""
    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR])
    with ExitStack() as tables:

        def create(columns_sql: str) -> CapturedTable:
            return tables.enter_context(postgres_table_captured(stack, pg, kafka_admin, columns_sql))

        yield create


@pytest.fixture
def mysql_capture(stack: StackOutputs, mysql: pymysql.connections.Connection, kafka_admin: AdminClient):
    """Makes tables in MySQL's captured `inventory` database; each is dropped with its topic afterwards."""
    stack.require_connector_running(stack[out.MYSQL_CONNECTOR])
    with ExitStack() as tables:

        def create(columns_sql: str) -> CapturedTable:
            return tables.enter_context(mysql_table_captured(stack, mysql, kafka_admin, columns_sql))

        yield create


class SparkSessions:
    """The test run's Spark session, opened again when the master no longer knows its application
    (a test that kills the Spark master and worker strands the driver: no executor would ever come,
    and every later job of it would wait for resources forever)."""

    def __init__(self, stack: StackOutputs) -> None:
        self.stack = stack
        self.session: Any = None

    def get(self) -> Any:
        from pipelines.spark import master_applications, open_session

        if self.session is not None:
            try:
                listed = master_applications(self.stack[out.SPARK_UI_URL], 10.0)
            except (OSError, ValueError) as error:
                raise AssertionError(
                    f"spark-master: its UI {self.stack[out.SPARK_UI_URL]} did not list applications ({error}); log: {self.stack.log_of('spark-master')}"
                ) from error
            if listed is None or self.session.sparkContext.applicationId in listed:
                return self.session
        self.stop()
        self.stack.require_healthy("spark-worker", {"kind": "spark", "url": self.stack[out.SPARK_UI_URL], "alive_workers": 1})
        self.stack.require_healthy("spark-metastore", {"kind": "tcp", **self.stack.spark_metastore_address})
        self.session = open_session(self.stack[out.SPARK_CONF], "cdcstack-tests", self.stack.state_dir / "pytest-spark")
        return self.session

    def stop(self) -> None:
        if self.session is not None:
            self.session.stop()
            self.session = None


@pytest.fixture(scope="session")
def spark_sessions(stack: StackOutputs) -> Iterator[SparkSessions]:
    sessions = SparkSessions(stack)
    yield sessions
    sessions.stop()


@pytest.fixture
def spark(spark_sessions: SparkSessions) -> Any:
    """A Spark session on the stack's cluster with its Delta and Iceberg catalogs (one per test run
    while its driver has executors: a driver JVM takes seconds to start)."""
    return spark_sessions.get()


@pytest.fixture(scope="session")
def delta_lake(stack: StackOutputs) -> Any:
    from tests.support.delta import DeltaLake

    return DeltaLake.of(stack)


def iceberg_table_purger(stack: StackOutputs) -> Any:
    """Purges the Iceberg sink's table of a topic, if it made one (for `both_` tables)."""

    def purge(topic: str) -> None:
        from pyiceberg.exceptions import NoSuchTableError

        from pipelines.sinks.job import table_identifier
        from tests.support.iceberg import catalog_of

        try:
            catalog_of(stack).purge_table(table_identifier(stack[out.ICEBERG_SINK_NAMESPACE], topic))
        except NoSuchTableError:
            pass

    return purge


def replicated_tables(stack: StackOutputs, kafka_admin: AdminClient, spark: Any, delta_lake: Any, topic_prefix: str, creator: Any) -> Iterator[Any]:
    """A factory of source tables the Delta sink (and with `prefix="both"` the Iceberg sink too)
    replicates; `creator(columns_sql)` gives the source's (create, drop)."""
    from tests.support.delta import DELTA_SINK, replicated_table

    with ExitStack() as tables:

        def create(columns_sql: str, prefix: str = "delta") -> Any:
            sinks = (DELTA_SINK, "iceberg-sink") if prefix == "both" else (DELTA_SINK,)
            create_table, drop_table = creator(columns_sql)
            return tables.enter_context(
                replicated_table(stack, kafka_admin, spark, delta_lake, topic_prefix, create_table, drop_table, prefix, sinks, iceberg_table_purger(stack))
            )

        yield create


@pytest.fixture
def delta_postgres_table(stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient, spark: Any, delta_lake: Any):
    """Makes `inventory.delta_*` tables in Postgres, which the stack's Delta sink replicates; each is
    removed afterwards with its topics and Delta table. `prefix="both"` has the Iceberg sink keep it too."""
    with delta_postgres_tables(stack, pg, kafka_admin, spark, delta_lake) as create:
        yield create


@contextmanager
def delta_postgres_tables(stack: StackOutputs, pg: psycopg.Connection, kafka_admin: AdminClient, spark: Any, delta_lake: Any) -> Iterator[Any]:
    """The factory behind `delta_postgres_table`, for fixtures of a wider scope too."""
    from tests.support.delta import postgres_creator

    stack.require_connector_running(stack[out.POSTGRES_CONNECTOR])
    yield from replicated_tables(stack, kafka_admin, spark, delta_lake, stack[out.POSTGRES_TOPIC_PREFIX], lambda columns: postgres_creator(pg, columns, stack.connect_url, stack[out.POSTGRES_CONNECTOR]))


@pytest.fixture
def delta_mysql_table(stack: StackOutputs, mysql: pymysql.connections.Connection, kafka_admin: AdminClient, spark: Any, delta_lake: Any):
    """Makes `inventory.delta_*` tables in MySQL, which the stack's Delta sink replicates (as above)."""
    from tests.support.delta import mysql_creator

    stack.require_connector_running(stack[out.MYSQL_CONNECTOR])
    yield from replicated_tables(stack, kafka_admin, spark, delta_lake, stack[out.MYSQL_TOPIC_PREFIX], lambda columns: mysql_creator(mysql, columns, stack.connect_url, stack[out.MYSQL_CONNECTOR]))
