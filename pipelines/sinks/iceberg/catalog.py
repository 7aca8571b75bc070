"""Loading the Iceberg REST catalog with request timeouts, and naming its failures.

PyIceberg 0.12 sends REST requests without a timeout, so a catalog that accepts connections but
never answers (a network partition, a stopped process) would hang a pipeline for ever. Every
request here gets a (connect, read) timeout, and an unreachable catalog is a
CatalogUnavailableError (transient) that names the catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.rest import RestCatalog
from requests.adapters import HTTPAdapter

from pipelines.sinks.errors import CatalogUnavailableError

CONNECT_TIMEOUT_PROPERTY = "cdcstack.connect-timeout-seconds"
READ_TIMEOUT_PROPERTY = "cdcstack.read-timeout-seconds"
DEFAULT_TIMEOUTS = (5.0, 30.0)

T = TypeVar("T")


class _DefaultTimeoutAdapter(HTTPAdapter):
    def __init__(self, timeout: tuple[float, float]) -> None:
        self._timeout = timeout
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


class TimeoutRestCatalog(RestCatalog):
    """A RestCatalog whose every request is bounded by the cdcstack timeout properties."""

    def _create_session(self) -> requests.Session:
        # _create_session is pyiceberg's private hook; pinned pyiceberg keeps it stable here.
        session = super()._create_session()
        timeout = (
            float(self.properties.get(CONNECT_TIMEOUT_PROPERTY, DEFAULT_TIMEOUTS[0])),
            float(self.properties.get(READ_TIMEOUT_PROPERTY, DEFAULT_TIMEOUTS[1])),
        )
        adapter = _DefaultTimeoutAdapter(timeout)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


def call_catalog(uri: str, action: Callable[[], T]) -> T:
    """Runs a catalog call, turning connection failures and timeouts into a CatalogUnavailableError."""
    try:
        return action()
    except (requests.ConnectionError, requests.Timeout) as error:
        raise CatalogUnavailableError(
            f"Iceberg catalog at {uri} did not answer ({type(error).__name__}); is it up? `make up` restarts it"
        ) from error


def load_rest_catalog(properties: Mapping[str, str], name: str = "cdcstack") -> Catalog:
    """The stack's catalog (see the `iceberg_catalog_properties` output) with bounded requests."""
    return call_catalog(properties["uri"], lambda: TimeoutRestCatalog(name, **dict(properties)))
