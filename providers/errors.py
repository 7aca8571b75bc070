"""The errors cdcstack's providers raise.

Each names the service, what was expected, and where to look (a log path or a command). Transient
errors may succeed when retried; terminal ones need a change of input or environment first. The
roots (and the toolchain's own error) live in :mod:`toolchain.errors`, so the toolchain raises them
without importing the providers; they are re-exported here.
"""

from __future__ import annotations

from toolchain.errors import CdcstackError, MissingToolchainError, TerminalError, TransientError

__all__ = [
    "CdcstackError",
    "TransientError",
    "TerminalError",
    "MissingToolchainError",
    "UnknownRuntimeError",
    "PortInUseError",
    "ServiceExitedError",
    "ServiceUnhealthyError",
    "ServiceStopError",
    "InitCommandError",
    "SeedError",
    "ConnectUnavailableError",
    "ConnectRebalanceError",
    "ConnectorNotFoundError",
    "ConnectorConfigInvalidError",
    "ConnectorFailedError",
    "ConnectorNotRunningError",
    "ObjectStoreError",
    "KafkaTopicError",
    "SchemaRegistryUnavailableError",
    "SubjectNotFoundError",
    "SubjectStateError",
    "IncompatibleSchemaError",
    "InvalidSchemaError",
]


class UnknownRuntimeError(TerminalError):
    """`cdcstack:runtime` holds a value other than auto, process or docker."""


class PortInUseError(TerminalError):
    """A port a service should listen on is already taken by another process."""


class ServiceExitedError(TerminalError):
    """A service's process exited while it was expected to become healthy."""


class ServiceUnhealthyError(TransientError):
    """A service did not pass its health check within its timeout."""


class ServiceStopError(TerminalError):
    """A service's process or port outlived SIGTERM, SIGKILL and the grace period."""


class InitCommandError(TerminalError):
    """A one-time initialisation command (initdb, storage format, …) failed."""


class SeedError(TerminalError):
    """A database seed statement failed."""


class ConnectUnavailableError(TransientError):
    """The Kafka Connect worker's REST API did not answer (down, starting, or unreachable)."""


class ConnectRebalanceError(TransientError):
    """Connect answered 409: the worker group is rebalancing; retry shortly."""


class ConnectorNotFoundError(TerminalError):
    """Connect answered 404: no such connector (or task)."""


class ConnectorConfigInvalidError(TerminalError):
    """Connect rejected a connector config; the message carries Connect's own reasons."""


class ConnectorFailedError(TerminalError):
    """A connector or one of its tasks reached FAILED; the message carries its trace."""


class ConnectorNotRunningError(TransientError):
    """A connector did not reach RUNNING (with all its tasks) within its timeout."""


class ObjectStoreError(TerminalError):
    """The S3-compatible object store refused an operation (full, read-only, bad credentials)."""


class KafkaTopicError(TerminalError):
    """The broker refused to create or delete a topic, or did not answer (`pulumi up` again once it does)."""


class SchemaRegistryUnavailableError(TransientError):
    """The schema registry did not answer (down, starting, unreachable) or answered 5xx."""


class SubjectNotFoundError(TerminalError):
    """The registry answered 404: no such subject (40401), version (40402) or schema under it (40403)."""


class SubjectStateError(TerminalError):
    """The registry answered 409 to a delete: the subject or version is soft deleted already, or
    must be soft deleted before a permanent delete (40404-40407)."""


class IncompatibleSchemaError(TerminalError):
    """The registry answered 409 to a registration: the schema breaks the subject's compatibility
    level. `reason` carries the registry's own explanation."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class InvalidSchemaError(TerminalError):
    """The registry answered 422 (or 400): the schema, or the request carrying it, is not valid."""
