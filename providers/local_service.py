"""`LocalService`: a native service process as a Pulumi resource (the process runtime).

- create: checks its ports are free, runs one-time init commands, starts the process detached
  (data dir, log and pid under its work dir, listening on 127.0.0.1) and returns only once the
  service's own health check passes, or fails with the last log lines;
- restart "always" (the default): the process is started under :mod:`providers.supervisor`, which
  starts it again with backoff whenever it exits on its own and counts the restarts (`restarts`
  output, and a line in the service log each time); the pid file then holds the supervisor's pid.
  A child that exits before its first health check passes still fails the start. Restart "never"
  runs the command itself, as before;
- read: a dead process (for "always": a dead supervisor) reads as gone, so `pulumi refresh` then
  `pulumi up` restarts it. A child left running by a killed supervisor is stopped before the next
  start, so it cannot hold the ports. Read reports the restart mode the process really runs under,
  so a process started before supervision existed is restarted under it by the next `make up`;
- diff/update: a changed spec replaces the running process: the old one is stopped, then the new
  one started as in create, on the same data dir (a changed init command starts from a fresh one).
  Done in place rather than as a Pulumi replace because the engine keeps a failed
  delete-before-replace as a pending replacement that refresh cannot clear, and a reverted config
  would then leave the service stopped; an update that fails leaves the old outputs in state, which
  `pulumi up --refresh` reads as gone and starts again;
- delete: SIGTERM to the process group (supervisor and child), SIGKILL after a grace period, waits
  for its ports; already stopped is success.

The natural id is the service name. Secrets (health DSNs, password files) arrive as inputs and stay
Pulumi secrets; nothing secret is kept on the provider object, which Pulumi pickles into state.
"""

from __future__ import annotations

import functools
import pwd
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, UpdateResult

from providers import health, processes, supervisor
from providers.base import DeclaredProvider, DeclaredResource, Input, ResourceSchema
from providers.launch import ServiceLayout, failure_text, prepare_workdir
from providers.preview import UNKNOWN, is_known
from providers.errors import (
    PortInUseError,
    ServiceExitedError,
    ServiceStopError,
    ServiceUnhealthyError,
)

RESTART_POLICIES = ("always", "never")
SCHEMA = ResourceSchema(
    id_key="service",
    inputs=(
        Input("service"),
        Input("argv"),
        Input("env"),
        Input("workdir"),
        Input("host"),
        Input("ports"),
        # The secret inputs in the order state already records them (`additional_secret_outputs`).
        Input("health", secret=True),
        Input("init"),
        Input("files"),
        Input("secret_files", secret=True),
        Input("secret_env", secret=True),
        Input("run_as"),
        Input("start_timeout"),
        Input("stop_timeout"),
        # State written before supervision existed has no restart key; it ran as "always" runs now.
        Input("restart", default="always"),
    ),
    outputs=("pid", "restarts", "log_path", "data_dir", "instance"),
)
"""Every input is part of the spec: any change restarts the process (in place), a new name replaces it."""
def _running(layout: ServiceLayout, executable: str) -> tuple[int, bool] | None:
    """The pid in the pid file while it runs, and whether it is a supervisor (else the service itself).

    Told apart by the supervisor's state file (only a supervised start leaves one), not by the
    inputs: a state written before supervision existed has a service pid there whatever the restart
    input now says. A supervisor is recognised by its whole command line, not just its Python.
    """
    pid = processes.read_pid(layout.pid_file)
    if pid is None:
        return None
    if layout.supervisor_state.exists():
        return (pid, True) if supervisor.is_supervising(pid, layout.supervisor_state) else None
    return (pid, False) if processes.is_running(pid, executable) else None


def _first_child_alive(pid: int, layout: ServiceLayout) -> bool:
    """During start-up: the supervisor runs and its first child has not exited (a restart is a failed start)."""
    if not supervisor.is_supervising(pid, layout.supervisor_state):
        return False
    state = supervisor.read_state(layout.supervisor_state)
    if state is None or (state.child_pid is None and state.last_exit_at is None):
        return True
    return state.restarts == 0 and supervisor.live_child(state) is not None


def _stop_running(pid: int, supervised: bool, layout: ServiceLayout, stop_timeout: float) -> None:
    """Stops the process group; for a supervisor, then also a child that left its group (setsid)."""
    processes.stop_process(pid, stop_timeout)
    state = supervisor.read_state(layout.supervisor_state) if supervised else None
    child = supervisor.live_child(state) if state else None
    if child is not None:
        processes.stop_process(child, stop_timeout)


def _stop_orphan(layout: ServiceLayout, stop_timeout: float) -> None:
    """Stops a child whose supervisor was killed (it still holds the ports), with whatever it started."""
    state = supervisor.orphan(layout.supervisor_state)
    if state is not None and state.child_pid is not None:
        processes.stop_process(state.child_pid, stop_timeout, group=state.supervisor_pid)


class LocalServiceProvider(DeclaredProvider):
    """Manages one native service process. Stateless: everything it needs is in the inputs.

    Its diff is the schema's: only a new natural id is a new resource; any other change restarts
    the process in update.
    """

    schema = SCHEMA

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        service = news.get("service", "?")
        argv = news.get("argv") or []
        executable = argv[0] if argv else None
        if not argv:
            failures.append(CheckFailure("argv", f"{service}: no command given"))
        elif executable != UNKNOWN and processes.resolve_executable(executable) is None:
            failures.append(
                CheckFailure("argv", f"{service}: executable {executable!r} not found; run `make toolchain`")
            )
        for command in news.get("init") or []:
            if command and command[0] != UNKNOWN and processes.resolve_executable(command[0]) is None:
                failures.append(
                    CheckFailure("init", f"{service}: init command {command[0]!r} not found; run `make toolchain`")
                )
        ports = news.get("ports") or []
        for port in ports:
            if port != UNKNOWN and not (isinstance(port, (int, float)) and 0 < int(port) < 65536):
                failures.append(CheckFailure("ports", f"{service}: {port!r} is not a TCP port number"))
        health_spec = news.get("health")
        if isinstance(health_spec, dict) and is_known(health_spec):
            failures.extend(CheckFailure("health", f"{service}: {problem}") for problem in health.spec_problems(health_spec))
        restart = SCHEMA.value(news, "restart")
        if restart != UNKNOWN and restart not in RESTART_POLICIES:
            failures.append(
                CheckFailure("restart", f"{service}: restart {restart!r} is not one of {', '.join(RESTART_POLICIES)}")
            )
        run_as = news.get("run_as") or ""
        if run_as and run_as != UNKNOWN:
            try:
                pwd.getpwnam(run_as)
            except KeyError:
                failures.append(CheckFailure("run_as", f"{service}: system account {run_as!r} does not exist"))
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult(id_=props["service"], outs=self._start(props))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        self._stop(olds)
        if olds["workdir"] != news["workdir"]:
            shutil.rmtree(olds["workdir"], ignore_errors=True)
        elif olds.get("init") != news.get("init"):
            ServiceLayout(Path(news["workdir"])).init_marker.unlink(missing_ok=True)
        return UpdateResult(outs=self._start(news))

    def _start(self, props: dict[str, Any]) -> dict[str, Any]:
        service: str = props["service"]
        layout = ServiceLayout(Path(props["workdir"]))
        host: str = props["host"]
        ports = [int(port) for port in props["ports"]]
        stop_timeout = float(props["stop_timeout"])

        _stop_orphan(layout, stop_timeout)
        busy = processes.busy_ports(host, ports)
        if busy:
            raise PortInUseError(
                f"{service}: port(s) {busy} on {host} already in use by another process; stop it, or give "
                f"{service} other ports in Pulumi.<stack>.yaml. Nothing was started; after fixing it, run `make up` (it refreshes first)."
            )

        account = processes.account_for(props.get("run_as") or "")
        env = processes.service_env({**(props.get("env") or {}), **(props.get("secret_env") or {})})
        layout.workdir.mkdir(parents=True, exist_ok=True)
        prepare_workdir(
            service, layout, {**(props.get("files") or {}), **(props.get("secret_files") or {})}, props.get("init") or [], env, account
        )

        supervised = SCHEMA.value(props, "restart") == "always"
        executable = props["argv"][0]
        layout.supervisor_state.unlink(missing_ok=True)
        if supervised:
            # The supervisor runs as us and drops to the account for the child only: the account
            # may not be able to execute the venv's Python at all.
            argv = supervisor.command(service, props["argv"], layout.supervisor_state, account.pw_name if account else "")
            pid = processes.spawn_detached(argv, layout.workdir, env, layout.log_file, None)
            still_running = functools.partial(_first_child_alive, pid, layout)
        else:
            pid = processes.spawn_detached(props["argv"], layout.workdir, env, layout.log_file, account)
            still_running = functools.partial(processes.is_running, pid, executable)
        layout.pid_file.write_text(f"{pid}\n")
        try:
            seconds = health.wait_until_healthy(props["health"], float(props["start_timeout"]), still_running=still_running)
        except ChildProcessError as exited:
            # Seen as gone; stopping it anyway makes sure nothing outlives a failed start.
            _stop_running(pid, supervised, layout, stop_timeout)
            layout.pid_file.unlink(missing_ok=True)
            raise ServiceExitedError(failure_text(service, f"exited during start-up ({exited})", layout.log_file)) from None
        except health.ProbeFailed as unhealthy:
            _stop_running(pid, supervised, layout, stop_timeout)
            layout.pid_file.unlink(missing_ok=True)
            raise ServiceUnhealthyError(
                failure_text(service, f"stopped again, health check never passed ({unhealthy})", layout.log_file)
            ) from None

        state = supervisor.read_state(layout.supervisor_state) if supervised else None
        return {
            **props,
            "pid": pid,
            "restarts": state.restarts if state else 0,
            "log_path": str(layout.log_file),
            "data_dir": str(layout.data_dir),
            "instance": f"{pid}@{time.time():.3f}",
            "healthy_after_seconds": round(seconds, 2),
        }

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        layout = ServiceLayout(Path(props["workdir"]))
        running = _running(layout, props["argv"][0])
        if running is None:
            return ReadResult(None, {})
        pid, supervised = running
        state = supervisor.read_state(layout.supervisor_state) if supervised else None
        return ReadResult(
            id_,
            {
                **props,
                "pid": pid,
                "restart": "always" if supervised else "never",
                "restarts": state.restarts if state else 0,
            },
        )

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        self._stop(props)
        shutil.rmtree(props["workdir"], ignore_errors=True)

    def _stop(self, props: dict[str, Any]) -> None:
        """Stops the process if it runs and waits for its ports; already stopped is fine."""
        service: str = props["service"]
        layout = ServiceLayout(Path(props["workdir"]))
        stop_timeout = float(props["stop_timeout"])
        running = _running(layout, props["argv"][0])
        if running is not None:
            pid, supervised = running
            _stop_running(pid, supervised, layout, stop_timeout)
            if processes.is_running(pid):
                raise ServiceStopError(failure_text(service, f"pid {pid} survived SIGTERM and SIGKILL", layout.log_file))
        _stop_orphan(layout, stop_timeout)
        still_busy = processes.wait_for_ports_free(props["host"], [int(p) for p in props["ports"]], 15.0)
        if still_busy:
            raise ServiceStopError(
                failure_text(service, f"stopped, but port(s) {still_busy} are still taken", layout.log_file)
            )
        layout.pid_file.unlink(missing_ok=True)


@dataclass(frozen=True)
class LocalServiceArgs:
    """What to run and how to tell it is healthy."""

    service: str
    """Natural id: unique per stack (also the folder name under the stack's services dir)."""
    argv: pulumi.Input[Sequence[str]]
    """The service's foreground command; its first element must be an executable."""
    workdir: str
    """Holds data/, service.log and service.pid."""
    ports: Sequence[int]
    """Every port it listens on; checked free before start, waited free after stop."""
    health: pulumi.Input[Mapping[str, Any]]
    """A :mod:`providers.health` spec; kept secret since it may carry a DSN with a password."""
    host: str = "127.0.0.1"
    """The address it listens on (loopback only)."""
    env: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    """Extra environment on top of PATH/HOME/JAVA_HOME."""
    secret_env: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    """Like env, but secret (credentials the service reads from its environment)."""
    init: Sequence[Sequence[str]] = ()
    """Commands run once, before the first start, in the work dir (initdb, storage format, …)."""
    files: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    """Config files written (0600) into the work dir before every start."""
    secret_files: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    """Like files, but secret (password files, init SQL with credentials)."""
    run_as: str = ""
    """System account to run as when cdcstack runs as root (PostgreSQL refuses root)."""
    start_timeout: float = 120.0
    """Seconds to wait for the health check before giving up and stopping it."""
    stop_timeout: float = 20.0
    """Seconds between SIGTERM and SIGKILL."""
    restart: str = "always"
    """Restart policy: with "always" a supervisor starts the process again (with backoff) whenever it
    exits on its own; with "never" a dead process stays dead until the next `make up`."""


class LocalService(DeclaredResource, module="cdcstack", name="LocalService"):
    """A native service process; see the module docstring for its life cycle."""

    pid: pulumi.Output[int]
    """The supervisor's pid with restart "always", else the service's."""
    restarts: pulumi.Output[int]
    """How often the supervisor restarted the process, as of the last create, update or refresh."""
    log_path: pulumi.Output[str]
    data_dir: pulumi.Output[str]
    instance: pulumi.Output[str]

    def __init__(self, name: str, args: LocalServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(LocalServiceProvider(), name, args, opts)
