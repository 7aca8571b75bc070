"""Pulumi mocks for the docker runtime's (and the process runtime's) resource graph.

`build` runs a component under mocks and records every child it registers: type, name, the
inputs the engine saw, and the options (parent, depends_on) the component set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

T = TypeVar("T", bound=pulumi.Resource)


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(args)
        outputs = dict(args.inputs)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["image_id"] = f"sha256:{args.name}"
        if args.typ.endswith(":LocalService"):
            outputs.update(pid=4242, log_path=f"{args.inputs['workdir']}/service.log", instance="4242@0")
        if args.typ.endswith(":S3Bucket"):
            # Buckets are known by their natural id, the bucket name.
            return args.inputs["bucket"], outputs
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


@dataclass
class Child:
    type_: str
    name: str
    props: dict[str, Any]
    opts: pulumi.ResourceOptions


@dataclass
class Graph(Generic[T]):
    component: T
    mocks: RecordingMocks
    children: list[Child] = field(default_factory=list)

    def inputs_of(self, type_suffix: str) -> dict[str, Any]:
        """The engine-side (resolved) inputs of the one registered resource whose type ends with type_suffix."""
        matches = [args.inputs for args in self.mocks.registered if args.typ.endswith(type_suffix)]
        assert len(matches) == 1, f"expected one {type_suffix}, got {len(matches)}"
        return matches[0]

    def child(self, type_suffix: str) -> Child:
        matches = [child for child in self.children if child.type_.endswith(type_suffix)]
        assert len(matches) == 1, f"expected one child {type_suffix}, got {[c.type_ for c in self.children]}"
        return matches[0]

    def types(self) -> list[str]:
        return sorted(args.typ for args in self.mocks.registered)


def build(factory: Callable[[pulumi.ResourceOptions], T]) -> Graph[T]:
    """Runs `factory` (which builds one component with the options given) under fresh mocks."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="cdcstack", stack="unit", preview=False)
    children: list[Child] = []

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        # The transformation also sees the top-level components themselves; only children count.
        if args.opts.parent is not None:
            children.append(Child(args.type_, args.name, dict(args.props), args.opts))

    holder: dict[str, T] = {}

    def program() -> None:
        holder["component"] = factory(pulumi.ResourceOptions(transformations=[record]))

    _sync_await(run_pulumi_func(program))
    return Graph(holder["component"], mocks, children)


def settle(value: Any) -> tuple[Any, bool]:
    """(resolved value, is_secret) of an Output or plain value, once mocks have run."""
    output = pulumi.Output.from_input(value)
    resolved, secret = _sync_await(asyncio.gather(output.future(), output.is_secret()))
    return resolved, secret
