"""`DebeziumConnectorProvider` driven against the docker stack's Connect container: the connectors it
registers reach Postgres, MariaDB and Kafka at their network aliases (the stack's `internal_addresses`)."""

from __future__ import annotations

from tests.integration.test_debezium_provider import *  # noqa: F403
