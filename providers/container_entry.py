"""The docker runtime's command inside the runtime image: the process runtime's launch, in a container.

`python -m providers.container_entry` reads the launch the `DockerContainer` provider copied into the
container before starting it (LAUNCH_FILE: argv, files, init, env, run_as; it may hold secrets, so it
is a 0600 file rather than the container's environment, which `docker inspect` shows to anyone who
can reach the daemon), prepares the work dir on the container's volume exactly as `LocalService`
does on the host, then execs the service in its own place: Docker's signals reach the service itself
(behind the container's init) and its exit status is the container's, which Docker's restart policy
acts on. The service's stdout and stderr are the container's log.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from providers import processes
from providers.errors import CdcstackError
from providers.launch import ServiceLayout, prepare_workdir

LAUNCH_FILE = Path("/run/cdcstack/launch.json")
MODULE = "providers.container_entry"


def read_launch(path: Path = LAUNCH_FILE) -> dict[str, Any]:
    try:
        launch = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SystemExit(f"container entry: no readable launch at {path} ({error}); the container was not created by cdcstack") from None
    missing = [key for key in ("service", "argv", "workdir") if not launch.get(key)]
    if missing:
        raise SystemExit(f"container entry: the launch at {path} lacks {', '.join(missing)}")
    return launch


def run(launch: dict[str, Any]) -> None:
    """Prepares the work dir and replaces this process with the service (does not return)."""
    service = launch["service"]
    layout = ServiceLayout(Path(launch["workdir"]))
    account = processes.account_for(launch.get("run_as") or "")
    env = processes.service_env({**(launch.get("env") or {}), **(launch.get("secret_env") or {})})
    layout.workdir.mkdir(parents=True, exist_ok=True)
    prepare_workdir(service, layout, {**(launch.get("files") or {}), **(launch.get("secret_files") or {})}, launch.get("init") or [], env, account)
    os.chdir(layout.workdir)
    if account is not None:
        os.setgroups(os.getgrouplist(account.pw_name, account.pw_gid))
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
        env["HOME"] = account.pw_dir
    argv = [str(part) for part in launch["argv"]]
    os.execve(argv[0], argv, env)


def main() -> int:
    try:
        run(read_launch())
    except CdcstackError as failed:
        print(f"container entry: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
