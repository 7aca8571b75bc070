"""`cdcstack:runtime` resolution, including the Docker daemon ping behind `auto`."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from components.runtime import Runtime, docker_daemon_answers, resolve_runtime
from providers.errors import UnknownRuntimeError


def test_auto_without_a_daemon_is_the_process_runtime() -> None:
    assert resolve_runtime("auto", daemon_answers=False) is Runtime.PROCESS


def test_auto_with_a_daemon_is_the_docker_runtime() -> None:
    assert resolve_runtime("auto", daemon_answers=True) is Runtime.DOCKER


@pytest.mark.parametrize(("value", "expected"), [("process", Runtime.PROCESS), ("Docker", Runtime.DOCKER), ("", None)])
def test_explicit_values_are_taken_as_given(value: str, expected: Runtime | None) -> None:
    resolved = resolve_runtime(value, daemon_answers=False)
    assert resolved is (expected or Runtime.PROCESS)


def test_unknown_runtime_names_the_allowed_values_and_the_fix() -> None:
    with pytest.raises(UnknownRuntimeError) as failure:
        resolve_runtime("kubernetes")
    assert str(failure.value) == (
        "cdcstack:runtime is 'kubernetes'; expected auto, process or docker "
        "(fix with `pulumi config set cdcstack:runtime process`)"
    )


def test_no_socket_means_no_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert docker_daemon_answers(tmp_path / "docker.sock") is False


def test_a_socket_answering_the_ping_is_a_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def answer() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(1024)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        assert docker_daemon_answers(path) is True
    finally:
        thread.join(5)
        server.close()
