"""The process runtime's fault tests on the docker stack, each landing while a batch is in flight and
ending with the sink holding exactly the source (no row lost, no key twice): a service's container
stopped mid-batch and put back by `pulumi up --refresh --target`; Connect's and each sink's service
killed inside its container (a crash: Docker's restart policy brings the container back by itself),
the sinks' between their table commit and their group commit. Figures go to reports/faults-docker.tsv."""

from __future__ import annotations

from tests.integration.test_faults import (  # noqa: F401
    catalog,
    lake_table,
    test_a_connect_killed_while_it_streams_comes_back_by_itself_and_loses_nothing,
    test_a_service_stopped_mid_batch_loses_and_duplicates_nothing,
    test_a_sink_killed_between_its_table_commit_and_its_group_commit_applies_nothing_twice,
)
