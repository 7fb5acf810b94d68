#!/usr/bin/env bash
# Runs every vrouter test. As root it first installs the Debian packages the
# tests need when they are missing and sets up 2 MiB hugepages; CI
# (.ci/run) calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*"; }

# --- system packages -------------------------------------------------------
pkgs=(build-essential pkg-config iproute2)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing packages: ${missing[*]} (run this script as root to install them)" >&2
        exit 1
    fi
fi
if ! command -v cargo >/dev/null; then
    echo "cargo not found: install the Rust toolchain (https://rustup.rs), then rerun" >&2
    exit 1
fi

# --- hugepages (pools use them when free; tests check both paths) ---------
if [ "$(id -u)" = 0 ]; then
    want=512
    have=$(cat /proc/sys/vm/nr_hugepages)
    if [ "$have" -lt "$want" ]; then
        echo "$want" > /proc/sys/vm/nr_hugepages || true
    fi
    if ! grep -q hugetlbfs /proc/mounts; then
        mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages || true
    fi
    say "hugepages: $(awk '/HugePages_Free/ {print $2}' /proc/meminfo) of $(cat /proc/sys/vm/nr_hugepages) free"
fi

say "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

say "build (all targets)"
cargo build --workspace --all-targets --locked

say "tests"
cargo test --workspace --locked 2>&1 | tee target/test-output.txt
passed=$(grep -E '^test result:' target/test-output.txt | awk '{s += $4} END {print s + 0}')
failed=$(grep -E '^test result:' target/test-output.txt | awk '{s += $6} END {print s + 0}')
echo
echo "$passed passed, $failed failed"
