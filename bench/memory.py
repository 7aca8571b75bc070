"""Resident memory of a stack: every process whose command line names the stack's state dir, and
all of their descendants, which often do not name it (Postgres backends, the JVM a pyspark driver
starts, the Python workers under a Spark executor)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from testkit.stack import processes_mentioning


def memory_kib(pids: Iterable[int]) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in KiB over pids; PSS splits shared pages, so it does not over-count."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def parent_pids() -> dict[int, int]:
    """{pid: parent pid} of every live process."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in parentheses may hold spaces: the fields after it are fixed.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])
    return parents


def with_descendants(roots: Iterable[int]) -> set[int]:
    """`roots` and every process below them. From each process's parent rather than
    /proc/<pid>/task/<pid>/children, which lists only the main thread's children: a JVM starts its
    children (the worker's executors, a driver's Python workers) from other threads."""
    children: dict[int, list[int]] = {}
    for pid, parent in parent_pids().items():
        children.setdefault(parent, []).append(pid)
    found = set(roots)
    pending = list(found)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def stack_pids(state_dir: Path) -> set[int]:
    """The processes of the stack whose state is in `state_dir`."""
    return with_descendants(processes_mentioning(state_dir))
