#!/usr/bin/env bash
# The fuzz step of the test command (scripts/test.sh): builds every
# cargo-fuzz target and runs each for a short, bounded time; any crash,
# panic, failed property, timeout or out-of-memory fails the script.
#
#   fuzz/smoke.sh                      # WW_FUZZ_SECONDS per target, default 10
#   WW_FUZZ_SECONDS=60 fuzz/smoke.sh   # longer
#
# Installs cargo-fuzz if it is missing and fails loudly if it cannot. The
# build is the quick one (unoptimised, no sanitizer, no debug info: about
# two minutes of the service's dependencies on a 2-core machine); the long
# runs of docs/FUZZING.md use the default optimised ASan build. A failing
# input is left in fuzz/artifacts/<target>/ and cargo-fuzz prints how to
# reproduce it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
TARGETS=(topic json protobuf decode config registry jt808 sparkplug)
SECONDS_EACH=${WW_FUZZ_SECONDS:-10}

if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install --locked cargo-fuzz"
    if ! cargo install --locked cargo-fuzz || ! cargo fuzz --version >/dev/null 2>&1; then
        echo "ERROR: cannot install cargo-fuzz, so the fuzz targets cannot run;" \
            "install it (cargo install --locked cargo-fuzz) and run again" >&2
        exit 1
    fi
fi
cargo fuzz --version

# cargo-fuzz passes nightly-only flags; the stable toolchain accepts them
# with RUSTC_BOOTSTRAP=1 (docs/FUZZING.md).
export RUSTC_BOOTSTRAP=1
export CARGO_PROFILE_DEV_DEBUG=0
BUILD=(--dev --sanitizer none)

fuzz/seed-corpus.sh
cargo fuzz build "${BUILD[@]}"
for t in "${TARGETS[@]}"; do
    echo "--- fuzz target $t: ${SECONDS_EACH} s"
    args=(-max_total_time="$SECONDS_EACH" -timeout=30 -print_final_stats=1)
    if [[ -f "fuzz/dicts/$t.dict" ]]; then
        args+=(-dict="$ROOT/fuzz/dicts/$t.dict")
    fi
    # Only libFuzzer's summary lines; the whole output on failure.
    log=$(mktemp)
    if ! cargo fuzz run "${BUILD[@]}" "$t" -- "${args[@]}" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "ERROR: fuzz target $t failed; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
    rm -f "$log"
done
echo "fuzz: ${#TARGETS[@]} targets, ${SECONDS_EACH} s each, no failure"
