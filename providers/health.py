"""Each service's own health check: a SQL ping, a Kafka metadata request, an HTTP endpoint.

A check is described by plain data (it travels through Pulumi state as a provider input) and run
by :func:`probe`, which raises :class:`ProbeFailed` with the service's own reason when it fails.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any, Mapping

HealthSpec = Mapping[str, Any]
"""``{"kind": "tcp"|"postgres"|"mysql"|"kafka"|"http"|"connect"|"spark", ...}`` with the fields each kind needs."""

PROBE_TIMEOUT_SECONDS = 3.0


class ProbeFailed(Exception):
    """One probe did not pass; the message is the service's own answer (or why there was none)."""


def _probe_tcp(spec: HealthSpec) -> None:
    try:
        with socket.create_connection((spec["host"], int(spec["port"])), timeout=PROBE_TIMEOUT_SECONDS):
            return
    except OSError as error:
        raise ProbeFailed(f"no TCP listener on {spec['host']}:{spec['port']}: {error}") from error


def _probe_postgres(spec: HealthSpec) -> None:
    import psycopg

    try:
        with psycopg.connect(spec["dsn"], connect_timeout=int(PROBE_TIMEOUT_SECONDS)) as connection:
            connection.execute("SELECT 1").fetchone()
    except psycopg.Error as error:
        raise ProbeFailed(f"SQL ping failed: {str(error).strip()}") from error


def _probe_mysql(spec: HealthSpec) -> None:
    import pymysql

    try:
        connection = pymysql.connect(
            host=spec["host"],
            port=int(spec["port"]),
            user=spec["user"],
            password=spec["password"],
            connect_timeout=PROBE_TIMEOUT_SECONDS,
        )
    except pymysql.MySQLError as error:
        raise ProbeFailed(f"SQL ping failed: {error}") from error
    with connection:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")


def _probe_kafka(spec: HealthSpec) -> None:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    # log_level 0: connection refusals while the broker starts are expected, not worth printing.
    admin = AdminClient({"bootstrap.servers": spec["bootstrap_servers"], "socket.timeout.ms": 3000, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=PROBE_TIMEOUT_SECONDS)
    except KafkaException as error:
        raise ProbeFailed(f"metadata request failed: {error}") from error
    if not metadata.brokers:
        raise ProbeFailed("metadata lists no broker yet")


def _probe_http(spec: HealthSpec) -> None:
    import httpx

    try:
        response = httpx.get(spec["url"], timeout=PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        raise ProbeFailed(f"GET {spec['url']} failed: {error!r}") from error
    expected = int(spec.get("status", 200))
    if response.status_code != expected:
        raise ProbeFailed(f"GET {spec['url']} answered {response.status_code}, expected {expected}")


def _probe_connect(spec: HealthSpec) -> None:
    """Kafka Connect is healthy once its REST API answers and lists the plugins (connectors and
    converters) it needs."""
    import httpx

    url = spec["url"].rstrip("/")
    try:
        response = httpx.get(f"{url}/connector-plugins", params={"connectorsOnly": "false"}, timeout=PROBE_TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        raise ProbeFailed(f"GET {url}/connector-plugins failed: {error!r}") from error
    if response.status_code != 200:
        raise ProbeFailed(f"GET {url}/connector-plugins answered {response.status_code}")
    listed = {plugin["class"] for plugin in response.json()}
    missing = sorted(set(spec.get("plugins", ())) - listed)
    if missing:
        raise ProbeFailed(f"Connect is up but does not list plugins {missing} (it lists {sorted(listed)})")


def _probe_spark(spec: HealthSpec) -> None:
    """A Spark standalone master is healthy once its JSON status says ALIVE; with `alive_workers`
    given, once that many workers are registered with it and ALIVE (a worker's own health)."""
    import httpx

    url = f"{spec['url'].rstrip('/')}/json/"
    try:
        response = httpx.get(url, timeout=PROBE_TIMEOUT_SECONDS)
        status = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as error:
        raise ProbeFailed(f"GET {url} failed: {error!r}") from error
    if status is None:
        raise ProbeFailed(f"GET {url} answered {response.status_code}")
    if status.get("status") != "ALIVE":
        raise ProbeFailed(f"the Spark master is {status.get('status')!r}, expected ALIVE")
    wanted = int(spec.get("alive_workers", 0))
    workers = {f"{entry.get('host')}:{entry.get('port')}": entry.get("state") for entry in status.get("workers", [])}
    alive = sum(1 for state in workers.values() if state == "ALIVE")
    if alive < wanted:
        raise ProbeFailed(f"the Spark master lists {alive} ALIVE workers, expected {wanted} (its workers: {workers or 'none'})")


_PROBES: dict[str, Callable[[HealthSpec], None]] = {
    "tcp": _probe_tcp,
    "postgres": _probe_postgres,
    "mysql": _probe_mysql,
    "kafka": _probe_kafka,
    "http": _probe_http,
    "connect": _probe_connect,
    "spark": _probe_spark,
}

REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "tcp": ("host", "port"),
    "postgres": ("dsn",),
    "mysql": ("host", "port", "user", "password"),
    "kafka": ("bootstrap_servers",),
    "http": ("url",),
    "connect": ("url", "plugins"),
    "spark": ("url",),
}


def spec_problems(spec: HealthSpec) -> list[str]:
    """What is wrong with a health spec, as messages; empty when it can be probed."""
    kind = spec.get("kind")
    if kind not in _PROBES:
        return [f"unknown health check kind {kind!r}; expected one of {sorted(_PROBES)}"]
    return [f"health check {kind!r} needs field {field!r}" for field in REQUIRED_FIELDS[kind] if field not in spec]


def probe(spec: HealthSpec) -> None:
    """Runs the check once; raises :class:`ProbeFailed` when the service is not healthy."""
    _PROBES[spec["kind"]](spec)


def wait_until_healthy(
    spec: HealthSpec,
    timeout_seconds: float,
    still_running: Callable[[], bool] = lambda: True,
    poll_seconds: float = 0.25,
) -> float:
    """Probes until the service passes, returning the seconds it took.

    Raises :class:`ProbeFailed` with the last reason when ``timeout_seconds`` pass first, and
    :class:`ChildProcessError` as soon as ``still_running`` says the process is gone.
    """
    started = time.monotonic()
    deadline = started + timeout_seconds
    last_reason = "not probed yet"
    while True:
        if not still_running():
            raise ChildProcessError(f"process exited before its health check passed (last: {last_reason})")
        try:
            probe(spec)
            return time.monotonic() - started
        except ProbeFailed as failure:
            last_reason = str(failure)
        if time.monotonic() >= deadline:
            raise ProbeFailed(f"not healthy after {timeout_seconds:.0f}s: {last_reason}")
        time.sleep(min(poll_seconds, max(0.0, deadline - time.monotonic())))
        poll_seconds = min(poll_seconds * 1.5, 2.0)
