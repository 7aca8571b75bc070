"""Watching the Delta sink's Spark driver from a thread of its own, for what no Spark call reports.

A standalone master that restarts forgets every application (the stack runs it without recovery),
and a driver never registers again: it keeps its session, loses its executors, and a MERGE waits
inside py4j for one that never comes, with the job's one loop blocked in it. Every
:data:`CHECK_INTERVAL_SECONDS` the watchdog looks at the driver (its executors) and, given the
master's web UI, at the master (does it still list the application). A driver without executors,
or one the master no longer knows, is on /health at once (a job-level `spark` error, the table
whose batch is in hand `stalled`); past a grace period the watchdog calls the job's exit for a new
driver, which its supervisor starts (the tables hold their offsets: nothing is lost).

:class:`DriverWatch` decides from what each look found, with an injected clock; the thread, the
probes and the exit are the job's (:mod:`pipelines.sinks.delta.job`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("cdcstack.sink.delta.watchdog")

CHECK_INTERVAL_SECONDS = 2.0
"""Each look costs one JVM call and one local HTTP request: every 2 s puts a stuck driver on
/health within seconds for next to nothing."""
MASTER_TIMEOUT_SECONDS = 2.0
"""The master's UI is on loopback; one that takes longer is as good as away for this look."""
STARTUP_SECONDS = 180.0
"""A new session gets its first executor within a minute here (a cold executor JVM on two loaded
cores, the worker maybe still starting with the stack); only past this is having none a failure."""
EXECUTORLESS_GRACE_SECONDS = 30.0
"""A master that knows the application replaces a lost executor within about ten seconds (the
worker starts a new executor JVM); 30 s without one means none is coming."""
UNKNOWN_APPLICATION_GRACE_SECONDS = 10.0
"""A master that no longer lists the application never will again (a restarted master starts empty
and the driver does not register twice): the grace only rides out a look at an odd moment."""


@dataclass(frozen=True)
class DriverLook:
    """What one look at the driver and its master found."""

    application_id: str
    executors: int | None
    """Executors besides the driver; None when the driver did not answer (as good as none)."""
    application_known: bool | None
    """Whether the master lists the application; None when it was not asked or could not say."""
    driver_error: str | None = None
    """Why the driver did not answer."""
    master_error: str | None = None
    """Why the master could not say (its UI did not answer, or it is not ALIVE yet)."""


@dataclass(frozen=True)
class Verdict:
    problem: str | None
    """What is wrong now, for /health (None while the driver is fine)."""
    give_up: bool
    """The driver cannot recover: time for a new one."""


FINE = Verdict(None, False)


class DriverWatch:
    """Decides, look after look, when a driver is stuck; see the module docstring."""

    def __init__(self, master_url: str, master_ui_url: str | None, log_path: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.master_url = master_url
        self.master_ui_url = master_ui_url
        self.log_path = log_path
        self.clock = clock
        self._application_id: str | None = None
        self._first_seen_at = 0.0
        self._had_executor = False
        self._executorless_since: float | None = None
        self._unknown_since: float | None = None

    def observe(self, look: DriverLook) -> Verdict:
        now = self.clock()
        if look.application_id != self._application_id:
            # A session (re)opened: its first executor is still to come.
            self._application_id, self._first_seen_at, self._had_executor = look.application_id, now, False
            self._executorless_since = self._unknown_since = None
        if look.executors:
            self._had_executor, self._executorless_since = True, None
        elif self._executorless_since is None:
            self._executorless_since = now
        if look.application_known is True:
            self._unknown_since = None
        elif look.application_known is False and self._unknown_since is None:
            self._unknown_since = now
        # application_known None: the master could not say, and what it said last stands.
        return self._verdict(look, now)

    def _verdict(self, look: DriverLook, now: float) -> Verdict:
        deadlines = []
        if self._executorless_since is not None:
            # Before its first executor, a session is only counted from the end of its startup window.
            counted_from = self._executorless_since if self._had_executor else max(self._executorless_since, self._first_seen_at + STARTUP_SECONDS)
            if now >= counted_from:
                deadlines.append(counted_from + EXECUTORLESS_GRACE_SECONDS)
        if self._unknown_since is not None:
            deadlines.append(self._unknown_since + UNKNOWN_APPLICATION_GRACE_SECONDS)
        if not deadlines:
            return FINE
        exit_at = min(deadlines)
        return Verdict(self._problem(look, now, exit_at), now >= exit_at)

    def _problem(self, look: DriverLook, now: float, exit_at: float) -> str:
        if self._executorless_since is None:
            executors = f"has {look.executors} executor(s)"
        else:
            executors = f"has had no executor for {now - self._executorless_since:.0f}s" + ("" if self._had_executor else " (none since its session opened)")
        said = f"Spark: the driver of application {look.application_id} (master {self.master_url}) {executors}"
        if self._unknown_since is not None:
            said += f", and the master no longer lists the application (for {now - self._unknown_since:.0f}s, per {self.master_ui_url}/json/)"
        if look.driver_error:
            said += f"; the driver did not answer: {look.driver_error}"
        if look.master_error:
            said += f"; the master could not say: {look.master_error}"
        wait = exit_at - now
        said += "; no batch can run, the job exits for a new driver " + (f"in {wait:.0f}s" if wait > 0 else "now")
        return said + (f"; driver log: {self.log_path}" if self.log_path else "")


def own_log_path() -> str | None:
    """The file this process's stderr goes to (its service log), if it is one."""
    try:
        target = os.readlink("/proc/self/fd/2")
    except OSError:
        return None
    return target if Path(target).is_file() else None


class DriverWatchdog:
    """Runs a :class:`DriverWatch` in a daemon thread: `look()` (None while there is no session)
    every :data:`CHECK_INTERVAL_SECONDS`, the problem kept for :meth:`errors`, and `give_up(problem)`
    once the driver cannot recover."""

    ERROR_KEY = "spark"

    def __init__(
        self,
        watch: DriverWatch,
        look: Callable[[], DriverLook | None],
        give_up: Callable[[str], object],
        interval_seconds: float = CHECK_INTERVAL_SECONDS,
    ) -> None:
        self.watch = watch
        self.look = look
        self.give_up = give_up
        self.interval_seconds = interval_seconds
        self.problem: str | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def errors(self) -> dict[str, str]:
        """For the job's /health: {"spark": what is wrong}, or {} while the driver is fine."""
        problem = self.problem
        return {self.ERROR_KEY: problem} if problem else {}

    def check(self) -> Verdict:
        """One look, reported (and acted on when the driver cannot recover)."""
        look = self.look()
        verdict = FINE if look is None else self.watch.observe(look)
        if verdict.problem and not self.problem:
            log.warning("spark driver stuck", extra={"fields": {"error": verdict.problem}})
        elif self.problem and not verdict.problem:
            log.info("spark driver has executors again", extra={"fields": {"was": self.problem}})
        self.problem = verdict.problem
        if verdict.give_up and verdict.problem:
            self.give_up(verdict.problem)
        return verdict

    def start(self) -> DriverWatchdog:
        self._thread = threading.Thread(target=self._run, name="spark driver watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_seconds):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watchdog must outlive whatever one look raises
                log.exception("spark driver watchdog look failed")
