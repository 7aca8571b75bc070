"""Names a test or a bench run owns: unique per run, so they never collide with each other or with seeded objects."""

from __future__ import annotations

import uuid


def unique_name(prefix: str) -> str:
    """`<prefix>_<8 hex>`: valid as a table, topic, slot, publication or connector name."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"
