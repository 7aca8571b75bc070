"""`LocalServiceProvider` driven directly against real short-lived processes (Python's http.server)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers import health, processes, supervisor
from providers.errors import InitCommandError, PortInUseError, ServiceExitedError, ServiceUnhealthyError
from providers.local_service import LocalServiceProvider
from providers.preview import UNKNOWN

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


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
        "restart": "always",
    }
    spec.update(overrides)
    return spec


def kill_and_wait(pid: int) -> None:
    """SIGKILL, then wait until the kernel has really reaped the process (a kill is asynchronous)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while processes.is_running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def kill_service_and_wait(outs: dict[str, Any]) -> None:
    """SIGKILL to the whole service (supervisor and child, one process group), as a crash of both."""
    pids = [outs["pid"], supervisor_state(outs).child_pid]
    os.killpg(outs["pid"], signal.SIGKILL)
    wait_until(lambda: not any(processes.is_running(pid) for pid in pids if pid is not None), 5)


def wait_until(condition: Callable[[], bool], timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def supervisor_state(outs: dict[str, Any]) -> supervisor.SupervisorState:
    state = supervisor.read_state(Path(outs["workdir"], "supervisor.json"))
    assert state is not None, f"no supervisor state under {outs['workdir']}"
    return state


def restarted_child(outs: dict[str, Any], killed: int, restarts: int) -> int | None:
    """The child the supervisor started after `killed`, once it has counted `restarts`, else None."""
    state = supervisor.read_state(Path(outs["workdir"], "supervisor.json"))
    if state is None or state.restarts != restarts or state.child_pid in (None, killed):
        return None
    return supervisor.live_child(state)


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
    kill_service_and_wait(outs)
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
    began = time.monotonic()
    with pytest.raises(ServiceExitedError, match="exited during start-up") as failure:
        provider.create(spec)
    assert time.monotonic() - began < 10, "the supervisor's restart was waited out instead of failing fast"
    assert "cannot open data dir: permission denied" in str(failure.value)
    state = supervisor.read_state(Path(spec["workdir"], "supervisor.json"))
    assert state is not None and state.restarts == 0 and state.last_exit_code == 3
    assert not processes.is_running(state.supervisor_pid), "the supervisor outlived the failed start"
    assert not Path(spec["workdir"], "service.pid").exists()


def test_read_reports_a_running_service_as_it_is(provider: LocalServiceProvider, started: dict[str, Any]) -> None:
    result = provider.read("web", started)
    assert result.id == "web" and result.outs["pid"] == started["pid"]


def test_read_reports_a_dead_process_as_gone(provider: LocalServiceProvider, started: dict[str, Any]) -> None:
    kill_service_and_wait(started)
    result = provider.read("web", started)
    assert result.id is None and result.outs == {}


def test_read_does_not_mistake_a_recycled_pid_for_the_supervisor(
    provider: LocalServiceProvider, started: dict[str, Any]
) -> None:
    # This test's own process runs the same Python as the supervisor, but supervises nothing.
    Path(started["workdir"], "service.pid").write_text(f"{os.getpid()}\n")
    try:
        assert provider.read("web", started).id is None
    finally:
        Path(started["workdir"], "service.pid").write_text(f"{started['pid']}\n")


def test_read_does_not_mistake_a_recycled_pid_for_the_service(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path / "web", free_port(), restart="never")
    outs = provider.create(spec).outs
    try:
        impostor = {**outs, "argv": ["/usr/bin/not-the-service", *outs["argv"][1:]]}
        assert provider.read("web", impostor).id is None
    finally:
        provider.delete("web", outs)


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
    kill_service_and_wait(outs)
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


def test_a_killed_service_is_restarted_by_its_supervisor(provider: LocalServiceProvider, started: dict[str, Any]) -> None:
    killed = supervisor_state(started).child_pid
    assert killed is not None and processes.process_group(killed) == started["pid"]
    kill_and_wait(killed)
    assert wait_until(lambda: restarted_child(started, killed, restarts=1) is not None, 10), supervisor_state(started)
    health.wait_until_healthy(started["health"], 10)
    result = provider.read("web", started)
    assert result.id == "web" and result.outs["pid"] == started["pid"] and result.outs["restarts"] == 1
    log = Path(started["log_path"]).read_text()
    assert "cdcstack-supervisor:" in log and "web exited with code -9 (SIGKILL) after" in log
    assert "restart 1 in 1.0s" in log


def test_a_crash_loop_backs_off_instead_of_spinning(provider: LocalServiceProvider, tmp_path: Path) -> None:
    port = free_port()
    # Healthy the first time; every restart after that crashes at once.
    crashes_after_first_start = (
        "import pathlib, sys, http.server\n"
        "marker = pathlib.Path('started-once')\n"
        "if marker.exists():\n"
        "    sys.exit(1)\n"
        "marker.touch()\n"
        f"http.server.HTTPServer(('127.0.0.1', {port}), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    spec = http_service(tmp_path / "web", port, argv=[sys.executable, "-c", crashes_after_first_start])
    outs = provider.create(spec).outs
    try:
        kill_and_wait(supervisor_state(outs).child_pid or 0)
        log_path = Path(outs["log_path"])
        # Restarts 1 s and 3 s after the kill; the supervisor logs the third's 4 s delay as it starts
        # waiting it out, so the count is read inside that wait, not at a guessed moment.
        assert wait_until(lambda: "restart 3 in 4.0s" in log_path.read_text(), 15), log_path.read_text()
        assert supervisor_state(outs).restarts == 2
        assert provider.read("web", outs).outs["restarts"] == 2
        log = log_path.read_text()
        assert "restart 1 in 1.0s" in log and "restart 2 in 2.0s" in log
    finally:
        provider.delete("web", outs)


def test_backoff_doubles_up_to_its_cap_and_starts_over_after_a_good_run() -> None:
    delays: list[float] = []
    delay = None
    for uptime in (0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 12.0, 0.1):
        delay = supervisor.next_backoff(delay, uptime, min_uptime_seconds=10, max_backoff_seconds=30)
        delays.append(delay)
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 1.0, 2.0]


def test_sigterm_to_the_supervisor_stops_both_and_nothing_restarts(
    provider: LocalServiceProvider, started: dict[str, Any]
) -> None:
    child = supervisor_state(started).child_pid
    assert child is not None
    os.kill(started["pid"], signal.SIGTERM)
    assert wait_until(lambda: not processes.is_running(started["pid"]) and not processes.is_running(child), 10)
    time.sleep(1.5)
    assert supervisor_state(started).child_pid is None and supervisor_state(started).restarts == 0
    assert processes.port_is_free("127.0.0.1", started["ports"][0])
    assert "received SIGTERM; stopping the service, not restarting it" in Path(started["log_path"]).read_text()
    assert provider.read("web", started).id is None


def test_delete_stops_supervisor_and_child(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path / "web", free_port())
    outs = provider.create(spec).outs
    child = supervisor_state(outs).child_pid
    provider.delete("web", outs)
    assert child is not None and not processes.is_running(child) and not processes.is_running(outs["pid"])
    time.sleep(1.5)
    assert processes.port_is_free("127.0.0.1", spec["ports"][0]), "something started the service again"


def test_restart_never_runs_the_command_itself(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path / "web", free_port(), restart="never")
    outs = provider.create(spec).outs
    try:
        assert supervisor.MODULE not in (processes.command_line(outs["pid"]) or [])
        assert not Path(spec["workdir"], "supervisor.json").exists() and outs["restarts"] == 0
        kill_and_wait(outs["pid"])
        time.sleep(1.5)
        assert processes.port_is_free("127.0.0.1", spec["ports"][0])
        assert provider.read("web", outs).id is None
    finally:
        provider.delete("web", outs)


def test_a_child_orphaned_by_a_killed_supervisor_is_stopped_by_the_next_create(
    provider: LocalServiceProvider, tmp_path: Path
) -> None:
    spec = http_service(tmp_path / "web", free_port())
    outs = provider.create(spec).outs
    orphan = supervisor_state(outs).child_pid
    assert orphan is not None
    kill_and_wait(outs["pid"])
    assert processes.is_running(orphan) and not processes.port_is_free("127.0.0.1", spec["ports"][0])
    assert provider.read("web", outs).id is None
    outs = provider.create(spec).outs
    try:
        assert not processes.is_running(orphan)
        assert httpx.get(f"http://127.0.0.1:{spec['ports'][0]}/").status_code == 200
    finally:
        provider.delete("web", outs)


def test_an_old_state_without_a_restart_policy_diffs_as_unchanged(
    provider: LocalServiceProvider, started: dict[str, Any]
) -> None:
    old_state = {key: value for key, value in started.items() if key not in ("restart", "restarts")}
    news = http_service(Path(started["workdir"]), started["ports"][0])
    assert provider.diff("web", old_state, news).changes is False
    assert provider.diff("web", old_state, {**news, "restart": "never"}).changes is True


def test_read_reports_an_unsupervised_process_so_up_restarts_it_supervised(
    provider: LocalServiceProvider, tmp_path: Path
) -> None:
    # What a service started before supervision existed looks like: its own pid in the pid file.
    spec = http_service(tmp_path / "web", free_port(), restart="never")
    outs = provider.create(spec).outs
    try:
        old_state = {key: value for key, value in outs.items() if key not in ("restart", "restarts")}
        refreshed = provider.read("web", old_state).outs
        assert refreshed["restart"] == "never"
        assert provider.diff("web", refreshed, http_service(tmp_path / "web", spec["ports"][0])).changes is True
    finally:
        provider.delete("web", outs)


def test_check_rejects_an_unknown_restart_policy(provider: LocalServiceProvider, tmp_path: Path) -> None:
    spec = http_service(tmp_path, 1, restart="sometimes")
    reasons = {failure.property: failure.reason for failure in provider.check({}, spec).failures}
    assert reasons == {"restart": "web: restart 'sometimes' is not one of always, never"}


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A work dir a service account can reach (pytest's tmp_path lies under root's private dir)."""
    path = Path(tempfile.mkdtemp(prefix="cdcstack-unit-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_postgres_run_as_its_account_is_supervised_and_restarted(
    provider: LocalServiceProvider, world_readable_dir: Path
) -> None:
    # The stack runs as root on our machines and CI; the test says what is missing rather than skip.
    assert os.geteuid() == 0, "run_as only takes effect as root: run the suite as root, as `make test` does here"
    assert (POSTGRES_BIN / "postgres").exists(), f"no PostgreSQL 15 at {POSTGRES_BIN}: run `make toolchain`"
    workdir, port = world_readable_dir / "pg", free_port()
    spec = http_service(
        workdir,
        port,
        service="pg",
        argv=[
            str(POSTGRES_BIN / "postgres"),
            "-D", str(workdir / "data"),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={port}",
            "-c", "unix_socket_directories=",
        ],
        init=[[str(POSTGRES_BIN / "initdb"), "--pgdata=data", "--username=postgres", "--auth=trust", "--no-instructions"]],
        health={"kind": "postgres", "dsn": f"postgresql://postgres@127.0.0.1:{port}/postgres"},
        run_as="postgres",
        start_timeout=60.0,
    )
    outs = provider.create(spec).outs
    try:
        postmaster = supervisor_state(outs).child_pid
        assert postmaster is not None
        assert os.stat(f"/proc/{outs['pid']}").st_uid == 0, "the supervisor should stay root"
        assert os.stat(f"/proc/{postmaster}").st_uid == pwd.getpwnam("postgres").pw_uid
        kill_and_wait(postmaster)
        assert wait_until(lambda: restarted_child(outs, postmaster, restarts=1) is not None, 20), supervisor_state(outs)
        health.wait_until_healthy(spec["health"], 30)
    finally:
        provider.delete("pg", outs)
    assert not processes.is_running(postmaster) and processes.port_is_free("127.0.0.1", port)


def test_a_supervisor_still_execing_counts_as_supervising(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Right after the spawn its command line reads empty; that must not pass for an exit at start-up."""
    monkeypatch.setattr(processes, "command_line", lambda _pid: [])
    assert supervisor.is_supervising(os.getpid(), tmp_path / "supervisor.json")
