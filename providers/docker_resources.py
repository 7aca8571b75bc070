"""The docker runtime's resources as dynamic providers over the Docker SDK for Python: image, network,
volume and container. Pulumi's docker provider plugin is on no registry reachable here, and these
need none.

Like the project's other providers: the natural id is the Docker name (image reference, network,
volume, container); every method may be retried (create adopts or replaces what a failed run left
behind under the same name; delete of something already gone succeeds); diff only compares; nothing
is kept on the provider object, which Pulumi pickles into state. The daemon is an input (`engine`,
a DOCKER_HOST url), so the provider talks to the engine the stack was brought up on.

- `DockerImage`: create builds the project's runtime image when it is missing (`toolchain.images`,
  layers cached by digest); delete keeps it: images stay cached for the next stack;
- `DockerNetwork`, `DockerVolume`: created once, adopted when they exist;
- `DockerContainer`: a service's container running the process runtime's launch
  (:mod:`providers.container_entry`), its ports published on 127.0.0.1 only, its work dir on a named
  volume, restarted by Docker (`unless-stopped`) where the process runtime has its supervisor. The
  launch goes into the container as a 0600 file before it starts, so its secrets stay out of the
  container's environment. Create returns only once the service's own health check passes from the
  host; read finds the container removed, stopped or changed behind Pulumi's back (a label records
  the digest of its spec), so `pulumi refresh`/`preview` shows it and the next `up` recreates it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, UpdateResult

from providers import health
from providers.base import DeclaredProvider, DeclaredResource, Input, ResourceSchema
from providers.container_entry import LAUNCH_FILE, MODULE
from providers.errors import ServiceExitedError, ServiceUnhealthyError, TerminalError, TransientError
from providers.preview import is_known

LABEL_STACK = "io.cdcstack.stack"
LABEL_SPEC = "io.cdcstack.spec-digest"
ENGINE_TIMEOUT_SECONDS = 120
BUILD_TIMEOUT_SECONDS = 3600
"""A build step may print nothing for minutes (apt, pip building pyspark) while the client waits on the stream."""
STOP_TIMEOUT_SECONDS = 20
LOG_TAIL_LINES = 25


class DockerEngineError(TransientError):
    """The Docker daemon did not answer or refused a request; the message names the engine and the object."""


class DockerObjectInUseError(TerminalError):
    """A network or volume is still used by a container the stack does not manage."""


def engine_client(engine: str, timeout: int = ENGINE_TIMEOUT_SECONDS) -> Any:
    """A Docker SDK client for the daemon at `engine` (a DOCKER_HOST url); `timeout` bounds each read."""
    import docker

    try:
        return docker.DockerClient(base_url=engine, timeout=timeout)
    except docker.errors.DockerException as error:
        raise DockerEngineError(f"docker engine at {engine} does not answer ({error}); start it with `scripts/dockerd.sh start`") from None


def log_command(engine: str, container: str) -> str:
    """The command that prints a container's log, as the docker runtime's counterpart of a log path."""
    return f"docker -H {engine} logs {container}"


def _not_found() -> type[Exception]:
    import docker.errors

    return docker.errors.NotFound


# -- image -------------------------------------------------------------------------------------

IMAGE_SCHEMA = ResourceSchema(
    id_key="reference",
    inputs=(Input("reference"), Input("platform"), Input("engine", diffed=False)),
    outputs=("image_id",),
)


class DockerImageProvider(DeclaredProvider):
    schema = IMAGE_SCHEMA

    def create(self, props: dict[str, Any]) -> CreateResult:
        from toolchain.images import ImageBuilder, Platform, build_log_dir, toolchain_cache_dir

        client = engine_client(props["engine"], BUILD_TIMEOUT_SECONDS)
        builder = ImageBuilder(client, Platform.parse(props["platform"]), toolchain_cache_dir(), build_log_dir())
        if builder.runtime_reference() != props["reference"]:
            raise TerminalError(
                f"image {props['reference']}: this checkout builds {builder.runtime_reference()}; run `pulumi up` from the checkout that planned it"
            )
        builder.build_all()
        return CreateResult(id_=props["reference"], outs={**props, "image_id": client.images.get(props["reference"]).id})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            image = engine_client(props["engine"]).images.get(id_)
        except _not_found():
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "image_id": image.id})

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Images stay cached: the next stack (or this one, brought up again) starts without a build."""


@dataclass(frozen=True)
class DockerImageArgs:
    reference: str
    """The runtime image's tag, a digest of everything built into it (`toolchain.images`)."""
    platform: str
    """linux/amd64 or linux/arm64."""
    engine: str
    """The daemon's DOCKER_HOST url."""


class DockerImage(DeclaredResource, module="cdcstack", name="DockerImage"):
    image_id: pulumi.Output[str]

    def __init__(self, name: str, args: DockerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DockerImageProvider(), name, args, opts)


# -- network and volume --------------------------------------------------------------------------

NAMED_SCHEMA = ResourceSchema(
    id_key="name",
    inputs=(Input("name"), Input("stack"), Input("engine", diffed=False)),
    outputs=("docker_id",),
)


class _NamedObjectProvider(DeclaredProvider):
    """A Docker object known by its name: created once, adopted when it exists, removed when asked."""

    schema = NAMED_SCHEMA
    kind: ClassVar[str]
    """"network" or "volume": the SDK's collection (`client.networks`) and the word in messages."""
    in_use_hint: ClassVar[str]
    """What to do when the daemon refuses to remove it."""

    def _collection(self, engine: str) -> Any:
        return getattr(engine_client(engine), f"{self.kind}s")

    def _new(self, collection: Any, props: dict[str, Any]) -> Any:
        return collection.create(props["name"], labels={LABEL_STACK: props["stack"]})

    def create(self, props: dict[str, Any]) -> CreateResult:
        collection = self._collection(props["engine"])
        try:
            found = collection.get(props["name"])
        except _not_found():
            found = self._new(collection, props)
        return CreateResult(id_=props["name"], outs={**props, "docker_id": found.id})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            found = self._collection(props["engine"]).get(id_)
        except _not_found():
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "docker_id": found.id})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        import docker.errors

        try:
            self._collection(props["engine"]).get(id_).remove()
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as error:
            raise DockerObjectInUseError(f"docker {self.kind} {id_}: not removed ({error.explanation}); {self.in_use_hint}") from None


class DockerNetworkProvider(_NamedObjectProvider):
    """A user-defined bridge network: containers on it reach each other by alias."""

    kind = "network"
    in_use_hint = "remove the containers still on it"

    def _new(self, collection: Any, props: dict[str, Any]) -> Any:
        return collection.create(props["name"], driver="bridge", labels={LABEL_STACK: props["stack"]})


class DockerVolumeProvider(_NamedObjectProvider):
    """A named volume: a service's work dir, kept across container restarts and replacements."""

    kind = "volume"
    in_use_hint = "remove the container using it"


@dataclass(frozen=True)
class DockerNamedArgs:
    name: str
    """The Docker name: the natural id."""
    stack: str
    """The stack it belongs to (a label, so leftovers can be found)."""
    engine: str
    """The daemon's DOCKER_HOST url."""


class DockerNetwork(DeclaredResource, module="cdcstack", name="DockerNetwork"):
    docker_id: pulumi.Output[str]

    def __init__(self, name: str, args: DockerNamedArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DockerNetworkProvider(), name, args, opts)


class DockerVolume(DeclaredResource, module="cdcstack", name="DockerVolume"):
    docker_id: pulumi.Output[str]

    def __init__(self, name: str, args: DockerNamedArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DockerVolumeProvider(), name, args, opts)


# -- container -----------------------------------------------------------------------------------

CONTAINER_SCHEMA = ResourceSchema(
    id_key="name",
    inputs=(
        Input("name"),
        Input("stack"),
        Input("image"),
        Input("python"),
        Input("network"),
        Input("alias"),
        Input("ports"),
        Input("volume"),
        Input("launch"),
        Input("secret_launch", secret=True),
        Input("health", secret=True),
        Input("memory_mb"),
        Input("engine", diffed=False),
        Input("start_timeout", diffed=False),
    ),
    outputs=("container_id", "instance", "log_path", "spec_digest", "healthy_after_seconds"),
)
"""Any input change recreates the container in place (its volume stays); a new name is a new resource."""

SPEC_KEYS = ("name", "image", "python", "network", "alias", "ports", "volume", "launch", "memory_mb")
"""What the spec digest label covers: every non-secret input that shapes the container."""


def spec_digest(props: Mapping[str, Any]) -> str:
    """A digest of the container's non-secret spec (the secrets are compared through Pulumi's own state)."""
    spec = {key: props.get(key) for key in SPEC_KEYS}
    spec["ports"] = [int(port) for port in spec["ports"] or []]
    spec["memory_mb"] = int(spec["memory_mb"] or 0)
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32]


def _launch_archive(launch: Mapping[str, Any]) -> bytes:
    """A tar holding LAUNCH_FILE (0600, root's), for `put_archive` at its parent's parent."""
    content = json.dumps(launch).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        folder = tarfile.TarInfo(LAUNCH_FILE.parent.name)
        folder.type, folder.mode = tarfile.DIRTYPE, 0o700
        archive.addfile(folder)
        info = tarfile.TarInfo(f"{LAUNCH_FILE.parent.name}/{LAUNCH_FILE.name}")
        info.size, info.mode = len(content), 0o600
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _container_logs(container: Any) -> str:
    try:
        return container.logs(tail=LOG_TAIL_LINES).decode(errors="replace").strip() or "(log is empty)"
    except Exception as error:  # the container may be gone already: the logs are a hint, not the failure
        return f"(no log: {error})"


class DockerContainerProvider(DeclaredProvider):
    schema = CONTAINER_SCHEMA

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        name = news.get("name", "?")
        for port in news.get("ports") or []:
            if is_known(port) and not (isinstance(port, (int, float)) and 0 < int(port) < 65536):
                failures.append(CheckFailure("ports", f"{name}: {port!r} is not a TCP port number"))
        spec = news.get("health")
        if isinstance(spec, dict) and is_known(spec):
            failures.extend(CheckFailure("health", f"{name}: {problem}") for problem in health.spec_problems(spec))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # A refresh that found a container changed by hand records the digest it found.
        drifted = bool(olds.get("spec_digest")) and olds["spec_digest"] != spec_digest(olds)
        return self.schema.diff(olds, news, also_changed=drifted)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["name"], outs=self._start(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._start(news))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        try:
            container = engine_client(props["engine"]).containers.get(id_)
        except _not_found():
            return ReadResult(None, {})
        if container.status not in ("running", "restarting"):
            # Stopped by hand (Docker does not restart what `docker stop` stopped): gone, so `up` starts it.
            return ReadResult(None, {})
        return ReadResult(id_, {**props, "container_id": container.id, "spec_digest": container.labels.get(LABEL_SPEC, "")})

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self._remove(engine_client(props["engine"]), id_)

    @staticmethod
    def _remove(client: Any, name: str) -> None:
        import docker.errors

        try:
            container = client.containers.get(name)
        except docker.errors.NotFound:
            return
        try:
            container.stop(timeout=STOP_TIMEOUT_SECONDS)
            container.remove(force=True)
        except docker.errors.NotFound:
            return

    def _start(self, props: dict[str, Any]) -> dict[str, Any]:
        import docker.errors
        from docker.types import Mount

        name, engine = props["name"], props["engine"]
        client = engine_client(engine)
        # What a failed create left under this name (or a container stopped by hand) goes first.
        self._remove(client, name)
        ports = [int(port) for port in props["ports"]]
        launch = {**props["launch"], **(props.get("secret_launch") or {})}
        digest = spec_digest(props)
        api = client.api
        try:
            created = api.create_container(
                props["image"],
                command=[props["python"], "-m", MODULE],
                name=name,
                labels={LABEL_STACK: props["stack"], LABEL_SPEC: digest},
                ports=ports,
                host_config=api.create_host_config(
                    port_bindings={port: ("127.0.0.1", port) for port in ports},
                    mounts=[Mount(target=props["launch"]["workdir"], source=props["volume"], type="volume")],
                    restart_policy={"Name": "unless-stopped"},
                    mem_limit=f"{int(props['memory_mb'])}m",
                    init=True,
                ),
                networking_config=api.create_networking_config(
                    {props["network"]: api.create_endpoint_config(aliases=[props["alias"]])}
                ),
            )
            container = client.containers.get(created["Id"])
            container.put_archive(str(LAUNCH_FILE.parent.parent), _launch_archive(launch))
            container.start()
        except docker.errors.APIError as error:
            self._remove(client, name)
            raise DockerEngineError(f"{name}: docker could not start the container ({error.explanation or error})") from None
        started = time.time()

        def still_running() -> bool:
            container.reload()
            return container.status == "running" and int(container.attrs["RestartCount"]) == 0

        try:
            seconds = health.wait_until_healthy(props["health"], float(props["start_timeout"]), still_running=still_running)
        except ChildProcessError as exited:
            logs = _container_logs(container)
            self._remove(client, name)
            raise ServiceExitedError(f"{name}: the container exited during start-up ({exited}). Its log:\n{logs}") from None
        except health.ProbeFailed as unhealthy:
            logs = _container_logs(container)
            self._remove(client, name)
            raise ServiceUnhealthyError(f"{name}: stopped again, health check never passed ({unhealthy}). Its log:\n{logs}") from None
        return {
            **props,
            "container_id": container.id,
            "instance": f"{container.id[:12]}@{started:.3f}",
            "log_path": log_command(engine, name),
            "spec_digest": digest,
            "healthy_after_seconds": round(seconds, 2),
        }


@dataclass(frozen=True)
class DockerContainerArgs:
    name: str
    """The container's name: the natural id."""
    stack: str
    """The stack it belongs to (a label)."""
    image: pulumi.Input[str]
    """The runtime image's reference."""
    python: str
    """The image's Python, which runs the in-image entry."""
    network: pulumi.Input[str]
    """The stack's network."""
    alias: str
    """Its name on the network (the service's name): how the other containers reach it."""
    ports: Sequence[int]
    """Published on 127.0.0.1 at the same numbers it listens on inside."""
    volume: pulumi.Input[str]
    """The named volume mounted at the launch's work dir."""
    launch: pulumi.Input[Mapping[str, Any]]
    """service, workdir, argv, init, files, env, run_as: the process runtime's launch, as the container sees it."""
    secret_launch: pulumi.Input[Mapping[str, Any]]
    """secret_files and secret_env of the launch."""
    health: pulumi.Input[Mapping[str, Any]]
    """The service's :mod:`providers.health` spec, probed from the host on 127.0.0.1."""
    engine: str
    """The daemon's DOCKER_HOST url."""
    memory_mb: int = 1024
    """Hard memory limit, so one service cannot starve the others."""
    start_timeout: float = 120.0
    """Seconds the health check may take once the container started."""


class DockerContainer(DeclaredResource, module="cdcstack", name="DockerContainer"):
    container_id: pulumi.Output[str]
    instance: pulumi.Output[str]
    log_path: pulumi.Output[str]

    def __init__(self, name: str, args: DockerContainerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(DockerContainerProvider(), name, args, opts)

