#!/usr/bin/env bash
# NAT44 benchmark on one worker.
#
#   tests/bench/nat.sh [seconds]
#
# 1. Forwarding through established sessions, whole router: the built-in
#    generator (core 1) sends UDP flows through mem port p0, the worker
#    (core 0) translates them (SNAT of 10.0.0.0/8 to a pool of 64
#    addresses) and sends them out of p1. 1k flows, then 1M flows (a
#    table of 2M sessions); the peer measured in the same run is the same
#    pipeline without NAT. Cycles per packet are the worker's busy cycles
#    (RX, pipeline, TX) per packet, medians of $RUNS runs; Mpps per core =
#    TSC rate / cycles per packet.
# 2. New sessions per second: the 1M-flow run's warm-up, while every
#    packet opens a session (busy cycles per session created).
# 3. The NAT stages alone (nat_bench): the pipeline on crafted bursts with
#    and without NAT, 1k and 1M sessions, half forward and half reply
#    packets in random flow order; new-session cost; bytes per session.
#
# Last line: mpps_1m_sessions=<Mpps per core through 1M established
# sessions, whole router>.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-4}
runs=${RUNS:-3}

cargo build --release -q -p vrouter-tests --bin pipeline_bench --bin nat_bench

median() { sort -g | sed -n "$(((runs + 1) / 2))p"; }

# Runs pipeline_bench $runs times with the given options; prints its first
# report and sets cpp (median cycles/packet) and, with --nat and many flows,
# new_rate (median new sessions per second per core).
run_pipeline() {
    local name=$1
    shift
    local cpps=() rates=() out
    for r in $(seq "$runs"); do
        out=$(./target/release/pipeline_bench --seconds "$secs" "$@")
        [ "$r" = 1 ] && echo "$out" | grep -E '^(machine|config|worker|nat|new sessions):' || true
        cpps+=("$(sed -n 's/^cycles_per_packet=//p' <<<"$out")")
        rates+=("$(sed -n 's/^new_sessions_per_s_per_core=//p' <<<"$out")")
        echo "$name run $r: cycles_per_packet=${cpps[-1]}"
    done
    hz=$(sed -n 's/.*TSC \([0-9.]*\) GHz.*/\1/p' <<<"$out")
    cpp=$(printf '%s\n' "${cpps[@]}" | median)
    new_rate=$(printf '%s\n' "${rates[@]}" | median)
}

mpps() { awk -v h="$hz" -v c="$1" 'BEGIN {printf "%.2f", h * 1000 / c}'; }

echo "== whole router, no NAT (the peer): $runs runs of ${secs}s"
run_pipeline plain --flows 1024
base_cpp=$cpp

echo
echo "== whole router, NAT, 1k established sessions"
run_pipeline nat-1k --nat --flows 1024
k1_cpp=$cpp

echo
echo "== whole router, NAT, 1M established sessions (table of 2M)"
run_pipeline nat-1m --nat --flows 1048576 --nat-capacity 2097152
m1_cpp=$cpp
m1_new=$new_rate

echo
echo "== NAT stages alone (nat_bench), 1k and 1M sessions"
nb1k=$(./target/release/nat_bench --sessions 1000 --packets 2000000 --rounds 5)
echo "$nb1k"
nb1m=$(./target/release/nat_bench --sessions 1000000 --packets 2000000 --rounds 3)
echo "$nb1m"
nat1k=$(sed -n 's/^nat_cycles_per_packet=//p' <<<"$nb1k")
nat1m=$(sed -n 's/^nat_cycles_per_packet=//p' <<<"$nb1m")
new1m=$(sed -n 's/^new sessions: .*: \([0-9.]*\) M sessions.*/\1/p' <<<"$nb1m")
bytes=$(sed -n 's/^memory: \([0-9]*\) bytes.*/\1/p' <<<"$nb1m")

echo
echo "== summary (same run, same machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), TSC $hz GHz)"
printf '%-52s %10s %10s\n' "" "cycles/pkt" "Mpps/core"
printf '%-52s %10s %10s\n' "whole router, no NAT (peer)" "$base_cpp" "$(mpps "$base_cpp")"
printf '%-52s %10s %10s\n' "whole router, NAT, 1k established sessions" "$k1_cpp" "$(mpps "$k1_cpp")"
printf '%-52s %10s %10s\n' "whole router, NAT, 1M established sessions" "$m1_cpp" "$(mpps "$m1_cpp")"
printf '%-52s %10s\n' "NAT stages alone, 1k sessions (added cycles)" "$nat1k"
printf '%-52s %10s\n' "NAT stages alone, 1M sessions (added cycles)" "$nat1m"
awk -v r="$m1_new" 'BEGIN {printf "new sessions, whole router (1M flows):  %.2f M/s per core\n", r / 1e6}'
echo "new sessions, NAT stages alone (1M):    $new1m M/s per core"
echo "memory per session:                     $bytes bytes"
echo "mpps_1m_sessions=$(mpps "$m1_cpp")"
