#!/bin/bash
# mm's side of the backtest-at-scale benchmark (docs/backtest-at-scale.md).
#
#   tools/bench-scale.sh N [SCRATCH]   (from the repo root, after cargo build --release)
#
# Builds the N-pass input with ../shared/bench/hftbacktest/gen_big.py (once), converts it to
# mm's journal (.mmj) and decoded tape (.mmt) (once, not timed), then times under
# /usr/bin/time, min of 3 runs each: the backtest from the .gz, the .mmj and the .mmt, and the
# pure replay (--mode=replay) from the .gz and the .mmt. Prints CPU (user + sys), wall, peak
# RSS, and the replay loop's µs per event as the backtest prints it. Scratch data goes to
# SCRATCH (default: a folder under /tmp), never into the repo.
set -euo pipefail
N=${1:?usage: tools/bench-scale.sh N [SCRATCH]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MM=${MM_BIN:-$ROOT/target/release/mm}
SHARED=${MM_SHARED:-$(cd "$ROOT/../shared" && pwd)}
DIR=${2:-/tmp/mm-bench-scale}
mkdir -p "$DIR"
cd "$DIR"
GZ=btc_x$N.gz
[ -f "$GZ" ] || MM_SHARED=$SHARED python3 "$SHARED/bench/hftbacktest/gen_big.py" "$N" "$GZ"
[ -f "btc_x$N.mmj" ] || "$MM" --mode=convert --data "$GZ" --out "btc_x$N.mmj" >/dev/null
[ -f "btc_x$N.mmt" ] || "$MM" --mode=convert --data "$GZ" --out "btc_x$N.mmt" >/dev/null

# run NAME ARGS...: min of 3 of CPU seconds; prints one row.
run() {
  local name=$1; shift
  local best_cpu="" best_line=""
  for _ in 1 2 3; do
    rm -rf runs
    /usr/bin/time -f "%U %S %e %M" -o t.txt "$MM" "$@" --out runs >out.txt 2>err.txt || {
      echo "$name: failed"; cat err.txt; return 1; }
    read -r user sys wall rss <t.txt
    cpu=$(echo "$user + $sys" | bc)
    if [ -z "$best_cpu" ] || [ "$(echo "$cpu < $best_cpu" | bc)" = 1 ]; then
      best_cpu=$cpu
      loop=$(grep -o 'replayed [0-9]* events in [0-9.]* s' out.txt | awk '{printf "%.3f", $5 * 1e6 / $2}' || true)
      best_line=$(printf "| %-28s | %8s | %6s | %8.1f | %s |" "$name" "$cpu" "$wall" "$(echo "$rss / 1024" | bc -l)" "${loop:--}")
    fi
  done
  echo "$best_line"
}

echo "N = $N passes; mm $("$MM" --version 2>/dev/null || true)"
echo "| run | CPU s | wall s | peak RSS MB | replay loop µs/event |"
echo "| --- | ---: | ---: | ---: | ---: |"
run "backtest from .gz" --mode=backtest --data "$GZ"
run "backtest from .mmj" --mode=backtest --data "btc_x$N.mmj"
run "backtest from .mmt" --mode=backtest --data "btc_x$N.mmt"
run "replay (no trading) .gz" --mode=replay --data "$GZ"
run "replay (no trading) .mmt" --mode=replay --data "btc_x$N.mmt"
