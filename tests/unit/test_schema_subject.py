"""`SchemaSubjectProvider`'s own logic: canonical schema comparison, check's validation of levels and
schemas, and diff. Pure: no registry, no HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from providers import schema_subject
from providers.preview import UNKNOWN
from providers.schema_registry_client import COMPATIBILITY_LEVELS, canonical, is_transitive, same_schema
from providers.schema_subject import SchemaSubject, SchemaSubjectArgs, SchemaSubjectProvider, avro_problem, comparable
from tests.support.pulumi_mocks import build

ORDER = {"type": "record", "name": "Order", "namespace": "cdcstack", "fields": [{"name": "id", "type": "int"}]}
ORDER_TEXT = json.dumps(ORDER)
ORDER_REFORMATTED = '{\n  "fields": [ { "type": "int", "name": "id" } ],\n  "namespace": "cdcstack",\n  "name": "Order", "type": "record"\n}'
ORDER_WITH_NOTE = json.dumps({**ORDER, "fields": [*ORDER["fields"], {"name": "note", "type": "string", "default": ""}]})
INPUTS: dict[str, Any] = {
    "subject": "orders-value",
    "registry_url": "http://127.0.0.1:28081/apis/ccompat/v7",
    "schema": ORDER_TEXT,
    "compatibility": "BACKWARD",
    "registry_log": "/state/services/schema-registry/service.log",
}


def recorded(**changes: Any) -> dict[str, Any]:
    """Outputs as create or read records them."""
    return {**INPUTS, "schema_id": 7, "version": 1, "latest_schema": canonical(ORDER_TEXT), **changes}


@pytest.fixture
def provider() -> SchemaSubjectProvider:
    return SchemaSubjectProvider()


@pytest.fixture
def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails a test whose code would talk to a registry."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("check talked to the registry")

    monkeypatch.setattr(schema_subject, "SchemaRegistryClient", refuse)


def test_a_reformatted_schema_is_the_same_schema() -> None:
    assert canonical(ORDER_REFORMATTED) == canonical(ORDER_TEXT) == (
        '{"fields":[{"name":"id","type":"int"}],"name":"Order","namespace":"cdcstack","type":"record"}'
    )
    assert same_schema(ORDER_REFORMATTED, ORDER_TEXT)


@pytest.mark.parametrize(
    "other",
    [
        ORDER_WITH_NOTE,
        # Field order is part of a record's schema (its binary encoding).
        json.dumps({**ORDER, "fields": [{"name": "b", "type": "int"}, {"name": "a", "type": "int"}]}),
        # A default is a change, though Avro's Parsing Canonical Form would drop it.
        json.dumps({**ORDER, "fields": [{"name": "id", "type": "int", "default": 0}]}),
    ],
)
def test_a_schema_with_other_fields_order_or_defaults_is_another_schema(other: str) -> None:
    assert not same_schema(ORDER_TEXT, other)


def test_text_that_is_not_json_compares_as_text() -> None:
    assert same_schema("not json", "not json") and not same_schema("not json", ORDER_TEXT)
    with pytest.raises(ValueError):
        canonical("not json")


def test_transitive_levels_check_against_every_version() -> None:
    assert [level for level in COMPATIBILITY_LEVELS if is_transitive(level)] == [
        "BACKWARD_TRANSITIVE",
        "FORWARD_TRANSITIVE",
        "FULL_TRANSITIVE",
    ]


@pytest.mark.parametrize("level", ["backward", "STRICT", "FULL_TRANSITIV", 5])
def test_check_refuses_a_level_that_is_not_one_of_the_registrys(provider: SchemaSubjectProvider, no_registry: None, level: Any) -> None:
    [failure] = provider.check({}, {**INPUTS, "compatibility": level}).failures
    assert failure.property == "compatibility" and "is not one of BACKWARD, BACKWARD_TRANSITIVE" in failure.reason
    assert failure.reason.startswith("subject orders-value: ")


def test_a_missing_level_means_backward(provider: SchemaSubjectProvider, no_registry: None) -> None:
    inputs = {**INPUTS, "compatibility": None, "registry_url": UNKNOWN}
    assert provider.check({}, inputs).failures == []
    assert provider.diff("orders-value", recorded(), {**INPUTS, "compatibility": None}).changes is False


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ("{not json", "the schema is not JSON: "),
        ("5", "the schema must be a JSON object"),
        ('{"type": "recordx"}', "UnknownType: "),
        ('{"type": "record", "name": "Order"}', "non-empty fields"),
        ('{"type": "record", "name": "1order", "fields": []}', "1order is not a valid Avro name"),
        ('{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "int"}, {"name": "id", "type": "long"}]}', "Field name id already in use"),
        ('{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "int", "default": "one"}]}', "Default value <one> must match schema type: int"),
        ('{"type": "record", "name": "Order", "fields": [{"name": "id", "type": "Customer"}]}', "Customer"),
        ('{"type": "enum", "name": "Colour", "symbols": ["RED", "RED"]}', "symbols in an enum must be unique"),
    ],
)
def test_check_refuses_a_schema_that_is_not_avro(provider: SchemaSubjectProvider, no_registry: None, schema: str, problem: str) -> None:
    [failure] = provider.check({}, {**INPUTS, "schema": schema}).failures
    assert failure.property == "schema" and failure.reason.startswith("subject orders-value: the schema ")
    assert problem in failure.reason, failure.reason


@pytest.mark.parametrize("schema", ['"string"', '["null", "string"]', '{"type": "map", "values": "long"}', ORDER_WITH_NOTE])
def test_valid_avro_passes(schema: str) -> None:
    assert avro_problem(schema) is None


def test_every_problem_is_reported_at_once(provider: SchemaSubjectProvider, no_registry: None) -> None:
    failures = provider.check({}, {**INPUTS, "subject": "", "schema": "{", "compatibility": "SOMETIMES"}).failures
    assert [failure.property for failure in failures] == ["subject", "compatibility", "schema"]


@pytest.mark.parametrize("unknown", ["registry_url", "schema", "subject", "compatibility"])
def test_check_at_preview_with_an_unknown_input_asks_no_registry(
    provider: SchemaSubjectProvider, no_registry: None, unknown: str
) -> None:
    inputs = {**INPUTS, unknown: UNKNOWN}
    result = provider.check({}, inputs)
    assert result.failures == [] and result.inputs == inputs


def test_the_declared_schema_and_level_are_no_change(provider: SchemaSubjectProvider) -> None:
    result = provider.diff("orders-value", recorded(), INPUTS)
    assert result.changes is False and result.replaces == [] and result.stables == ["subject"]


def test_a_reformatted_schema_is_no_change(provider: SchemaSubjectProvider) -> None:
    assert provider.diff("orders-value", recorded(), {**INPUTS, "schema": ORDER_REFORMATTED}).changes is False


def test_a_new_schema_or_level_is_a_change_in_place(provider: SchemaSubjectProvider) -> None:
    for news in ({**INPUTS, "schema": ORDER_WITH_NOTE}, {**INPUTS, "compatibility": "FULL"}):
        result = provider.diff("orders-value", recorded(), news)
        assert result.changes is True and result.replaces == []


def test_drift_found_by_refresh_is_a_change(provider: SchemaSubjectProvider) -> None:
    # As read records a newer version or another level registered behind Pulumi's back.
    drifted_schema = recorded(schema=ORDER_WITH_NOTE, version=2, schema_id=8, latest_schema=canonical(ORDER_WITH_NOTE))
    assert provider.diff("orders-value", drifted_schema, INPUTS).changes is True
    assert provider.diff("orders-value", recorded(compatibility="NONE"), INPUTS).changes is True


def test_the_log_path_alone_is_no_change(provider: SchemaSubjectProvider) -> None:
    assert provider.diff("orders-value", recorded(), {**INPUTS, "registry_log": "/elsewhere.log"}).changes is False


@pytest.mark.parametrize(("key", "value"), [("subject", "orders-v2-value"), ("registry_url", "http://127.0.0.1:28082/apis/ccompat/v7")])
def test_a_new_subject_or_registry_is_a_replacement_old_one_first(provider: SchemaSubjectProvider, key: str, value: str) -> None:
    result = provider.diff("orders-value", recorded(), {**INPUTS, key: value})
    assert result.changes is True and result.replaces == [key] and result.delete_before_replace is True


def test_a_registry_url_unknown_at_preview_is_a_change_but_no_replacement(provider: SchemaSubjectProvider) -> None:
    result = provider.diff("orders-value", recorded(), {**INPUTS, "registry_url": UNKNOWN})
    assert result.changes is True and result.replaces == []


def test_diff_does_not_touch_its_arguments(provider: SchemaSubjectProvider) -> None:
    olds, news = recorded(), {**INPUTS, "schema": ORDER_REFORMATTED}
    before = repr(olds), repr(news)
    provider.diff("orders-value", olds, news)
    assert (repr(olds), repr(news)) == before
    assert comparable(news)["schema"] == canonical(ORDER_TEXT) and news["schema"] == ORDER_REFORMATTED


def test_the_provider_keeps_nothing_of_its_own_in_state() -> None:
    pickled = base64.b64decode(serialize_provider(SchemaSubjectProvider()))
    assert b"providers.schema_subject" in pickled and b"SchemaSubjectProvider" in pickled
    assert len(pickled) < 120


def test_a_subject_registers_its_declared_props() -> None:
    graph = build(
        lambda opts: SchemaSubject(
            "orders-value",
            SchemaSubjectArgs(subject="orders-value", registry_url=INPUTS["registry_url"], schema=ORDER_TEXT),
            opts=opts,
        )
    )
    registered = graph.inputs_of(":SchemaSubject")
    assert {key: registered.get(key) for key in schema_subject.SCHEMA.input_keys} == {
        **INPUTS,
        "registry_log": "",
    }
    assert set(schema_subject.SCHEMA.outputs) == {"schema_id", "version", "latest_schema"}
