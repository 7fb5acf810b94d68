#!/usr/bin/env bash
# Forwarding benchmark: vrouter's pipeline through mem ports on one worker,
# next to dpdk-testpmd io forwarding on two net_null vdevs measured in the
# same run (the I/O-only ceiling: net_null moves mbufs without touching
# packet data, io mode forwards without parsing).
#
#   tests/bench/pipeline.sh [seconds]
#
# Prints both results, their ratio, and as the last line
# mpps_per_core=<vrouter's Mpps per core>.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-5}

cargo build --release -q -p vrouter-tests --bin pipeline_bench --bin stage_bench

# Every frame crosses between the generator's core and the worker's, so the
# cost moves with where the host places this VM's vCPUs: run several times
# and report the median (and the spread).
runs=${RUNS:-5}
echo "== vrouter: mem p0 -> worker (core 0) -> mem p1, generator on core 1, 60-byte frames, $runs runs"
cpps=()
for r in $(seq "$runs"); do
    ours_out=$(./target/release/pipeline_bench --seconds "$secs")
    [ "$r" = 1 ] && echo "$ours_out" | head -n -2
    cpp=$(sed -n 's/^cycles_per_packet=//p' <<<"$ours_out")
    echo "run $r: cycles_per_packet=$cpp mpps_per_core=$(sed -n 's/^mpps_per_core=//p' <<<"$ours_out")"
    cpps+=("$cpp")
done
sorted=$(printf '%s\n' "${cpps[@]}" | sort -g)
ours_cpp=$(sed -n "$(((runs + 1) / 2))p" <<<"$sorted")
cpp_min=$(head -1 <<<"$sorted")
cpp_max=$(tail -1 <<<"$sorted")
hz=$(sed -n 's/.*TSC \([0-9.]*\) GHz.*/\1/p' <<<"$ours_out")
ours_mpps=$(awk -v h="$hz" -v c="$ours_cpp" 'BEGIN {printf "%.2f", h * 1000 / c}')
echo "median cycles/packet $ours_cpp (min $cpp_min, max $cpp_max) at TSC $hz GHz"

echo
echo "== vrouter pipeline stages alone (parse + route + rewrite on warm batches, no port I/O)"
stage_out=$(./target/release/stage_bench)
echo "$stage_out"
stage_cpp=$(sed -n 's/^pipeline_cycles_per_packet=//p' <<<"$stage_out")

echo
echo "== dpdk-testpmd --forward-mode=io, net_null0 <-> net_null1, one forwarding core (lcore 1)"
if ! command -v dpdk-testpmd >/dev/null; then
    echo "dpdk-testpmd not installed (apt-get install dpdk-dev); peer not measured" >&2
    echo "mpps_per_core=$ours_mpps"
    exit 0
fi
mem_opt=(--in-memory)
free_huge=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "$(id -u)" != 0 ] || [ "${free_huge:-0}" -lt 256 ]; then
    mem_opt=(--no-huge -m 512)
fi
tp_out=$(timeout -s INT $((secs + 3)) dpdk-testpmd -l 0,1 --no-pci "${mem_opt[@]}" \
    --vdev=net_null0 --vdev=net_null1 --log-level=lib.eal:error -- \
    --forward-mode=io --auto-start --record-core-cycles --stats-period "$secs" 2>&1 || true)
tp_line=$(grep -m1 'CPU cycles/packet=' <<<"$tp_out" || true)
if [ -z "$tp_line" ]; then
    echo "testpmd did not report cycles/packet; its output:" >&2
    echo "$tp_out" | tail -20 >&2
    echo "mpps_per_core=$ours_mpps"
    exit 0
fi
echo "$tp_line"
tp_cpp=$(sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).*/\1/p' <<<"$tp_line")
tp_mhz=$(sed -n 's/.* at \([0-9]*\) MHz.*/\1/p' <<<"$tp_line")
tp_mpps=$(awk -v m="$tp_mhz" -v c="$tp_cpp" 'BEGIN {printf "%.2f", m / c}')
echo "testpmd_mpps_per_core=$tp_mpps"

echo
echo "== summary (same run, same machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
printf '%-34s %10s %12s\n' "" "cycles/pkt" "Mpps/core"
printf '%-34s %10s %12s\n' "vrouter pipeline (mem ports), median" "$ours_cpp" "$ours_mpps"
printf '%-34s %10s %12s\n' "vrouter stages alone (no I/O)" "$stage_cpp" "$(awk -v h="$hz" -v c="$stage_cpp" 'BEGIN {printf "%.2f", h * 1000 / c}')"
printf '%-34s %10s %12s\n' "testpmd io (net_null, I/O only)" "$tp_cpp" "$tp_mpps"
awk -v a="$ours_mpps" -v b="$tp_mpps" 'BEGIN {printf "vrouter / testpmd = %.2f\n", a / b}'
echo "mpps_per_core=$ours_mpps"
