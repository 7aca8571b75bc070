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


def test_a_module_level_skip_fails_the_run(pytester: pytest.Pytester) -> None:
    source = f"import pytest\n\npytest.{SKIP}('no broker here', allow_module_level=True)\n\ndef test_x():\n    pass\n"
    result = run_inner(pytester, source)
    # Skipped at collection, the module never yields a test: the collect report itself is the error.
    result.assert_outcomes(errors=1)
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*skips are not allowed*test_inner.py was skipped while it was collected*no broker here*"])


def test_a_module_level_importorskip_fails_the_run(pytester: pytest.Pytester) -> None:
    source = f"import pytest\n\nmissing = pytest.importor{SKIP}('cdcstack_no_such_module')\n\ndef test_x():\n    pass\n"
    result = run_inner(pytester, source)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*skips are not allowed*while it was collected*could not import 'cdcstack_no_such_module'*"])


def test_a_skip_mark_on_the_whole_module_fails_each_test(pytester: pytest.Pytester) -> None:
    source = f"import pytest\n\npytestmark = pytest.mark.{SKIP}(reason='whole module')\n\ndef test_x():\n    pass\n\ndef test_y():\n    pass\n"
    result = run_inner(pytester, source)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*skips are not allowed*whole module*"])


def test_an_importorskip_inside_a_test_fails_it(pytester: pytest.Pytester) -> None:
    source = f"import pytest\n\ndef test_x():\n    pytest.importor{SKIP}('cdcstack_no_such_module')\n"
    result = run_inner(pytester, source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*skips are not allowed*could not import 'cdcstack_no_such_module'*"])


def test_a_module_that_collects_cleanly_still_passes(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, "def test_x():\n    pass\n")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
