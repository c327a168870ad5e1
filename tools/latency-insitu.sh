#!/bin/bash
# In-situ tick-to-quote, per stage (docs/latency.md): paper trading against the local
# exchange replaying the bundled BTCUSDT slice at 1x over TLS on loopback, the hot thread
# pinned, then `mm --mode=latency` on the session's dump beside the criterion bench median.
#
#   tools/latency-insitu.sh [--seconds N] [--core C] [--exchange-core C] [--no-build]
#                           [--bench] [--set KEY=VALUE]...        (from anywhere)
#
#   --seconds N         how long the paper session trades (default 60)
#   --core C            the core the hot thread is pinned to (engine.cpu_core; default: the
#                       last online core)
#   --exchange-core C   the core mm-exchange is pinned to with taskset (default: core 0;
#                       the same as --core on a 1-core host)
#   --no-build          use the binaries as they are (MM_BIN / MM_EXCHANGE_BIN, default
#                       target/release/)
#   --bench             run `cargo bench --bench tick_to_quote -- tick_to_quote/book_ticker`
#                       first (otherwise the median of the last criterion run is read
#                       from target/criterion, if there is one)
#   --speed X           the exchange's replay speed (default 1: as recorded; 10 sends the
#                       same bursts ten times closer together)
#   --set KEY=VALUE     passed on to mm (repeatable)
#   --nice N            run mm under `nice -n N` (N < 0 needs root: on a shared machine it
#                       keeps other processes' time slices off the hot thread's core)
#
# Run it on an idle machine: the load average is printed before and after, and the run
# says so when the machine was busy (load above half the cores). Scratch files go to a
# fresh folder under /tmp (printed), never into the repo. Exit code: mm's.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION_S=60
CORES=$(nproc)
CORE=$((CORES - 1))
EXCHANGE_CORE=0
BUILD=1
BENCH=0
SPEED=1
SETS=()
NICE=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) DURATION_S=${2:?}; shift 2 ;;
    --core) CORE=${2:?}; shift 2 ;;
    --exchange-core) EXCHANGE_CORE=${2:?}; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --bench) BENCH=1; shift ;;
    --speed) SPEED=${2:?}; shift 2 ;;
    --set) SETS+=(--set "${2:?}"); shift 2 ;;
    --nice) NICE=(nice -n "${2:?}"); shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "latency-insitu: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $DURATION_S in ''|*[!0-9]*) echo "latency-insitu: --seconds wants whole seconds, got $DURATION_S" >&2; exit 2 ;; esac
[ "$DURATION_S" -ge 10 ] || { echo "latency-insitu: --seconds must be at least 10" >&2; exit 2; }
[ "$CORES" -gt 1 ] || EXCHANGE_CORE=$CORE

MM=${MM_BIN:-$ROOT/target/release/mm}
EXCHANGE=${MM_EXCHANGE_BIN:-$ROOT/target/release/mm-exchange}
DATA=$ROOT/tools/data/btcusdt_20240808.gz
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release --bin mm --bin mm-exchange)
fi
[ -x "$MM" ] && [ -x "$EXCHANGE" ] || { echo "latency-insitu: no $MM or $EXCHANGE (build them, or drop --no-build)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/mm-latency-insitu.XXXXXX)
echo "latency-insitu: work folder $WORK; mm $("$MM" --version 2>/dev/null || true)"
EXCHANGE_PID=
cleanup() {
  if [ -n "$EXCHANGE_PID" ]; then kill "$EXCHANGE_PID" 2>/dev/null || true; wait "$EXCHANGE_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_BEFORE=$(load)
echo "load average before: $LOAD_BEFORE ($CORES cores)"

# The exchange on its own core, replaying at 1x; it prints its port and certificate.
taskset -c "$EXCHANGE_CORE" "$EXCHANGE" --data "$DATA" --port 0 --speed "$SPEED" \
  --cert-out "$WORK/cert.pem" --stdin off </dev/null >"$WORK/exchange.out" 2>"$WORK/exchange.err" &
EXCHANGE_PID=$!
PORT=
for _ in $(seq 1 100); do
  PORT=$(sed -n 's/^mm-exchange listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$WORK/exchange.out")
  [ -n "$PORT" ] && break
  kill -0 "$EXCHANGE_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "latency-insitu: mm-exchange did not start:" >&2; cat "$WORK/exchange.err" >&2; exit 1; }

# Paper trading with the hot thread pinned; a tight quote (as the tests set it) so that
# orders move and tick-to-quote has samples.
HOURS=$(echo "scale=6; $DURATION_S / 3600" | bc)
echo "paper trading for $DURATION_S s against 127.0.0.1:$PORT, hot thread on core $CORE, mm-exchange on core $EXCHANGE_CORE"
cd "$WORK"
"${NICE[@]}" "$MM" --mode=paper-trading --endpoint="wss://127.0.0.1:$PORT" --ca="$WORK/cert.pem" \
  --duration="$HOURS" --set engine.cpu_core="$CORE" --set quoting.spread_min_bps=1 \
  --set quoting.spread_max_bps=2 "${SETS[@]}" >"$WORK/paper.out" 2>"$WORK/paper.err" &
MM_PID=$!
# How often the hot thread (mm's main thread) was switched out against its will, over the
# middle of the session: on a quiet core this is near 0.
switches() { awk '/^nonvoluntary_ctxt_switches/ { print $2 }' "/proc/$MM_PID/task/$MM_PID/status" 2>/dev/null || true; }
sleep 3
CS0=$(switches)
sleep $((DURATION_S - 6))
CS1=$(switches)
set +e
wait "$MM_PID"
STATUS=$?
set -e
cd - >/dev/null
SWITCH_RATE=
if [ -n "$CS0" ] && [ -n "$CS1" ]; then
  SWITCH_RATE=$(echo "($CS1 - $CS0) / ($DURATION_S - 6)" | bc)
fi
LOAD_AFTER=$(load)
if [ "$STATUS" != 0 ]; then
  echo "latency-insitu: mm exited $STATUS:" >&2
  tail -20 "$WORK/paper.err" >&2
  exit "$STATUS"
fi
if grep -qs "could not pin the hot thread" "$WORK/paper.err" "$WORK/paper.out" "$WORK"/logs/* 2>/dev/null; then
  echo "latency-insitu: WARNING: the hot thread could not be pinned to core $CORE"
fi

HLOG=$(ls "$WORK"/latency/*.hlog 2>/dev/null | head -1)
[ -n "$HLOG" ] || { echo "latency-insitu: the session wrote no latency dump" >&2; exit 1; }
"$MM" --mode=latency --file "$HLOG" >"$WORK/latency.txt"

echo
echo "In situ, µs (from $HLOG):"
# tag, count, p50, p99, p99.9 of the rows that matter, in the order an event meets them.
awk 'NR == 1 { next }
     $1 ~ /^(tick_to_quote|read_to_quote|frame_to_quote|loop|stage_)/ { rows[$1] = sprintf("| %-24s | %8s | %9s | %9s | %9s |", $1, $2, $3, $5, $6) }
     END {
       n = split("tick_to_quote read_to_quote frame_to_quote stage_poll_to_read stage_read_to_decoded stage_read_socket stage_read_tls_open stage_read_queued stage_read_ws_frame stage_read_decode stage_decoded_to_book stage_book_to_quote stage_quote_to_order loop", order, " ")
       print "| stage                    |  samples |       p50 |       p99 |     p99.9 |"
       print "| ---                      |      ---:|       ---:|       ---:|       ---:|"
       for (i = 1; i <= n; i++) if (order[i] in rows) print rows[order[i]]
     }' "$WORK/latency.txt"

# The bench median of the same path without the network (frame → decode → book → quote).
if [ "$BENCH" = 1 ]; then
  (cd "$ROOT" && cargo bench --bench tick_to_quote -- tick_to_quote/book_ticker) >"$WORK/bench.txt" 2>&1 \
    || { echo "latency-insitu: the bench failed (see $WORK/bench.txt)" >&2; }
fi
EST=$(find "$ROOT/target/criterion" -path '*tick_to_quote*book_ticker*/new/estimates.json' 2>/dev/null | head -1 || true)
if [ -n "$EST" ]; then
  MEDIAN_NS=$(jq '.median.point_estimate' "$EST")
  echo
  printf 'bench median tick_to_quote/book_ticker (criterion, %s): %.3f µs; 10x = %.2f µs\n' \
    "$(date -u -r "$EST" +%FT%TZ)" "$(echo "$MEDIAN_NS / 1000" | bc -l)" "$(echo "$MEDIAN_NS / 100" | bc -l)"
  for tag in frame_to_quote read_to_quote tick_to_quote; do
    P99=$(awk -v t=$tag '$1 == t { print $5 }' "$WORK/latency.txt")
    if [ -n "$P99" ]; then
      printf '  in-situ %-15s p99 = %8.2f µs = %6.1f x the bench median\n' \
        "$tag" "$P99" "$(echo "$P99 * 1000 / $MEDIAN_NS" | bc -l)"
    fi
  done
else
  echo
  echo "bench median: no criterion result in target/criterion (run with --bench); docs/hot-path.md lists 0.37–0.40 µs"
fi
echo "load average after: $LOAD_AFTER (before: $LOAD_BEFORE, $CORES cores)"
[ -z "$SWITCH_RATE" ] || echo "hot thread switched out involuntarily: $SWITCH_RATE a second (near 0 on a quiet core)"
BUSY=$(echo "${LOAD_BEFORE%% *} > $CORES / 2 || ${LOAD_AFTER%% *} > $CORES / 2" | bc)
if [ "$BUSY" = 1 ]; then
  echo "latency-insitu: NOT an idle machine (load above $CORES / 2): the figures include other work's scheduling"
fi
echo "the session's own per-stage table (µs: p50 / p99 / max):"
sed -n '/^Latency per stage/,$p' "$WORK/paper.out"
