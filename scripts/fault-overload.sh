#!/usr/bin/env bash
# Sustained overload, as one documented run (too long for CI):
#
#   scripts/fault-overload.sh [--seconds 300] [--rate 40000] [--devices 2000]
#
# The real release binary runs against the real Mosquitto (the shipped
# config) and InfluxDB 1.x of scripts/services.sh. `firmware-sim replay`
# offers a captured 2,000-device fleet at --rate (QoS 1, one connection) for
# --seconds — on this 2-core box about 1.6x what wastewatch stores into
# InfluxDB 1.x per second (docs/BENCHMARKS.md), as fast as the publisher
# goes; the report states the ratio reached. Every 5 s the script samples
# wastewatch's /metrics, its RSS and the broker's RSS and $SYS counters,
# then waits for the backlog to drain. It checks and reports:
#   - nothing lost: every message the broker acknowledged to the publisher
#     is stored in InfluxDB (count of points == replay's acked);
#   - bounded memory: wastewatch's peak RSS (and the broker's, which holds
#     the queue for our session);
#   - counted backpressure: the log's bytes and bound, log_full episodes,
#     how far behind ingest acks fell from the publisher, the messages the
#     broker held ($SYS/broker/store/messages/count);
# and writes target/fault-overload/<stamp>/{samples.csv,report.md}.
#
# Exit status 0 when nothing was lost and RSS stayed under 100 MB; 1
# otherwise (the report says which).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
SECONDS_RUN=300
RATE=40000
DEVICES=2000
while [[ $# -gt 0 ]]; do
    case $1 in
    --seconds) SECONDS_RUN=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --devices) DEVICES=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
# shellcheck source=scripts/lib/fault.sh
. scripts/lib/fault.sh
fault_init fault-overload overload mosquitto influxdb
BROKER_PID=$(cat "$WW_SERVICES_DIR/mosquitto/mosquitto.pid")
fault_zone "$DEVICES"
COUNT=$((RATE * SECONDS_RUN))
log "capturing $COUNT messages"
"$SIM" capture --zone "$ZONE" --count "$COUNT" --out "$OUT/capture.bin" >"$OUT/capture.json"
fault_db overload

# Test-only identities: ingest (read), the publisher (write) and a monitor
# of the broker's $SYS counters.
ING=ww-ovl-ingest-${STAMP//-/}
PUB=ww-ovl-pub-${STAMP//-/}
MON=ww-ovl-mon-${STAMP//-/}
register_identities "$ING=topic read wastewatch/v1/#" "$PUB=topic write wastewatch/v1/#" \
    "$MON=topic read \$SYS/#"
sys_counter() { # $SYS/broker/<key> (updated every 10 s by the broker)
    mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i "ww:$MON" -u "$MON" -P "$(cat "$AUTH/$MON.password")" \
        -t "\$SYS/broker/$1" -C 1 -W 15 2>/dev/null || echo ""
}

HTTP_PORT=$(free_port)
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
[rules.thresholds.quality]
stale_after_ms = 259200000
EOF
} >"$OUT/wastewatch.toml"
cleanup() {
    kill "${PUB_PID:-}" "${WW_PID:-}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
start_wastewatch "$OUT/wastewatch.toml" "$HTTP_PORT"
sleep 1

log "offering $COUNT messages at $RATE msg/s (~${SECONDS_RUN} s)"
"$SIM" replay --file "$OUT/capture.bin" --rate "$RATE" --host 127.0.0.1 --port "$MQTT_PORT" \
    --client-id "ww:$PUB" --username "$PUB" --password-file "$AUTH/$PUB.password" \
    --ack-timeout-s 600 --timeline "$OUT/timeline.csv" >"$OUT/replay.json" 2>"$OUT/replay.log" &
PUB_PID=$!

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
echo "t_s,phase,acks,decoded,tsdb_points,tsdb_lag,log_bytes,log_max_bytes,log_full,log_full_events,ww_rss_kb,broker_rss_kb" >"$OUT/samples.csv"
T0=$(date +%s)
sample() {
    local m t
    m=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" || true)
    t=$(($(date +%s) - T0))
    echo "$t,$1,$(metric ingest_acks_total "$m"),$(metric ingest_decoded_total "$m"),$(metric tsdb_points_total "$m"),$(metric log_tsdb_lag_records "$m"),$(metric log_bytes "$m"),$(metric log_max_bytes "$m"),$(metric log_full "$m"),$(metric log_full_events_total "$m"),$(rss_kb "$WW_PID"),$(rss_kb "$BROKER_PID")" >>"$OUT/samples.csv"
}
HELD_PEAK=0
while kill -0 "$PUB_PID" 2>/dev/null; do
    sample load
    held=$(sys_counter store/messages/count)
    [[ ${held:-0} -gt $HELD_PEAK ]] && HELD_PEAK=$held
    sleep 5
done
wait "$PUB_PID" || log "the publisher exited with an error (see replay.log)"
PUB_END=$(date +%s)
log "publisher done after $((PUB_END - T0)) s; waiting for the backlog to drain"
ACKED=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("acked", 0))' "$OUT/replay.json" 2>/dev/null || echo 0)
for _ in $(seq 1 360); do
    sample drain
    pts=$(tail -1 "$OUT/samples.csv" | cut -d, -f5)
    lag=$(tail -1 "$OUT/samples.csv" | cut -d, -f6)
    [[ ${lag:-1} == 0 && ${pts:-0} -ge $ACKED ]] && break
    sleep 5
done

python3 - "$OUT" "$DB" "$WW_TEST_INFLUXDB" "$RATE" "$SECONDS_RUN" "$PUB_END" "$T0" "$HELD_PEAK" <<'EOF'
import csv, json, sys, urllib.parse, urllib.request
out, db, influx = sys.argv[1], sys.argv[2], sys.argv[3]
rate, secs, pub_end, t0, held_peak = (int(x) for x in sys.argv[4:9])
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
num = lambda r, k: int(float(r[k] or 0))
replay = json.load(open(f"{out}/replay.json"))
acked = int(replay.get("acked", 0))
pub_s = max(1, pub_end - t0)
load = [r for r in rows if r["phase"] == "load"]
last_load = load[-1] if load else rows[0]
ingest_rate = num(last_load, "acks") / max(1, int(last_load["t_s"]))
stored_rate = num(last_load, "tsdb_points") / max(1, int(last_load["t_s"]))
offered_rate = acked / pub_s
stored = 0
for m in ["bin_reading", "storage_reading", "truck_fix", "weighbridge_ticket", "device_status"]:
    q = urllib.parse.urlencode({"db": db, "q": f'SELECT count("seq") FROM "{m}"'})
    r = json.load(urllib.request.urlopen(f"{influx}/query?{q}"))
    for s in r["results"][0].get("series", []):
        stored += s["values"][0][1]
ww_peak = max(num(r, "ww_rss_kb") for r in rows) / 1024
broker_peak = max(num(r, "broker_rss_kb") for r in rows) / 1024
log_peak = max(num(r, "log_bytes") for r in rows)
log_max = max(num(r, "log_max_bytes") for r in rows)
full_events = max(num(r, "log_full_events") for r in rows)
behind = max(0, acked - num(last_load, "acks"))
decoded = num(rows[-1], "decoded")
lost = acked - stored
ok = lost <= 0 and ww_peak <= 100
rep = f"""# Overload: {acked:,} messages offered at up to {rate:,}/s for ~{secs} s

| | |
|---|---|
| offered (acked by the broker to the publisher) | {acked:,} in {pub_s} s = {offered_rate:,.0f}/s |
| wastewatch ingest (acks) while offered | {ingest_rate:,.0f}/s |
| stored into InfluxDB while offered | {stored_rate:,.0f}/s |
| overload: offered / stored | {offered_rate / max(1, stored_rate):.2f}x |
| ingest behind the publisher when it finished | {behind:,} messages (held by the broker for our session) |
| broker: peak messages held ($SYS store/messages/count) | {held_peak:,} |
| log: peak bytes / bound | {log_peak:,} / {log_max:,} |
| log_full episodes | {full_events} |
| wastewatch peak RSS | {ww_peak:.1f} MB |
| broker peak RSS | {broker_peak:.1f} MB |
| decoded / stored in InfluxDB / acked by the broker | {decoded:,} / {stored:,} / {acked:,} |
| lost (acked by the broker, not stored) | {max(0, lost):,} |
| verdict | {"PASS" if ok else "FAIL"} |

Samples every 5 s: samples.csv; publisher timeline: timeline.csv.
"""
open(f"{out}/report.md", "w").write(rep)
print(rep)
sys.exit(0 if ok else 1)
EOF
