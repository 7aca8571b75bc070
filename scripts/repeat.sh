#!/usr/bin/env bash
# Runs one pytest command N times in a row against the live stack and prints, per test, how many
# runs it passed and failed (a skip or xfail counts as a failure, as in the suite), then each run's
# outcome and time. Exits non-zero when any run failed.
#   scripts/repeat.sh 10 -- tests/integration/test_deltalake_cdc.py tests/e2e/test_postgres_to_delta.py
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { echo "usage: scripts/repeat.sh N -- <pytest args>" >&2; exit 2; }
[ $# -ge 3 ] && [ "$2" = "--" ] || usage
runs=$1
shift 2
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || usage

source toolchain/env.sh
reports="reports/repeat/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$reports"
for ((run = 1; run <= runs; run++)); do
  started=$SECONDS
  python -m pytest -q -p no:cacheprovider --junitxml="$reports/run-$run.xml" "$@" > "$reports/run-$run.log" 2>&1
  status=$?
  echo "run $run/$runs: exit $status in $((SECONDS - started)) s: $(tail -n 1 "$reports/run-$run.log")"
done
python -m testkit.repeat_report "$reports" "$runs"
