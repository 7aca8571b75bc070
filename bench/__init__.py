"""`make bench`: the figures issues ask for, printed as a table."""

from __future__ import annotations


def print_figures(figures: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in figures)
    print(f"{'figure'.ljust(width)}  value")
    for name, value in figures:
        print(f"{name.ljust(width)}  {value}")
