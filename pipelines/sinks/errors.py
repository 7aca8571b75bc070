"""The two kinds of sink error, so the consumer core knows whether to retry a batch or dead-letter.

- :class:`TransientSinkError`: the data is fine, the environment is not (catalog or object store
  unreachable or refusing writes, a commit conflict, Kafka away, the schema registry away). The core keeps the batch and
  retries it from its first offset with a capped backoff; nothing moves until it commits.
- :class:`TerminalSinkError`: this data cannot be written as it is (no destination type for a
  column, a value that does not fit its column, a record without its key). Retrying will not help:
  the core isolates the records that fail and dead-letters them, and the rest of the batch commits.

An error a writer raises that is neither is treated as transient: a stalled table that says why on
/health loses nothing, while dead-lettering on an unknown error could.
"""

from __future__ import annotations


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
