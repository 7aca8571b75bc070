"""What the two record formats of a Debezium topic share: how a record tells its format, the error
that dead-letters a record, and what decodes the Avro part. Imported by both `pipelines.debezium`
and `pipelines.avro`, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

CONFLUENT_HEADER_BYTES = 5
"""What precedes the Avro binary in the Confluent wire format: byte 0, a 4-byte big-endian schema id."""


class DecodeError(ValueError):
    """A record is not a Debezium change event this decoder understands (terminal: dead-letter it)."""


def is_confluent_avro(raw: Any) -> bool:
    """Whether a key or value is framed as Confluent Avro (byte 0 and a schema id first)."""
    return isinstance(raw, (bytes, bytearray, memoryview)) and len(raw) >= CONFLUENT_HEADER_BYTES and raw[0] == 0


class FramedAvroDecoder(Protocol):
    """Turns a Confluent-framed Avro key or value into the JSON converter's `(payload, schema)`
    (`pipelines.avro.AvroDecoder` is the one there is)."""

    def decode(self, raw: bytes, part: str, where: str) -> tuple[Any, Mapping[str, Any]]: ...
