"""Supervised restart for a native service: runs its command as a child and starts it again when it dies.

The Pulumi provider only runs during `pulumi up`, so without this a service that crashes between
two runs stays dead until someone runs `make up`. `LocalService` (restart "always") therefore starts
``python -m providers.supervisor … -- <service argv>`` in a session of its own, and this process:

- runs the service command as a child in the same process group, so the provider's SIGTERM and
  SIGKILL to the group reach both;
- when the child exits on its own, starts it again after 1 s, 2 s, 4 s … (capped at
  ``--max-backoff``); the delay starts over at 1 s once a child stayed up ``--min-uptime`` seconds,
  so a crash loop costs a start every ``--max-backoff`` seconds, not hundreds a minute;
- on SIGTERM/SIGINT forwards the signal to the child, waits for it and exits without restarting.
  A SIGTERM to the group reaches the child twice; every service here treats that as one;
- rewrites a small JSON state file atomically after every change (:class:`SupervisorState`), from
  which the provider learns the child's pid and the restart count;
- writes one line per event to its stdout, which is the service log (the child inherits it), each
  starting with ``cdcstack-supervisor:``.

It runs as the provider's own user and starts the child as ``--user`` when one is given: a service
account such as ``postgres`` cannot, in general, execute the project's venv Python (it may live under
root's home), so the supervisor itself cannot run as that account.

No Pulumi here.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Sequence

from providers import processes

MODULE = "providers.supervisor"
LOG_PREFIX = "cdcstack-supervisor:"
INITIAL_BACKOFF_SECONDS = 1.0
DEFAULT_MIN_UPTIME_SECONDS = 10.0
DEFAULT_MAX_BACKOFF_SECONDS = 30.0
EXEC_FAILED_EXIT_CODE = 127
"""The exit code recorded when the child could not even be started (as a shell reports it)."""
STOP_POLL_SECONDS = 0.1


@dataclass
class SupervisorState:
    """What the supervisor writes to its state file after every change."""

    supervisor_pid: int
    executable: str
    """The service command's first element, to tell the child from a process with a recycled pid."""
    child_pid: int | None = None
    """The running child, or None between an exit and the next start."""
    restarts: int = 0
    """How many times the child was started again after exiting on its own."""
    last_exit_code: int | None = None
    """The last child's exit code; minus the signal number when a signal ended it."""
    last_exit_at: float | None = None
    """When the last child exited (Unix time), or None while the first one has not."""
    child_started_at: float | None = None
    """When the current (or last) child was started (Unix time)."""


def read_state(state_file: Path) -> SupervisorState | None:
    """The state the supervisor last wrote, or None when it has written none (yet)."""
    try:
        return SupervisorState(**json.loads(state_file.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def write_state(state_file: Path, state: SupervisorState) -> None:
    """Writes a temporary file and renames it over the old one, so readers never see half a state."""
    temporary = state_file.with_name(f"{state_file.name}.tmp")
    temporary.write_text(json.dumps(asdict(state)))
    os.replace(temporary, state_file)


def command(
    service: str,
    argv: Sequence[str],
    state_file: Path,
    user: str = "",
    min_uptime_seconds: float = DEFAULT_MIN_UPTIME_SECONDS,
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS,
) -> list[str]:
    """The command line that supervises argv, run by the provider host's own interpreter (the venv's)."""
    options = [
        "--service", service,
        "--state", str(state_file),
        "--min-uptime", str(min_uptime_seconds),
        "--max-backoff", str(max_backoff_seconds),
    ]
    if user:
        options += ["--user", user]
    return [sys.executable, "-m", MODULE, *options, "--", *argv]


def is_supervising(pid: int, state_file: Path) -> bool:
    """True when pid is a live supervisor writing `state_file` (so not some process with a recycled pid)."""
    if not processes.is_running(pid):
        return False
    argv = processes.command_line(pid) or []
    if not argv:
        # A process mid-exec reads an empty command line for a moment: the supervisor just spawned
        # is alive but not yet identifiable (seen on a loaded machine right after the spawn).
        return True
    options = argv[: argv.index("--")] if "--" in argv else argv
    return MODULE in options and any(
        options[index : index + 2] == ["--state", str(state_file)] for index in range(len(options) - 1)
    )


def live_child(state: SupervisorState) -> int | None:
    """The child's pid when it still runs the service's executable, else None."""
    if state.child_pid is None or not processes.is_running(state.child_pid, state.executable):
        return None
    return state.child_pid


def orphan(state_file: Path) -> SupervisorState | None:
    """The state of a dead supervisor whose child still runs (still in the supervisor's group), else None."""
    state = read_state(state_file)
    if state is None or is_supervising(state.supervisor_pid, state_file):
        return None
    child = live_child(state)
    if child is None or processes.process_group(child) != state.supervisor_pid:
        return None
    return state


def next_backoff(previous: float | None, uptime_seconds: float, min_uptime_seconds: float, max_backoff_seconds: float) -> float:
    """The delay before the next start: doubled after each quick exit, back to the start after a good run."""
    if previous is None or uptime_seconds >= min_uptime_seconds:
        return min(INITIAL_BACKOFF_SECONDS, max_backoff_seconds)
    return min(previous * 2, max_backoff_seconds)


def _exit_code(returncode: int) -> str:
    if returncode >= 0:
        return f"code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "signal"
    return f"code {returncode} ({name})"


class Supervisor:
    """Runs one service command until told to stop, starting it again whenever it exits on its own."""

    def __init__(
        self,
        service: str,
        argv: Sequence[str],
        state_file: Path,
        account: pwd.struct_passwd | None,
        min_uptime_seconds: float,
        max_backoff_seconds: float,
    ) -> None:
        self._service = service
        self._argv = list(argv)
        self._state_file = state_file
        self._account = account
        self._min_uptime_seconds = min_uptime_seconds
        self._max_backoff_seconds = max_backoff_seconds
        self._state = SupervisorState(supervisor_pid=os.getpid(), executable=self._argv[0])
        self._child: subprocess.Popen[bytes] | None = None
        self._stop_signal: int | None = None

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        # One write per line: the log is opened for appending, so lines never interleave with the child's.
        os.write(sys.stdout.fileno(), f"{LOG_PREFIX} {stamp} {self._service} {message}\n".encode())

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_stop_signal)
        write_state(self._state_file, self._state)
        delay: float | None = None
        while True:
            started = time.monotonic()
            returncode = self._run_child()
            uptime = time.monotonic() - started
            if self._stop_signal is not None:
                self.log(f"exited with {_exit_code(returncode)} after {uptime:.1f}s when told to stop; not restarting")
                return 0
            delay = next_backoff(delay, uptime, self._min_uptime_seconds, self._max_backoff_seconds)
            self.log(
                f"exited with {_exit_code(returncode)} after {uptime:.1f}s; restart {self._state.restarts + 1} in {delay:.1f}s"
            )
            if not self._sleep(delay):
                self.log("told to stop while waiting to restart; not restarting")
                return 0
            self._state.restarts += 1

    def _run_child(self) -> int:
        """Starts the child, waits for it and records its exit; returns its exit code."""
        try:
            self._child = subprocess.Popen(self._argv, **processes.popen_identity(self._account))
        except OSError as error:
            self.log(f"could not start {self._argv[0]}: {error}")
            self._record_exit(EXEC_FAILED_EXIT_CODE)
            return EXEC_FAILED_EXIT_CODE
        self._state.child_pid = self._child.pid
        self._state.child_started_at = round(time.time(), 3)
        write_state(self._state_file, self._state)
        self.log(f"started {Path(self._argv[0]).name} as pid {self._child.pid} (restarts so far: {self._state.restarts})")
        if self._stop_signal is not None:
            # The stop signal arrived while the child was being started, before it could be forwarded.
            self._child.send_signal(self._stop_signal)
        returncode = self._child.wait()
        self._child = None
        self._record_exit(returncode)
        return returncode

    def _record_exit(self, returncode: int) -> None:
        self._state.child_pid = None
        self._state.last_exit_code = returncode
        self._state.last_exit_at = round(time.time(), 3)
        write_state(self._state_file, self._state)

    def _sleep(self, seconds: float) -> bool:
        """Waits `seconds` unless told to stop first; True when the wait ran out (time to restart)."""
        deadline = time.monotonic() + seconds
        while self._stop_signal is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(STOP_POLL_SECONDS, remaining))
        return False

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_signal is None:
            self.log(f"received {signal.Signals(signum).name}; stopping the service, not restarting it")
        self._stop_signal = signum
        child = self._child
        if child is not None:
            # A no-op once the child has been waited for, so a finished child's recycled pid is safe.
            child.send_signal(signum)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdcstack-supervisor",
        description="Runs a service command and restarts it with backoff when it exits on its own.",
        usage="%(prog)s --service NAME --state FILE [options] -- COMMAND [ARG ...]",
    )
    parser.add_argument("--service", required=True, help="service name, for the log lines")
    parser.add_argument("--state", required=True, type=Path, help="JSON state file, rewritten after every change")
    parser.add_argument("--user", default="", help="system account to run the command as (needs root)")
    parser.add_argument("--min-uptime", type=float, default=DEFAULT_MIN_UPTIME_SECONDS, help="seconds up that reset the backoff")
    parser.add_argument("--max-backoff", type=float, default=DEFAULT_MAX_BACKOFF_SECONDS, help="longest delay between restarts")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if "--" not in arguments or arguments.index("--") == len(arguments) - 1:
        parser.error("give the service command after --")
    split = arguments.index("--")
    options = parser.parse_args(arguments[:split])
    supervisor = Supervisor(
        service=options.service,
        argv=arguments[split + 1 :],
        state_file=options.state,
        account=pwd.getpwnam(options.user) if options.user else None,
        min_uptime_seconds=options.min_uptime,
        max_backoff_seconds=options.max_backoff,
    )
    try:
        return supervisor.run()
    except Exception:
        # A supervisor that dies leaves the child unsupervised; the provider reads that as gone.
        for line in traceback.format_exc().splitlines():
            supervisor.log(f"failed: {line}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
