"""`make bench`: toolchain install time (cold and cached), `pulumi up` from nothing to healthy,
a no-change `pulumi up`, `pulumi destroy`, the resident memory of the running stack, and the CDC,
Iceberg, Delta and schema registry figures (`bench.cdc`, `bench.iceberg`, `bench.delta`,
`bench.schema_registry`).

Runs on a throwaway stack with its own ports, so the dev stack is left as it is.
Set BENCH_COLD_TOOLCHAIN=0 to skip the cold toolchain build (about three minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import stack_outputs as out
from bench import cdc, delta, iceberg, print_figures, schema_registry
from bench.memory import memory_kib, stack_pids
from testkit.stack import PROJECT_ROOT, init_throwaway_stack, remove_throwaway_stack, toolchain_env


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def install_toolchain(env_overrides: dict[str, str]) -> None:
    subprocess.run(
        ["bash", "toolchain/install.sh"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env_overrides},
        check=True,
        stdout=subprocess.DEVNULL,
    )


def cold_toolchain_seconds() -> float:
    """A toolchain install into empty caches: fresh toolchain dir, venv and Go build and module caches.

    Debian packages stay installed and Maven's and pip's download caches stay warm.
    """
    with tempfile.TemporaryDirectory(prefix="cdcstack-cold-") as scratch:
        root = Path(scratch)
        # Without the project's own toolchain on PATH, or the installer would reuse its pulumi.
        path = os.pathsep.join(
            entry for entry in os.environ["PATH"].split(os.pathsep) if not entry.startswith(str(PROJECT_ROOT))
        )
        overrides = {
            "PATH": path,
            "CDCSTACK_TOOLCHAIN_DIR": str(root / "toolchain"),
            "CDCSTACK_VENV": str(root / "venv"),
            "GOCACHE": str(root / "go-build"),
            "GOMODCACHE": str(root / "go-mod"),
            "GOFLAGS": "-modcacherw",
        }
        try:
            return timed(lambda: install_toolchain(overrides))
        finally:
            shutil.rmtree(root, ignore_errors=True)


def stack_figures() -> list[tuple[str, str]]:
    cli, _ = init_throwaway_stack("bench", "bench-postgres", "bench-mysql")
    try:
        up_seconds = timed(cli.up)
        no_change_seconds = timed(cli.up)
        outputs = cli.outputs()
        state_dir = Path(outputs["state_dir"])
        rss, pss = memory_kib(stack_pids(state_dir))
        cdc_figures = [("kafka connect worker, launch to healthy", f"{cdc.worker_start_seconds(cli):.1f} s")]
        for changes_per_second, duration in ((100, 20), (1000, 10)):
            report = cdc.streaming_lag(outputs, changes_per_second, duration)
            cdc_figures.append(
                (
                    f"streaming lag at {changes_per_second}/s (achieved {report.achieved_rate:.0f}/s, {report.expected} changes)",
                    f"p50 {report.percentile(0.5):.0f} ms, p95 {report.percentile(0.95):.0f} ms, "
                    f"p99 {report.percentile(0.99):.0f} ms, arrived {len(report.samples_ms)}",
                )
            )
        # After the lag runs: the snapshot's 100k-row insert would otherwise leave WAL to decode behind them.
        rate, seconds = cdc.snapshot_rows_per_second(outputs)
        cdc_figures.append((f"snapshot of {cdc.SNAPSHOT_ROWS:,} rows (postgres)", f"{rate:,.0f} rows/s ({seconds:.1f} s)"))
        suite_seconds, suite_summary = iceberg.spec_suite_seconds(cli.stack)
        cdc_figures.append(("Iceberg suite (the spec's command)", f"{suite_seconds:.1f} s ({suite_summary})"))
        io = iceberg.write_and_read_seconds(outputs)
        cdc_figures += [
            (f"iceberg: write {iceberg.ROWS:,} CDC rows as append", f"{io['append']:.2f} s"),
            (f"iceberg: write {iceberg.ROWS:,} CDC rows as upsert", f"{io['upsert']:.2f} s"),
            (f"iceberg: read back {iceberg.ROWS:,} rows", f"{io['read']:.2f} s"),
        ]
        lag = iceberg.commit_to_iceberg_lag(outputs)
        cdc_figures.append(
            ("source commit -> visible in Iceberg (200 changes at 50/s)", f"p50 {lag.percentile(0.5):.0f} ms, p95 {lag.percentile(0.95):.0f} ms, {len(lag.samples_ms)} of {lag.expected}")
        )
        cdc_figures += delta.figures(outputs)
        cdc_figures += schema_registry.figures(outputs[out.SCHEMA_REGISTRY_URL])
        destroy_seconds = timed(cli.destroy)
    finally:
        remove_throwaway_stack(cli)
    return [
        ("pulumi up, nothing to healthy and connectors RUNNING (process runtime)", f"{up_seconds:.1f} s"),
        ("pulumi up, no changes", f"{no_change_seconds:.1f} s"),
        ("pulumi destroy", f"{destroy_seconds:.1f} s"),
        ("resident memory of the running stack (RSS sum)", f"{rss / 1024:.0f} MiB"),
        ("resident memory of the running stack (PSS sum)", f"{pss / 1024:.0f} MiB"),
        *cdc_figures,
    ]


def main() -> None:
    toolchain_env()
    figures: list[tuple[str, str]] = []
    if os.environ.get("BENCH_COLD_TOOLCHAIN", "1") != "0":
        figures.append(("make toolchain, cold (empty caches)", f"{cold_toolchain_seconds():.1f} s"))
    figures.append(("make toolchain, cached", f"{timed(lambda: install_toolchain({})):.1f} s"))
    figures += stack_figures()
    print_figures(figures)


if __name__ == "__main__":
    main()
