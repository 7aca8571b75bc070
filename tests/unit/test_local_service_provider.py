"""`LocalServiceProvider` driven directly against real short-lived processes (Python's http.server)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers import processes
from providers.errors import InitCommandError, PortInUseError, ServiceExitedError, ServiceUnhealthyError
from providers.local_service import LocalServiceProvider
from providers.preview import UNKNOWN


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_service(workdir: Path, port: int, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "service": "web",
        "argv": [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(workdir)],
        "env": {},
        "workdir": str(workdir),
        "host": "127.0.0.1",
        "ports": [port],
        "health": {"kind": "http", "url": f"http://127.0.0.1:{port}/"},
        "init": [],
        "files": {},
        "secret_files": {},
        "secret_env": {},
        "run_as": "",
        "start_timeout": 20.0,
        "stop_timeout": 5.0,
    }
    spec.update(overrides)
    return spec


def kill_and_wait(pid: int) -> None:
    """SIGKILL, then wait until the kernel has really reaped the process (a kill is asynchronous)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes.is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def provider() -> LocalServiceProvider:
    return LocalServiceProvider()


@pytest.fixture
def started(provider: LocalServiceProvider, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A running http.server service; stopped again whatever the test did to it."""
    spec = http_service(tmp_path / "web", free_port())
    outs = provider.create(spec).outs
    yield outs
    provider.delete("web", outs)


def test_create_returns_once_the_health_check_answers(started: dict[str, Any]) -> None:
    assert processes.is_running(started["pid"], sys.executable)
    assert httpx.get(f"http://127.0.0.1:{started['ports'][0]}/").status_code == 200
    assert Path(started["log_path"]).exists()
    assert Path(started["workdir"], "service.pid").read_text().strip() == str(started["pid"])
    assert started["healthy_after_seconds"] < 20


def test_create_uses_the_service_name_as_natural_id(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path / "web", free_port(), service="natural-id")
    result = provider.create(spec)
    try:
        assert result.id == "natural-id"
    finally:
        provider.delete(result.id, result.outs)


def test_delete_stops_the_process_frees_the_port_and_removes_its_dir(
    provider: LocalServiceProvider, tmp_path: Path
) -> None:
    spec = http_service(tmp_path / "web", free_port())
    outs = provider.create(spec).outs
    provider.delete("web", outs)
    assert not processes.is_running(outs["pid"])
    assert processes.port_is_free("127.0.0.1", spec["ports"][0])
    assert not Path(spec["workdir"]).exists()


def test_delete_of_an_already_stopped_service_succeeds(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path / "web", free_port())
    outs = provider.create(spec).outs
    kill_and_wait(outs["pid"])
    provider.delete("web", outs)
    provider.delete("web", outs)
    assert processes.port_is_free("127.0.0.1", spec["ports"][0])


def test_delete_escalates_to_sigkill_when_sigterm_is_ignored(provider: LocalServiceProvider, tmp_path: Path) -> None:
    port = free_port()
    stubborn = (
        "import signal, http.server, functools;"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    spec = http_service(tmp_path / "web", port, argv=[sys.executable, "-c", stubborn], stop_timeout=1.0)
    outs = provider.create(spec).outs
    provider.delete("web", outs)
    assert not processes.is_running(outs["pid"])
    assert processes.port_is_free("127.0.0.1", port)


def test_port_in_use_fails_before_anything_starts(provider: LocalServiceProvider, tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        spec = http_service(tmp_path / "web", port)
        with pytest.raises(PortInUseError, match=rf"web: port\(s\) \[{port}\] on 127.0.0.1 already in use"):
            provider.create(spec)
    assert not Path(spec["workdir"], "service.pid").exists()


def test_health_timeout_stops_the_process_and_names_the_log(provider: LocalServiceProvider, tmp_path: Path) -> None:
    port, never_listened = free_port(), free_port()
    spec = http_service(
        tmp_path / "web",
        port,
        health={"kind": "tcp", "host": "127.0.0.1", "port": never_listened},
        start_timeout=1.5,
    )
    with pytest.raises(ServiceUnhealthyError) as failure:
        provider.create(spec)
    message = str(failure.value)
    assert "health check never passed" in message and f"Log: {spec['workdir']}/service.log" in message
    assert processes.port_is_free("127.0.0.1", port), "the unhealthy process was left running"


def test_process_that_dies_during_start_fails_with_its_last_log_lines(
    provider: LocalServiceProvider, tmp_path: Path
) -> None:
    crash = "import sys; print('cannot open data dir: permission denied', flush=True); sys.exit(3)"
    spec = http_service(tmp_path / "web", free_port(), argv=[sys.executable, "-c", crash])
    with pytest.raises(ServiceExitedError, match="exited during start-up") as failure:
        provider.create(spec)
    assert "cannot open data dir: permission denied" in str(failure.value)


def test_read_reports_a_running_service_as_it_is(provider: LocalServiceProvider, started: dict[str, Any]) -> None:
    result = provider.read("web", started)
    assert result.id == "web" and result.outs["pid"] == started["pid"]


def test_read_reports_a_dead_process_as_gone(provider: LocalServiceProvider, started: dict[str, Any]) -> None:
    kill_and_wait(started["pid"])
    result = provider.read("web", started)
    assert result.id is None and result.outs == {}


def test_read_does_not_mistake_a_recycled_pid_for_the_service(
    provider: LocalServiceProvider, started: dict[str, Any]
) -> None:
    impostor = {**started, "argv": ["/usr/bin/not-the-service", *started["argv"][1:]]}
    assert provider.read("web", impostor).id is None


def test_diff_without_changes_reports_none(provider: LocalServiceProvider, started: dict[str, Any]) -> None:
    news = http_service(Path(started["workdir"]), started["ports"][0])
    assert provider.diff("web", started, news).changes is False


def test_a_config_change_is_an_in_place_update(provider: LocalServiceProvider, started: dict[str, Any]) -> None:
    news = http_service(Path(started["workdir"]), started["ports"][0], env={"CHANGED": "1"})
    result = provider.diff("web", started, news)
    assert result.changes is True and result.replaces == []


def test_a_new_service_name_is_a_replacement_that_stops_the_old_one_first(
    provider: LocalServiceProvider, started: dict[str, Any]
) -> None:
    news = http_service(Path(started["workdir"]), started["ports"][0], service="renamed")
    result = provider.diff("web", started, news)
    assert result.replaces == ["service"] and result.delete_before_replace is True


def test_update_restarts_the_process_with_the_new_config_on_the_same_data(
    provider: LocalServiceProvider, started: dict[str, Any]
) -> None:
    workdir = Path(started["workdir"])
    (workdir / "data").mkdir(exist_ok=True)
    (workdir / "data" / "kept.txt").write_text("survives a restart")
    news = http_service(workdir, started["ports"][0], stop_timeout=3.0)
    outs = provider.update("web", started, news).outs
    try:
        assert outs["pid"] != started["pid"] and not processes.is_running(started["pid"])
        assert outs["stop_timeout"] == 3.0
        assert (workdir / "data" / "kept.txt").read_text() == "survives a restart"
        assert httpx.get(f"http://127.0.0.1:{started['ports'][0]}/").status_code == 200
    finally:
        started.update(outs)


def test_a_failed_update_leaves_nothing_running_and_read_reports_it_gone(
    provider: LocalServiceProvider, started: dict[str, Any]
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        news = http_service(Path(started["workdir"]), busy)
        with pytest.raises(PortInUseError):
            provider.update("web", started, news)
    assert not processes.is_running(started["pid"])
    assert provider.read("web", started).id is None


def test_init_runs_once_and_files_are_private(provider: LocalServiceProvider, tmp_path: Path) -> None:
    workdir = tmp_path / "web"
    counter = "import pathlib; p = pathlib.Path('init-count'); p.write_text(str(int(p.read_text() if p.exists() else 0) + 1))"
    spec = http_service(
        workdir,
        free_port(),
        init=[[sys.executable, "-c", counter]],
        files={"conf/app.properties": "a=1\n"},
        secret_files={"password": "hunter2"},
    )
    outs = provider.create(spec).outs
    kill_and_wait(outs["pid"])
    processes.wait_for_ports_free("127.0.0.1", spec["ports"], 5.0)
    outs = provider.create(spec).outs
    try:
        assert (workdir / "init-count").read_text() == "1"
        assert (workdir / "conf/app.properties").read_text() == "a=1\n"
        assert (workdir / "password").stat().st_mode & 0o777 == 0o600
    finally:
        provider.delete("web", outs)


def test_failed_init_names_the_command_and_starts_nothing(provider: LocalServiceProvider, tmp_path: Path) -> None:
    failing = "import sys; print('initdb: directory not empty', file=sys.stderr); sys.exit(1)"
    spec = http_service(tmp_path / "web", free_port(), init=[[sys.executable, "-c", failing]])
    with pytest.raises(InitCommandError, match="initdb: directory not empty"):
        provider.create(spec)
    assert not Path(spec["workdir"], "service.pid").exists()
    assert processes.port_is_free("127.0.0.1", spec["ports"][0])


def test_env_reaches_the_service(provider: LocalServiceProvider, tmp_path: Path) -> None:
    port = free_port()
    echo_env = (
        "import os, http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "        self.wfile.write((os.environ['GREETING'] + '/' + os.environ['TOKEN']).encode())\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    spec = http_service(
        tmp_path / "web", port, argv=[sys.executable, "-c", echo_env], env={"GREETING": "hello cdc"}, secret_env={"TOKEN": "s3cr3t"}
    )
    outs = provider.create(spec).outs
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "hello cdc/s3cr3t"
    finally:
        provider.delete("web", outs)


def test_check_reports_a_missing_executable_with_the_fix(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path, 1, argv=["/nonexistent/postgres", "-D", "data"])
    failures = provider.check({}, spec).failures
    assert [(f.property, f.reason) for f in failures] == [
        ("argv", "web: executable '/nonexistent/postgres' not found; run `make toolchain`")
    ]


def test_check_rejects_bad_ports_health_kinds_and_accounts(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path, 1, ports=[70000], health={"kind": "smoke-signal"}, run_as="no-such-account-here")
    reasons = {failure.property: failure.reason for failure in provider.check({}, spec).failures}
    assert reasons["ports"] == "web: 70000 is not a TCP port number"
    assert reasons["health"].startswith("web: unknown health check kind 'smoke-signal'; expected one of")
    assert reasons["run_as"] == "web: system account 'no-such-account-here' does not exist"


def test_check_leaves_values_unknown_during_preview_alone(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path, 1, argv=[UNKNOWN], health={"kind": "postgres", "dsn": UNKNOWN})
    assert provider.check({}, spec).failures == []
