"""The pipelines end to end on the docker stack: the very tests the process runtime's stack passes
(multiset parity after inserts, updates and deletes; column types; schema changes; Postgres and
MySQL into Iceberg and Delta; Delta's change feed and history), collected here so that the docker
stage runs them against the docker stack's outputs. The fault tests are in test_docker_faults.py."""

from __future__ import annotations

from tests.e2e.test_delta_cdf_workflow import *  # noqa: F403
from tests.e2e.test_iceberg_workflow import *  # noqa: F403
from tests.e2e.test_mysql_to_delta import *  # noqa: F403
from tests.e2e.test_postgres_to_delta import (  # noqa: F401
    test_a_column_added_in_postgres_is_added_to_the_delta_table,
    test_a_sink_killed_mid_batch_loses_and_duplicates_nothing,
    test_an_unchanged_toasted_value_is_kept_when_another_column_changes,
    test_counts_agree_at_every_stage_and_rows_match_as_multisets,
    test_every_postgres_column_type_arrives_equal_in_delta,
)
