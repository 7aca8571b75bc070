"""A stack of this project from outside: the Pulumi CLI with the project's offline settings, reading
a stack's outputs, and throwaway stacks on free ports that leave the dev stack alone."""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import service_catalogue
from providers import processes
from testkit.names import unique_name

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STACK = "dev"
PULUMI_TIMEOUT_SECONDS = 600
STOP_GRACE_SECONDS = 10.0


class PulumiCommandError(AssertionError):
    """A `pulumi` command exited non-zero; the message carries its stdout and stderr.

    An AssertionError, so a test that runs pulumi fails (rather than errors) with the CLI's own words.
    """


class StackNotUp(Exception):
    """A stack's outputs cannot be read, or it has none: the message says to run `make up`."""


@functools.cache
def toolchain_env() -> dict[str, str]:
    """The environment `make` runs with (toolchain/env.sh), so pytest and the bench work when started directly too."""
    dump = subprocess.run(
        ["bash", "-c", "source toolchain/env.sh && env -0"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
        env=dict(os.environ),
        timeout=60,
    ).stdout.decode()
    return dict(entry.split("=", 1) for entry in dump.split("\0") if "=" in entry)


def stack_name(stack: str | None = None) -> str:
    """`stack`, else $STACK (what `make test` passes), else the dev stack."""
    return stack or os.environ.get("STACK", DEFAULT_STACK)


@dataclass(frozen=True)
class PulumiCli:
    """`pulumi` against one stack of this project, with the project's offline settings."""

    stack: str

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = PULUMI_TIMEOUT_SECONDS,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["pulumi", *args, "--stack", self.stack, "--non-interactive"],
            cwd=PROJECT_ROOT,
            env={**toolchain_env(), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise PulumiCommandError(
                f"`pulumi {' '.join(args)}` on stack {self.stack} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets").stdout or "{}")

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", *extra, check=check)

    def refresh(self) -> subprocess.CompletedProcess[str]:
        return self.run("refresh", "--yes", "--skip-preview")

    def destroy(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("destroy", "--yes", "--skip-preview", check=check)

    def config_set(self, key: str, value: str, secret: bool = False) -> None:
        self.run("config", "set", f"cdcstack:{key}", value, *(["--secret"] if secret else []))


def read_outputs(stack: str) -> dict[str, Any]:
    """The outputs of `stack`, secrets shown; StackNotUp (naming `make up`) when there are none to read."""
    try:
        values = PulumiCli(stack).outputs()
    except (PulumiCommandError, FileNotFoundError, json.JSONDecodeError) as error:
        raise StackNotUp(f"cannot read the outputs of stack {stack}: run `make up` first ({error})") from error
    if not values:
        raise StackNotUp(f"stack {stack} is not up (it has no outputs): run `make up`")
    return values


def free_ports(count: int) -> list[int]:
    """Ports free right now on 127.0.0.1 (held together while choosing, so they are distinct)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for probe in sockets:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


def init_throwaway_stack(prefix: str, postgres_password: str, mysql_password: str) -> tuple[PulumiCli, dict[str, int]]:
    """A new stack of this project on the process runtime, a free port for every port key in the
    service catalogue (a key left out would take its default and collide with the dev stack); the
    caller destroys and removes it (`remove_throwaway_stack`)."""
    cli = PulumiCli(unique_name(prefix).replace("_", "-"))
    cli.run("stack", "init")
    ports = dict(zip(service_catalogue.PORT_KEYS, free_ports(len(service_catalogue.PORT_KEYS))))
    cli.config_set("runtime", "process")
    for key, port in ports.items():
        cli.config_set(key, str(port))
    cli.config_set("postgresPassword", postgres_password, secret=True)
    cli.config_set("mysqlRootPassword", mysql_password, secret=True)
    cli.config_set("objectStoreSecretKey", f"{postgres_password}-s3", secret=True)
    return cli, ports


def stack_state_dir(stack: str) -> Path:
    """Where a stack of this project keeps its services' data, logs and pids."""
    return Path(toolchain_env()["CDCSTACK_STATE_DIR"]) / "stacks" / stack


def remove_throwaway_stack(cli: PulumiCli) -> None:
    """Destroys and removes a throwaway stack; no process of it may outlive its state."""
    if cli.destroy(check=False).returncode != 0:
        # A service that died or a worker that hangs can fail the plain destroy: refresh first.
        cli.run("destroy", "--yes", "--skip-preview", "--refresh", check=False)
    stack_dir = stack_state_dir(cli.stack)
    for pid in processes_mentioning(stack_dir):
        processes.stop_process(pid, grace_seconds=STOP_GRACE_SECONDS)
    cli.run("stack", "rm", "--yes", "--force", check=False)
    shutil.rmtree(stack_dir, ignore_errors=True)


def processes_mentioning(path: Path) -> list[int]:
    """Pids of live processes whose command line mentions `path` (a stack's state dir)."""
    needle = str(path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids
