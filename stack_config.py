"""The stack's config, parsed and checked in one place, before Pulumi runs the program. No Pulumi here.

A program that raises loses the root stack's outputs for that update (`make outputs` then prints
`{}` until the next good `up`). So `scripts/stack.sh up|ensure` first runs

    pulumi config --json --stack <stack> | python -m stack_config check

which exits 1 with one line naming the key, the bad value and the fix, and nothing is applied.
`__main__.py` builds its settings through the same `parse`, so the two never disagree. Every default
lives here, except the ports: their config keys and defaults are the service catalogue's
(`service_catalogue.py`), so a new service's port needs no line here.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import service_catalogue
from providers.errors import CdcstackError

NAMESPACE = "cdcstack"
RUNTIMES = ("auto", "process", "docker")
SECRET_KEYS = ("postgresPassword", "mysqlRootPassword", "objectStoreSecretKey")
"""Required, and read by `__main__.py` with `require_secret`; only their presence is checked here."""
OPTIONAL_SECRET_KEYS = ("alertSmtpPassword", "alertSlackApiUrl", "alertWebhookUrl")
"""Read by `__main__.py` with `get_secret`; unset, Alertmanager's receivers use the stack's own
mail capture (DEFAULT_ALERT_SMTP_PASSWORD) and webhook capture, so the dev stack needs no value."""
SECRET_PLACEHOLDER = "[secret]"
"""Stands for a secret's value: `pulumi config --json` without --show-secrets leaves it out, and
`__main__.py` passes this instead of the plaintext, so no secret ever reaches a StackConfig."""
DEFAULT_RUNTIME = "auto"
DEFAULT_OBJECT_STORE_ACCESS_KEY = "cdcstack"
DEFAULT_ICEBERG_CATALOG_PERSISTENT = True
DEFAULT_ALERT_EMAIL_TO = "oncall@cdcstack.local"
DEFAULT_ALERT_EMAIL_FROM = "alertmanager@cdcstack.local"
DEFAULT_ALERT_SMTP_USERNAME = "alertmanager"
DEFAULT_ALERT_SMTP_PASSWORD = "cdcstack-alerts"
"""What Alertmanager logs in to the mail capture with (it accepts any); set alertSmtpPassword for a real server."""
DEFAULT_ALERT_SLACK_CHANNEL = "#cdcstack-alerts"


class ConfigError(CdcstackError):
    """A config value the program cannot use; the message is one line naming the key, the value and the fix."""


class Ports(Mapping[str, service_catalogue.ServicePorts]):
    """Every service's port handle, keyed by catalogue name, in catalogue order; `ports[KAFKA]` (its
    catalogue entry) works as well as `ports["kafka"]`. All numbers distinct: two services cannot
    share a port."""

    def __init__(self, handles: Iterable[service_catalogue.ServicePorts]) -> None:
        self._by_service = {handle.service.name: handle for handle in handles}

    def __getitem__(self, service: str | service_catalogue.ServiceSpec) -> service_catalogue.ServicePorts:
        name = service.name if isinstance(service, service_catalogue.ServiceSpec) else service
        try:
            return self._by_service[name]
        except KeyError:
            raise KeyError(f"no ports for {name!r}; the stack has {list(self._by_service)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_service)

    def __len__(self) -> int:
        return len(self._by_service)

    def __repr__(self) -> str:
        return f"Ports({ {name: handle.numbers for name, handle in self._by_service.items()} !r})"


PORT_KEYS: tuple[str, ...] = service_catalogue.PORT_KEYS
"""Config keys of every port, in catalogue order."""
ALERT_KEYS: tuple[str, ...] = ("alertEmailTo", "alertEmailFrom", "alertSmtpUsername", "alertSlackChannel")
"""Alertmanager's receivers: where emails go and come from, its SMTP login, the Slack channel."""
PLAIN_KEYS: tuple[str, ...] = ("runtime", *PORT_KEYS, "objectStoreAccessKey", "icebergCatalogPersistent", *ALERT_KEYS)
"""Every non-secret key the program reads."""


@dataclass(frozen=True)
class StackConfig:
    """The stack's settings, checked; secrets are not here (the program reads them as Pulumi secrets)."""

    runtime: str
    """auto, process or docker, lower-cased; `components.runtime.resolve_runtime` turns auto into one of the two."""
    ports: Ports
    """Every service's ports, from the catalogue's config keys and defaults."""
    object_store_access_key: str
    iceberg_catalog_persistent: bool
    """Whether the Iceberg REST catalog keeps its metadata across restarts."""
    alert_email_to: str
    """The email receiver's recipient."""
    alert_email_from: str
    alert_smtp_username: str
    """The login Alertmanager offers the SMTP server (its password is the secret alertSmtpPassword)."""
    alert_slack_channel: str


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


def _text_value(raw: str | None, default: str) -> str:
    return (raw or "").strip() or default


def _address_value(key: str, raw: str | None, default: str) -> str:
    value = _text_value(raw, default)
    local, _, domain = value.partition("@")
    if not local or not domain or any(character.isspace() for character in value):
        raise ConfigError(f"{NAMESPACE}:{key} is {raw!r}; expected an email address ({_fix(key, default)})")
    return value


def parse(values: Mapping[str, str | None]) -> StackConfig:
    """Checks the stack's config, keyed without the `cdcstack:` prefix (None or absent: not set).

    Secrets are checked for presence only; pass SECRET_PLACEHOLDER (or anything not None) for a set one.
    """
    runtime = _runtime(values.get("runtime"))
    ports = Ports(
        service_catalogue.ServicePorts(
            service, tuple(_port_value(port.config_key, values.get(port.config_key), port.default) for port in service.ports)
        )
        for service in service_catalogue.SERVICES
    )
    taken: dict[int, str] = {}
    for service in service_catalogue.SERVICES:
        for key, number in zip(service.port_keys, ports[service].numbers):
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
    return StackConfig(
        runtime=runtime,
        ports=ports,
        object_store_access_key=access_key,
        iceberg_catalog_persistent=persistent,
        alert_email_to=_address_value("alertEmailTo", values.get("alertEmailTo"), DEFAULT_ALERT_EMAIL_TO),
        alert_email_from=_address_value("alertEmailFrom", values.get("alertEmailFrom"), DEFAULT_ALERT_EMAIL_FROM),
        alert_smtp_username=_text_value(values.get("alertSmtpUsername"), DEFAULT_ALERT_SMTP_USERNAME),
        alert_slack_channel=_text_value(values.get("alertSlackChannel"), DEFAULT_ALERT_SLACK_CHANNEL),
    )


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
