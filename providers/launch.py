"""A service's work dir and its one-time preparation: the part of a launch both runtimes share.

`LocalService` prepares the work dir under the stack's state dir on the host; the docker runtime's
in-image entry (:mod:`providers.container_entry`) prepares the same layout on the container's volume.
Either way the config files are written before every start and the init commands run once, before
the first, with a marker so a failed init is retried from a clean data dir.
"""

from __future__ import annotations

import pwd
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from providers import processes
from providers.errors import InitCommandError

INIT_MARKER = ".initialized"
INIT_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class ServiceLayout:
    """Where one service keeps its things, under its work dir."""

    workdir: Path

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_file(self) -> Path:
        return self.workdir / "service.log"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "service.pid"

    @property
    def init_marker(self) -> Path:
        return self.workdir / INIT_MARKER

    @property
    def supervisor_state(self) -> Path:
        return self.workdir / "supervisor.json"


def failure_text(service: str, expected: str, log_file: Path) -> str:
    return f"{service}: {expected}. Log: {log_file}\n--- last lines ---\n{processes.log_tail(log_file)}"


def prepare_workdir(
    service: str,
    layout: ServiceLayout,
    files: Mapping[str, str],
    init: Sequence[Sequence[str]],
    env: Mapping[str, str],
    account: pwd.struct_passwd | None,
) -> None:
    """Writes `files` (0600) into the work dir, hands it to `account`, and on the first start runs `init`."""
    fresh = not layout.init_marker.exists()
    if fresh and layout.data_dir.exists():
        # A data dir without the marker is what a failed init left behind.
        shutil.rmtree(layout.data_dir)
    for relative, content in files.items():
        target = layout.workdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        target.chmod(0o600)
    processes.hand_over(layout.workdir, account)
    if not fresh:
        return
    for command in init:
        result = processes.run_once(command, layout.workdir, env, account, INIT_TIMEOUT_SECONDS)
        with open(layout.log_file, "a") as log:
            log.write(f"$ {' '.join(command)}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            raise InitCommandError(failure_text(service, f"init command {command[0]} exited {result.returncode}", layout.log_file))
    layout.init_marker.touch()
