"""What a cdcstack dynamic provider declares once: its inputs, its natural id, its secrets.

Each provider used to copy its own diff (with its own idea of a key that older state lacks) and list
its secrets twice, as `Output.secret` inputs and as `additional_secret_outputs`. Here a provider
declares a :class:`ResourceSchema`, and from that one declaration come:

- `diff`: a change when a diffed input differs between the recorded state and the new inputs, where
  a key missing from either, or empty (None, "", [], {}), means the input's declared `default`: so
  `pulumi up` on state written before an input existed shows no change, and restarts nothing;
- `replaces`: only the natural id key (or, for a resource that has no update, every changed input),
  and `stables` for the id when it did not change;
- the props a resource registers, taken from its frozen `…Args` dataclass (whose fields must be
  exactly the declared inputs; tuples become lists), secret inputs wrapped in `Output.secret`,
  declared outputs as None; and the `additional_secret_outputs` of its options.

A schema holds no secret and lives on the provider class, not the instance, so the provider Pulumi
pickles into state stays what it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pulumi
from pulumi.dynamic import DiffResult, ResourceProvider


def is_empty(value: Any) -> bool:
    """None, or an empty string or collection: what a key older state lacks is taken to be.

    0 and False are values, not empty: a timeout of 0 is not "no timeout given".
    """
    if value is None:
        return True
    if isinstance(value, (str, Mapping, Sequence)):
        return len(value) == 0
    return False


@dataclass(frozen=True)
class Input:
    """One input of a dynamic resource."""

    key: str
    """The property name, in the inputs and (copied) in the outputs."""
    default: Any = None
    """What the input means when it is missing or empty; state without the key diffs as this value."""
    secret: bool = False
    """A Pulumi secret as an input and as an output (it carries a password, a DSN, credentials)."""
    diffed: bool = True
    """False for an input that only shapes how the provider talks about the object (a log path
    named in errors, a wait's timeout): changing it alone is no change to the managed object."""


@dataclass(frozen=True)
class ResourceSchema:
    """The one declaration a provider's diff and its resource's props are derived from."""

    id_key: str
    """The input holding the natural id (service name, connector name, bucket): a new value is a new object."""
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...] = ()
    """Outputs the resource declares up front (registered as None, filled in by create/read)."""
    replace_on_change: bool = False
    """Every change is a replacement: for a provider without `update` (a seed runs again)."""
    delete_before_replace: bool = True
    """Two objects with the same natural id cannot coexist, so the old one goes first."""

    def __post_init__(self) -> None:
        keys = [spec.key for spec in self.inputs]
        duplicated = sorted({key for key in keys if keys.count(key) > 1} | (set(keys) & set(self.outputs)))
        if duplicated:
            raise ValueError(f"keys declared twice: {duplicated}")
        if self.id_key not in keys:
            raise ValueError(f"the id key {self.id_key!r} is not one of the inputs {keys}")

    @property
    def input_keys(self) -> tuple[str, ...]:
        return tuple(spec.key for spec in self.inputs)

    @property
    def diffed_keys(self) -> tuple[str, ...]:
        return tuple(spec.key for spec in self.inputs if spec.diffed)

    @property
    def secret_keys(self) -> tuple[str, ...]:
        return tuple(spec.key for spec in self.inputs if spec.secret)

    def input(self, key: str) -> Input:
        for spec in self.inputs:
            if spec.key == key:
                return spec
        raise KeyError(f"no input {key!r}; the inputs are {list(self.input_keys)}")

    def value(self, props: Mapping[str, Any], key: str) -> Any:
        """The input's value in `props`, its declared default when missing or empty."""
        value = props.get(key)
        return self.input(key).default if is_empty(value) else value

    def changed(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        """The diffed inputs whose new value differs from the recorded (or refreshed) one, in declared order."""
        return [key for key in self.diffed_keys if self.value(olds, key) != self.value(news, key)]

    def diff(self, olds: Mapping[str, Any], news: Mapping[str, Any], also_changed: bool = False) -> DiffResult:
        """The engine's diff; `also_changed` is a change the inputs do not show (a FAILED task found by refresh)."""
        changed = self.changed(olds, news)
        id_changed = self.id_key in changed
        return DiffResult(
            changes=bool(changed) or also_changed,
            replaces=list(changed) if self.replace_on_change else [key for key in changed if key == self.id_key],
            stables=[] if id_changed else [self.id_key],
            delete_before_replace=self.delete_before_replace,
        )

    def resource_props(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """What a resource registers: every declared input (secret ones wrapped), every declared output as None.

        Every input must be given, even as its default: the props are what the state records.
        """
        missing = [key for key in self.input_keys if key not in values]
        unknown = [key for key in values if key not in self.input_keys]
        if missing or unknown:
            raise ValueError(f"inputs must be exactly the declared ones; missing {missing}, undeclared {unknown}")
        props = {spec.key: pulumi.Output.secret(values[spec.key]) if spec.secret else values[spec.key] for spec in self.inputs}
        return {**props, **{key: None for key in self.outputs}}

    def resource_options(self, opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
        """`opts` with the secret inputs also kept secret as outputs (the provider copies inputs to outputs)."""
        return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=list(self.secret_keys)))


def as_input(value: Any) -> Any:
    """Lists for tuples (and lists inside them), as the engine records a sequence; everything else as it is."""
    if isinstance(value, (list, tuple)):
        return [as_input(item) for item in value]
    return value


class DeclaredProvider(ResourceProvider):
    """A dynamic provider whose diff comes from its class's `schema`; side-effect free, as the engine needs."""

    schema: ClassVar[ResourceSchema]

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return self.schema.diff(olds, news)


class DeclaredResource(pulumi.dynamic.Resource):
    """A dynamic resource registered from its Args with its provider's schema. Subclasses still name
    their own type (`module="cdcstack", name=…`): the type is part of every URN already in state."""

    def __init__(self, provider: DeclaredProvider, name: str, args: Any, opts: pulumi.ResourceOptions | None = None) -> None:
        schema = provider.schema
        inputs = {field.name: as_input(getattr(args, field.name)) for field in dataclasses.fields(args)}
        super().__init__(provider, name, schema.resource_props(inputs), schema.resource_options(opts))
