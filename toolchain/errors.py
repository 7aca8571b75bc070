"""The roots of every error cdcstack raises on purpose, and the toolchain's own error.

In the toolchain, the layer everything else sits on, so that `toolchain.layout` can say a binary is
missing without importing the providers. `providers.errors` re-exports all of these, so
`except providers.errors.CdcstackError` catches every one. (A package, not a new top-level module:
the dynamic-provider host finds `toolchain` through the editable install it already has.)
"""

from __future__ import annotations


class CdcstackError(Exception):
    """Base of every error cdcstack raises on purpose."""


class TransientError(CdcstackError):
    """May succeed if retried later (a service still starting, a connection reset)."""


class TerminalError(CdcstackError):
    """Retrying will not help until the input or the environment changes."""


class MissingToolchainError(TerminalError):
    """A binary, jar folder or package the process runtime needs is not installed."""
