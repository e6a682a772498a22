# Shared set-up of the long fault scripts (scripts/fault-*.sh); sourced, not
# run. The caller sets REPO (the repository root, current directory) first.

# fault_init NAME PREFIX SERVICE...: the run's directory
# target/NAME/<stamp> ($OUT, $STAMP), log/die with [PREFIX], the tools, the
# servers of scripts/services.sh and its env, the release binaries ($WW,
# $SIM) and the broker port ($MQTT_PORT).
fault_init() {
    local name=$1 prefix=$2
    shift 2
    STAMP=$(date -u +%Y%m%d-%H%M%S)
    OUT=$REPO/target/$name/$STAMP
    mkdir -p "$OUT"
    FAULT_PREFIX=$prefix
    for t in curl python3 mosquitto_passwd mosquitto_sub; do
        command -v $t >/dev/null || die "$t is missing"
    done
    scripts/services.sh install >/dev/null
    scripts/services.sh start "$@" >&2
    set -a
    # shellcheck disable=SC1091
    . target/services/env
    set +a
    MQTT_PORT=${WW_TEST_MQTT##*:}
    log "building release binaries"
    cargo build --release -p wastewatch -p firmware-sim >&2
    WW=$REPO/target/release/wastewatch
    SIM=$REPO/target/release/firmware-sim
}

log() { printf '[%s] %s\n' "$FAULT_PREFIX" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$FAULT_PREFIX" "$*" >&2; exit 1; }

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# fault_zone DEVICES: a generated zone in $ZONE.
fault_zone() {
    ZONE=$OUT/zone
    "$SIM" gen-zone --zone zone --out "$ZONE" --devices "$1" >&2
}

# fault_db PREFIX: a fresh InfluxDB database, named in $DB.
fault_db() {
    DB=$1_${STAMP//-/_}
    curl -sS -XPOST "$WW_TEST_INFLUXDB/query" --data-urlencode "q=CREATE DATABASE $DB" >/dev/null
}

# register_identities USER=GRANT ...: test-only identities on the shipped
# broker config (GRANT: an ACL line such as "topic read wastewatch/v1/#"),
# each with a random password in $AUTH/USER.password; returns once the
# first (which must read wastewatch/v1/#) can log in (the broker reloads
# asynchronously). Clients log in with
# `ww:` client ids.
register_identities() {
    AUTH=$OUT/auth
    mkdir -p "$AUTH"
    : >"$AUTH/passwd"
    : >"$AUTH/acl"
    local spec u
    for spec in "$@"; do
        u=${spec%%=*}
        python3 -c 'import secrets; print(secrets.token_hex(16))' >"$AUTH/$u.password"
        mosquitto_passwd -b "$AUTH/passwd" "$u" "$(cat "$AUTH/$u.password")"
        printf 'user %s\n%s\n' "$u" "${spec#*=}" >>"$AUTH/acl"
    done
    scripts/services.sh mqtt-users "$AUTH/passwd" "$AUTH/acl" >&2
    u=${1%%=*}
    for i in $(seq 1 150); do
        mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i "ww:probe-$STAMP" -u "$u" \
            -P "$(cat "$AUTH/$u.password")" -t 'wastewatch/v1/#' -E >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "identity $u cannot log in 15 s after registering it"
}

# The MQTT and log sections of a wastewatch config for this run: ingest
# identity $1, the generated zone, the log under $OUT.
ingest_config() {
    cat <<CONF
[mqtt]
host = "127.0.0.1"
port = $MQTT_PORT
client_id = "ww:$1"
username = "$1"
password_file = "$AUTH/$1.password"
# Short: a session left behind would get a copy of every later test message.
session_expiry_s = 120
[decode]
registry_dir = "$ZONE"
[log]
dir = "$OUT/data"
CONF
}

# start_wastewatch CONFIG HTTP_PORT: checks the config, starts the service
# ($WW_PID, log in $OUT/wastewatch.log) and waits for /healthz. For a
# profile, WW_WRAPPER is put in front of the command (for instance
# WW_WRAPPER="heaptrack -o $OUT/heaptrack"); $WW_PID is then the wrapper's.
start_wastewatch() {
    "$WW" check-config --config "$1" >&2
    # shellcheck disable=SC2086
    RUST_LOG=info ${WW_WRAPPER:-} "$WW" run --config "$1" >"$OUT/wastewatch.log" 2>&1 &
    WW_PID=$!
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$2/healthz" >/dev/null && return
        sleep 0.2
    done
    die "wastewatch did not answer /healthz within 20 s (see $OUT/wastewatch.log)"
}

# metric NAME TEXT: the value of an unlabelled metric in /metrics TEXT.
metric() { awk -v n="$1" '$1 == n { print $2 }' <<<"$2"; }
