"""Idempotent SQL seeds for the sample `inventory` schemas, read as lists of statements."""

from __future__ import annotations

from pathlib import Path

SEEDS_DIR = Path(__file__).resolve().parent


def statements(seed_name: str) -> list[str]:
    """The seed's statements, split at lines ending in ';' (the seed files hold no procedural blocks)."""
    text = "\n".join(
        line for line in (SEEDS_DIR / f"{seed_name}.sql").read_text().splitlines() if not line.lstrip().startswith("--")
    )
    result, current = [], []
    for line in text.splitlines():
        current.append(line)
        if line.rstrip().endswith(";"):
            result.append("\n".join(current).strip().rstrip(";"))
            current = []
    if "".join(current).strip():
        result.append("\n".join(current).strip())
    return [statement for statement in result if statement]
