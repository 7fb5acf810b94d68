#!/usr/bin/env bash
# NAT44 benchmark on one worker.
#
#   tests/bench/nat.sh [seconds]
#
# 1. Forwarding through established sessions, whole router (the three
#    configurations interleaved round by round): the built-in
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
mpps() { awk -v h="$hz" -v c="$1" 'BEGIN {printf "%.2f", h * 1000 / c}'; }

# The three whole-router configurations, interleaved round by round so a
# change in where the host runs this VM's vCPUs hits all of them alike.
declare -A cpps rates
names=(plain nat-1k nat-1m)
declare -A opts=(
    [plain]="--flows 1024"
    [nat-1k]="--nat --flows 1024"
    [nat-1m]="--nat --flows 1048576 --nat-capacity 2097152"
)
echo "== whole router: no NAT (the peer), NAT with 1k and with 1M established sessions; $runs rounds of ${secs}s each"
for r in $(seq "$runs"); do
    for n in "${names[@]}"; do
        # shellcheck disable=SC2086
        out=$(./target/release/pipeline_bench --seconds "$secs" ${opts[$n]})
        [ "$r" = 1 ] && { echo "-- $n"; grep -E '^(machine|config|worker|nat|new sessions):' <<<"$out" || true; }
        c=$(sed -n 's/^cycles_per_packet=//p' <<<"$out")
        cpps[$n]+="$c "
        rates[$n]+="$(sed -n 's/^new_sessions_per_s_per_core=//p' <<<"$out") "
        echo "round $r $n: cycles_per_packet=$c"
    done
done
hz=$(sed -n 's/.*TSC \([0-9.]*\) GHz.*/\1/p' <<<"$out")
base_cpp=$(tr ' ' '\n' <<<"${cpps[plain]}" | grep . | median)
k1_cpp=$(tr ' ' '\n' <<<"${cpps[nat-1k]}" | grep . | median)
m1_cpp=$(tr ' ' '\n' <<<"${cpps[nat-1m]}" | grep . | median)
m1_new=$(tr ' ' '\n' <<<"${rates[nat-1m]}" | grep . | median)

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
