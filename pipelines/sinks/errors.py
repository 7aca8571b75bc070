"""The two kinds of sink error, so the consumer core knows whether to retry a batch or dead-letter.

- :class:`TransientSinkError`: the data is fine, the environment is not (catalog or object store
  unreachable or refusing writes, a commit conflict, Kafka away, the schema registry away). The core keeps the batch and
  retries it from its first offset with a capped backoff; nothing moves until it commits.
- :class:`TerminalSinkError`: this data cannot be written as it is (no destination type for a
  column, a value that does not fit its column, a record without its key). Retrying will not help:
  the core isolates the records that fail and dead-letters them, and the rest of the batch commits.

Any other exception a writer lets through is sorted by its cause (:func:`classify_unexpected`):
the network, a store or a catalog that did not answer is transient; everything else (a `TypeError`,
a `KeyError`, a value the writer cannot place) is what the event itself causes, and retrying it can
never help: it is terminal, and one such event must not hold its table's partition for good.
"""

from __future__ import annotations

from collections.abc import Mapping


class SinkError(Exception):
    """Base of the sink's errors; the message names the table and what to do."""


class TransientSinkError(SinkError):
    """Retrying the same batch later may succeed."""


class TerminalSinkError(SinkError):
    """Retrying will not help: the records are dead-lettered."""


class StorageError(TransientSinkError):
    """The object store refused or did not take the batch's data files; nothing was committed."""


class CatalogUnavailableError(TransientSinkError):
    """The table catalog did not answer (down, or partitioned away)."""


class KafkaUnavailableError(TransientSinkError):
    """Kafka did not take a request (dead letters, offset commit, topic listing) in time."""


class SchemaRegistryUnavailableError(TransientSinkError):
    """The schema registry did not serve a record's writer schema (down, timing out, 5xx, refusing
    the request); the record is fine, and its batch is retried without dead-lettering it."""


class RejectedEventsError(TerminalSinkError):
    """Some events of the batch cannot be written, each for a reason of its own; the others can.

    Raised by a writer that knows which events are at fault before it commits anything (a keyless
    event for a keyed table, an update no row matches): the core dead-letters exactly those and
    applies the rest in one commit, instead of trying the batch one event at a time.
    """

    def __init__(self, message: str, rejected: Mapping[int, str]) -> None:
        super().__init__(f"{message}: {len(rejected)} event(s) refused, first: {next(iter(rejected.values()), '')}")
        self.rejected = dict(rejected)
        """{position of the event in the batch the writer was given: why it cannot be written}"""


class UnexpectedSinkError(TerminalSinkError):
    """An exception no writer mapped, caused by the event (see :func:`classify_unexpected`)."""


TRANSIENT_EXCEPTION_MODULES = ("urllib3.", "requests.", "httpx.", "httpcore.", "botocore.", "aiohttp.", "socket", "ssl")
"""Exceptions from these modules mean the network or a remote service failed, not the event."""


def network_caused(error: BaseException) -> bool:
    """Whether `error`, or anything in its chain of causes, is the network, the disk or a remote
    service failing (an OSError, or an exception of a network library)."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, OSError) or type(cause).__module__.startswith(TRANSIENT_EXCEPTION_MODULES):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def classify_unexpected(error: BaseException, where: str) -> SinkError:
    """The sink's error for an exception no writer mapped: transient when it (or anything in its
    chain of causes) is the network, the disk or a remote service failing; terminal otherwise."""
    if isinstance(error, SinkError):
        return error
    said = f"{type(error).__name__}: {error}"
    if network_caused(error):
        return TransientSinkError(f"{where}: a service or the network failed, the batch is retried: {said}")
    return UnexpectedSinkError(f"{where}: the event cannot be written, retrying cannot help ({said})")
