"""`SchemaSubjectProvider` driven against the docker stack's schema registry container."""

from __future__ import annotations

from tests.integration.test_schema_subject_provider import *  # noqa: F403
