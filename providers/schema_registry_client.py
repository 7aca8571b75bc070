"""A small client for the Confluent-compatible Schema Registry API, mapping HTTP status to cdcstack's
errors per call.

Written against Apicurio Registry 2.6's `/apis/ccompat/v7`, which differs from Confluent's registry
in ways callers must know:

- a registration is deduplicated on the exact text only: the same schema reformatted becomes a new
  version with a new id, so callers compare schemas with `canonical` before registering;
- `GET /config/{subject}` answers the global level for a subject without its own (never 40408), and
  `PUT /config/{subject}` is accepted for a subject that does not exist yet;
- `POST /compatibility/subjects/{s}/versions` checks against every version whatever the level, and
  `…/versions/latest` against the latest only: only the one matching the level (transitive or not)
  answers what a registration would;
- a permanent delete needs a soft delete first (409, 40405 / 40407), a second soft delete is 404
  40404 (subject) or 409 40406 (version), and a permanent delete also removes the content of the
  versions it deletes: their ids no longer resolve (`GET /schemas/ids/{id}` is 404);
- identical first registrations racing on a new subject agree on one id, but may each add a version
  of it, and a loser of the race to create the subject may be answered 409 "already exists"
  (`register` tries again);
- a soft-deleted subject takes new registrations, numbering on after its deleted versions; only a
  permanently deleted one starts again from version 1 (and with no subject-level config).

Strict primitives (`register`, `versions`, `delete_version`, …) raise on anything unexpected; the
idempotent helpers a Pulumi provider needs (`latest`, `lookup`, `delete_subject`,
`delete_version_if_present`) are layered over them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping, NoReturn
from urllib.parse import quote

import httpx

from providers.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    SchemaRegistryUnavailableError,
    SubjectNotFoundError,
    SubjectStateError,
)

REQUEST_TIMEOUT_SECONDS = 15.0
SCHEMA_TYPE = "AVRO"
"""Sent with every schema: without it Apicurio guesses the type from the content."""
COMPATIBILITY_LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_SOFT_DELETED = 40404
SUBJECT_NOT_SOFT_DELETED = 40405
VERSION_SOFT_DELETED = 40406
VERSION_NOT_SOFT_DELETED = 40407
ARTIFACT_EXISTS = "already exists"
"""In the message of the 409 that the loser of two first registrations racing on a new subject gets."""
REGISTER_ATTEMPTS = 3
REGISTER_RETRY_SECONDS = 0.1
JAVA_EXCEPTION_PREFIX = re.compile(r"^(?:[\w$]+\.)+[\w$]*Exception:\s*")
"""Apicurio puts the Java exception's class before the reason of a 409."""


def canonical(schema: str) -> str:
    """The schema's JSON with sorted keys and no whitespace: equal for two texts of the same schema.

    Key order and layout carry no meaning in Avro's JSON; array order (fields, symbols, union
    branches) does and is kept. Not Avro's Parsing Canonical Form, which drops defaults, docs and
    aliases: a changed default is a change to the subject. Raises ValueError on text that is not JSON.
    """
    return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def same_schema(left: str, right: str) -> bool:
    """Two schema texts say the same, whatever their layout (text that is not JSON compares as text)."""
    try:
        return canonical(left) == canonical(right)
    except ValueError:
        return left == right


def is_transitive(level: str) -> bool:
    return level.endswith("_TRANSITIVE")


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a subject, as the registry returns it."""

    subject: str
    version: int
    id: int
    """The id records carry (Apicurio's content id)."""
    schema: str
    """The schema text as registered (not reformatted by the registry)."""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> RegisteredSchema:
        return cls(subject=body["subject"], version=int(body["version"]), id=int(body["id"]), schema=body["schema"])


class SchemaRegistryClient:
    """One registry's Confluent API base (`…/apis/ccompat/v7`). `log_hint` (its log path) is added to every error message.

    Each call opens its own connection unless `http` (a keep-alive `httpx.Client`, which may be
    shared between threads) is given: that costs some 40 ms a call, nothing to a provider, but it
    would be most of what a benchmark measures.
    """

    def __init__(
        self, url: str, log_hint: str = "", timeout: float = REQUEST_TIMEOUT_SECONDS, http: httpx.Client | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.log_hint = log_hint
        self.timeout = timeout
        self.http = http

    def where(self) -> str:
        return f"Schema Registry at {self.url}" + (f" (log: {self.log_hint})" if self.log_hint else "")

    def _request(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> httpx.Response:
        try:
            send = self.http.request if self.http is not None else httpx.request
            return send(method, f"{self.url}{path}", json=body, params=params, timeout=self.timeout)
        except httpx.HTTPError as error:
            raise SchemaRegistryUnavailableError(f"{self.where()} did not answer {method} {path}: {error!r}") from error

    @staticmethod
    def _error(response: httpx.Response) -> tuple[int, str]:
        """(the registry's error_code, or the HTTP status; its message)."""
        try:
            body = response.json()
        except ValueError:
            return response.status_code, response.text
        if not isinstance(body, Mapping):
            return response.status_code, response.text
        return int(body.get("error_code") or response.status_code), str(body.get("message", response.text))

    @staticmethod
    def _cause(response: httpx.Response) -> httpx.HTTPStatusError:
        """httpx's own error for the answer, to chain ours to."""
        request = response.request
        return httpx.HTTPStatusError(f"{response.status_code} to {request.method} {request.url}", request=request, response=response)

    def _fail(self, response: httpx.Response, what: str) -> NoReturn:
        """Raises the error for an unexpected answer: 404 not found, 409 a deleted state in the way,
        400/422 invalid, anything else (5xx) unavailable."""
        code, message = self._error(response)
        status = response.status_code
        detail = f"{what}: {self.where()} answered {status} ({code}): {message}"
        if status == 404:
            raise SubjectNotFoundError(detail) from self._cause(response)
        if status == 409:
            raise SubjectStateError(detail) from self._cause(response)
        if status in (400, 422):
            raise InvalidSchemaError(detail) from self._cause(response)
        raise SchemaRegistryUnavailableError(detail) from self._cause(response)

    def _expect(self, response: httpx.Response, what: str) -> Any:
        if response.status_code == 200:
            return response.json()
        self._fail(response, what)

    def _schema_body(self, schema: str) -> dict[str, str]:
        return {"schema": schema, "schemaType": SCHEMA_TYPE}

    def subjects(self, include_deleted: bool = False) -> list[str]:
        params = {"deleted": "true"} if include_deleted else None
        return self._expect(self._request("GET", "/subjects", params=params), "list subjects")

    def versions(self, subject: str, include_deleted: bool = False) -> list[int]:
        """The subject's version numbers, ascending; SubjectNotFoundError if it has none (or is soft deleted)."""
        params = {"deleted": "true"} if include_deleted else None
        response = self._request("GET", f"/subjects/{quote(subject, safe='')}/versions", params=params)
        return sorted(int(v) for v in self._expect(response, f"subject {subject}"))

    def version(self, subject: str, version: int | str = "latest", include_deleted: bool = False) -> RegisteredSchema:
        params = {"deleted": "true"} if include_deleted else None
        response = self._request("GET", f"/subjects/{quote(subject, safe='')}/versions/{version}", params=params)
        return RegisteredSchema.parse(self._expect(response, f"subject {subject} version {version}"))

    def latest(self, subject: str) -> RegisteredSchema | None:
        """The latest live version, or None when the subject has none (never registered, or deleted)."""
        try:
            return self.version(subject, "latest")
        except SubjectNotFoundError:
            return None

    def lookup(self, subject: str, schema: str) -> RegisteredSchema | None:
        """The live version of `subject` holding `schema` (compared canonically), or None.

        The registry's own lookup (`POST /subjects/{s}`) matches the exact text only, so a miss is
        followed by a scan of the versions, newest first.
        """
        response = self._request("POST", f"/subjects/{quote(subject, safe='')}", self._schema_body(schema))
        if response.status_code == 200:
            return RegisteredSchema.parse(response.json())
        code, _ = self._error(response)
        if response.status_code != 404:
            self._fail(response, f"look up a schema under subject {subject}")
        if code == SUBJECT_NOT_FOUND:
            return None
        try:
            versions = self.versions(subject)
        except SubjectNotFoundError:
            return None
        for number in reversed(versions):
            try:
                registered = self.version(subject, number)
            except SubjectNotFoundError:
                continue
            if same_schema(registered.schema, schema):
                return registered
        return None

    def register(self, subject: str, schema: str) -> int:
        """Registers `schema` under `subject` (creating it) and returns its id.

        The exact text already under the subject returns its id and adds no version (but identical
        registrations racing on a new subject may each add one, all with the same id). A schema that
        breaks the subject's level is IncompatibleSchemaError carrying the registry's reason.
        """
        path = f"/subjects/{quote(subject, safe='')}/versions"
        for attempt in range(1, REGISTER_ATTEMPTS + 1):
            response = self._request("POST", path, self._schema_body(schema))
            if response.status_code != 409:
                break
            _, message = self._error(response)
            if ARTIFACT_EXISTS not in message:
                reason = JAVA_EXCEPTION_PREFIX.sub("", message)
                raise IncompatibleSchemaError(
                    f"subject {subject}: {self.where()} rejected the schema as incompatible: {reason}", reason
                ) from self._cause(response)
            # Lost a race to create the subject: it exists now, so registering again adds to it.
            if attempt < REGISTER_ATTEMPTS:
                time.sleep(REGISTER_RETRY_SECONDS)
        return int(self._expect(response, f"register a schema under subject {subject}")["id"])

    def check_compatibility(self, subject: str, schema: str, transitive: bool) -> tuple[bool, str]:
        """(compatible, the registry's reason) of `schema` under the subject's live level.

        `transitive` checks against every version (what a registration under a `*_TRANSITIVE` level
        does), else against the latest only. SubjectNotFoundError when the subject has no version.
        """
        path = f"/compatibility/subjects/{quote(subject, safe='')}/versions" + ("" if transitive else "/latest")
        response = self._request("POST", path, self._schema_body(schema), params={"verbose": "true"})
        result = self._expect(response, f"check a schema against subject {subject}")
        return bool(result["is_compatible"]), str(result.get("reason") or "")

    def get_compatibility(self, subject: str) -> str:
        """The subject's level: its own, else the global one (Apicurio answers either alike).

        SubjectNotFoundError for a subject that has neither versions nor a level of its own.
        """
        response = self._request("GET", f"/config/{quote(subject, safe='')}")
        return str(self._expect(response, f"compatibility of subject {subject}")["compatibilityLevel"])

    def set_compatibility(self, subject: str, level: str) -> None:
        if level not in COMPATIBILITY_LEVELS:
            raise InvalidSchemaError(f"subject {subject}: {level!r} is not one of {list(COMPATIBILITY_LEVELS)}")
        response = self._request("PUT", f"/config/{quote(subject, safe='')}", {"compatibility": level})
        self._expect(response, f"set compatibility {level} of subject {subject}")

    def delete_config_if_present(self, subject: str) -> bool:
        """Removes the subject's own level (it then follows the global one); True if it had one."""
        response = self._request("DELETE", f"/config/{quote(subject, safe='')}")
        if response.status_code == 404:
            return False
        self._expect(response, f"delete the compatibility of subject {subject}")
        return True

    def soft_delete_subject(self, subject: str) -> list[int]:
        """Soft delete only: the versions it returns stay listed with `include_deleted` and their ids resolve."""
        response = self._request("DELETE", f"/subjects/{quote(subject, safe='')}")
        return sorted(int(v) for v in self._expect(response, f"soft delete subject {subject}"))

    def delete_subject(self, subject: str) -> list[int]:
        """Soft, then permanent delete of the subject and its level; already gone is success.

        Returns the version numbers the permanent delete removed ([] when it was gone). Safe to
        retry after either step: a subject soft deleted already goes straight to the permanent delete.
        """
        path = f"/subjects/{quote(subject, safe='')}"
        response = self._request("DELETE", path)
        code, _ = self._error(response) if response.status_code != 200 else (200, "")
        if response.status_code == 404 and code == SUBJECT_NOT_FOUND:
            # No version, but perhaps a level set ahead of one (which a later subject would inherit).
            self.delete_config_if_present(subject)
            return []
        if response.status_code != 200 and code != SUBJECT_SOFT_DELETED:
            self._fail(response, f"soft delete subject {subject}")
        response = self._request("DELETE", path, params={"permanent": "true"})
        if response.status_code == 404 and self._error(response)[0] == SUBJECT_NOT_FOUND:
            # Deleted by someone else in between.
            return []
        # No level to remove: the permanent delete takes the subject's with it.
        return sorted(int(v) for v in self._expect(response, f"permanently delete subject {subject}"))

    def delete_version_if_present(self, subject: str, version: int) -> bool:
        """Soft, then permanent delete of one version; True if it existed (live or soft deleted).

        The permanent delete also removes the version's content: its id no longer resolves.
        """
        path = f"/subjects/{quote(subject, safe='')}/versions/{version}"
        response = self._request("DELETE", path)
        code, _ = self._error(response) if response.status_code != 200 else (200, "")
        if response.status_code == 404 and code in (SUBJECT_NOT_FOUND, VERSION_NOT_FOUND):
            return False
        if response.status_code != 200 and code != VERSION_SOFT_DELETED:
            self._fail(response, f"soft delete subject {subject} version {version}")
        response = self._request("DELETE", path, params={"permanent": "true"})
        if response.status_code == 404 and self._error(response)[0] in (SUBJECT_NOT_FOUND, VERSION_NOT_FOUND):
            return True
        self._expect(response, f"permanently delete subject {subject} version {version}")
        return True
