#!/usr/bin/env bash
# ACL classification: vrouter's classifier next to DPDK's rte_acl
# (dpdk-test-acl), on the same ClassBench rule and trace files, in the
# same run.
#
#   tests/bench/acl_vs_dpdk.sh      # RUNS=3 CORE=1 SETS="acl1 fw1 ipc1" SIZES="1k 8k"
#
# The sets are ../shared/data/classbench/<set>_<size>.{rules,trace} (DATA=
# to point elsewhere). For each set, RUNS times, back to back, pinned to
# the same core:
#   - acl_bench (tests/src/bin/acl_bench.rs): Classifier::build, then the
#     trace classified in batches of 64 for about 1 s, timed with the TSC
#     around all passes; every result checked against the linear scan;
#   - dpdk-test-acl with the best classify method this CPU runs (probed
#     once: avx512x32, avx512x16, avx2, sse, scalar — the first that
#     works), and with --alg=scalar: --tracestep=64 (64 packets per
#     rte_acl_classify call, as our batches), --bldcat=1 --runcat=1 (one
#     category, as ours), --verbose=0 (higher levels print every result
#     inside the timed loop), --iter to classify about DPDK_PKTS packets.
#     It reports "... N cycles/pkt ..." over all iterations, TSC-timed.
# Build time: ours from acl_bench; rte_acl's is not printed by
# dpdk-test-acl, so a small LD_PRELOAD shim (compiled here with cc) times
# its call to rte_acl_build (rule parsing and EAL start-up excluded).
# Memory: ours is Classifier::stats().bytes, rte_acl's the runtime
# footprint it logs at lib.acl:debug ("total: N bytes").
# Once per set, dpdk-test-acl --verbose=3 prints each packet's rule; they
# are compared with ours (acl_bench --dump): both sides must read the
# files the same way (the flags column ignored by both).
#
# The table shows medians of RUNS runs. The last line is
# ratio=<ours / rte_acl best, cycles per packet, on acl1_8k>.
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${RUNS:-3}
core=${CORE:-1}
sets=${SETS:-"acl1 fw1 ipc1"}
sizes=${SIZES:-"1k 8k"}
dpdk_pkts=${DPDK_PKTS:-4000000}
data=${DATA:-../shared/data/classbench}

command -v dpdk-test-acl >/dev/null || {
    echo "dpdk-test-acl not found (apt-get install dpdk); no peer to compare with" >&2
    exit 1
}
[ -d "$data" ] || { echo "$data: no ClassBench sets (shared/ belongs beside the repository)" >&2; exit 1; }
bench=${ACL_BENCH:-}
if [ -z "$bench" ]; then
    cargo build --release -q -p vrouter-tests --bin acl_bench
    bench=./target/release/acl_bench
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/acl_vs_dpdk.XXXXXX")
prefix="acl_vs_dpdk$$"
cleanup() {
    rm -rf "$work" "/var/run/dpdk/$prefix" "${XDG_RUNTIME_DIR:-/nonexistent}/dpdk/$prefix"
}
trap cleanup EXIT

# rte_acl needs ~40 MiB at run time and a few hundred MiB while building
# (from malloc); with fewer than 128 free 2 MiB pages DPDK runs on 4 KiB pages.
free_hp=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free_hp:-0}" -ge 128 ]; then
    eal=(--in-memory)
    pages="2 MiB hugepages"
else
    eal=(--no-huge -m 1024 --file-prefix "$prefix")
    pages="4 KiB pages (--no-huge: only ${free_hp:-0} free hugepages)"
fi
eal+=(-l "$core" --no-pci --log-level=lib.eal:error --log-level=lib.acl:debug)

# The build-time shim: wraps rte_acl_build, prints acl_build_ms= on stderr.
shim=
if command -v cc >/dev/null; then
    cat >"$work/acl_build_timer.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

int rte_acl_build(void *ctx, const void *cfg)
{
	static int (*real)(void *, const void *);
	struct timespec a, b;
	int rc;

	if (real == NULL)
		real = (int (*)(void *, const void *))dlsym(RTLD_NEXT, "rte_acl_build");
	if (real == NULL)
		return -38; /* -ENOSYS */
	clock_gettime(CLOCK_MONOTONIC, &a);
	rc = real(ctx, cfg);
	clock_gettime(CLOCK_MONOTONIC, &b);
	fprintf(stderr, "acl_build_ms=%.3f\n",
		(b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6);
	return rc;
}
EOF
    if cc -O2 -shared -fPIC -o "$work/acl_build_timer.so" "$work/acl_build_timer.c" -ldl 2>"$work/cc.log"; then
        shim=$work/acl_build_timer.so
    fi
fi
[ -n "$shim" ] || echo "warning: no C compiler: rte_acl build times not measured" >&2

median() { sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "nan"}'; }
field() { sed -n "s/^$1=//p" | tail -1; }
kib() { awk -v x="$1" 'BEGIN {if (x == "nan" || x == "") print "nan"; else printf "%.0f", x / 1024}'; }

# dpdk-test-acl on set $1 with --alg=$2, $3 iterations, extra options after;
# its output (stdout and stderr) on stdout. ("default": rte_acl chooses.)
dpdk_acl() {
    local set=$1 alg=$2 iter=$3
    shift 3
    # "default": no --alg, rte_acl picks the method itself.
    [ "$alg" = default ] || set -- --alg="$alg" "$@"
    LD_PRELOAD=${shim:-} taskset -c "$core" dpdk-test-acl "${eal[@]}" -- \
        --rulesf="$data/$set.rules" --tracef="$data/$set.trace" --iter="$iter" \
        --tracestep=64 --bldcat=1 --runcat=1 "$@" 2>&1 || true
}

# One timed dpdk-test-acl run: key=value lines (cycles, build_ms, mem).
run_dpdk() {
    local out
    out=$(dpdk_acl "$1" "$2" "$3" --verbose=0)
    if ! grep -q 'cycles/pkt' <<<"$out"; then
        echo "dpdk-test-acl --alg=$2 failed on $1; its output:" >&2
        tail -20 <<<"$out" >&2
        return 1
    fi
    sed -n 's/.* \([0-9.]*\) cycles\/pkt.*/cycles=\1/p' <<<"$out"
    echo "build_ms=$(field acl_build_ms <<<"$out")"
    awk '/^total: [0-9]+ bytes/ {print "mem=" $2}' <<<"$out"
}

# --- which classify methods run here -------------------------------------------------
first=$(set -- $sets; echo "$1")_$(set -- $sizes; echo "$1")
works=() fails=()
for alg in avx512x32 avx512x16 avx2 sse scalar; do
    if dpdk_acl "$first" "$alg" 1 --verbose=0 | grep -q 'cycles/pkt'; then works+=("$alg"); else fails+=("$alg"); fi
done
[ ${#works[@]} -gt 0 ] || { echo "dpdk-test-acl runs no classify method on $first" >&2; exit 1; }
best=${works[0]}
algs=(default scalar sse avx2 neon altivec avx512x16 avx512x32)
default=$(dpdk_acl "$first" default 1 --verbose=0 | sed -n 's/^ *alg=\([0-9]*\)$/\1/p' | head -1)
echo "rte_acl classify methods: run: ${works[*]}; fail: ${fails[*]:-none}; default picks ${algs[${default:-0}]:-?}; best: $best"
echo "DPDK on $pages, core $core; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

# --- measurements ----------------------------------------------------------------------
summary=()
ratio=nan
disagree=0
for s in $sets; do
    for z in $sizes; do
        set_name=${s}_$z
        [ -f "$data/$set_name.rules" ] && [ -f "$data/$set_name.trace" ] || {
            echo "$data/$set_name.{rules,trace} missing" >&2
            exit 1
        }
        n=$(grep -cv '^[[:space:]]*\(#\|$\)' "$data/$set_name.trace")
        iter=$(((dpdk_pkts + n - 1) / n))
        echo
        echo "== $set_name: $(grep -cv '^[[:space:]]*\(#\|$\)' "$data/$set_name.rules") rules, $n packets; rte_acl --iter=$iter"

        # Same answers on both sides, packet by packet.
        dpdk_acl "$set_name" "$best" 1 --verbose=3 | sed -n 's/^ipv4_5tuple: .* result: //p' >"$work/dpdk.res"
        "$bench" --set "$set_name" --reps 1 --dump "$work/ours.res" >/dev/null
        if cmp -s "$work/dpdk.res" "$work/ours.res"; then
            same=yes
        else
            same=NO
            disagree=1
            echo "  WARNING: $(paste "$work/dpdk.res" "$work/ours.res" | awk '$1 != $2' | wc -l) of $n packets classified differently by rte_acl and ours" >&2
        fi

        declare -A col=()
        for r in $(seq "$runs"); do
            o=$(taskset -c "$core" "$bench" --set "$set_name")
            b=$(run_dpdk "$set_name" "$best" "$iter")
            c=$(run_dpdk "$set_name" scalar "$iter")
            [ "$r" = 1 ] && grep -v '=' <<<"$o" | sed 's/^/  vrouter: /'
            col[ours]+="$(field cycles_per_packet <<<"$o") "
            col[ours_build]+="$(field build_ms <<<"$o") "
            col[ours_mem]+="$(field memory_bytes <<<"$o") "
            col[best]+="$(field cycles <<<"$b") "
            col[best_build]+="$(field build_ms <<<"$b") "
            col[best_mem]+="$(field mem <<<"$b") "
            col[scalar]+="$(field cycles <<<"$c") "
            echo "  run $r: ours $(field cycles_per_packet <<<"$o") | rte_acl $best $(field cycles <<<"$b")" \
                "scalar $(field cycles <<<"$c") cycles/packet; build ms ours $(field build_ms <<<"$o")" \
                "rte_acl $(field build_ms <<<"$b")"
        done
        declare -A m=()
        for k in "${!col[@]}"; do m[$k]=$(tr ' ' '\n' <<<"${col[$k]}" | grep . | median); done
        q=$(awk -v a="${m[ours]}" -v b="${m[best]}" 'BEGIN {printf "%.2f", a / b}')
        summary+=("$(printf '%-9s %9s %9s %9s %7s %9s %9s %9s %9s %5s' "$set_name" "${m[ours]}" "${m[best]}" \
            "${m[scalar]}" "$q" "${m[ours_build]}" "${m[best_build]:-nan}" "$(kib "${m[ours_mem]}")" \
            "$(kib "${m[best_mem]:-nan}")" "$same")")
        [ "$set_name" = acl1_8k ] && ratio=$q
        unset col m
    done
done

echo
echo "== summary: medians of $runs runs, cycles per packet (batches of 64), rte_acl best = $best"
printf '%-9s %9s %9s %9s %7s %9s %9s %9s %9s %5s\n' set ours rte_acl rte_acl ours/ build-ms build-ms mem-KiB mem-KiB same
printf '%-9s %9s %9s %9s %7s %9s %9s %9s %9s %5s\n' "" "" "$best" scalar best ours rte_acl ours rte_acl rules
printf '%s\n' "${summary[@]}"
[ "$disagree" = 0 ] || echo "WARNING: rte_acl and ours disagree on some packets (see above)" >&2

echo "ratio=$ratio"
exit "$disagree"
