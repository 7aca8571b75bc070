"""A pytest plugin that turns every skip and xfail into a failure.

cdcstack's rule: a missing or unhealthy service fails a test with a message saying what to run;
nothing is silently skipped, and nothing is expected to fail.

Skips come two ways: while a test runs (marks, `pytest.skip` in a test or fixture), reported by
`pytest_runtest_makereport`; and while a module is collected (`pytest.skip(...,
allow_module_level=True)`, a module-level `pytest.importorskip`), reported by the collect report,
which skips every test of the module without any test report at all.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


def _reason(longrepr: object) -> str:
    # A skip's longrepr is (path, lineno, reason); anything else is shown as it is.
    return longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if getattr(report, "wasxfail", None) is not None:
        reason = report.wasxfail or "no reason given"
        report.outcome = "failed"
        report.longrepr = f"xfail is not allowed in cdcstack's suite ({reason}); fix the test or the code"
        del report.wasxfail
    elif report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skips are not allowed in cdcstack's suite: {_reason(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = (
            f"skips are not allowed in cdcstack's suite: {collector.nodeid} was skipped while it was collected,"
            f" so none of its tests ran: {_reason(report.longrepr)}"
        )
