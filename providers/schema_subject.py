"""`SchemaSubject`: a Schema Registry subject as a Pulumi resource: its compatibility level and, as its
latest version, one Avro schema. Spoken to through the Confluent-compatible API (`registry_url` is
its base, `…/apis/ccompat/v7`); the registry's quirks are listed in `providers.schema_registry_client`.

- check: the level is one of `COMPATIBILITY_LEVELS` and the schema is Avro (JSON that fastavro and
  the reference `avro` parser both accept: together they refuse what the registry's Java parser
  refuses, which it reports only as "Failed to discover artifact type"). When every input is known
  and the registry answers, a schema that is new to a subject existing under the declared level is
  checked by the registry itself, so `pulumi preview` and `up` fail with its reason before anything
  changes. The registry only judges under its live level: when the declared one differs (relaxing
  a level and changing the schema in one `up`, say) check leaves the verdict to the registration in
  create/update, which is made under the declared level. A registry that does not answer (not up
  yet on a first `up`) defers the same way;
- create: on an existing subject, sets the level first and then makes the schema its latest
  version; on a new one registers first (a first version has nothing to be compatible with) and
  then sets the level. A schema the subject already holds as its latest (compared canonically: the
  registry dedups on the exact text only) is adopted, with no new version. A registration the
  registry rejects puts the level back as it was, so nothing is left half-changed;
- read: the live level and latest version (`pulumi refresh` finds a level or a schema changed
  behind Pulumi's back); a subject without versions (deleted, soft or permanently) reads as gone; a
  registry that cannot answer tells nothing, so the recorded state is kept;
- diff: side-effect free; a change when the declared schema (canonically) or level differs from the
  (refreshed) outputs; a new `subject` or `registry_url` is a new subject, so a replacement;
- update: as create. A declared schema the subject holds as an older version (someone registered a
  newer one behind Pulumi's back) is made latest again by deleting the newer versions, soft then
  permanently: registering it again would not do, since the registry answers a schema it holds with
  its existing id and adds no version, and consumers resolving "latest" would keep the drifted one.
  The permanent delete also removes those versions' content, so records written with their ids can
  no longer be decoded: this is a test stack's repair, where the program's schema is the truth;
- delete: soft, then permanent delete of the subject (so a new one starts at version 1); already
  gone is success.

The natural id is the subject. Every method is safe to retry. Nothing secret is involved, and
nothing is kept on the provider object (which is pickled into state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

import avro.errors
import avro.schema
import fastavro
import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from providers.base import DeclaredProvider, DeclaredResource, Input, ResourceSchema
from providers.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    SubjectNotFoundError,
    TransientError,
)
from providers.preview import is_known
from providers.schema_registry_client import (
    COMPATIBILITY_LEVELS,
    RegisteredSchema,
    SchemaRegistryClient,
    canonical,
    is_transitive,
    same_schema,
)

DEFAULT_COMPATIBILITY = "BACKWARD"
"""Confluent's default level, and what a Debezium-fed subject wants: new readers read old records."""
SCHEMA = ResourceSchema(
    id_key="subject",
    inputs=(
        Input("subject"),
        Input("registry_url"),
        Input("schema"),
        Input("compatibility", default=DEFAULT_COMPATIBILITY),
        # Named in error messages only.
        Input("registry_log", diffed=False),
    ),
    outputs=("schema_id", "version", "latest_schema"),
)
REPLACING_KEYS = ("subject", "registry_url")


def avro_problem(schema: Any) -> str | None:
    """Why `schema` is not an Avro schema's JSON text, or None when it is."""
    if not isinstance(schema, str):
        return f"the schema must be JSON text, not {type(schema).__name__}"
    try:
        parsed = json.loads(schema)
    except ValueError as error:
        return f"the schema is not JSON: {error}"
    if not isinstance(parsed, (dict, list, str)):
        return "the schema must be a JSON object (a named or complex type), array (a union) or string (a type name)"
    try:
        # fastavro checks defaults against their types; the reference parser checks names and
        # duplicate fields, which fastavro lets through and the registry refuses.
        fastavro.parse_schema(parsed)
        avro.schema.parse(schema)
    except (avro.errors.AvroException, fastavro.schema.SchemaParseException, ValueError, TypeError, KeyError) as error:
        return f"the schema is not valid Avro: {type(error).__name__}: {error}"
    return None


def comparable(props: Mapping[str, Any]) -> dict[str, Any]:
    """`props` with the schema in canonical form (left as it is when unknown or not JSON), for diff."""
    schema = props.get("schema")
    if isinstance(schema, str) and is_known(schema):
        try:
            return {**props, "schema": canonical(schema)}
        except ValueError:
            pass
    return dict(props)


def _client(props: Mapping[str, Any]) -> SchemaRegistryClient:
    return SchemaRegistryClient(props["registry_url"], log_hint=props.get("registry_log", ""))


def _outputs(props: Mapping[str, Any], latest: RegisteredSchema, level: str) -> dict[str, Any]:
    """The outputs: the inputs with the live level and latest schema, in the same shape from create, update and read.

    The declared text is kept when it says the same as the registered one, so a reformatting alone
    never reads as drift. A latest version that is not Avro (registered behind Pulumi's back) is
    recorded as it is.
    """
    declared = props.get("schema")
    schema = declared if isinstance(declared, str) and same_schema(declared, latest.schema) else latest.schema
    return {
        **props,
        "schema": schema,
        "compatibility": level,
        "schema_id": latest.id,
        "version": latest.version,
        "latest_schema": canonical(latest.schema) if avro_problem(latest.schema) is None else latest.schema,
    }


def _make_latest(client: SchemaRegistryClient, subject: str, schema: str, latest: RegisteredSchema | None) -> RegisteredSchema:
    """Adopts, restores (deleting newer versions) or registers `schema` as the subject's latest version (now `latest`)."""
    if latest is not None and same_schema(latest.schema, schema):
        return latest
    held = client.lookup(subject, schema) if latest is not None else None
    if held is not None:
        # Soft-deleted ones too: a repair interrupted between its soft and permanent delete finishes.
        newer = [number for number in client.versions(subject, include_deleted=True) if number > held.version]
        for number in reversed(newer):
            client.delete_version_if_present(subject, number)
        return held
    client.register(subject, schema)
    registered = client.lookup(subject, schema)
    if registered is None:
        raise SubjectNotFoundError(f"subject {subject}: the schema just registered is not found under it on {client.where()}")
    return registered


class SchemaSubjectProvider(DeclaredProvider):
    schema = SCHEMA

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        subject = news.get("subject")
        level = SCHEMA.value(news, "compatibility")
        failures = []
        if is_known(subject) and (not isinstance(subject, str) or not subject):
            failures.append(CheckFailure("subject", "a subject must be a non-empty name"))
        if is_known(level) and level not in COMPATIBILITY_LEVELS:
            failures.append(
                CheckFailure("compatibility", f"subject {subject}: {level!r} is not one of {', '.join(COMPATIBILITY_LEVELS)}")
            )
        schema = news.get("schema")
        problem = avro_problem(schema) if is_known(schema) else None
        if problem:
            failures.append(CheckFailure("schema", f"subject {subject}: {problem}"))
        if failures or not is_known([subject, news.get("registry_url"), schema, level]):
            return CheckResult(news, failures)
        failure = self._registry_check(news, level)
        return CheckResult(news, [failure] if failure else [])

    @staticmethod
    def _registry_check(props: Mapping[str, Any], level: str) -> CheckFailure | None:
        """The registry's verdict on a schema new to the subject, when it can give one under `level`."""
        client = _client(props)
        subject, schema = props["subject"], props["schema"]
        try:
            latest = client.latest(subject)
            if latest is None or same_schema(latest.schema, schema):
                return None
            if client.get_compatibility(subject) != level:
                return None
            compatible, reason = client.check_compatibility(subject, schema, transitive=is_transitive(level))
            if compatible or client.lookup(subject, schema) is not None:
                # A schema the subject already holds is made latest again without a registration.
                return None
        except SubjectNotFoundError:
            return None
        except InvalidSchemaError as invalid:
            return CheckFailure("schema", str(invalid))
        except TransientError:
            return None
        return CheckFailure(
            "schema",
            f"subject {subject}: the schema is not {level} compatible with its registered versions on"
            f" {client.where()}: {reason or 'the registry gave no reason'}",
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        olds, news = comparable(olds), comparable(news)
        result = SCHEMA.diff(olds, news)
        # Not replaced on an unknown URL (the registry being updated at preview): `up` diffs again with the value.
        moved = [
            key
            for key in REPLACING_KEYS
            if key != SCHEMA.id_key and is_known(news.get(key)) and key in SCHEMA.changed(olds, news)
        ]
        return DiffResult(
            changes=result.changes,
            replaces=[*result.replaces, *moved],
            stables=result.stables,
            delete_before_replace=result.delete_before_replace,
        )

    def _apply(self, props: dict[str, Any]) -> dict[str, Any]:
        """Sets the level and makes the schema latest (see the module docstring); the outputs."""
        client = _client(props)
        subject, schema = props["subject"], props["schema"]
        level = SCHEMA.value(props, "compatibility")
        latest = client.latest(subject)
        if latest is None:
            latest = _make_latest(client, subject, schema, None)
            client.set_compatibility(subject, level)
            return _outputs(props, latest, level)
        previous = client.get_compatibility(subject)
        client.set_compatibility(subject, level)
        try:
            latest = _make_latest(client, subject, schema, latest)
        except (IncompatibleSchemaError, InvalidSchemaError):
            if previous != level:
                client.set_compatibility(subject, previous)
            raise
        return _outputs(props, latest, level)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["subject"], outs=self._apply(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        client = _client(props)
        try:
            latest = client.latest(id_)
            if latest is None:
                return ReadResult(None, {})
            level = client.get_compatibility(id_)
        except SubjectNotFoundError:
            # Deleted between the two calls.
            return ReadResult(None, {})
        except TransientError:
            return ReadResult(id_, props)
        return ReadResult(id_, _outputs({**props, "subject": id_}, latest, level))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        _client(props).delete_subject(id_)


@dataclass(frozen=True)
class SchemaSubjectArgs:
    subject: str
    """The subject's name: the natural id, unique on the registry (`<topic>-value` for a topic's values)."""
    registry_url: pulumi.Input[str]
    """The registry's Confluent API base, `…/apis/ccompat/v7`."""
    schema: pulumi.Input[str]
    """The Avro schema's JSON text, to be the subject's latest version."""
    compatibility: str = DEFAULT_COMPATIBILITY
    """The subject's level: one of BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE."""
    registry_log: pulumi.Input[str] = ""
    """The registry's log path, named in error messages."""


class SchemaSubject(DeclaredResource, module="cdcstack", name="SchemaSubject"):
    """A subject on a schema registry; see the module docstring."""

    schema_id: pulumi.Output[int]
    """The id records written with the latest schema carry."""
    version: pulumi.Output[int]
    """The latest version's number."""
    latest_schema: pulumi.Output[str]
    """The latest schema, canonical (sorted keys, no whitespace)."""
    compatibility: pulumi.Output[str]

    def __init__(self, name: str, args: SchemaSubjectArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(SchemaSubjectProvider(), name, args, opts)
