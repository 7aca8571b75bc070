"""The table `scripts/repeat.sh` prints: passes and failures per test over the runs' JUnit reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.repeat_report import main, tally_runs


def junit(cases: str) -> str:
    return f'<?xml version="1.0"?><testsuites><testsuite name="pytest">{cases}</testsuite></testsuites>'


PASSED = '<testcase classname="tests.t" name="{name}" time="1"/>'
FAILED = '<testcase classname="tests.t" name="{name}" time="1"><failure message="assert 2 == 3&#10;more">trace</failure></testcase>'
SKIPPED = '<testcase classname="tests.t" name="{name}" time="0"><skipped message="no service"/></testcase>'
TEARDOWN_ERROR = '<testcase classname="tests.t" name="{name}" time="1"><error message="teardown failed"/></testcase>'


def test_a_skip_a_teardown_error_or_a_run_without_a_report_counts_as_a_failure(tmp_path: Path) -> None:
    (tmp_path / "run-1.xml").write_text(junit(PASSED.format(name="a") + PASSED.format(name="b") + PASSED.format(name="c")))
    (tmp_path / "run-2.xml").write_text(junit(PASSED.format(name="a") + FAILED.format(name="b") + SKIPPED.format(name="c")))
    (tmp_path / "run-3.xml").write_text(junit(PASSED.format(name="a") + PASSED.format(name="b") + PASSED.format(name="c") + TEARDOWN_ERROR.format(name="c")))
    tallies = tally_runs(tmp_path, runs=4)  # run 4 crashed before writing its report
    assert {test: (tally.passed, tally.failed, tally.runs_failed) for test, tally in tallies.items()} == {
        "tests.t::a": (3, 1, [4]),
        "tests.t::b": (2, 2, [2, 4]),
        "tests.t::c": (1, 3, [2, 3, 4]),
    }
    assert tallies["tests.t::b"].first_failure == "failure: assert 2 == 3"
    assert tallies["tests.t::c"].first_failure == "skipped: no service"


def test_the_report_puts_failing_tests_first_and_exits_non_zero_unless_every_run_passed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for run in (1, 2):
        (tmp_path / f"run-{run}.xml").write_text(junit(PASSED.format(name="a") + (FAILED if run == 2 else PASSED).format(name="b")))
    assert main([str(tmp_path), "2"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:3] == ["tests.t::b", "1", "1"]
    assert lines[2].split()[:3] == ["tests.t::a", "2", "0"]
    assert lines[-1] == "2 runs, 2 tests: 3 of 4 passed, 1 failed"
    assert main([str(tmp_path), "1"]) == 0
