"""Points in a sink's batch cycle where a fault test holds one table's sink, so that a fault lands
while a batch is in flight instead of while the sink is idle.

- `before-table-commit`: the batch is read and decoded; nothing of it is written yet.
- `after-table-commit`: the table holds the batch (its commit records the offsets), the consumer
  group does not yet: the crash window that exactly-once rests on.

A point is armed for one topic (`POST /failpoints/<point>?topic=<topic>` on the job); the next
batch of that topic's sink to reach it is held there, and the job's /health says so with the
batch's offsets, until the point is released (`DELETE /failpoints/<point>`), the job stops, or
`hold_limit_seconds` pass (a test that died must not leave the job stuck). An armed point fires
once: a job restarted after a crash at the point runs through it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BEFORE_TABLE_COMMIT = "before-table-commit"
AFTER_TABLE_COMMIT = "after-table-commit"
POINTS = (BEFORE_TABLE_COMMIT, AFTER_TABLE_COMMIT)
HOLD_LIMIT_SECONDS = 300.0


class UnknownFailpointError(ValueError):
    """A point that is not one of :data:`POINTS`."""


@dataclass
class Hold:
    topic: str
    state: str = "armed"
    """armed, then held (a batch waits at the point), then passed."""
    offsets: dict[str, int] = field(default_factory=dict)
    held_at: float | None = None
    released: threading.Event = field(default_factory=threading.Event)

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "state": self.state, "offsets": dict(self.offsets), "held_at": self.held_at}


class Failpoints:
    """The armed points of one job, shared by its tables' sinks; safe to call from the job's loop
    and its HTTP thread at once."""

    def __init__(self, stopping: threading.Event | None = None, hold_limit_seconds: float = HOLD_LIMIT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.stopping = stopping or threading.Event()
        self.hold_limit_seconds = hold_limit_seconds
        self.clock = clock
        self._holds: dict[str, Hold] = {}
        self._lock = threading.Lock()

    def arm(self, point: str, topic: str) -> None:
        """The next batch of `topic` that reaches `point` waits there; replaces an earlier arming."""
        _check(point)
        with self._lock:
            earlier = self._holds.get(point)
            if earlier is not None:
                earlier.released.set()
            self._holds[point] = Hold(topic)

    def release(self, point: str) -> bool:
        """Lets a held batch go on, or disarms the point; False when it was not armed."""
        _check(point)
        with self._lock:
            hold = self._holds.pop(point, None)
        if hold is None:
            return False
        hold.released.set()
        return True

    def reach(self, point: str, topics: list[str], offsets: Mapping[str, int]) -> None:
        """Called by a sink at `point` with its batch's offsets: returns at once unless the point is
        armed for one of `topics`, else when it is released, the job stops or the hold limit passes."""
        with self._lock:
            hold = self._holds.get(point)
            if hold is None or hold.topic not in topics or hold.state != "armed":
                return
            hold.state, hold.offsets, hold.held_at = "held", dict(offsets), time.time()
            # Taken with the state, so the hold's limit runs from the moment /health says "held".
            deadline = self.clock() + self.hold_limit_seconds
        log.warning("batch held at a failpoint", extra={"fields": {"point": point, "topic": hold.topic, "offsets": hold.offsets}})
        while not hold.released.wait(0.05):
            if self.stopping.is_set() or self.clock() >= deadline:
                log.warning("failpoint hold ended without a release", extra={"fields": {"point": point, "topic": hold.topic}})
                break
        with self._lock:
            hold.state = "passed"
            if self._holds.get(point) is hold:
                del self._holds[point]

    def report(self) -> dict[str, dict[str, Any]]:
        """{point: its hold} for /health."""
        with self._lock:
            return {point: hold.as_dict() for point, hold in self._holds.items()}


def _check(point: str) -> None:
    if point not in POINTS:
        raise UnknownFailpointError(f"no failpoint {point!r}; there are {', '.join(POINTS)}")
