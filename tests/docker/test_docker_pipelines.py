"""The pipelines end to end on the docker stack: the very tests the process runtime's stack passes
(multiset parity after inserts, updates and deletes; Postgres and MySQL into Iceberg and Delta; the
connector and schema subject providers against the containerised Connect and registry), collected
here so that the docker stage runs them against the docker stack's outputs."""

from __future__ import annotations

from tests.e2e.test_iceberg_workflow import *  # noqa: F403
from tests.e2e.test_mysql_to_delta import *  # noqa: F403
from tests.e2e.test_postgres_to_delta import *  # noqa: F403
