"""Native service processes: start detached, tell alive from dead, stop, and check ports.

No Pulumi here: the `LocalService` provider and the tests both use these.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

LOG_TAIL_LINES = 25
BASE_ENV_KEYS = ("PATH", "HOME", "JAVA_HOME", "TMPDIR")


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (SO_REUSEADDR, so sockets in TIME_WAIT don't count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def busy_ports(host: str, ports: Iterable[int]) -> list[int]:
    return [port for port in ports if not port_is_free(host, port)]


def wait_for_ports_free(host: str, ports: Sequence[int], timeout_seconds: float) -> list[int]:
    """Waits until every port is free; returns those still busy at the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        busy = busy_ports(host, ports)
        if not busy or time.monotonic() >= deadline:
            return busy
        time.sleep(0.1)


def _reap(pid: int) -> None:
    # A service started by this very process stays a zombie until waited for.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def process_state(pid: int) -> str | None:
    """The one-letter state from /proc (R, S, Z, …), or None when no such process exists."""
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def command_line(pid: int) -> list[str] | None:
    """The process's argv from /proc, or None when it cannot be read (gone, or not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]] if raw else []


def process_group(pid: int) -> int | None:
    """The process group of pid, or None when there is no such process."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def is_running(pid: int, executable: str | None = None) -> bool:
    """True when pid is a live (non-zombie) process, running `executable` if one is given.

    The executable check keeps a recycled pid from passing for the service.
    """
    state = process_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    if executable is None:
        return True
    argv = command_line(pid)
    if argv is None:
        return False
    # The command line reads empty for a moment while a process execs: alive, not yet identifiable.
    return not argv or Path(argv[0]).name == Path(executable).name


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def log_tail(log_file: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        content = log_file.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(content[-lines:]) or "(log is empty)"


def service_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """A small, reproducible environment: the few variables services need, then the spec's own."""
    env = {key: os.environ[key] for key in BASE_ENV_KEYS if key in os.environ}
    env.setdefault("LANG", "C.UTF-8")
    env.update(overrides)
    return env


def account_for(run_as: str) -> pwd.struct_passwd | None:
    """The account to run a service as, or None to run as ourselves.

    `run_as` only matters when we are root: PostgreSQL, for one, refuses to run as root.
    """
    if not run_as or os.geteuid() != 0:
        return None
    return pwd.getpwnam(run_as)


def hand_over(path: Path, account: pwd.struct_passwd | None) -> None:
    """Makes `path` (recursively) owned by the service account, when there is one."""
    if account is None:
        return
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), account.pw_uid, account.pw_gid)
    os.chown(path, account.pw_uid, account.pw_gid)


def resolve_executable(name: str, env_path: str | None = None) -> str | None:
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name, path=env_path)


def popen_identity(account: pwd.struct_passwd | None) -> dict[str, int | None]:
    """Popen's user/group arguments for running as `account` (None: as ourselves)."""
    return {"user": account.pw_uid if account else None, "group": account.pw_gid if account else None}


def run_once(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], account: pwd.struct_passwd | None, timeout_seconds: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env),
        **popen_identity(account),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
        check=False,
    )


def spawn_detached(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], log_file: Path, account: pwd.struct_passwd | None
) -> int:
    """Starts argv in its own session (so it outlives us and its group can be signalled)."""
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            **popen_identity(account),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    return process.pid


def _signal_group(pid: int, signum: int, group: int | None = None) -> None:
    """Signals pid's group (or `group`), or pid alone when there is no such group any more."""
    try:
        os.killpg(pid if group is None else group, signum)
    except ProcessLookupError:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _wait_gone(pid: int, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not is_running(pid):
            return True
        time.sleep(0.05)
    return not is_running(pid)


def stop_process(pid: int, grace_seconds: float, group: int | None = None) -> bool:
    """SIGTERM to the process group, then SIGKILL after the grace period. True if it was running.

    `group` defaults to pid's own group (a service started by :func:`spawn_detached` leads one);
    an orphan left by a dead supervisor is still in the supervisor's group, so it is given there.
    """
    if not is_running(pid):
        return False
    _signal_group(pid, signal.SIGTERM, group)
    if not _wait_gone(pid, grace_seconds):
        _signal_group(pid, signal.SIGKILL, group)
        _wait_gone(pid, 10.0)
    return True
