"""Passes and failures per test over repeated runs of one pytest command (`scripts/repeat.sh`): reads
each run's JUnit XML and prints a table, the flaky and failing tests first. A skipped, xfailed or
errored test counts as a failure, as the suite itself counts it."""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

FAILED_OUTCOMES = ("failure", "error", "skipped")


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    first_failure: str = ""
    runs_failed: list[int] = field(default_factory=list)


def outcome(case: ElementTree.Element) -> tuple[bool, str]:
    """(passed, why not) of one <testcase>; a teardown error is a second element of the same case."""
    for tag in FAILED_OUTCOMES:
        found = case.find(tag)
        if found is not None:
            message = (found.get("message") or "").strip()
            return False, f"{tag}: {message.splitlines()[0][:160]}" if message else tag
    return True, ""


def tally_runs(reports: Path, runs: int) -> dict[str, Tally]:
    """{test id: tally} over run-1.xml .. run-<runs>.xml in `reports`; a test missing from a run
    (the run crashed, or did not collect it) failed that run."""
    per_run: list[dict[str, tuple[bool, str]]] = []
    for run in range(1, runs + 1):
        path = reports / f"run-{run}.xml"
        results: dict[str, tuple[bool, str]] = {}
        per_run.append(results)
        if not path.exists():
            continue
        for case in ElementTree.parse(path).getroot().iter("testcase"):
            test = f"{case.get('classname', '')}::{case.get('name', '')}"
            passed, why = outcome(case)
            earlier = results.get(test, (True, ""))
            results[test] = (earlier[0] and passed, earlier[1] or why)
    tallies: dict[str, Tally] = {test: Tally() for results in per_run for test in results}
    for run, results in enumerate(per_run, start=1):
        for test, tally in tallies.items():
            passed, why = results.get(test, (False, f"not in run {run}'s report"))
            if passed:
                tally.passed += 1
            else:
                tally.failed += 1
                tally.runs_failed.append(run)
                tally.first_failure = tally.first_failure or why
    return tallies


def report(tallies: dict[str, Tally], runs: int) -> str:
    width = max((len(test) for test in tallies), default=4)
    lines = [f"{'test':<{width}}  passed  failed  runs failed / first failure"]
    for test, tally in sorted(tallies.items(), key=lambda item: (-item[1].failed, item[0])):
        note = f"{','.join(map(str, tally.runs_failed))} {tally.first_failure}".strip()
        lines.append(f"{test:<{width}}  {tally.passed:>6}  {tally.failed:>6}  {note}")
    passed, failed = sum(tally.passed for tally in tallies.values()), sum(tally.failed for tally in tallies.values())
    lines.append(f"{runs} runs, {len(tallies)} tests: {passed} of {passed + failed} passed, {failed} failed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("reports", type=Path, help="the folder of run-N.xml files scripts/repeat.sh wrote")
    parser.add_argument("runs", type=int, help="how many runs there were")
    arguments = parser.parse_args(argv)
    tallies = tally_runs(arguments.reports, arguments.runs)
    if not tallies:
        print(f"no test in any run-N.xml of {arguments.reports}", file=sys.stderr)
        return 2
    print(report(tallies, arguments.runs))
    return 0 if all(tally.failed == 0 for tally in tallies.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
