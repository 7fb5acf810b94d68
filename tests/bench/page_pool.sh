#!/usr/bin/env bash
# The RX buffer cycle through the emulated MANA device (post, receive,
# deliver, drop or TX-complete, recycle) with each RX queue's page pool
# versus every buffer from the global allocator, and emulated MANA ->
# pipeline -> emulated MANA forwarding next to mem ports.
#
#   tests/bench/page_pool.sh [packets per run] [forwarding seconds]
#
# Last line: speedup=<global-allocator ns / page-pool ns, drop cycle>.
set -euo pipefail
cd "$(dirname "$0")/../.."
packets=${1:-2000000}
secs=${2:-3}
runs=${RUNS:-5}

cargo build --release -q -p vrouter-tests --bin page_pool_bench --bin pipeline_bench

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "== forwarding: generator -> port p0 -> worker (core 0) -> port p1 -> generator, 60-byte frames"
echo "   mana and mem ports alternately, $runs runs each; the emulated device's work runs in the"
echo "   worker's and generator's threads and is counted in the worker's cycles"
declare -A cpp
for r in $(seq "$runs"); do
    for d in mana mem; do
        out=$(./target/release/pipeline_bench --driver "$d" --seconds "$secs")
        c=$(sed -n 's/^cycles_per_packet=//p' <<<"$out")
        hz=$(sed -n 's/.*TSC \([0-9.]*\) GHz.*/\1/p' <<<"$out")
        echo "run $r $d: cycles_per_packet=$c"
        cpp[$d]="${cpp[$d]:-} $c"
    done
done
for d in mana mem; do
    med=$(tr ' ' '\n' <<<"${cpp[$d]}" | sed '/^$/d' | sort -g | sed -n "$(((runs + 1) / 2))p")
    mpps=$(awk -v h="$hz" -v c="$med" 'BEGIN {printf "%.2f", h * 1000 / c}')
    echo "$d: median $med cycles/packet = $mpps Mpps per core"
    echo "${d}_mpps_per_core=$mpps"
done

echo
./target/release/page_pool_bench --packets "$packets" --runs "$runs"
