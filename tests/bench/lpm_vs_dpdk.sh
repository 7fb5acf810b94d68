#!/usr/bin/env bash
# Longest-prefix match: vrouter's FIB next to DPDK's rte_lpm and rte_fib
# (dpdk-test-fib), on the same route and lookup files, in the same run.
#
#   tests/bench/lpm_vs_dpdk.sh          # RUNS=3 SIZES="100000 1000000" CORE=1
#
# IPv4: dpdk-test-fib generates, once per size, a route file with an
# Internet-like prefix-length mix (mostly /24, much of /16../23, 6.2% longer
# than /24, nothing shorter than /8) and a lookup file (1M addresses, each
# inside one of the routes, in shuffled route order) and writes them out
# (-w/-u, a dry run). Both sides then load the same files:
#   - dpdk-test-fib -c: rte_fib DIR24_8 and rte_lpm, bursts of 64 timed
#     with rte_rdtsc_precise, one pass;
#   - fib_bench: our DIR-24-8 (tests/src/bin/fib_bench.rs), single lookups
#     and lookup_bulk timed the same way (median of 5 passes), every result
#     checked against the reference.
# Each size runs RUNS times, the two sides back to back, pinned to the same
# core; the table shows medians. rte_lpm's insert is O(routes) per route,
# so one run at 1M routes takes about 5 minutes (the delete phase that
# follows in dpdk-test-fib is skipped).
#
# Hugepages: dpdk-test-fib needs about 1.2 GiB of 2 MiB pages at 1M routes
# (-g 131072), our tables 192 MiB. As root the script reserves what is
# missing and gives it back at the end; DPDK runs --in-memory (no files
# left in /dev/hugepages).
#
# The last line is ratio=<ours bulk / rte_lpm, cycles per lookup, at 1M>.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${RUNS:-3}
sizes=${SIZES:-"100000 1000000"}
core=${CORE:-1}
tbl8=131072
lookups=1048576
# Routes per 100000, by prefix length (/24 takes the rest).
dist4="8:20 9:20 10:40 11:80 12:160 13:300 14:500 15:800 16:1300 17:800 18:1300 19:2300 20:4300 21:5000
       22:11000 23:9500 25:1000 26:1000 27:800 28:600 29:600 30:500 31:200 32:1500"

command -v dpdk-test-fib >/dev/null || {
    echo "dpdk-test-fib not found (apt-get install dpdk); no peer to compare with" >&2
    exit 1
}
bench=${FIB_BENCH:-}
if [ -z "$bench" ]; then
    cargo build --release -q -p vrouter-tests --bin fib_bench
    bench=./target/release/fib_bench
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/lpm_vs_dpdk.XXXXXX")
# The generator runs without hugepages (--in-memory needs them): its own
# runtime directory, removed at the end.
gen_prefix="lpm_vs_dpdk_gen$$"
orig_hp=$(cat /proc/sys/vm/nr_hugepages)
dpdk_pid=
cleanup() {
    [ -n "$dpdk_pid" ] && kill "$dpdk_pid" 2>/dev/null || true
    rm -rf "$work" "/var/run/dpdk/$gen_prefix" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$gen_prefix"
    if [ "$(cat /proc/sys/vm/nr_hugepages)" != "$orig_hp" ] && [ "$(id -u)" = 0 ]; then
        echo "$orig_hp" >/proc/sys/vm/nr_hugepages || true
    fi
}
trap cleanup EXIT

# --- hugepages ----------------------------------------------------------------
want_free=800
free_hp=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free_hp:-0}" -lt "$want_free" ]; then
    if [ "$(id -u)" = 0 ]; then
        grep -q hugetlbfs /proc/mounts || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; }
        echo $((orig_hp + want_free - free_hp)) >/proc/sys/vm/nr_hugepages
        free_hp=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
    fi
    if [ "${free_hp:-0}" -lt "$want_free" ]; then
        echo "warning: only ${free_hp:-0} free 2 MiB hugepages (want $want_free): DPDK may fail at 1M routes" >&2
        echo "         and our tables may fall back to 4 KiB pages; run as root for a fair comparison" >&2
    fi
fi

median() { sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "nan"}'; }
field() { sed -n "s/^$1=//p"; }

# dpdk-test-fib -d: every length 0..32 given as an absolute count for n routes.
distribution() {
    local n=$1 s="" rest=$1 kv len per c
    for len in 0 1 2 3 4 5 6 7; do s="$s$len:0,"; done
    for kv in $dist4; do
        len=${kv%%:*} per=${kv##*:}
        c=$((per * n / 100000))
        rest=$((rest - c))
        s="$s$len:$c,"
    done
    echo "${s}24:$rest"
}

# Runs dpdk-test-fib on a route and lookup file; writes its lookup and add
# figures as key=value lines to $3. Stops it once the lookups are compared
# (the delete phase that follows is not measured here and takes minutes).
run_dpdk() {
    local routes=$1 ips=$2 out=$3 log="$work/dpdk.log"
    taskset -c "$core" dpdk-test-fib -l "$core" --in-memory --no-pci --log-level=lib.eal:error -- \
        -f "$routes" -t "$ips" -c -g "$tbl8" >"$log" 2>&1 &
    dpdk_pid=$!
    while kill -0 "$dpdk_pid" 2>/dev/null && ! grep -q "lookup returns same values\|FAIL" "$log"; do
        sleep 1
    done
    kill "$dpdk_pid" 2>/dev/null || true
    wait "$dpdk_pid" 2>/dev/null || true
    dpdk_pid=
    if ! grep -q "lookup returns same values" "$log"; then
        echo "dpdk-test-fib failed or rte_fib and rte_lpm disagreed; its output:" >&2
        grep -v '^depth' "$log" | tail -20 >&2
        return 1
    fi
    awk '/^AVG FIB lookup/ {print "fib_lookup=" $4}
         /^AVG LPM lookup/ {print "lpm_lookup=" $4}
         /^AVG FIB add/ {f += $4; nf++}
         /^AVG LPM add/ {l += $4; nl++}
         END {if (nf) printf "fib_add=%.0f\n", f / nf; if (nl) printf "lpm_add=%.0f\n", l / nl}' "$log" >"$out"
}

# --- IPv4 -----------------------------------------------------------------------
summary4=()
ratio=nan
for n in $sizes; do
    routes="$work/routes4-$n.txt" ips="$work/lookups4-$n.txt"
    dpdk-test-fib --no-huge -m 512 --file-prefix "$gen_prefix" --no-pci --log-level=lib.eal:error -- \
        -n "$n" -l "$lookups" -s -d "$(distribution "$n")" -w "$routes" -u "$ips" >/dev/null 2>&1
    [ -s "$routes" ] && [ -s "$ips" ] || { echo "dpdk-test-fib could not write the route files" >&2; exit 1; }
    echo
    echo "== IPv4, $n routes, $lookups lookups, $runs runs on core $core (tbl8 groups: $tbl8 on both sides)"
    declare -A col=()
    for r in $(seq "$runs"); do
        run_dpdk "$routes" "$ips" "$work/dpdk.kv"
        d=$(cat "$work/dpdk.kv")
        o=$(taskset -c "$core" "$bench" --routes "$routes" --lookups "$ips" --tbl8 "$tbl8")
        [ "$r" = 1 ] && grep -v '=' <<<"$o" | sed 's/^/  vrouter: /'
        for k in fib_lookup lpm_lookup fib_add lpm_add; do col[$k]+="$(field "$k" <<<"$d") "; done
        for k in single_cycles bulk_cycles bulk_unfenced_cycles insert_cycles_per_route insert_mroutes_per_s \
            memory_bytes_per_route table_bytes_per_route; do
            col[$k]+="$(field "$k" <<<"$o") "
        done
        echo "  run $r: ours single $(field single_cycles <<<"$o") bulk $(field bulk_cycles <<<"$o")" \
            "| rte_lpm $(field lpm_lookup <<<"$d") rte_fib $(field fib_lookup <<<"$d") cycles/lookup"
    done
    declare -A m=()
    for k in "${!col[@]}"; do m[$k]=$(tr ' ' '\n' <<<"${col[$k]}" | grep . | median); done
    r_lpm=$(awk -v a="${m[bulk_cycles]}" -v b="${m[lpm_lookup]}" 'BEGIN {printf "%.2f", a / b}')
    r_fib=$(awk -v a="${m[bulk_cycles]}" -v b="${m[fib_lookup]}" 'BEGIN {printf "%.2f", a / b}')
    summary4+=("$(printf '%-8s %8s %8s %8s %8s %8s %9s %9s %9s %9s %7s %6s %6s' "$n" \
        "${m[single_cycles]}" "${m[bulk_cycles]}" "${m[bulk_unfenced_cycles]}" "${m[lpm_lookup]}" "${m[fib_lookup]}" \
        "${m[insert_cycles_per_route]}" "${m[lpm_add]}" "${m[fib_add]}" "${m[insert_mroutes_per_s]}" \
        "${m[memory_bytes_per_route]}/${m[table_bytes_per_route]}" "$r_lpm" "$r_fib")")
    [ "$n" = 1000000 ] && ratio=$r_lpm
    unset col m
done

echo
echo "== IPv4 summary: medians of $runs runs; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "   cycles/lookup: bursts of 64, each timed with mfence+rdtsc (as dpdk-test-fib); unfenced = back-to-back bursts"
echo "   insert: cycles/route while loading the file (rte_lpm/rte_fib: dpdk-test-fib's AVG add); memory: total/lookup tables"
printf '%-8s %8s %8s %8s %8s %8s %9s %9s %9s %9s %7s %6s %6s\n' routes ours ours ours rte_lpm rte_fib \
    ins-ours ins-lpm ins-fib ours B/route bulk/ bulk/
printf '%-8s %8s %8s %8s %8s %8s %9s %9s %9s %9s %7s %6s %6s\n' "" single bulk unfenced bulk bulk \
    cyc/rt cyc/rt cyc/rt Mrt/s "" lpm fib
printf '%s\n' "${summary4[@]}"

# --- IPv6 -----------------------------------------------------------------------
# The LINX IPv6 table (../shared/data/routes) and one lookup set (10% random
# addresses), fed to our FIB and to dpdk-test-fib -6 (rte_fib6, rte_lpm6)
# back to back; fib6_bench writes both files and runs DPDK itself.
cargo build --release -q -p vrouter-tests --bin fib6_bench
echo
echo "== IPv6: LINX table, ours (bulk, AVX2 when present) vs rte_fib6 / rte_lpm6, medians of 5 passes"
o6=$(taskset -c 1 ./target/release/fib6_bench --dpdk --passes 5 2>&1 || true)
grep -E '^(fib6_|rte_|ratio_fib6)' <<<"$o6" || { echo "$o6" | tail -20; }

echo "ratio=$ratio"
