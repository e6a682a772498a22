#!/usr/bin/env bash
# The one test command (README): real servers up, then format check, clippy
# and the whole test suite against them.
#
#   scripts/test.sh [extra args for `cargo test`]
#   e.g. scripts/test.sh -- --nocapture
#
# Starts Mosquitto, InfluxDB 1.x, VictoriaMetrics and Alertmanager on
# loopback (scripts/services.sh, fresh data dirs under target/services/),
# exports their addresses (WW_TEST_*), and stops them again on exit, whatever
# the outcome. Exits non-zero on the first failing step.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
SERVICES="$REPO/scripts/services.sh"

section() { printf '\n==================== %s ====================\n' "$*"; }

section "services: install"
"$SERVICES" install

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    section "services: stop"
    "$SERVICES" stop || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "services: start"
"$SERVICES" start

# Export the env file (KEY=VALUE lines) for the tests.
env_out=$("$SERVICES" env)
while IFS= read -r line; do
    [[ $line == [A-Z_]*=* ]] || continue
    export "${line?}"
    printf '  %s\n' "$line"
done <<<"$env_out"
[[ -n ${WW_TEST_MQTT:-} ]] || {
    echo "services.sh env did not give WW_TEST_MQTT" >&2
    exit 1
}

section "dashboards: Grafana schema tools (pinned npm packages)"
# tests/dashboard_schema.rs checks dashboards/*.json against @grafana/schema.
dashboards/schema/install.sh

section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo test --workspace --no-fail-fast $*"
# --no-fail-fast: one failing test binary must not hide the others.
cargo test --workspace --no-fail-fast "$@"

section "fuzz: every cargo-fuzz target for ${WW_FUZZ_SECONDS:-10} s (fuzz/smoke.sh)"
# The long runs (10 million executions each) are recorded in docs/FUZZING.md.
fuzz/smoke.sh

section "all checks passed"
