"""Pulumi mocks for both runtimes' resource graphs (no service, no Docker daemon).

`build` runs a component under mocks and records every child it registers: type, name, the
inputs the engine saw, and the options (parent, depends_on) the component set. `run_program` does
the same for the whole of `__main__.py`, and `pinned_inputs` reduces such a run to what the engine
would diff, so a test can pin it.
"""

from __future__ import annotations

import asyncio
import runpy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

T = TypeVar("T")
U = TypeVar("U")


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.registered: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(args)
        outputs = dict(args.inputs)
        if args.typ.endswith(":LocalService"):
            outputs.update(pid=4242, log_path=f"{args.inputs['workdir']}/service.log", instance="4242@0")
        if args.typ.endswith(":DockerContainer"):
            outputs.update(
                container_id=f"{args.name}-id", instance=f"{args.name}-id@0", log_path=f"docker -H {args.inputs['engine']} logs {args.inputs['name']}"
            )
        # Resources with a natural id are known by it, as the providers create them.
        if args.typ.endswith(":S3Bucket"):
            return args.inputs["bucket"], outputs
        if args.typ.endswith(":DebeziumConnector"):
            return args.inputs["name"], outputs
        if args.typ.endswith(":KafkaTopic"):
            return args.inputs["topic"], outputs
        if args.typ.endswith((":DockerContainer", ":DockerNetwork", ":DockerVolume")):
            return args.inputs["name"], outputs
        if args.typ.endswith(":DockerImage"):
            return args.inputs["reference"], outputs
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

    def named(self, name: str) -> Child:
        """The child registered as `name` (e.g. "connect-process")."""
        matches = [child for child in self.children if child.name == name]
        assert len(matches) == 1, f"expected one child {name}, got {[c.name for c in self.children]}"
        return matches[0]

    def inputs_named(self, name: str) -> dict[str, Any]:
        """The engine-side (resolved) inputs of the resource registered as `name`."""
        matches = [args.inputs for args in self.mocks.registered if args.name == name]
        assert len(matches) == 1, f"expected one resource {name}, got {len(matches)}"
        return matches[0]

    def types(self) -> list[str]:
        return sorted(args.typ for args in self.mocks.registered)

    def subgraph(self, part: Callable[[T], U]) -> Graph[U]:
        """The graph of `part(self.component)` (a component of it): only the resources under that
        component, which is itself registered. Names are unique in a stack, and a parent registers
        before its children."""
        component = part(self.component)
        under = {component._name}  # type: ignore[attr-defined]
        children = []
        for child in self.children:
            if child.opts.parent is not None and child.opts.parent._name in under:
                under.add(child.name)
                children.append(child)
        mocks = RecordingMocks()
        mocks.registered = [args for args in self.mocks.registered if args.name in under]
        return Graph(component, mocks, children)


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


@dataclass
class ProgramRun:
    """What `__main__.py` registered and exported under mocks."""

    mocks: RecordingMocks
    resources: list[Child]
    """Every resource it registered (components too), in order."""
    exports: dict[str, Any]
    """Stack outputs, unresolved."""


def run_program(main: Path, config: Mapping[str, str], secrets: Mapping[str, str], stack: str = "unit") -> ProgramRun:
    """Runs the Pulumi program `main` under fresh mocks with `cdcstack:` config (set CDCSTACK_STATE_DIR first)."""
    mocks = RecordingMocks()
    resources: list[Child] = []
    exports: dict[str, Any] = {}

    def record(args: pulumi.ResourceTransformationArgs) -> None:
        resources.append(Child(args.type_, args.name, dict(args.props), args.opts))

    def program() -> None:
        pulumi.runtime.register_stack_transformation(record)
        runpy.run_path(str(main), run_name="__main__")

    pulumi.runtime.set_mocks(mocks, project="cdcstack", stack=stack, preview=False)
    pulumi.runtime.set_all_config(
        {f"cdcstack:{key}": value for key, value in {**config, **secrets}.items()},
        secret_keys=[f"cdcstack:{key}" for key in secrets],
    )
    real_export = pulumi.export
    pulumi.export = exports.__setitem__  # type: ignore[assignment]
    try:
        _sync_await(run_pulumi_func(program))
    finally:
        pulumi.export = real_export
        pulumi.runtime.set_all_config({})
    return ProgramRun(mocks, resources, exports)


def pinned_inputs(run: ProgramRun, places: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Every dynamic (cdcstack) resource of a run as the engine diffs it: type, parent, depends_on and
    each input resolved, marked when secret; machine paths replaced by the names in `places`
    (path -> placeholder) and executables by their file name, so the result is the same on any host."""
    ordered = sorted(places.items(), key=lambda item: -len(item[0]))

    def portable(value: Any) -> Any:
        if isinstance(value, str):
            for path, placeholder in ordered:
                value = value.replace(path, placeholder)
            return value
        if isinstance(value, Mapping):
            return {key: portable(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [portable(item) for item in value]
        return value

    def executable(command: list[Any]) -> list[Any]:
        head = command[0] if command else None
        if isinstance(head, str) and head.startswith("/") and head != sys.executable:
            return [Path(head).name, *command[1:]]
        return command

    pinned: dict[str, dict[str, Any]] = {}
    for resource in run.resources:
        if not resource.type_.startswith("pulumi-python:dynamic/"):
            continue
        inputs: dict[str, Any] = {}
        for key, value in resource.props.items():
            if key == "__provider":
                continue
            resolved, secret = settle(value)
            if key == "argv" and resolved:
                resolved = executable(list(resolved))
            if key == "init" and resolved:
                resolved = [executable(list(command)) for command in resolved]
            inputs[key] = {"secret": portable(resolved)} if secret else portable(resolved)
        pinned[resource.name] = {
            "type": resource.type_,
            "parent": resource.opts.parent._name if resource.opts.parent is not None else None,
            "depends_on": sorted(dependency._name for dependency in resource.opts.depends_on or []),
            "inputs": inputs,
        }
    return pinned
