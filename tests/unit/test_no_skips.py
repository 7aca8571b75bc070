"""The suite's guard: a skip or an xfail anywhere counts as a failure."""

from __future__ import annotations

import pytest

from toolchain.layout import PROJECT_ROOT

pytest_plugins = ["pytester"]

# Spelled indirectly so that a grep for skip markers finds only real ones.
SKIP, XFAIL = "sk" + "ip", "x" + "fail"


def run_inner(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=source)
    # The inner run starts in a temp dir: it must still import the plugin from the project.
    pytester._monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    return pytester.runpytest_subprocess("-p", "tests.support.no_skips", "-q")


def test_a_skipped_test_fails_the_run(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, f"import pytest\n\n@pytest.mark.{SKIP}(reason='no broker')\ndef test_x():\n    pass\n")
    # A skip mark acts during setup, so the test reports as an error: the run fails, nothing skipped.
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*skips are not allowed in cdcstack's suite*no broker*"])


def test_an_xfailed_test_fails_the_run(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, f"import pytest\n\n@pytest.mark.{XFAIL}(reason='flaky')\ndef test_x():\n    assert False\n")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*xfail is not allowed*flaky*"])


def test_a_skip_from_inside_a_fixture_fails_too(pytester: pytest.Pytester) -> None:
    source = f"import pytest\n\n@pytest.fixture\ndef broker():\n    pytest.{SKIP}('down')\n\ndef test_x(broker):\n    pass\n"
    result = run_inner(pytester, source)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*skips are not allowed*down*"])
