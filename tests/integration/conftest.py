"""Connections to the live stack's services, each checked healthy first (fails, never skips)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pymysql
import pytest
from confluent_kafka.admin import AdminClient

from tests.support.stack import StackOutputs


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
