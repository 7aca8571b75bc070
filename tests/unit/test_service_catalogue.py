"""The service catalogue is the one list of services: the whole program, run under Pulumi mocks on the
process runtime, builds a supervised process for every entry, on the entry's ports, in the entry's
folder, and names every entry in the `service_ports` and `service_logs` outputs. A service added to
the catalogue and not built (or built and not added) fails here, before any live stack exists."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

import service_catalogue
import stack_outputs as out
from tests.support.pulumi_mocks import RecordingMocks, settle
from testkit.stack import PROJECT_ROOT

SECRETS = {"postgresPassword": "pg-secret", "mysqlRootPassword": "my-secret", "objectStoreSecretKey": "s3-secret"}
NAMES = [service.name for service in service_catalogue.SERVICES]


def test_names_and_port_keys_are_unique_and_every_default_distinct() -> None:
    names = [service.name for service in service_catalogue.SERVICES]
    defaults = [port.default for service in service_catalogue.SERVICES for port in service.ports]
    assert len(set(names)) == len(names)
    assert len(set(service_catalogue.PORT_KEYS)) == len(service_catalogue.PORT_KEYS) == len(defaults) == len(set(defaults))


def test_an_unknown_service_is_named_with_the_ones_there_are() -> None:
    with pytest.raises(KeyError, match=r"no service 'spark' in the catalogue; it has \['alertmanager', 'connect', "):
        service_catalogue.service("spark")


@pytest.fixture(scope="module")
def program(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], RecordingMocks]:
    """The exports of `__main__.py` (resolved) and every resource it registered, on the process runtime."""
    monkeypatch = pytest.MonkeyPatch()
    exports: dict[str, Any] = {}
    mocks = RecordingMocks()
    try:
        monkeypatch.setenv("CDCSTACK_STATE_DIR", str(tmp_path_factory.mktemp("state")))
        monkeypatch.setattr(pulumi, "export", exports.__setitem__)
        pulumi.runtime.set_mocks(mocks, project="cdcstack", stack="unit", preview=False)
        pulumi.runtime.set_all_config(
            {f"cdcstack:{key}": value for key, value in {"runtime": "process", **SECRETS}.items()},
            secret_keys=[f"cdcstack:{key}" for key in SECRETS],
        )
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(PROJECT_ROOT / "__main__.py"), run_name="__main__")))
        resolved = {name: settle(value)[0] for name, value in exports.items()}
    finally:
        pulumi.runtime.set_all_config({})
        monkeypatch.undo()
    return resolved, mocks


def test_every_service_has_its_catalogue_ports_in_the_outputs(program: tuple[dict[str, Any], RecordingMocks]) -> None:
    exports, _ = program
    expected = {service.name: [port.default for port in service.ports] for service in service_catalogue.SERVICES}
    assert {name: list(ports) for name, ports in exports[out.SERVICE_PORTS].items()} == expected


def test_every_service_has_its_log_in_the_outputs(program: tuple[dict[str, Any], RecordingMocks]) -> None:
    exports, _ = program
    logs = exports[out.SERVICE_LOGS]
    assert sorted(logs) == sorted(NAMES)
    assert {name: Path(path).parent.name for name, path in logs.items()} == {name: name for name in NAMES}


def test_every_service_is_one_process_on_its_ports_in_its_folder(program: tuple[dict[str, Any], RecordingMocks]) -> None:
    _, mocks = program
    processes = {args.inputs["service"]: args.inputs for args in mocks.registered if args.typ.endswith(":LocalService")}
    assert sorted(processes) == sorted(NAMES)
    for service in service_catalogue.SERVICES:
        inputs = processes[service.name]
        assert list(inputs["ports"]) == [port.default for port in service.ports], service.name
        assert Path(inputs["workdir"]).name == service.name and Path(inputs["workdir"]).parent.name == "services"
