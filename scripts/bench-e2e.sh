#!/usr/bin/env bash
# End-to-end benchmark: the same captured messages, replayed at fixed offered
# rates through the real Mosquitto broker, to three subscribers in turn:
#
#   bare        the ceiling: mosquitto_sub, QoS 1, persistent session, no work
#               (one byte per message to a file, so its size is the count)
#   wastewatch  target/release/wastewatch run, generated TOML config
#   bridge      scripts/bench/bridge.py: paho-mqtt + protobuf + requests, the
#               hand-written bridge without durability a user would otherwise write
#
# Usage:
#   scripts/bench-e2e.sh                                 # 100000 msgs, 2000 devices, 10k/20k/40k msg/s
#   scripts/bench-e2e.sh --count 20000 --rates 5000      # quick run
#
# Options:
#   --count N            messages in the capture (default 100000)
#   --rates R1,R2,...    offered rates, msg/s (default 10000,20000,40000)
#   --devices N          devices in the generated zone, shipped zone included (default 2000)
#   --seed S             simulator seed (default 1)
#   --json-share F       share of devices sending legacy JSON (default 0.1, as firmware-sim)
#   --subscribers LIST   which, in this order (default bare,wastewatch,bridge)
#   --tsdb influxdb|vm   InfluxDB 1.x (default) or VictoriaMetrics via its
#                        /api/v2/write endpoint (DELETES the device
#                        measurements' series of the test VM before each run)
#   --sample-ms MS       stored-count sampling interval (default 100)
#   --drain-timeout S    after the last publish, wait at most S s for everything to be stored (default 120)
#   --keep-dbs           keep each run's InfluxDB database (default: dropped after counting)
#   --count-by query|metrics
#                        how wastewatch's stored count is sampled during a run:
#                        querying the TSDB (default), or its own /metrics
#                        (acked less the TSDB writer's lag: what the TSDB
#                        answered 2xx for) for a TSDB that makes points
#                        searchable only later (VictoriaMetrics); the final
#                        count is queried either way
#   --fresh-broker       stop the test broker, wipe its persistence and start it
#                        again first: no other sessions get copies of the
#                        messages (breaks tests running against it meanwhile)
#   --no-build           use the existing release binaries
#   --wastewatch BIN     wastewatch binary to measure (default target/release/wastewatch)
#   --firmware-sim BIN   firmware-sim binary for gen-zone/capture/replay (default target/release/firmware-sim)
#
# What it does: starts Mosquitto and the TSDB with `scripts/services.sh start
# NAME...` (keeps servers that already run; the project's broker config),
# builds the release binaries, installs scripts/bench/requirements.txt into
# target/bench-venv, compiles proto/ for Python into target/bench-py, writes
# a zone with `firmware-sim gen-zone` and a capture with `firmware-sim
# capture`, then scripts/bench/harness.py runs every (rate, subscriber) pair:
# fresh MQTT session and database, `firmware-sim replay` at the rate, the
# stored count sampled while publishing, CPU and peak RSS from /proc. The
# Markdown table goes to stdout and target/bench-e2e/results-<timestamp>.md
# (raw data next to it). Method and column definitions are in the report.
# The broker authenticates every client as shipped: each run registers its
# own subscriber and publisher identities with `scripts/services.sh
# mqtt-users` (test-only ACL entries), and all clients send `ww:` client ids.
#
# Exit status: 0 when every run stored exactly what the broker acked; 3 when
# some run lost messages or failed (the report says which); 1 when the harness
# itself could not run (missing tool or server, build failure).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

COUNT=100000
RATES=10000,20000,40000
DEVICES=2000
SEED=1
JSON_SHARE=0.1
SUBSCRIBERS=bare,wastewatch,bridge
TSDB=influxdb
SAMPLE_MS=100
DRAIN_TIMEOUT=120
KEEP_DBS=0
COUNT_BY=query
FRESH_BROKER=0
BUILD=1
WASTEWATCH_BIN=$REPO/target/release/wastewatch
FSIM_BIN=$REPO/target/release/firmware-sim
OUT=$REPO/target/bench-e2e
VENV=$REPO/target/bench-venv
PROTO_PY=$REPO/target/bench-py

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
    printf '[bench] ERROR: %s\n' "$*" >&2
    exit 1
}
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}
num() { [[ $2 =~ ^[0-9]+$ ]] || die "$1 needs a whole number, got '$2'"; }

while (($#)); do
    case $1 in
        --count) COUNT=${2:?}; num "$1" "$COUNT"; shift 2 ;;
        --rates) RATES=${2:?}; shift 2 ;;
        --devices) DEVICES=${2:?}; num "$1" "$DEVICES"; shift 2 ;;
        --seed) SEED=${2:?}; num "$1" "$SEED"; shift 2 ;;
        --json-share) JSON_SHARE=${2:?}; shift 2 ;;
        --subscribers) SUBSCRIBERS=${2:?}; shift 2 ;;
        --tsdb) TSDB=${2:?}; shift 2 ;;
        --sample-ms) SAMPLE_MS=${2:?}; num "$1" "$SAMPLE_MS"; shift 2 ;;
        --drain-timeout) DRAIN_TIMEOUT=${2:?}; num "$1" "$DRAIN_TIMEOUT"; shift 2 ;;
        --keep-dbs) KEEP_DBS=1; shift ;;
        --count-by) COUNT_BY=${2:?}; case $COUNT_BY in query|metrics) ;; *) echo "--count-by: query or metrics, not $COUNT_BY" >&2; exit 2 ;; esac; shift 2 ;;
        --fresh-broker) FRESH_BROKER=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --wastewatch) WASTEWATCH_BIN=$(realpath "${2:?}"); shift 2 ;;
        --firmware-sim) FSIM_BIN=$(realpath "${2:?}"); shift 2 ;;
        -h | --help) usage ;;
        *) log "unknown option '$1'"; usage ;;
    esac
done

[[ $RATES =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--rates needs msg/s values separated by commas, got '$RATES'"
((COUNT > 0)) || die "--count must be at least 1"
case $TSDB in
    influxdb) TSDB_SERVICE=influxdb ;;
    vm) TSDB_SERVICE=victoria-metrics ;;
    *) die "--tsdb must be influxdb or vm, got '$TSDB'" ;;
esac
IFS=, read -r -a SUBS <<<"$SUBSCRIBERS"
((${#SUBS[@]} > 0)) || die "--subscribers is empty"
for s in "${SUBS[@]}"; do
    case $s in bare | wastewatch | bridge) ;; *) die "unknown subscriber '$s' (bare, wastewatch, bridge)" ;; esac
done

# --- tools ------------------------------------------------------------------
for t in python3 curl mosquitto_sub git; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' not found (mosquitto_sub: apt-get install mosquitto-clients, or scripts/services.sh install)"
done
((BUILD == 0)) || command -v cargo >/dev/null 2>&1 || die "'cargo' not found"
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || die "python3 >= 3.9 needed"
python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 has no venv/ensurepip (apt-get install python3-venv)"

# --- servers ----------------------------------------------------------------
log "servers: scripts/services.sh start mosquitto $TSDB_SERVICE"
"$REPO/scripts/services.sh" start mosquitto "$TSDB_SERVICE" ||
    die "scripts/services.sh could not start mosquitto/$TSDB_SERVICE (missing? run scripts/services.sh install)"
ENV_TEXT=$("$REPO/scripts/services.sh" env) || die "scripts/services.sh env failed"
svc_env() { sed -n "s/^$1=//p" <<<"$ENV_TEXT"; }
MQTT=$(svc_env WW_TEST_MQTT)
INFLUX_URL=$(svc_env WW_TEST_INFLUXDB)
VM_URL=$(svc_env WW_TEST_VM)
SERVICES_DIR=$(svc_env WW_SERVICES_DIR)
[[ -n $MQTT && -n $INFLUX_URL && -n $VM_URL && -n $SERVICES_DIR ]] || die "scripts/services.sh env is missing addresses"
if ((FRESH_BROKER)); then
    log "servers: fresh broker (stop mosquitto, wipe $SERVICES_DIR/mosquitto, start)"
    "$REPO/scripts/services.sh" stop mosquitto || die "could not stop mosquitto"
    rm -rf "${SERVICES_DIR:?}/mosquitto"
    "$REPO/scripts/services.sh" start mosquitto || die "could not start mosquitto"
fi
"$REPO/scripts/services.sh" status 2>/dev/null | grep -E "^(mosquitto|$TSDB_SERVICE) " | grep -qE "stopped|NOT ready" &&
    die "mosquitto or $TSDB_SERVICE is not ready: $("$REPO/scripts/services.sh" status 2>&1)"

# --- binaries ---------------------------------------------------------------
if ((BUILD)); then
    log "build: cargo build --release -p wastewatch -p firmware-sim --bins"
    cargo build --release -p wastewatch -p firmware-sim --bins ||
        die "release build failed (wastewatch and firmware-sim are needed; --no-build with --wastewatch/--firmware-sim BIN uses other binaries)"
fi
[[ -x $WASTEWATCH_BIN ]] || die "no wastewatch binary at $WASTEWATCH_BIN"
[[ -x $FSIM_BIN ]] || die "no firmware-sim binary at $FSIM_BIN"
"$FSIM_BIN" replay --help >/dev/null 2>&1 || die "$FSIM_BIN has no 'replay' subcommand (rebuild it)"

# --- Python -----------------------------------------------------------------
REQ=$REPO/scripts/bench/requirements.txt
REQ_SUM=$(sha256sum "$REQ" | cut -d' ' -f1)
if [[ ! -x $VENV/bin/python || $(cat "$VENV/.requirements.sha256" 2>/dev/null) != "$REQ_SUM" ]]; then
    log "python: creating $VENV from scripts/bench/requirements.txt"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" || die "pip install -r $REQ failed"
    echo "$REQ_SUM" >"$VENV/.requirements.sha256"
fi
rm -rf "$PROTO_PY" && mkdir -p "$PROTO_PY"
"$VENV/bin/python" -m grpc_tools.protoc -I"$REPO/proto" --python_out="$PROTO_PY" "$REPO"/proto/wastewatch/v1/*.proto ||
    die "protoc (grpcio-tools) could not compile proto/wastewatch/v1"
"$VENV/bin/python" -c "import sys; sys.path.insert(0, '$PROTO_PY'); import paho.mqtt.client, requests; from wastewatch.v1 import envelope_pb2" ||
    die "the bridge's Python modules do not import"

# --- zone and capture -------------------------------------------------------
mkdir -p "$OUT"
SHIPPED=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$REPO/zone/devices.json")
((DEVICES > SHIPPED)) || die "--devices must exceed the $SHIPPED devices of the shipped zone"
ZONE=$OUT/zone-$DEVICES
log "zone: $DEVICES devices ($SHIPPED shipped + $((DEVICES - SHIPPED)) generated) in ${ZONE#"$REPO"/}"
rm -rf "$ZONE"
"$FSIM_BIN" gen-zone --zone "$REPO/zone" --out "$ZONE" --devices $((DEVICES - SHIPPED)) >&2 || die "firmware-sim gen-zone failed"
CAPTURE=$OUT/capture-d$DEVICES-n$COUNT-s$SEED-j$JSON_SHARE.bin
log "capture: $COUNT messages -> ${CAPTURE#"$REPO"/}"
"$FSIM_BIN" capture --zone "$ZONE" --count "$COUNT" --seed "$SEED" --json-share "$JSON_SHARE" --out "$CAPTURE" \
    >"$CAPTURE.json" || die "firmware-sim capture failed"
python3 - "$CAPTURE.json" "$COUNT" <<'EOF' || die "capture check failed"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["count"] == int(sys.argv[2]), "capture has %d messages, wanted %s" % (c["count"], sys.argv[2])
print("[bench] capture: %d messages, simulated span %.0f s, %s, %d JSON, %d left out (same point)"
      % (c["count"], c["simulated_span_s"], c["by_measurement"], c["json_messages"], c["dropped_same_point"]), file=sys.stderr)
EOF

# --- run --------------------------------------------------------------------
ARGS=(--repo "$REPO" --capture "$CAPTURE" --capture-summary "$CAPTURE.json" --zone "$ZONE"
    --count "$COUNT" --rates "$RATES" --subscribers "$SUBSCRIBERS" --tsdb "$TSDB"
    --mqtt "$MQTT" --influx-url "$INFLUX_URL" --vm-url "$VM_URL" --services-dir "$SERVICES_DIR"
    --wastewatch "$WASTEWATCH_BIN" --firmware-sim "$FSIM_BIN" --python "$VENV/bin/python"
    --proto-dir "$PROTO_PY" --out-dir "$OUT" --sample-ms "$SAMPLE_MS" --drain-timeout "$DRAIN_TIMEOUT" --count-by "$COUNT_BY")
((KEEP_DBS == 0)) || ARGS+=(--keep-dbs)
exec "$VENV/bin/python" "$REPO/scripts/bench/harness.py" "${ARGS[@]}"
