"""`SchemaSubjectProvider` driven directly against the live schema registry (no mock, no Pulumi engine)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from providers.errors import IncompatibleSchemaError, SchemaRegistryUnavailableError
from providers.schema_registry_client import RegisteredSchema, SchemaRegistryClient, canonical
from providers.schema_subject import SchemaSubjectProvider
from testkit.names import unique_name

ORDER = {"type": "record", "name": "Order", "namespace": "cdcstack.test", "fields": [{"name": "id", "type": "int"}]}
V1 = json.dumps(ORDER)
V1_REFORMATTED = json.dumps(ORDER, indent=2, sort_keys=True)
V2 = json.dumps({**ORDER, "fields": [*ORDER["fields"], {"name": "note", "type": "string", "default": ""}]})
V2_WITHOUT_DEFAULT = json.dumps({**ORDER, "fields": [*ORDER["fields"], {"name": "note", "type": "string"}]})
"""Forward compatible with V1 (old readers skip `note`), not backward (new readers find no `note` in old records)."""
ID_AS_STRING = json.dumps({**ORDER, "fields": [{"name": "id", "type": "string"}]})
"""Compatible with V1 in no direction: int and string do not promote to each other."""
INCOMPATIBLE_REASON = "reader type: STRING not compatible with writer type: INT at /fields/0/type"
"""What the registry says of ID_AS_STRING after V1, under BACKWARD."""


@dataclass
class OwnedSubject:
    subject: str
    props: dict[str, Any]
    client: SchemaRegistryClient

    def snapshot(self) -> tuple[list[int], RegisteredSchema | None, str]:
        """(live versions, latest version, level): what a test compares before and after."""
        return self.client.versions(self.subject), self.client.latest(self.subject), self.client.get_compatibility(self.subject)


@pytest.fixture
def provider() -> SchemaSubjectProvider:
    return SchemaSubjectProvider()


@pytest.fixture
def owned(schema_registry_url: str) -> Iterator[OwnedSubject]:
    """Props for a subject of this test's own (BACKWARD, V1); deleted soft and permanently afterwards."""
    subject = unique_name("provider_test")
    client = SchemaRegistryClient(schema_registry_url)
    props = {"subject": subject, "registry_url": schema_registry_url, "schema": V1, "compatibility": "BACKWARD", "registry_log": ""}
    try:
        yield OwnedSubject(subject, props, client)
    finally:
        client.delete_subject(subject)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_create_registers_the_schema_and_sets_the_level(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    result = provider.create({**owned.props, "compatibility": "FULL_TRANSITIVE"})
    assert result.id == owned.subject
    versions, latest, level = owned.snapshot()
    assert versions == [1] and level == "FULL_TRANSITIVE"
    assert latest is not None and canonical(latest.schema) == canonical(V1)
    assert (result.outs["schema_id"], result.outs["version"]) == (latest.id, 1)
    assert result.outs["compatibility"] == "FULL_TRANSITIVE" and result.outs["latest_schema"] == canonical(V1)
    assert owned.subject in owned.client.subjects()


@pytest.mark.parametrize("registered_text", [V1, V1_REFORMATTED], ids=["same text", "reformatted"])
def test_create_adopts_the_same_schema_registered_already(
    provider: SchemaSubjectProvider, owned: OwnedSubject, registered_text: str
) -> None:
    # The registry itself dedups on the exact text only: a reformatted copy would be a second version.
    schema_id = owned.client.register(owned.subject, registered_text)
    result = provider.create(owned.props)
    assert (result.outs["schema_id"], result.outs["version"]) == (schema_id, 1)
    assert owned.client.versions(owned.subject) == [1]
    assert owned.client.get_compatibility(owned.subject) == "BACKWARD"
    assert provider.create(owned.props).outs["schema_id"] == schema_id, "create again (a retry) changes nothing"
    assert owned.client.versions(owned.subject) == [1]


def test_an_incompatible_schema_fails_check_with_the_registrys_reason_and_changes_nothing(
    provider: SchemaSubjectProvider, owned: OwnedSubject
) -> None:
    provider.create(owned.props)
    before = owned.snapshot()
    [failure] = provider.check({}, {**owned.props, "schema": ID_AS_STRING}).failures
    assert failure.property == "schema"
    assert failure.reason.startswith(f"subject {owned.subject}: the schema is not BACKWARD compatible")
    assert INCOMPATIBLE_REASON in failure.reason and owned.props["registry_url"] in failure.reason
    assert owned.snapshot() == before
    assert provider.check({}, {**owned.props, "schema": V2}).failures == []
    assert owned.snapshot() == before


def test_update_with_an_incompatible_schema_fails_with_the_reason_and_changes_nothing(
    provider: SchemaSubjectProvider, owned: OwnedSubject
) -> None:
    created = provider.create(owned.props).outs
    before = owned.snapshot()
    with pytest.raises(IncompatibleSchemaError) as rejected:
        provider.update(owned.subject, created, {**owned.props, "schema": ID_AS_STRING})
    assert INCOMPATIBLE_REASON in rejected.value.reason and INCOMPATIBLE_REASON in str(rejected.value)
    assert owned.snapshot() == before


def test_a_stricter_level_with_a_schema_it_refuses_leaves_the_old_level(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    created = provider.create({**owned.props, "compatibility": "FORWARD"}).outs
    stricter = {**owned.props, "schema": V2_WITHOUT_DEFAULT, "compatibility": "FULL"}
    # The registry judges only under its live level (FORWARD, which accepts it): update decides.
    assert provider.check({}, stricter).failures == []
    before = owned.snapshot()
    with pytest.raises(IncompatibleSchemaError) as rejected:
        provider.update(owned.subject, created, stricter)
    assert "note at /fields/1" in rejected.value.reason, "new readers find no default for `note` in old records"
    assert owned.snapshot() == before and before[2] == "FORWARD"


def test_relaxing_the_level_and_changing_the_schema_in_one_update(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    created = provider.create(owned.props).outs
    relaxed = {**owned.props, "schema": ID_AS_STRING, "compatibility": "NONE"}
    assert provider.check({}, relaxed).failures == [], "under the declared NONE it is compatible"
    updated = provider.update(owned.subject, created, relaxed).outs
    versions, latest, level = owned.snapshot()
    assert (versions, level, updated["version"]) == ([1, 2], "NONE", 2)
    assert latest is not None and latest.id == updated["schema_id"] and canonical(latest.schema) == canonical(ID_AS_STRING)


def test_update_registers_a_compatible_schema_as_a_new_version(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    created = provider.create(owned.props).outs
    news = {**owned.props, "schema": V2}
    assert provider.diff(owned.subject, created, news).replaces == []
    updated = provider.update(owned.subject, created, news).outs
    versions, latest, _ = owned.snapshot()
    assert versions == [1, 2] and updated["version"] == 2 and updated["schema_id"] != created["schema_id"]
    assert latest is not None and latest.id == updated["schema_id"]
    assert provider.diff(owned.subject, provider.read(owned.subject, updated).outs, news).changes is False


def test_drift_of_level_and_latest_schema_is_read_and_repaired_by_update(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    created = provider.create(owned.props).outs
    owned.client.set_compatibility(owned.subject, "NONE")
    drifted_id = owned.client.register(owned.subject, ID_AS_STRING)

    live = provider.read(owned.subject, created)
    assert live.id == owned.subject
    assert (live.outs["compatibility"], live.outs["version"], live.outs["schema_id"]) == ("NONE", 2, drifted_id)
    assert canonical(live.outs["schema"]) == live.outs["latest_schema"] == canonical(ID_AS_STRING)
    assert provider.diff(owned.subject, live.outs, owned.props).changes is True
    assert provider.diff(owned.subject, created, owned.props).changes is False, "without a refresh, nothing shows"

    repaired = provider.update(owned.subject, live.outs, owned.props).outs
    versions, latest, level = owned.snapshot()
    assert (versions, level) == ([1], "BACKWARD")
    assert latest is not None and latest.id == created["schema_id"] == repaired["schema_id"] and repaired["version"] == 1
    assert owned.client.versions(owned.subject, include_deleted=True) == [1], "the drifted version is deleted permanently"
    assert provider.diff(owned.subject, provider.read(owned.subject, repaired).outs, owned.props).changes is False


def test_a_declared_schema_held_as_an_older_version_passes_check_and_is_made_latest(
    provider: SchemaSubjectProvider, owned: OwnedSubject
) -> None:
    created = provider.create(owned.props).outs
    owned.client.set_compatibility(owned.subject, "NONE")
    owned.client.register(owned.subject, ID_AS_STRING)
    owned.client.set_compatibility(owned.subject, "BACKWARD")
    # V1 is not BACKWARD compatible with the drifted latest, but the subject holds it: no registration needed.
    assert provider.check({}, owned.props).failures == []
    live = provider.read(owned.subject, created).outs
    assert live["version"] == 2
    provider.update(owned.subject, live, owned.props)
    versions, latest, _ = owned.snapshot()
    assert versions == [1] and latest is not None and latest.id == created["schema_id"]


def test_read_reports_a_subject_deleted_behind_pulumis_back_as_gone(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    created = provider.create(owned.props).outs
    owned.client.delete_subject(owned.subject)
    assert provider.read(owned.subject, created).id is None


def test_delete_of_a_subject_that_is_gone_succeeds(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    """A delete retried after the first one went through (Pulumi interrupted before it saved state)."""
    created = provider.create(owned.props).outs
    assert owned.subject in owned.client.subjects()
    provider.delete(owned.subject, created)
    assert owned.subject not in owned.client.subjects(include_deleted=True)
    provider.delete(owned.subject, created)
    assert owned.subject not in owned.client.subjects(include_deleted=True)
    assert provider.read(owned.subject, created).id is None


def test_delete_finishes_a_subject_only_soft_deleted(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    created = provider.create(owned.props).outs
    assert owned.client.soft_delete_subject(owned.subject) == [1]
    assert owned.subject in owned.client.subjects(include_deleted=True) and owned.subject not in owned.client.subjects()
    provider.delete(owned.subject, created)
    assert owned.subject not in owned.client.subjects(include_deleted=True)


def test_delete_removes_the_subject_soft_and_permanently(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    created = provider.create({**owned.props, "compatibility": "FULL"}).outs
    provider.update(owned.subject, created, {**owned.props, "schema": V2, "compatibility": "FULL"})
    assert owned.client.versions(owned.subject) == [1, 2]
    provider.delete(owned.subject, created)
    assert owned.subject not in owned.client.subjects(include_deleted=True)
    assert owned.client.latest(owned.subject) is None
    provider.delete(owned.subject, created)

    # Permanently gone: a new subject of the same name starts again from version 1, under the level it declares.
    again = provider.create(owned.props).outs
    assert again["version"] == 1 and owned.snapshot()[0] == [1] and owned.snapshot()[2] == "BACKWARD"


def test_a_registry_that_does_not_answer_fails_create_naming_it_and_its_log(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    url = f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7"
    props = {**owned.props, "registry_url": url, "registry_log": "/var/log/schema-registry.log"}
    with pytest.raises(SchemaRegistryUnavailableError, match=rf"Schema Registry at {url} \(log: /var/log/schema-registry.log\) did not answer"):
        provider.create(props)
    assert provider.check({}, props).failures == [], "check defers to create while the registry is not up yet"


def test_read_keeps_the_recorded_state_while_the_registry_cannot_answer(provider: SchemaSubjectProvider, owned: OwnedSubject) -> None:
    props = {**owned.props, "registry_url": f"http://127.0.0.1:{closed_port()}/apis/ccompat/v7", "schema_id": 7, "version": 1}
    result = provider.read(owned.subject, props)
    assert result.id == owned.subject and result.outs == props
