"""`providers.base`: the one declaration a provider's diff, its resource's props and its secrets come
from; and the state shape of the four providers built on it, pinned (a change here restarts services)."""

from __future__ import annotations

import base64
from typing import Any

import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from providers import debezium_connector, kafka_topic, local_service, s3_bucket, schema_subject, sql_seed
from providers.base import DeclaredProvider, Input, ResourceSchema, as_input, is_empty
from providers.debezium_connector import DebeziumConnectorProvider
from providers.local_service import LocalService, LocalServiceArgs, LocalServiceProvider
from providers.kafka_topic import KafkaTopicProvider
from providers.s3_bucket import S3BucketProvider
from providers.schema_subject import SchemaSubjectProvider
from providers.sql_seed import SqlSeedProvider
from tests.support.pulumi_mocks import build, settle

SCHEMA = ResourceSchema(
    id_key="name",
    inputs=(
        Input("name"),
        Input("url"),
        Input("mode", default="fast"),
        Input("password", secret=True),
        Input("log_hint", diffed=False),
    ),
    outputs=("state",),
)
RECORDED = {"name": "orders", "url": "http://127.0.0.1:1", "mode": "fast", "password": "p", "log_hint": "/log", "state": "RUNNING"}
NEW_INPUTS = {key: value for key, value in RECORDED.items() if key != "state"}


@pytest.mark.parametrize("value", [None, "", [], {}, ()])
def test_none_and_empty_strings_and_collections_are_empty(value: Any) -> None:
    assert is_empty(value)


@pytest.mark.parametrize("value", [0, 0.0, False, "x", [0], {"a": None}])
def test_zero_false_and_anything_with_content_are_values(value: Any) -> None:
    assert not is_empty(value)


def test_the_same_inputs_are_no_change_and_the_id_is_stable() -> None:
    result = SCHEMA.diff(RECORDED, NEW_INPUTS)
    assert result.changes is False and result.replaces == [] and result.stables == ["name"]


def test_a_key_older_state_lacks_means_its_default() -> None:
    older = {key: value for key, value in RECORDED.items() if key != "mode"}
    assert SCHEMA.diff(older, NEW_INPUTS).changes is False
    assert SCHEMA.diff(older, {**NEW_INPUTS, "mode": "slow"}).changes is True


@pytest.mark.parametrize("empty", [None, "", {}, []])
def test_missing_and_empty_are_the_same_input(empty: Any) -> None:
    without_url = {key: value for key, value in RECORDED.items() if key != "url"}
    assert SCHEMA.diff(without_url, {**NEW_INPUTS, "url": empty}).changes is False
    assert SCHEMA.changed({**RECORDED, "url": empty}, {**NEW_INPUTS, "url": "http://other"}) == ["url"]


def test_an_input_that_is_not_diffed_changes_nothing() -> None:
    assert SCHEMA.diff(RECORDED, {**NEW_INPUTS, "log_hint": "/elsewhere"}).changes is False


def test_only_a_new_id_is_a_replacement_and_the_old_object_goes_first() -> None:
    in_place = SCHEMA.diff(RECORDED, {**NEW_INPUTS, "url": "http://127.0.0.1:2"})
    assert in_place.changes is True and in_place.replaces == []
    renamed = SCHEMA.diff(RECORDED, {**NEW_INPUTS, "name": "orders-v2", "url": "http://127.0.0.1:2"})
    assert renamed.replaces == ["name"] and renamed.stables == [] and renamed.delete_before_replace is True


def test_without_update_every_change_is_a_replacement() -> None:
    schema = ResourceSchema(id_key="seed", inputs=(Input("seed"), Input("instance")), replace_on_change=True, delete_before_replace=False)
    result = schema.diff({"seed": "s", "instance": "1"}, {"seed": "s", "instance": "2"})
    assert result.changes is True and result.replaces == ["instance"] and result.delete_before_replace is False


def test_a_change_the_inputs_do_not_show_is_still_a_change_in_place() -> None:
    result = SCHEMA.diff(RECORDED, NEW_INPUTS, also_changed=True)
    assert result.changes is True and result.replaces == []


def test_diff_does_not_touch_its_arguments() -> None:
    olds, news = dict(RECORDED), {**NEW_INPUTS, "mode": ""}
    SCHEMA.diff(olds, news)
    assert olds == RECORDED and news == {**NEW_INPUTS, "mode": ""}


def test_a_declared_provider_diffs_with_its_class_schema() -> None:
    class Provider(DeclaredProvider):
        schema = SCHEMA

    assert Provider().diff("orders", RECORDED, {**NEW_INPUTS, "name": "x"}).replaces == ["name"]


def test_props_wrap_the_secret_inputs_and_declare_the_outputs() -> None:
    props = SCHEMA.resource_props(NEW_INPUTS)
    assert list(props) == [*NEW_INPUTS, "state"] and props["state"] is None
    assert isinstance(props["password"], pulumi.Output) and props["name"] == "orders"
    assert SCHEMA.resource_options(pulumi.ResourceOptions(protect=True)).additional_secret_outputs == ["password"]


def test_tuples_become_lists_as_the_engine_records_them_and_outputs_stay_outputs() -> None:
    argv = pulumi.Output.from_input(["/bin/true"])
    assert as_input(((1, 2), ("a",))) == [[1, 2], ["a"]] and as_input(argv) is argv and as_input({"k": (1,)}) == {"k": (1,)}


def test_props_must_be_exactly_the_declared_inputs() -> None:
    with pytest.raises(ValueError, match=r"missing \['log_hint'\], undeclared \['extra'\]"):
        SCHEMA.resource_props({**{k: v for k, v in NEW_INPUTS.items() if k != "log_hint"}, "extra": 1})


@pytest.mark.parametrize(
    ("inputs", "message"),
    [((Input("url"),), "the id key 'name' is not one of the inputs"), ((Input("name"), Input("name")), "keys declared twice")],
)
def test_a_schema_needs_its_id_among_its_inputs_and_each_key_once(inputs: tuple[Input, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ResourceSchema(id_key="name", inputs=inputs)


# What existing stacks already record. Changing a key, a secret or an output here shows a diff on
# `pulumi up` for every such resource (for LocalService: a restart of every service).
STATE_SHAPES = {
    local_service.SCHEMA: (
        ("service", "argv", "env", "workdir", "host", "ports", "health", "init", "files", "secret_files", "secret_env",
         "run_as", "start_timeout", "stop_timeout", "restart"),
        ("health", "secret_files", "secret_env"),
        ("pid", "restarts", "log_path", "data_dir", "instance"),
    ),
    # source_address came later: undiffed with a default, so a state without it shows no diff.
    debezium_connector.SCHEMA: (("name", "connect_url", "config", "worker_log", "source_address", "running_timeout"), ("config",), ("state", "task_count", "tasks", "problem")),
    sql_seed.SCHEMA: (("seed", "engine", "connection", "statements", "instance"), ("connection",), ("statement_count",)),
    s3_bucket.SCHEMA: (("bucket", "endpoint", "region", "credentials"), ("credentials",), ()),
    kafka_topic.SCHEMA: (("topic", "bootstrap_servers", "partitions"), (), ()),
    schema_subject.SCHEMA: (("subject", "registry_url", "schema", "compatibility", "registry_log"), (), ("schema_id", "version", "latest_schema")),
}


@pytest.mark.parametrize("schema", list(STATE_SHAPES), ids=lambda schema: schema.id_key)
def test_each_provider_keeps_the_state_shape_existing_stacks_record(schema: ResourceSchema) -> None:
    inputs, secrets, outputs = STATE_SHAPES[schema]
    assert (schema.input_keys, schema.secret_keys, schema.outputs) == (inputs, secrets, outputs)


@pytest.mark.parametrize("provider", [LocalServiceProvider, DebeziumConnectorProvider, SqlSeedProvider, S3BucketProvider, SchemaSubjectProvider, KafkaTopicProvider])
def test_a_provider_pickles_by_reference_so_its_state_entry_does_not_change_with_its_code(provider: type[DeclaredProvider]) -> None:
    pickled = base64.b64decode(serialize_provider(provider()))
    assert provider.__module__.encode() in pickled and provider.__name__.encode() in pickled
    assert len(pickled) < 120, "the provider object carries state (or code) of its own: it would be pickled into every resource"


def test_a_local_service_registers_its_declared_props_with_its_secrets_kept_secret() -> None:
    graph = build(
        lambda opts: LocalService(
            "web",
            LocalServiceArgs(service="web", argv=["/bin/true"], workdir="/w", ports=[1], health={"kind": "tcp", "port": 1}, secret_env={"P": "s"}),
            opts=opts,
        )
    )
    registered = graph.inputs_of(":LocalService")
    assert set(registered) - {"__provider"} <= set(local_service.SCHEMA.input_keys) | set(local_service.SCHEMA.outputs)
    assert registered["restart"] == "always" and registered["ports"] == [1]
    assert settle(graph.component.health) == ({"kind": "tcp", "port": 1}, True)
