#!/bin/bash
# The 30-day-equivalent backtest (docs/backtest-at-scale.md, "30-day-equivalent run"):
# PASSES (default 4,000) back-to-back passes of the 10.8-minute BTCUSDT session — 30.1 days
# of data time, 398 M messages — written by tools/gen-passes.rs into a named pipe and
# replayed by one streamed backtest in one pass, under /usr/bin/time -v, at nice 19. No
# data file is written (a 4,000-pass capture would be ~17 GB gzipped, its .mmt ~44 GB).
#
#   tools/bench-30day.sh [PASSES] [DIR]   (from the repo root, after cargo build --release)
#
# The pipe is read once, so the feed latency is fixed: 10 ms, what the default
# (`venue.feed_latency = "data"`) takes for this data, whose recorder clock ran 1.27 s
# behind the exchange's (median out of range, so venue.feed_latency_default, 10 ms).
set -euo pipefail
PASSES=${1:-4000}
DIR=${2:-/tmp/mm30}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MM=${MM_BIN:-$ROOT/target/release/mm}
export MM_SHARED=${MM_SHARED:-$(cd "$ROOT/../shared" && pwd)}
mkdir -p "$DIR"
cd "$DIR"
# Passes 0 and 1 from the project's generator; the repeater shifts pass 1 for the rest.
[ -f two.txt ] || { python3 "$MM_SHARED/bench/hftbacktest/gen_big.py" 2 two.gz && gunzip -c two.gz >two.txt && rm two.gz; }
[ -x gen-passes ] || rustc -O -o gen-passes "$ROOT/tools/gen-passes.rs"
rm -rf runs pipe && mkfifo pipe
nice -n 19 ./gen-passes two.txt "$PASSES" >pipe 2>gen.txt &
gen=$!
status=0
nice -n 19 /usr/bin/time -v "$MM" --mode=backtest --data pipe --set venue.feed_latency=10ms \
  --out runs >out.txt 2>time.txt || status=$?
wait $gen || true
rm -f pipe
cat out.txt
grep -E 'Maximum resident|User time|System time|Elapsed|Exit status' time.txt
echo "exit $status; the report folder is in $DIR/runs (remove $DIR when done)"
