"""Threads a test starts: an exception in one fails the test with its traceback, and none outlives its join."""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import pytest


class CheckedThread(threading.Thread):
    """A thread that keeps what it raised, for :func:`join_all` to raise in the test's own thread."""

    def __init__(self, target: Callable[..., Any], name: str, args: tuple[Any, ...] = ()) -> None:
        # Daemon: one that hangs past its join fails the test, and must not also hold up the session's exit.
        super().__init__(target=target, name=name, args=args, daemon=True)
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            super().run()
        except BaseException as error:
            self.failure = error


def start_all(threads: Sequence[CheckedThread]) -> None:
    for thread in threads:
        thread.start()


def join_all(threads: Sequence[CheckedThread], timeout_seconds: float) -> None:
    """Joins every thread within one shared deadline.

    Fails the test when a thread is still alive at the deadline; otherwise re-raises the first
    exception a thread raised (its traceback intact, the others' tracebacks added as notes).
    """
    deadline = time.monotonic() + timeout_seconds
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    failed = [thread for thread in threads if thread.failure is not None]
    alive = [thread.name for thread in threads if thread.is_alive()]
    if alive:
        raised = "".join(f"\n{thread.name} raised:\n{''.join(traceback.format_exception(thread.failure))}" for thread in failed)
        pytest.fail(f"threads {alive} were still running when their {timeout_seconds:g}s join ran out{raised}")
    if failed:
        first = failed[0].failure
        first.add_note(f"raised in thread {failed[0].name}")
        for other in failed[1:]:
            first.add_note(f"{other.name} raised too:\n{''.join(traceback.format_exception(other.failure))}")
        raise first
