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
#
# Inputs made before (nothing is generated, built or converted for those given):
#   MM_TAPE=…/btc_xN.mmt    mm's input        HBT_NPZ=…/btc_xN_bbo.npz   hftbacktest's input
#   HBT_BT=…/release/bt     hftbacktest's bt, built   MM_BIN=…/mm   another mm build
# e.g. MM_TAPE=/data/btc_x100.mmt HBT_NPZ=/data/btc_x100_bbo.npz \
#      HBT_BT=/data/hbt/target/release/bt tools/bench-vs-hftbacktest.sh 100
set -euo pipefail
N=${1:?usage: tools/bench-vs-hftbacktest.sh N [SCRATCH]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MM=${MM_BIN:-$ROOT/target/release/mm}
SHARED=${MM_SHARED:-$(cd "$ROOT/../shared" && pwd)}
DIR=${2:-/tmp/mm-vs-hbt}
mkdir -p "$DIR/runs"
cd "$DIR"
GZ=btc_x$N.gz
MMT=${MM_TAPE:-$DIR/btc_x$N.mmt}
NPZ=${HBT_NPZ:-$DIR/btc_x${N}_bbo.npz}
if { [ ! -f "$MMT" ] || [ ! -f "$NPZ" ]; } && [ ! -f "$GZ" ]; then
  MM_SHARED=$SHARED python3 "$SHARED/bench/hftbacktest/gen_big.py" "$N" "$GZ"
fi
if [ -n "${HBT_BT:-}" ]; then
  BT=$HBT_BT
else
  [ -d hbt ] || cp -r "$SHARED/bench/hftbacktest/hbt" hbt
  (cd hbt && cargo build --release --quiet)
  BT=$DIR/hbt/target/release/bt
fi
[ -f "$NPZ" ] || "$(dirname "$BT")/convert" "$GZ" "$NPZ" --bbo
[ -f "$MMT" ] || "$MM" --mode=convert --data "$GZ" --out "$MMT" >/dev/null
echo "mm: $MM ($MMT)"
echo "hftbacktest: $BT ($NPZ)"
uptime

timed() {
  local name=$1; shift
  /usr/bin/time -f "$name user %U sys %S wall %e maxrss %M" "$@" >"runs/$name.out" 2>"runs/$name.err"
  tail -1 "runs/$name.err"
}
for rep in 1 2 3; do
  timed "mm_backtest_mmt_$rep" "$MM" --mode=backtest --symbol=BTCUSDT --out runs/reports --data "$MMT"
  grep -o 'replayed [0-9]* events in .*' "runs/mm_backtest_mmt_$rep.out" || true
  timed "hbt_quote_roivec_bbo_$rep" "$BT" "$NPZ" --mode quote --depth roivec --queue riskadverse
  timed "mm_replay_mmt_$rep" "$MM" --mode=replay --symbol=BTCUSDT --data "$MMT"
  timed "hbt_replay_roivec_bbo_$rep" "$BT" "$NPZ" --mode replay --depth roivec --queue riskadverse
done
uptime
