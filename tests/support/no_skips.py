"""A pytest plugin that turns every skip and xfail into a failure.

cdcstack's rule: a missing or unhealthy service fails a test with a message saying what to run;
nothing is silently skipped, and nothing is expected to fail.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


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
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skips are not allowed in cdcstack's suite: {reason}"
