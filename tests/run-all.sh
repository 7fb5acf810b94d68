#!/usr/bin/env bash
# Runs every vrouter test. It first installs the Debian packages the tests
# need when they are missing and sets up 2 MiB hugepages — directly when run
# as root (as CI does: .ci/run calls exactly this script), through sudo
# otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        echo "need root for: $* (run as root or install sudo)" >&2
        return 1
    fi
}

# --- system packages -------------------------------------------------------
# iputils-ping, ethtool, python3: namespace acceptance tests; python3-scapy:
# frame cross-checks; libibverbs-dev: the rdma-core MANA back-end
# (mana-hw feature), built and unit-tested here.
pkgs=(build-essential pkg-config iproute2 iputils-ping ethtool python3 python3-scapy libibverbs-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install the Rust toolchain (https://rustup.rs), then rerun" >&2
    exit 1
fi

# --- hugepages (pools use them when free; tests check both paths) ---------
want=512
if [ "$(cat /proc/sys/vm/nr_hugepages)" -lt "$want" ]; then
    as_root sh -c "echo $want > /proc/sys/vm/nr_hugepages" || echo "could not reserve hugepages; pools use normal pages"
fi
if ! grep -q hugetlbfs /proc/mounts; then
    as_root sh -c "mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages" || true
fi
say "hugepages: $(awk '/HugePages_Free/ {print $2}' /proc/meminfo) of $(cat /proc/sys/vm/nr_hugepages) free"

say "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p ports --features mana-hw --all-targets --locked -- -D warnings

say "build (all targets)"
cargo build --workspace --all-targets --locked

say "tests"
{
    cargo test --workspace --locked
    # The rdma-core back-end: layouts against the C headers, sysfs parsing,
    # and its errors on a machine without a MANA NIC.
    cargo test -p ports --features mana-hw --locked --lib mana::hw
} 2>&1 | tee target/test-output.txt
passed=$(grep -E '^test result:' target/test-output.txt | awk '{s += $4} END {print s + 0}')
failed=$(grep -E '^test result:' target/test-output.txt | awk '{s += $6} END {print s + 0}')
echo
echo "$passed passed, $failed failed"
