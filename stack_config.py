"""The stack's config, parsed and checked in one place, before Pulumi runs the program. No Pulumi here.

A program that raises loses the root stack's outputs for that update (`make outputs` then prints
`{}` until the next good `up`). So `scripts/stack.sh up|ensure` first runs

    pulumi config --json --stack <stack> | python -m stack_config check

which exits 1 with one line naming the key, the bad value and the fix, and nothing is applied.
`__main__.py` builds its settings through the same `parse`, so the two never disagree, and every
default lives here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from providers.errors import CdcstackError

NAMESPACE = "cdcstack"
RUNTIMES = ("auto", "process", "docker")
SECRET_KEYS = ("postgresPassword", "mysqlRootPassword", "objectStoreSecretKey")
"""Required, and read by `__main__.py` with `require_secret`; only their presence is checked here."""
SECRET_PLACEHOLDER = "[secret]"
"""Stands for a secret's value: `pulumi config --json` without --show-secrets leaves it out, and
`__main__.py` passes this instead of the plaintext, so no secret ever reaches a StackConfig."""
DEFAULT_RUNTIME = "auto"
DEFAULT_OBJECT_STORE_ACCESS_KEY = "cdcstack"
DEFAULT_ICEBERG_CATALOG_PERSISTENT = True


class ConfigError(CdcstackError):
    """A config value the program cannot use; the message is one line naming the key, the value and the fix."""


def _port(key: str, default: int) -> Any:
    return field(metadata={"key": key, "default": default})


@dataclass(frozen=True)
class Ports:
    """Every port the stack listens on (127.0.0.1); distinct, since two services cannot share one."""

    postgres: int = _port("postgresPort", 25432)
    mysql: int = _port("mysqlPort", 23306)
    kafka: int = _port("kafkaPort", 29092)
    kafka_controller: int = _port("kafkaControllerPort", 29093)
    """KRaft controller listener (process runtime)."""
    connect: int = _port("connectPort", 28083)
    object_store: int = _port("objectStorePort", 29000)
    iceberg_catalog: int = _port("icebergCatalogPort", 28181)
    iceberg_sink: int = _port("icebergSinkPort", 28190)
    """The Iceberg sink job's health endpoint."""

    def by_service(self) -> dict[str, list[int]]:
        """{service: [ports]}, the shape of the `service_ports` stack output."""
        return {
            "postgres": [self.postgres],
            "mysql": [self.mysql],
            "kafka": [self.kafka, self.kafka_controller],
            "connect": [self.connect],
            "object_store": [self.object_store],
            "iceberg_catalog": [self.iceberg_catalog],
            "iceberg_sink": [self.iceberg_sink],
        }


PORT_KEYS: tuple[str, ...] = tuple(port.metadata["key"] for port in fields(Ports))
"""Config keys of every port, in field order."""
PLAIN_KEYS: tuple[str, ...] = ("runtime", *PORT_KEYS, "objectStoreAccessKey", "icebergCatalogPersistent")
"""Every non-secret key the program reads."""


@dataclass(frozen=True)
class StackConfig:
    """The stack's settings, checked; secrets are not here (the program reads them as Pulumi secrets)."""

    runtime: str
    """auto, process or docker, lower-cased; `components.runtime.resolve_runtime` turns auto into one of the two."""
    ports: Ports
    object_store_access_key: str
    iceberg_catalog_persistent: bool
    """Whether the Iceberg REST catalog keeps its metadata across restarts."""


def _fix(key: str, example: str) -> str:
    return f"fix with `pulumi config set {NAMESPACE}:{key} {example}`"


def _runtime(raw: str | None) -> str:
    value = (raw if raw is not None else DEFAULT_RUNTIME).strip().lower() or DEFAULT_RUNTIME
    if value not in RUNTIMES:
        raise ConfigError(f"{NAMESPACE}:runtime is {raw!r}; expected auto, process or docker ({_fix('runtime', 'process')})")
    return value


def _port_value(key: str, raw: str | None, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        port = int(raw.strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ConfigError(f"{NAMESPACE}:{key} is {raw!r}; expected a port number from 1 to 65535 ({_fix(key, str(default))})")
    return port


def _bool_value(key: str, raw: str | None, default: bool) -> bool:
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value not in ("true", "false"):
        raise ConfigError(f"{NAMESPACE}:{key} is {raw!r}; expected true or false ({_fix(key, str(default).lower())})")
    return value == "true"


def parse(values: Mapping[str, str | None]) -> StackConfig:
    """Checks the stack's config, keyed without the `cdcstack:` prefix (None or absent: not set).

    Secrets are checked for presence only; pass SECRET_PLACEHOLDER (or anything not None) for a set one.
    """
    runtime = _runtime(values.get("runtime"))
    ports = Ports(
        **{port.name: _port_value(port.metadata["key"], values.get(port.metadata["key"]), port.metadata["default"]) for port in fields(Ports)}
    )
    taken: dict[int, str] = {}
    for port in fields(Ports):
        key, number = port.metadata["key"], getattr(ports, port.name)
        if number in taken:
            raise ConfigError(
                f"{NAMESPACE}:{key} is {number}, the same port as {NAMESPACE}:{taken[number]}; every port must differ"
                f" ({_fix(key, '<a free port>')})"
            )
        taken[number] = key
    for key in SECRET_KEYS:
        if not values.get(key):
            raise ConfigError(f"{NAMESPACE}:{key} is not set; it is required ({_fix(key, '<value> --secret')})")
    access_key = (values.get("objectStoreAccessKey") or "").strip() or DEFAULT_OBJECT_STORE_ACCESS_KEY
    persistent = _bool_value("icebergCatalogPersistent", values.get("icebergCatalogPersistent"), DEFAULT_ICEBERG_CATALOG_PERSISTENT)
    return StackConfig(runtime=runtime, ports=ports, object_store_access_key=access_key, iceberg_catalog_persistent=persistent)


def values_from_cli_json(document: Mapping[str, Any]) -> dict[str, str | None]:
    """`pulumi config --json` output → the values `parse` takes: this project's keys, secrets as placeholders."""
    values: dict[str, str | None] = {}
    prefix = f"{NAMESPACE}:"
    for full_key, entry in document.items():
        if not full_key.startswith(prefix) or not isinstance(entry, Mapping):
            continue
        key = full_key.removeprefix(prefix)
        values[key] = SECRET_PLACEHOLDER if entry.get("secret") else entry.get("value")
    return values


def main(argv: list[str]) -> int:
    """`python -m stack_config check` < `pulumi config --json`: exit 0 when usable, else 1 with one line on stderr."""
    if argv != ["check"]:
        print("usage: pulumi config --json --stack <stack> | python -m stack_config check", file=sys.stderr)
        return 2
    try:
        document = json.load(sys.stdin)
    except ValueError as error:
        print(f"stack config: `pulumi config --json` printed no JSON ({error})", file=sys.stderr)
        return 1
    try:
        parse(values_from_cli_json(document))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
