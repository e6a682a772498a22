#!/usr/bin/env bash
# Notification receivers down for a long time, as one documented run (too
# long for CI):
#
#   scripts/fault-receivers-down.sh [--minutes 10] [--rate 2000]
#
# The real release binary runs against the real Mosquitto, InfluxDB 1.x and
# Alertmanager of scripts/services.sh, with two receivers: Alertmanager and
# a JSON webhook (a small local HTTP server that records every delivery).
# Both are down from the start: Alertmanager stopped, the webhook port
# closed. firmware-sim replays the last two days of a zone at 200x with
# storage-overfill, bin-fire and route-deviation scenarios, so alerts fire
# and resolve while nobody can be told. After --minutes both come back; the
# fleet runs 2 more minutes. It checks and reports:
#   - every alert state the service has is delivered to the webhook (the
#     outbox kept it), and no alert state is delivered twice;
#   - Alertmanager has every alert firing in the service;
#   - notify_dropped_total stayed 0 and the outbox emptied;
# and writes target/fault-receivers-down/<stamp>/{samples.csv,report.md}.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
MINUTES=10
RATE=2000
DEVICES=2000
AFTER_S=120
while [[ $# -gt 0 ]]; do
    case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --after-s) AFTER_S=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
DOWN_S=$((MINUTES * 60))
# shellcheck source=scripts/lib/fault.sh
. scripts/lib/fault.sh
fault_init fault-receivers-down receivers mosquitto influxdb alertmanager
fault_zone "$DEVICES"
fault_db receivers

ING=ww-rcv-ingest-${STAMP//-/}
SIMU=ww-rcv-sim-${STAMP//-/}
register_identities "$ING=topic read wastewatch/v1/#" "$SIMU=topic write wastewatch/v1/#"

HTTP_PORT=$(free_port)
HOOK_PORT=$(free_port)
{
    ingest_config "$ING"
    cat <<EOF
[tsdb]
kind = "influxdb_v1"
url = "$WW_TEST_INFLUXDB"
database = "$DB"
stats_interval_ms = 0
[http]
listen = "127.0.0.1:$HTTP_PORT"
[notify]
alertmanager_url = "$WW_TEST_ALERTMANAGER"
[[notify.webhooks]]
name = "recorder"
url = "http://127.0.0.1:$HOOK_PORT/hook"
format = "json"
min_severity = "info"
[rules.thresholds.quality]
stale_after_ms = 259200000
EOF
} >"$OUT/wastewatch.toml"

log "receivers down: Alertmanager stopped, webhook port $HOOK_PORT closed"
scripts/services.sh stop alertmanager >&2
cleanup() {
    kill "${SIM_PID:-}" "${WW_PID:-}" "${HOOK_PID:-}" 2>/dev/null || true
    wait 2>/dev/null || true
    scripts/services.sh start alertmanager >/dev/null 2>&1 || true
}
trap cleanup EXIT
start_wastewatch "$OUT/wastewatch.toml" "$HTTP_PORT"
TOTAL_S=$((DOWN_S + AFTER_S))
"$SIM" --zone "$ZONE" --host 127.0.0.1 --port "$MQTT_PORT" --client-id "sim-$STAMP" \
    --client-id-prefix ww: --username "$SIMU" --password-file "$AUTH/$SIMU.password" \
    --scenario normal,storage_overfill,bin_fire,route_deviation --rate "$RATE" --speedup 200 \
    --start-unix-ms $(( ($(date +%s) - 47 * 3600) * 1000 )) \
    --duration "$TOTAL_S" --clamp-to-wall-clock --quiet >"$OUT/sim.log" 2>&1 &
SIM_PID=$!

echo "t_s,phase,alert_events,notify_queued,notify_delivered,notify_failures,notify_dropped,notify_outbox" >"$OUT/samples.csv"
T0=$(date +%s)
sample() {
    local m
    m=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" || true)
    echo "$(($(date +%s) - T0)),$1,$(metric alert_events_total "$m"),$(metric notify_queued_total "$m"),$(metric notify_delivered_total "$m"),$(metric notify_failures_total "$m"),$(metric notify_dropped_total "$m"),$(awk '$1 ~ /^notify_outbox/ { s += $2 } END { print s + 0 }' <<<"$m")" >>"$OUT/samples.csv"
}
run_phase() { local end=$(($(date +%s) + $2)); while [[ $(date +%s) -lt $end ]]; do sample "$1"; sleep 5; done; }
run_phase down "$DOWN_S"

log "receivers back"
scripts/services.sh start alertmanager >&2
python3 - "$HOOK_PORT" "$OUT/deliveries.jsonl" >"$OUT/hook.log" 2>&1 <<'EOF' &
import http.server, json, sys
port, path = int(sys.argv[1]), sys.argv[2]
out = open(path, "a", buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        for a in json.loads(body)["alerts"]:
            out.write(json.dumps(a, sort_keys=True) + "\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
HOOK_PID=$!
run_phase after "$AFTER_S"
kill "$SIM_PID" 2>/dev/null || true
wait "$SIM_PID" 2>/dev/null || true
log "fleet stopped; waiting for the outboxes to empty"
for _ in $(seq 1 60); do
    sample settle
    [[ $(tail -1 "$OUT/samples.csv" | cut -d, -f8) == 0 ]] && break
    sleep 5
done
sleep 5
curl -sf "http://127.0.0.1:$HTTP_PORT/api/v1/alerts" >"$OUT/service-alerts.json"
curl -sf "$WW_TEST_ALERTMANAGER/api/v2/alerts" >"$OUT/alertmanager-alerts.json"

python3 - "$OUT" "$DOWN_S" <<'EOF'
import collections, csv, json, sys
out, down_s = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
num = lambda r, k: int(float(r[k] or 0))
down = [r for r in rows if r["phase"] == "down"]
events_down = num(down[-1], "alert_events") - num(down[0], "alert_events") if down else 0
failures_down = num(down[-1], "notify_failures") if down else 0
delivered_down = num(down[-1], "notify_delivered") if down else 0
deliveries = [json.loads(l) for l in open(f"{out}/deliveries.jsonl")] if __import__("os").path.exists(f"{out}/deliveries.jsonl") else []
key = lambda a: (a["id"], a["state"], a["severity"], a["acknowledged_by"], a["resolved_at"])
counts = collections.Counter(key(a) for a in deliveries)
dups = {k: n for k, n in counts.items() if n > 1}
svc = json.load(open(f"{out}/service-alerts.json"))
svc = svc.get("alerts", svc) if isinstance(svc, dict) else svc
delivered_latest = {}
for a in deliveries:
    delivered_latest.setdefault(a["id"], set()).add(a["state"])
# Pending alerts are not notified yet by design.
svc = [a for a in svc if a["state"] != "pending"]
missing = [a for a in svc if a["state"] not in delivered_latest.get(a["id"], set())]
am = json.load(open(f"{out}/alertmanager-alerts.json"))
am_ids = {x.get("annotations", {}).get("alert_id") for x in am}
firing = [a for a in svc if a["state"] in ("firing", "acknowledged")]
am_missing = [a["id"] for a in firing if str(a["id"]) not in am_ids]
last = rows[-1]
dropped = num(last, "notify_dropped")
ok = events_down > 0 and not dups and not missing and dropped == 0 and num(last, "notify_outbox") == 0 and not am_missing
rep = f"""# Notification receivers down for {down_s} s

| | |
|---|---|
| alert events while both receivers were down | {events_down} |
| deliveries while down / failed attempts while down | {delivered_down} / {failures_down} |
| alerts in the service at the end | {len(svc)} ({len(firing)} firing or acknowledged) |
| webhook deliveries after recovery (alert states) | {len(deliveries)} |
| alert states delivered more than once | {len(dups)} {sorted(dups.items())[:5] if dups else ""} |
| service alerts whose current state the webhook never got | {len(missing)} {[a["id"] for a in missing[:10]] if missing else ""} |
| firing alerts missing in Alertmanager | {len(am_missing)} {am_missing[:10] if am_missing else ""} |
| notify_dropped_total / outbox at the end | {dropped} / {num(last, "notify_outbox")} |
| verdict | {"PASS" if ok else "FAIL"} |

Samples every 5 s: samples.csv; deliveries: deliveries.jsonl.
"""
open(f"{out}/report.md", "w").write(rep)
print(rep)
sys.exit(0 if ok else 1)
EOF
