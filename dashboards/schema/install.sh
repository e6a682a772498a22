#!/usr/bin/env bash
# Installs the pinned tools of the dashboard schema check
# (dashboards/schema/check.mjs, run by tests/dashboard_schema.rs):
# @grafana/schema and typescript at the exact versions and integrity hashes
# of dashboards/schema/package-lock.json, into target/dashboard-schema
# (or $WW_DASHBOARD_SCHEMA_DIR). scripts/test.sh runs it before the tests;
# it does nothing when that lock file is already installed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SRC=dashboards/schema
DEST=${WW_DASHBOARD_SCHEMA_DIR:-target/dashboard-schema}

if cmp -s "$SRC/package-lock.json" "$DEST/package-lock.json" &&
    [[ -f $DEST/node_modules/@grafana/schema/package.json && -f $DEST/node_modules/typescript/package.json ]]; then
    echo "dashboard schema tools: up to date in $DEST"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found: installing Node.js with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi

mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
# ci: exactly the lock file, nothing resolved anew; no install scripts run.
npm ci --prefix "$DEST" --no-audit --no-fund --ignore-scripts --loglevel=error
echo "dashboard schema tools: installed in $DEST"
