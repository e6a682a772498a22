#!/usr/bin/env bash
# Fills the working corpora fuzz/corpus/<target>/ (not committed) with the
# seeds: the small hand-written ones in fuzz/seeds/<target>/, plus seeds made
# from the shipped files, so they never go stale:
#   config:   the raw-mode input of config/wastewatch.example.toml;
#   registry: the raw-mode input of zone/{sites,devices,permits}.json.
# Raw-mode inputs start with a newline (an even byte: the raw mode).
# Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
for t in decode protobuf json topic config registry jt808 sparkplug; do
    mkdir -p "corpus/$t"
    if [[ -d "seeds/$t" ]]; then
        cp -f seeds/"$t"/* "corpus/$t/"
    fi
done
{ printf '\n'; cat ../config/wastewatch.example.toml; } >corpus/config/shipped-example.toml
{
    printf '\n'
    cat ../zone/sites.json
    printf '\377'
    cat ../zone/devices.json
    printf '\377'
    cat ../zone/permits.json
} >corpus/registry/shipped-zone
# The example again, one seed per section (small inputs run faster).
awk -v dir=corpus/config '
    /^\[/ { n++ }
    { f = sprintf("%s/shipped-example-%02d.toml", dir, n); if (!(f in seen)) { printf "\n" > f; seen[f] = 1 } print >> f }
' ../config/wastewatch.example.toml
