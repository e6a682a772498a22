#!/usr/bin/env bash
# Maps the InfluxQL database and retention policy the dashboards query
# (wastewatch / autogen) to the InfluxDB 2.x bucket the service writes
# (tsdb.bucket), so InfluxDB 2.x answers the dashboards' InfluxQL through
# its 1.x compatibility API (/query). Safe to run again: an existing mapping
# to the same bucket is left as it is; one to another bucket is an error.
#
#   INFLUX_URL=http://127.0.0.1:8086 INFLUX_TOKEN=<all-access or write:dbrps token> \
#     dashboards/provisioning/influxdb2/create-dbrp.sh [--org wastewatch] \
#       [--bucket wastewatch] [--db wastewatch] [--rp autogen]
#
# The same with the influx CLI:
#   influx v1 dbrp create --org wastewatch --bucket-id <id of the bucket> \
#     --db wastewatch --rp autogen --default
set -euo pipefail

org=wastewatch bucket=wastewatch db=wastewatch rp=autogen
while [[ $# -gt 0 ]]; do
    case $1 in
    --org) org=$2 ;;
    --bucket) bucket=$2 ;;
    --db) db=$2 ;;
    --rp) rp=$2 ;;
    *)
        sed -n '2,16p' "$0" >&2
        exit 2
        ;;
    esac
    shift 2
done
: "${INFLUX_URL:?set INFLUX_URL, e.g. http://127.0.0.1:8086}"
: "${INFLUX_TOKEN:?set INFLUX_TOKEN to a token allowed to read the org and buckets and write DBRP mappings}"

api() {
    curl -sS --fail-with-body -H "Authorization: Token $INFLUX_TOKEN" \
        -H 'Content-Type: application/json' "$@"
}
# The first "id" of a v2 answer: the org or bucket asked for (the answers
# put "links" first, whose keys are not "id").
first_id() {
    grep -o '"id" *: *"[0-9a-f]\{16\}"' | head -n 1 | sed 's/.*"\([0-9a-f]\{16\}\)"$/\1/'
}

org_id=$(api "$INFLUX_URL/api/v2/orgs?org=$org" | first_id)
[[ -n $org_id ]] || { echo "no organisation $org" >&2; exit 1; }
bucket_id=$(api "$INFLUX_URL/api/v2/buckets?orgID=$org_id&name=$bucket" | first_id)
[[ -n $bucket_id ]] || { echo "no bucket $bucket in $org" >&2; exit 1; }

existing=$(api "$INFLUX_URL/api/v2/dbrps?orgID=$org_id&db=$db&rp=$rp")
if grep -q "\"bucketID\" *: *\"$bucket_id\"" <<<"$existing"; then
    echo "DBRP mapping $db/$rp -> bucket $bucket ($bucket_id) already exists"
    exit 0
fi
if grep -q '"bucketID"' <<<"$existing"; then
    echo "$db/$rp is already mapped to another bucket: $existing" >&2
    exit 1
fi
api -XPOST "$INFLUX_URL/api/v2/dbrps" --data-binary \
    "{\"orgID\":\"$org_id\",\"bucketID\":\"$bucket_id\",\"database\":\"$db\",\"retention_policy\":\"$rp\",\"default\":true}" >/dev/null
echo "DBRP mapping $db/$rp -> bucket $bucket ($bucket_id) created"
