#!/usr/bin/env bash
# A long TSDB outage under load, as one documented run (too long for CI):
#
#   scripts/fault-tsdb-outage.sh [--minutes 10] [--rate 5000] [--devices 2000] [--hang]
#
# --hang: instead of refusing connections, the TSDB hangs: the shared
# InfluxDB process is stopped with SIGSTOP for the outage (the kernel still
# accepts connections; nothing answers) and continued after it. Other users
# of the test InfluxDB hang with it, so run it alone.
#
# The real release binary runs against the real Mosquitto, InfluxDB 1.x and
# Alertmanager of scripts/services.sh; InfluxDB is reached through a small
# TCP gate (scripts/bench/tsdb_gate.py) that this script closes for the
# outage, so other users of the shared InfluxDB are not disturbed. firmware-sim
# publishes a 2,000-device zone with route-deviation and storage-overfill
# scenarios at the offered rate for 1 minute before, during, and 2 minutes
# after the outage. Every 5 s the script samples /metrics. It checks and
# reports:
#   - ingest kept acking during the outage (the log absorbed it);
#   - the rules cursor kept up and alerts were raised and notified during the
#     outage (log_rules_lag_records, alert_events_total,
#     notify_delivered_total);
#   - the backlog drained after it, and at what rate (log_tsdb_lag_records);
#   - every message the broker acknowledged to the publisher is stored
#     (count in InfluxDB == ingest_decoded_total, and ingest_acks_total ==
#     what the simulator was acked);
# and writes target/fault-tsdb-outage/<stamp>/{samples.csv,report.md}.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
MINUTES=10
RATE=5000
DEVICES=2000
BEFORE_S=60
AFTER_S=120
HANG=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --devices) DEVICES=$2; shift 2 ;;
    --before-s) BEFORE_S=$2; shift 2 ;;
    --after-s) AFTER_S=$2; shift 2 ;;
    --hang) HANG=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
OUTAGE_S=$((MINUTES * 60))
# shellcheck source=scripts/lib/fault.sh
. scripts/lib/fault.sh
fault_init fault-tsdb-outage outage mosquitto influxdb alertmanager
fault_zone "$DEVICES"
fault_db outage

GATE_PORT=$(free_port)
HTTP_PORT=$(free_port)
GATE_CTL=$OUT/gate-down
python3 scripts/bench/tsdb_gate.py --listen "127.0.0.1:$GATE_PORT" \
    --target "${WW_TEST_INFLUXDB#http://}" --down-file "$GATE_CTL" >"$OUT/gate.log" 2>&1 &
GATE_PID=$!

# The broker authenticates every client as shipped: this run's ingest
# identity reads wastewatch/v1/#, the simulator's gateway identity writes it.
ING=ww-outage-ingest-${STAMP//-/}
SIMU=ww-outage-sim-${STAMP//-/}
register_identities "$ING=topic read wastewatch/v1/#" "$SIMU=topic write wastewatch/v1/#"

{
    ingest_config "$ING"
    cat <<EOF
[tsdb]
kind = "influxdb_v1"
url = "http://127.0.0.1:$GATE_PORT"
database = "$DB"
retry_max_ms = 5000
stats_interval_ms = 0
[http]
listen = "127.0.0.1:$HTTP_PORT"
# The fleet replays the last two days at 200x (below), so its readings are
# hours old by design; do not turn every alert into "cannot verify".
[rules.thresholds.quality]
stale_after_ms = 259200000
[notify]
alertmanager_url = "$WW_TEST_ALERTMANAGER"
EOF
} >"$OUT/wastewatch.toml"
INFLUX_PID=$(cat "$REPO/target/services/influxdb/influxdb.pid" 2>/dev/null || true)
if ((HANG)) && ! kill -0 "${INFLUX_PID:-0}" 2>/dev/null; then
    echo "--hang: no running InfluxDB found (target/services/influxdb/influxdb.pid)" >&2
    exit 1
fi
cleanup() {
    ((HANG)) && kill -CONT "$INFLUX_PID" 2>/dev/null
    kill "${SIM_PID:-}" "${WW_PID:-}" "$GATE_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT
start_wastewatch "$OUT/wastewatch.toml" "$HTTP_PORT"
sleep 1

TOTAL_S=$((BEFORE_S + OUTAGE_S + AFTER_S))
log "publishing ~$RATE msg/s for ${TOTAL_S}s; outage of ${OUTAGE_S}s after ${BEFORE_S}s"
"$SIM" --zone "$ZONE" --host 127.0.0.1 --port "$MQTT_PORT" --client-id "sim-$STAMP" \
    --client-id-prefix ww: --username "$SIMU" --password-file "$AUTH/$SIMU.password" \
    --scenario normal,route_deviation,storage_overfill --rate "$RATE" --speedup 200 \
    --start-unix-ms $(( ($(date +%s) - 47 * 3600) * 1000 )) \
    --duration "$TOTAL_S" --clamp-to-wall-clock --quiet --summary-json "$OUT/sim-summary.json" \
    >"$OUT/sim.log" 2>&1 &
SIM_PID=$!

echo "t_s,phase,acks,decoded,tsdb_points,tsdb_lag,rules_lag,alert_events,notified,tsdb_up,log_full" >"$OUT/samples.csv"
T0=$(date +%s)
sample() {
    local m t phase
    m=$(curl -sf "http://127.0.0.1:$HTTP_PORT/metrics" || true)
    t=$(($(date +%s) - T0))
    phase=$1
    echo "$t,$phase,$(metric ingest_acks_total "$m"),$(metric ingest_decoded_total "$m"),$(metric tsdb_points_total "$m"),$(metric log_tsdb_lag_records "$m"),$(metric log_rules_lag_records "$m"),$(metric alert_events_total "$m"),$(metric notify_delivered_total "$m"),$(metric tsdb_up "$m"),$(metric log_full "$m")" >>"$OUT/samples.csv"
}
run_phase() { # name seconds
    local end=$(($(date +%s) + $2))
    while [[ $(date +%s) -lt $end ]]; do sample "$1"; sleep 5; done
}
run_phase before "$BEFORE_S"
if ((HANG)); then
    log "TSDB hung (SIGSTOP $INFLUX_PID)"
    kill -STOP "$INFLUX_PID"
else
    log "TSDB down"
    touch "$GATE_CTL"
fi
run_phase outage "$OUTAGE_S"
log "TSDB back"
if ((HANG)); then kill -CONT "$INFLUX_PID"; else rm -f "$GATE_CTL"; fi
run_phase after "$AFTER_S"
wait "$SIM_PID" || true
log "waiting for the backlog to drain"
for _ in $(seq 1 360); do
    sample drain
    lag=$(tail -1 "$OUT/samples.csv" | cut -d, -f6)
    [[ ${lag:-1} == 0 ]] && break
    sleep 5
done

python3 - "$OUT" "$DB" "$WW_TEST_INFLUXDB" "$RATE" "$OUTAGE_S" "$HANG" <<'EOF'
import csv, json, sys, urllib.parse, urllib.request
out, db, influx, rate, outage_s = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
kind = "hung (SIGSTOP)" if sys.argv[6] == "1" else "down"
rows = list(csv.DictReader(open(f"{out}/samples.csv")))
num = lambda r, k: int(float(r[k] or 0))
def phase(p): return [r for r in rows if r["phase"] == p]
o = phase("outage")
acks_during = num(o[-1], "acks") - num(o[0], "acks") if o else 0
alerts_during = num(o[-1], "alert_events") - num(o[0], "alert_events") if o else 0
notified_during = num(o[-1], "notified") - num(o[0], "notified") if o else 0
max_rules_lag = max((num(r, "rules_lag") for r in o), default=0)
peak_tsdb_lag = max((num(r, "tsdb_lag") for r in rows), default=0)
# Drain: from the peak tsdb lag to zero.
peak_i = max(range(len(rows)), key=lambda i: num(rows[i], "tsdb_lag"))
zero = next((i for i in range(peak_i, len(rows)) if num(rows[i], "tsdb_lag") == 0), None)
drain_rate = None
if zero is not None and zero > peak_i:
    drain_rate = (num(rows[peak_i], "tsdb_lag")) / max(1, int(rows[zero]["t_s"]) - int(rows[peak_i]["t_s"]))
stored = 0
for m in ["bin_reading", "storage_reading", "truck_fix", "weighbridge_ticket", "device_status"]:
    q = urllib.parse.urlencode({"db": db, "q": f'SELECT count("seq") FROM "{m}"'})
    r = json.load(urllib.request.urlopen(f"{influx}/query?{q}"))
    for s in r["results"][0].get("series", []):
        stored += s["values"][0][1]
last = rows[-1]
sim = json.load(open(f"{out}/sim-summary.json")) if __import__("os").path.exists(f"{out}/sim-summary.json") else {}
decoded = num(last, "decoded")
ok = acks_during > 0 and notified_during > 0 and stored >= decoded and (zero is not None)
rep = f"""# TSDB {kind} for {outage_s} s at ~{rate} msg/s offered

| | |
|---|---|
| messages acked by ingest during the outage | {acks_during} |
| alert events during the outage | {alerts_during} |
| notifications delivered during the outage | {notified_during} |
| largest rules lag during the outage (records) | {max_rules_lag} |
| peak TSDB backlog (records) | {peak_tsdb_lag} |
| backlog drain rate after the outage | {f"{drain_rate:,.0f} records/s" if drain_rate else "did not drain"} |
| records decoded / points stored in InfluxDB | {decoded} / {stored} |
| simulator: sent / acked by the broker | {sim.get("sent", "?")} / {sim.get("acked", "?")} |
| verdict | {"PASS" if ok else "FAIL"} |

Samples every 5 s: samples.csv.
"""
open(f"{out}/report.md", "w").write(rep)
print(rep)
sys.exit(0 if ok else 1)
EOF
