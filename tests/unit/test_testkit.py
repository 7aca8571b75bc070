"""`testkit`, shared by the tests and `make bench`: importable without pytest, throwaway stacks on a
free port for every port of the catalogue, and plain exceptions where the tests' wrappers fail."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import service_catalogue
from testkit import stack as testkit_stack
from testkit.stack import PROJECT_ROOT, PulumiCli, PulumiCommandError, StackNotUp, init_throwaway_stack, read_outputs
from tests.support.stack import read_stack_outputs

FIRST_PARTY = ("tests", "components", "_pytest", "pytest")
"""What the bench must not pull in: the test suite, pytest, and the Pulumi components."""


def test_the_bench_imports_with_pytest_blocked_and_pulls_in_no_test_or_component() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; import bench.cdc, bench.iceberg, bench.delta, bench.__main__; "
        f"print(sorted(name for name in sys.modules if name.split('.')[0] in {FIRST_PARTY!r} and sys.modules[name] is not None))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.fixture
def pulumi_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every `pulumi` command a PulumiCli would have run (none is run)."""
    calls: list[tuple[str, ...]] = []

    def run(cli: PulumiCli, *args: str, **_options: Any) -> subprocess.CompletedProcess[str]:
        calls.append((cli.stack, *args))
        return subprocess.CompletedProcess(["pulumi", *args], 0, "", "")

    monkeypatch.setattr(PulumiCli, "run", run)
    return calls


def test_a_throwaway_stack_gets_its_own_free_port_for_every_catalogue_port(pulumi_calls: list[tuple[str, ...]]) -> None:
    cli, ports = init_throwaway_stack("unit", "pg-secret", "my-secret")
    assert list(ports) == list(service_catalogue.PORT_KEYS)
    assert len(set(ports.values())) == len(ports)
    config = {args[2].removeprefix("cdcstack:"): args[3] for _, *args in pulumi_calls if args[:2] == ["config", "set"]}
    assert {key: int(config[key]) for key in service_catalogue.PORT_KEYS} == ports
    assert config["runtime"] == "process" and all(stack == cli.stack for stack, *_ in pulumi_calls)


def test_a_stack_without_outputs_is_not_up_and_the_tests_fail_naming_make_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PulumiCli, "outputs", lambda _cli: {})
    with pytest.raises(StackNotUp, match=r"stack nowhere is not up .*run `make up`"):
        read_outputs("nowhere")
    with pytest.raises(pytest.fail.Exception, match=r"stack nowhere is not up .*run `make up`"):
        read_stack_outputs("nowhere")


def test_a_failed_pulumi_command_is_an_assertion_error_naming_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = subprocess.CompletedProcess(["pulumi"], 255, "out", "no stack named 'nowhere'")
    monkeypatch.setattr(testkit_stack.subprocess, "run", lambda *_args, **_options: failed)
    monkeypatch.setattr(testkit_stack, "toolchain_env", dict)
    with pytest.raises(AssertionError, match=r"`pulumi stack output` on stack nowhere exited 255") as error:
        PulumiCli("nowhere").run("stack", "output")
    assert isinstance(error.value, PulumiCommandError)
