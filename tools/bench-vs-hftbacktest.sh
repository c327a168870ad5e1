#!/bin/bash
# mm and hftbacktest 0.9.4 side by side on the same N-pass input (docs/backtest-at-scale.md).
#
#   tools/bench-vs-hftbacktest.sh N [SCRATCH]   (from the repo root, after cargo build --release)
#
# Builds the N-pass input with ../shared/bench/hftbacktest/gen_big.py (once), builds that
# folder's hftbacktest project (hbt/, same release profile as mm) into SCRATCH, converts the
# input once for each tool (hbt's `convert --bbo` → .npz, `mm --mode=convert` → .mmt; not
# timed), then runs them interleaved (mm, hbt, mm, hbt, …) three times under /usr/bin/time:
# the backtest with its strategy and the book-only replay of each. Prints one line per run
# with user and system CPU seconds, wall seconds and peak RSS (KB); compare the minima of
# user + sys. Scratch data goes to SCRATCH (default /tmp/mm-vs-hbt), never into the repo.
set -euo pipefail
N=${1:?usage: tools/bench-vs-hftbacktest.sh N [SCRATCH]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MM=${MM_BIN:-$ROOT/target/release/mm}
SHARED=${MM_SHARED:-$(cd "$ROOT/../shared" && pwd)}
DIR=${2:-/tmp/mm-vs-hbt}
mkdir -p "$DIR/runs"
cd "$DIR"
GZ=btc_x$N.gz
[ -f "$GZ" ] || MM_SHARED=$SHARED python3 "$SHARED/bench/hftbacktest/gen_big.py" "$N" "$GZ"
[ -d hbt ] || cp -r "$SHARED/bench/hftbacktest/hbt" hbt
(cd hbt && cargo build --release --quiet)
BT=$DIR/hbt/target/release/bt
[ -f "btc_x${N}_bbo.npz" ] || ./hbt/target/release/convert "$GZ" "btc_x${N}_bbo.npz" --bbo
[ -f "btc_x$N.mmt" ] || "$MM" --mode=convert --data "$GZ" --out "btc_x$N.mmt" >/dev/null

timed() {
  local name=$1; shift
  /usr/bin/time -f "$name user %U sys %S wall %e maxrss %M" "$@" >"runs/$name.out" 2>"runs/$name.err"
  tail -1 "runs/$name.err"
}
for rep in 1 2 3; do
  timed "mm_backtest_mmt_$rep" "$MM" --mode=backtest --symbol=BTCUSDT --out runs/reports --data "btc_x$N.mmt"
  timed "hbt_quote_roivec_bbo_$rep" "$BT" "btc_x${N}_bbo.npz" --mode quote --depth roivec --queue riskadverse
  timed "mm_replay_mmt_$rep" "$MM" --mode=replay --symbol=BTCUSDT --data "btc_x$N.mmt"
  timed "hbt_replay_roivec_bbo_$rep" "$BT" "btc_x${N}_bbo.npz" --mode replay --depth roivec --queue riskadverse
done
