"""The stack's sink jobs from outside, through their /health: waiting for a job to take up a topic
or let it go, and removing a topic a job replicated."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from confluent_kafka.admin import AdminClient

from pipelines.sinks.core import DEAD_LETTER_SUFFIX
from testkit.kafka import delete_topic

SINK_TIMEOUT_SECONDS = 60.0
CLOSE_TIMEOUT_SECONDS = 20.0


def sink_status(health_url: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of a sink job's /health; 503 is an answer too (a table retrying).
    AssertionError when the job does not answer."""
    try:
        response = httpx.get(health_url, timeout=10)
    except httpx.HTTPError as error:
        raise AssertionError(f"{health_url} did not answer ({error!r})") from error
    return response.status_code, response.json()


def _job_request(method: str, health_url: str, path: str, expected: int, params: dict[str, str] | None = None) -> None:
    """`method` on `path` of the job whose /health is `health_url`; AssertionError when it does not
    answer or answers other than `expected`."""
    url = health_url.removesuffix("/health") + path
    try:
        response = httpx.request(method, url, params=params, timeout=10)
    except httpx.HTTPError as error:
        raise AssertionError(f"{url} did not answer ({error!r})") from error
    assert response.status_code == expected, f"{url} answered {response.status_code}: {response.text[:200]}"


def discover_now(health_url: str) -> None:
    """Asks the job to look for new and gone topics at its loop's next turn (POST /discover)
    instead of at its discovery interval."""
    _job_request("POST", health_url, "/discover", 202)


def arm_failpoint(health_url: str, point: str, topic: str) -> None:
    """The job's next batch of `topic` to reach `point` is held there (see `pipelines.sinks.failpoints`)."""
    _job_request("POST", health_url, f"/failpoints/{point}", 201, {"topic": topic})


def release_failpoint(health_url: str, point: str) -> None:
    """Lets a batch held at `point` go on (or disarms it); a job that does not answer holds nothing:
    it was killed, and a restarted job starts with no point armed."""
    try:
        _job_request("DELETE", health_url, f"/failpoints/{point}", 200)
    except AssertionError:
        pass


def consumer_group(status: dict[str, Any], topic: str) -> str:
    """The consumer group of `topic`'s sink, from the job's /health."""
    return str(status["consumer_groups"]).replace("<topic>", topic)


def wait_for_sink(
    health_url: str,
    condition: Callable[[int, dict[str, Any]], bool],
    what: str,
    timeout: float = SINK_TIMEOUT_SECONDS,
    hint: str = "",
) -> dict[str, Any]:
    """Polls /health until `condition(status code, body)` holds; AssertionError naming `what`, the
    last answer and `hint` (where the job's log is) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, status = sink_status(health_url)
        except AssertionError:
            code, status = 0, {}
        if code and condition(code, status):
            return status
        assert time.monotonic() < deadline, f"{what} not seen within {timeout:.0f}s; last {health_url}: {code} {status}; {hint}"
        time.sleep(0.3)


def lists_topic(topic: str) -> Callable[[int, dict[str, Any]], bool]:
    """A `wait_for_sink` condition: the job has a sink for `topic`."""
    return lambda _code, status: topic in status.get("tables", {})


def wait_for_table_sink(health_url: str, topic: str, timeout: float = SINK_TIMEOUT_SECONDS, hint: str = "") -> None:
    """Asks the job to discover its topics now and waits until it runs a sink for `topic`."""
    discover_now(health_url)
    wait_for_sink(health_url, lists_topic(topic), f"a sink for {topic}", timeout, hint)


def forget_topic(admin: AdminClient, topic: str, health_urls: Sequence[str], attempts: int = 4, hint: str = "") -> None:
    """Deletes the topic (and its dead letters) until every job behind `health_urls` has closed its sink.

    A connector task restarted after a fault replays the dropped table's last changes from its
    offsets, and Kafka creates the topic again for them; deleting once more ends that.
    """
    listed = lists_topic(topic)
    for attempt in range(1, attempts + 1):
        delete_topic(admin, topic)
        delete_topic(admin, f"{topic}{DEAD_LETTER_SUFFIX}")
        for url in health_urls:
            discover_now(url)
        try:
            for url in health_urls:
                wait_for_sink(url, lambda code, status: not listed(code, status), f"the sink of {topic} closed", CLOSE_TIMEOUT_SECONDS, hint)
            return
        except AssertionError:
            if attempt == attempts:
                raise
