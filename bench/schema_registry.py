"""Schema registry figures: registrations per second, one at a time and from 20 threads, and whether
20 identical registrations racing on one subject agree on one id.

    python -m bench.schema_registry                 # against $STACK's registry (else the dev stack's)
    python -m bench.schema_registry --url URL       # against any Confluent API base (`…/apis/ccompat/v7`)

Every registration is a new schema on a new subject (so a first version, no compatibility check);
the subjects are deleted, soft then permanently, afterwards. Requests go over keep-alive connections:
the figures are the registry's, not a connection's setup.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import httpx

import stack_outputs as out
from bench import print_figures
from providers.errors import CdcstackError, SubjectNotFoundError
from providers.schema_registry_client import SchemaRegistryClient
from testkit.names import unique_name
from testkit.stack import read_outputs, stack_name, toolchain_env

T = TypeVar("T")

SEQUENTIAL_REGISTRATIONS = 200
CONCURRENT_REGISTRATIONS = 200
THREADS = 20
IDENTICAL_REGISTRATIONS = 20
RACE_ROUNDS = 5
"""Rounds of the identical-registration race, each on a new subject: it goes one way or another."""
JOIN_TIMEOUT_SECONDS = 120.0


def bench_schema(number: int) -> str:
    """A record schema of its own for each number."""
    return json.dumps(
        {
            "type": "record",
            "name": f"Bench{number}",
            "namespace": "cdcstack.bench",
            "fields": [{"name": "id", "type": "long"}, {"name": f"value_{number}", "type": "string", "default": ""}],
        }
    )


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def outcomes(futures: list[Future[T]]) -> tuple[list[T], list[str]]:
    """(what the calls returned, the registry errors they raised); any other exception is a bug and raised."""
    results, errors = [], []
    for future in futures:
        error = future.exception(JOIN_TIMEOUT_SECONDS)
        if error is None:
            results.append(future.result())
        elif isinstance(error, CdcstackError):
            errors.append(str(error))
        else:
            raise error
    return results, errors


def sequential(client: SchemaRegistryClient, subjects: list[str]) -> tuple[float, list[float]]:
    """(seconds for all, each registration's seconds): one after another, a new subject each."""
    latencies = []
    started = time.monotonic()
    for number, subject in enumerate(subjects):
        seconds, _ = timed(lambda: client.register(subject, bench_schema(number)))
        latencies.append(seconds)
    return time.monotonic() - started, latencies


def concurrent(client: SchemaRegistryClient, subjects: list[str], offset: int) -> tuple[float, list[str]]:
    """(seconds for all, the errors): THREADS threads registering one new subject each at a time."""

    def register(number: int) -> None:
        client.register(subjects[number], bench_schema(offset + number))

    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="register") as pool:
        started = time.monotonic()
        futures = [pool.submit(register, number) for number in range(len(subjects))]
        _, errors = outcomes(futures)
        seconds = time.monotonic() - started
    return seconds, errors


def identical(client: SchemaRegistryClient, subject: str, schema: str) -> tuple[set[int], list[int], list[str]]:
    """(distinct ids returned, the subject's versions, errors) after IDENTICAL_REGISTRATIONS threads
    register the same schema on one new subject at the same moment."""
    barrier = threading.Barrier(IDENTICAL_REGISTRATIONS)

    def register() -> int:
        barrier.wait(JOIN_TIMEOUT_SECONDS)
        return client.register(subject, schema)

    with ThreadPoolExecutor(max_workers=IDENTICAL_REGISTRATIONS, thread_name_prefix="identical") as pool:
        ids, errors = outcomes([pool.submit(register) for _ in range(IDENTICAL_REGISTRATIONS)])
    try:
        versions = client.versions(subject)
    except SubjectNotFoundError:
        versions = []
    return set(ids), versions, errors


def delete_all(client: SchemaRegistryClient, subjects: list[str]) -> float:
    """Seconds to delete every subject, soft then permanently."""
    started = time.monotonic()
    for subject in subjects:
        client.delete_subject(subject)
    return time.monotonic() - started


def figures(url: str) -> list[tuple[str, str]]:
    prefix = unique_name("bench_registry")
    sequential_subjects = [f"{prefix}_seq_{n}" for n in range(SEQUENTIAL_REGISTRATIONS)]
    concurrent_subjects = [f"{prefix}_par_{n}" for n in range(CONCURRENT_REGISTRATIONS)]
    race_subjects = [f"{prefix}_race_{n}" for n in range(RACE_ROUNDS)]
    connections = max(THREADS, IDENTICAL_REGISTRATIONS)
    with httpx.Client(limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections)) as http:
        client = SchemaRegistryClient(url, http=http)
        try:
            sequential_seconds, latencies = sequential(client, sequential_subjects)
            concurrent_seconds, concurrent_errors = concurrent(client, concurrent_subjects, SEQUENTIAL_REGISTRATIONS)
            race_schema = bench_schema(SEQUENTIAL_REGISTRATIONS + CONCURRENT_REGISTRATIONS)
            races = [identical(client, subject, race_schema) for subject in race_subjects]
        finally:
            subjects = [*sequential_subjects, *concurrent_subjects, *race_subjects]
            cleanup_seconds = delete_all(client, subjects)
        left = set(client.subjects(include_deleted=True)) & set(subjects)
    quantiles = statistics.quantiles(latencies, n=100)
    concurrent_done = CONCURRENT_REGISTRATIONS - len(concurrent_errors)
    race_errors = [error for _, _, errors in races for error in errors]
    return [
        (
            f"registry: {SEQUENTIAL_REGISTRATIONS} registrations, one at a time (new subject each)",
            f"{SEQUENTIAL_REGISTRATIONS / sequential_seconds:.0f}/s ({sequential_seconds:.2f} s;"
            f" p50 {quantiles[49] * 1000:.1f} ms, p95 {quantiles[94] * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms)",
        ),
        (
            f"registry: {CONCURRENT_REGISTRATIONS} registrations from {THREADS} threads",
            f"{concurrent_done / concurrent_seconds:.0f}/s ({concurrent_seconds:.2f} s), {len(concurrent_errors)} errors"
            + (f" (first: {concurrent_errors[0]})" if concurrent_errors else ""),
        ),
        (
            f"registry: {IDENTICAL_REGISTRATIONS} identical registrations racing on a new subject ({RACE_ROUNDS} rounds)",
            f"distinct ids per round {[len(ids) for ids, _, _ in races]} (must be 1),"
            f" versions per round {[len(versions) for _, versions, _ in races]}, {len(race_errors)} errors"
            + (f" (first: {race_errors[0]})" if race_errors else ""),
        ),
        (
            f"registry: delete {len(subjects)} subjects, soft then permanent",
            f"{cleanup_seconds:.2f} s ({len(subjects) / cleanup_seconds:.0f}/s), {len(left)} left",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.schema_registry", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the registry's Confluent API base; default: the stack's schema_registry_url output")
    url = parser.parse_args().url
    if url is None:
        toolchain_env()
        url = read_outputs(stack_name())[out.SCHEMA_REGISTRY_URL]
    print_figures(figures(url))


if __name__ == "__main__":
    main()
