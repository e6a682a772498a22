#!/usr/bin/env bash
# Real servers for wastewatch's integration tests, on loopback only.
#
#   scripts/services.sh install              apt-get install what is missing; the
#                                            pysparkplug venv (target/sparkplug-venv)
#   scripts/services.sh start [NAME...]      start (no NAME: all, FRESH data)
#   scripts/services.sh stop [NAME...]       stop (no NAME: all)
#   scripts/services.sh restart NAME...      stop + start, KEEPING the data
#   scripts/services.sh crash NAME...        SIGKILL + start, keeping the data (what it had not saved is lost)
#   scripts/services.sh status               show what runs
#   scripts/services.sh env                  print the env file for tests
#   scripts/services.sh mqtt-users PASSWD ACL
#                                            add test identities to the broker
#
# NAME: mosquitto | influxdb | victoria-metrics | alertmanager
#
#   mosquitto         127.0.0.1:18830  MQTT, config derived from
#                                      deploy/mosquitto/wastewatch.conf
#                     127.0.0.1:18883  MQTT over TLS (password)
#                     127.0.0.1:18884  MQTT over TLS (client certificate)
#   influxdb          127.0.0.1:18086  InfluxDB 1.x HTTP (RPC on :18088),
#                                      database `wastewatch` created on start
#   victoria-metrics  127.0.0.1:18428  VictoriaMetrics (InfluxDB v2 write API,
#                                      /api/v1/export to read back)
#   alertmanager      127.0.0.1:19093  Alertmanager with
#                                      deploy/alertmanager/alertmanager.yml
#
# Each server keeps its data, pid file, log and generated config under
# ${WW_SERVICES_DIR:-<repo>/target/services}/<name>/. `start` with no names
# wipes those dirs first; `start NAME` / `restart NAME` keep them, so a test
# can take InfluxDB (or the broker) down and up again mid-stream without
# losing what was written. `start` returns only when every server answers
# (or fails, printing the log tail). Commands are serialised with a lock, so
# tests running in parallel may call this script.
#
# The broker authenticates every client, as shipped. Its test files live in
# <services dir>/mosquitto/: auth/passwd (password file), auth/acl (the
# shipped deploy/mosquitto/wastewatch.acl followed by the test identities of
# auth/acl.tests), tls/ (a throw-away CA and a server certificate for
# 127.0.0.1, made with openssl at the first start). `mqtt-users PASSWD ACL`
# merges a password file (lines of the same user replaced) and appends ACL
# lines, then makes the broker re-read both (SIGHUP); the test kit calls it
# for the identities of each test zone. The readiness probe logs in as
# ww-selftest-pub / ww-selftest-sub (test-only identities on a topic outside
# wastewatch/v1/). ww-writer-00 .. ww-writer-63 (password in
# auth/writer.password) are test-only identities that may publish anywhere
# under wastewatch/v1/ (malformed topics, whole simulated fleets); the test
# kit leases one per publisher with a lock file (auth/writer-NN.lock), so
# publishing needs no reload of the broker.
#
# Tests read the addresses from the env file (`services.sh env`):
#   WW_TEST_MQTT, WW_TEST_INFLUXDB, WW_TEST_INFLUXDB_DB, WW_TEST_VM,
#   WW_TEST_ALERTMANAGER, WW_TEST_ALERTMANAGER_WEBHOOK, WW_SERVICES_SCRIPT,
#   WW_SERVICES_DIR, WW_TEST_MQTT_TLS, WW_TEST_MQTT_TLS_CERT (host:port of
#   the two TLS listeners), WW_TEST_MQTT_CA, WW_TEST_MQTT_CA_KEY (the test CA,
#   to issue client certificates)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
REPO=$(cd "$SCRIPT_DIR/.." && pwd)
SERVICES_DIR=${WW_SERVICES_DIR:-$REPO/target/services}
READY_TIMEOUT=${WW_SERVICES_TIMEOUT:-30}
STOP_TIMEOUT=${WW_SERVICES_STOP_TIMEOUT:-20}

HOST=127.0.0.1
ALL=(mosquitto influxdb victoria-metrics alertmanager)

MOSQUITTO_PORT=18830
MOSQUITTO_TLS_PORT=18883
MOSQUITTO_TLS_CERT_PORT=18884
WRITERS=64 # test-only writer identities, ww-writer-00 .. 63
INFLUXDB_PORT=18086
INFLUXDB_RPC_PORT=18088
VM_PORT=18428
ALERTMANAGER_PORT=19093
ALERTMANAGER_WEBHOOK=$HOST:19099 # the receiver in deploy/alertmanager/alertmanager.yml
INFLUXDB_DB=wastewatch

MOSQUITTO_CONF_SRC=$REPO/deploy/mosquitto/wastewatch.conf
MOSQUITTO_ACL_SRC=$REPO/deploy/mosquitto/wastewatch.acl
INFLUXDB_CONF_SRC=$REPO/deploy/influxdb/influxdb.conf
ALERTMANAGER_CONF=$REPO/deploy/alertmanager/alertmanager.yml

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,13p' "$SCRIPT" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

# binary -> Debian package that provides it
REQUIRED_BINS=(
    mosquitto:mosquitto
    mosquitto_pub:mosquitto-clients
    mosquitto_sub:mosquitto-clients
    influxd:influxdb
    victoria-metrics:victoria-metrics
    prometheus-alertmanager:prometheus-alertmanager
    amtool:prometheus-alertmanager
    curl:curl
    openssl:openssl
    mosquitto_passwd:mosquitto
    flock:util-linux
)

cmd_install() {
    local entry bin pkg missing=()
    for entry in "${REQUIRED_BINS[@]}"; do
        bin=${entry%%:*}
        pkg=${entry#*:}
        if ! command -v "$bin" >/dev/null 2>&1; then
            [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        log "install: all binaries present"
        install_sparkplug_venv
        return 0
    fi
    log "install: missing packages: ${missing[*]}"

    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot apt-get install ${missing[*]}"
        sudo=(sudo)
    fi
    # Keep the packages' own system services (which would listen on all
    # interfaces on the default ports) from being started by the install:
    # policy-rc.d exit 101 = "action forbidden". Only if none exists already.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        created_policy=1
    fi
    local rc=0
    {
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                --no-install-recommends "${missing[@]}"
    } || rc=$?
    if ((created_policy)); then "${sudo[@]}" rm -f "$policy"; fi
    ((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"

    for entry in "${REQUIRED_BINS[@]}"; do
        bin=${entry%%:*}
        command -v "$bin" >/dev/null 2>&1 || die "install: '$bin' still missing after installing ${entry#*:}"
    done
    install_sparkplug_venv
    log "install: done"
}

# The Sparkplug B edge node of tests/sparkplug_end_to_end.rs is pysparkplug
# (PyPI, pinned in tests/sparkplug/requirements.txt), in a venv under
# target/. Kept when it already has the pinned version; a failure is fatal.
install_sparkplug_venv() {
    local venv=$REPO/target/sparkplug-venv req=$REPO/tests/sparkplug/requirements.txt
    if [[ -x $venv/bin/python ]] &&
        "$venv/bin/python" -c "import pysparkplug; assert pysparkplug.__version__ == '0.6.1'" 2>/dev/null; then
        log "install: $venv has pysparkplug 0.6.1"
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "install: python3 is needed for the Sparkplug edge node (pysparkplug)"
    python3 -m venv "$venv" || die "install: python3 -m venv $venv failed (apt-get install python3-venv)"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" || die "install: pip install -r $req failed"
    "$venv/bin/python" -c "import pysparkplug; assert pysparkplug.__version__ == '0.6.1'" ||
        die "install: pysparkplug 0.6.1 not importable from $venv"
    log "install: pysparkplug installed into $venv"
}

require_bins() {
    local entry bin
    for entry in "${REQUIRED_BINS[@]}"; do
        bin=${entry%%:*}
        command -v "$bin" >/dev/null 2>&1 ||
            die "'$bin' not found (package ${entry#*:}); run: $SCRIPT install"
    done
}

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

svc_dir() { printf '%s/%s' "$SERVICES_DIR" "$1"; }
pid_file() { printf '%s/%s/%s.pid' "$SERVICES_DIR" "$1" "$1"; }
log_file() { printf '%s/%s/%s.log' "$SERVICES_DIR" "$1" "$1"; }

svc_port() {
    case $1 in
        mosquitto) echo "$MOSQUITTO_PORT" ;;
        influxdb) echo "$INFLUXDB_PORT" ;;
        victoria-metrics) echo "$VM_PORT" ;;
        alertmanager) echo "$ALERTMANAGER_PORT" ;;
        *) die "unknown service '$1' (known: ${ALL[*]})" ;;
    esac
}

svc_bin() {
    case $1 in
        mosquitto) echo mosquitto ;;
        influxdb) echo influxd ;;
        victoria-metrics) echo victoria-metrics ;;
        alertmanager) echo prometheus-alertmanager ;;
    esac
}

# Pid of the running server, from its pid file; fails if not running. The
# process must still be the binary we started (pid files outlive reboots).
svc_pid() {
    local pf pid exe
    pf=$(pid_file "$1")
    [[ -f $pf ]] || return 1
    pid=$(<"$pf")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
    [[ -z $exe || $(basename "$exe") == "$(svc_bin "$1")" ]] || return 1
    echo "$pid"
}

# kill -0 also succeeds for a zombie (a stopped server whose parent, e.g. a
# PID 1 that doesn't reap, never waited for it): treat 'Z' as dead.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

http_code() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" 2>/dev/null || true
}

# Is the server really serving?
svc_ready() {
    case $1 in
        mosquitto)
            port_open "$MOSQUITTO_PORT" || return 1
            # A real MQTT round trip: publish a retained message, read it back
            # with a new subscriber, then clear it.
            # as the test-only selftest identities (the broker refuses
            # anonymous clients).
            local topic token got auth pw
            auth=$(svc_dir mosquitto)/auth
            pw=$(cat "$auth/selftest.password" 2>/dev/null) || return 1
            topic="wastewatch-selftest/ready"
            token="ready-$$-$RANDOM"
            # (client ids with the shipped config's "ww:" prefix).
            mosquitto_pub -h "$HOST" -p "$MOSQUITTO_PORT" -i ww:selftest -u ww-selftest-pub -P "$pw" \
                -q 1 -r -t "$topic" -m "$token" 2>/dev/null || return 1
            got=$(mosquitto_sub -h "$HOST" -p "$MOSQUITTO_PORT" -i ww:selftest -u ww-selftest-sub -P "$pw" \
                -t "$topic" -C 1 -W 3 2>/dev/null) || return 1
            mosquitto_pub -h "$HOST" -p "$MOSQUITTO_PORT" -i ww:selftest -u ww-selftest-pub -P "$pw" \
                -q 1 -r -t "$topic" -n 2>/dev/null || true
            [[ $got == "$token" ]]
            ;;
        influxdb)
            [[ $(http_code "http://$HOST:$INFLUXDB_PORT/ping") == 204 ]]
            ;;
        victoria-metrics)
            [[ $(http_code "http://$HOST:$VM_PORT/health") == 200 ]]
            ;;
        alertmanager)
            [[ $(http_code "http://$HOST:$ALERTMANAGER_PORT/-/ready") == 200 ]]
            ;;
    esac
}

# ---------------------------------------------------------------------------
# per-service setup: generate config, print the command line
# ---------------------------------------------------------------------------

# Test certificates (once per fresh start): a CA, and a server certificate
# for 127.0.0.1 only (IP SAN, no DNS name: a client asking for "localhost"
# must refuse it).
gen_mosquitto_tls() {
    local tls=$1/tls
    [[ -f $tls/server.pem && -f $tls/ca.key ]] && return 0
    mkdir -p "$tls"
    (
        cd "$tls"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=wastewatch-test-ca" -keyout ca.key -out ca.pem
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=127.0.0.1" -keyout server.key -out server.csr
        printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$HOST" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -days 30 -extfile server.ext -out server.pem
    ) >>"$1/tls.log" 2>&1 || die "mosquitto: cannot make test certificates (see $1/tls.log)"
    chmod 600 "$tls"/*.key
}

# The live ACL: the shipped one, then the test identities.
gen_mosquitto_acl() {
    local auth=$1/auth
    [[ -f $MOSQUITTO_ACL_SRC ]] || die "missing $MOSQUITTO_ACL_SRC"
    {
        echo "# GENERATED by scripts/services.sh: deploy/mosquitto/wastewatch.acl + test identities; do not edit."
        cat "$MOSQUITTO_ACL_SRC"
        echo
        echo "# --- test identities (scripts/services.sh, the test kit) ---"
        echo "user ww-selftest-pub"
        echo "topic write wastewatch-selftest/#"
        echo "user ww-selftest-sub"
        echo "topic read wastewatch-selftest/#"
        for i in $(seq -w 0 $((WRITERS - 1))); do
            echo "user ww-writer-$i"
            echo "topic write wastewatch/v1/#"
        done
        cat "$auth/acl.tests" 2>/dev/null || true
    } >"$auth/acl.new"
    mv -f "$auth/acl.new" "$auth/acl"
}

# Password file and ACL of the test broker; existing identities are kept
# (a `restart` must not log out the tests' identities).
gen_mosquitto_auth() {
    local auth=$1/auth pw hash i
    mkdir -p "$auth"
    chmod 700 "$auth"
    [[ -f $auth/passwd ]] || : >"$auth/passwd"
    cp "$auth/passwd" "$auth/passwd.new"
    if [[ ! -f $auth/selftest.password ]]; then
        pw=$(openssl rand -hex 16)
        printf '%s\n' "$pw" >"$auth/selftest.password"
        mosquitto_passwd -b "$auth/passwd.new" ww-selftest-pub "$pw" >/dev/null
        mosquitto_passwd -b "$auth/passwd.new" ww-selftest-sub "$pw" >/dev/null
    fi
    if [[ ! -f $auth/writer.password ]]; then
        # The writers share one password (and so one hash line).
        pw=$(openssl rand -hex 16)
        : >"$auth/writer.passwd"
        mosquitto_passwd -b "$auth/writer.passwd" w "$pw" >/dev/null
        hash=$(cut -d: -f2- "$auth/writer.passwd")
        rm -f "$auth/writer.passwd"
        for i in $(seq -w 0 $((WRITERS - 1))); do
            printf 'ww-writer-%s:%s\n' "$i" "$hash" >>"$auth/passwd.new"
        done
        printf '%s\n' "$pw" >"$auth/writer.password"
    fi
    chmod 600 "$auth/passwd.new"
    mv -f "$auth/passwd.new" "$auth/passwd"
    gen_mosquitto_acl "$1"
}

# Test broker config = the shipped config with only the listeners, the file
# locations and the run-as user replaced.
gen_mosquitto_conf() {
    local dir=$1 out=$1/mosquitto.conf line port key
    [[ -f $MOSQUITTO_CONF_SRC ]] || die "missing $MOSQUITTO_CONF_SRC"
    mkdir -p "$dir/data"
    gen_mosquitto_tls "$dir"
    gen_mosquitto_auth "$dir"
    {
        echo "# GENERATED by scripts/services.sh from deploy/mosquitto/wastewatch.conf; do not edit."
        while IFS= read -r line || [[ -n $line ]]; do
            if [[ $line =~ ^[[:space:]]*listener[[:space:]]+([0-9]+)([[:space:]].*)?$ ]]; then
                port=${BASH_REMATCH[1]}
                case $port in
                    1883) echo "listener $MOSQUITTO_PORT $HOST" ;;
                    8883) echo "listener $MOSQUITTO_TLS_PORT $HOST" ;;
                    8884) echo "listener $MOSQUITTO_TLS_CERT_PORT $HOST" ;;
                    *) die "mosquitto config: services.sh does not know where to put 'listener $port' for tests (only 1883, 8883 and 8884 are mapped)" ;;
                esac
            elif [[ $line =~ ^[[:space:]]*(password_file|acl_file|cafile|certfile|keyfile)[[:space:]] ]]; then
                key=${BASH_REMATCH[1]}
                case $key in
                    password_file) echo "password_file $dir/auth/passwd" ;;
                    acl_file) echo "acl_file $dir/auth/acl" ;;
                    cafile) echo "cafile $dir/tls/ca.pem" ;;
                    certfile) echo "certfile $dir/tls/server.pem" ;;
                    keyfile) echo "keyfile $dir/tls/server.key" ;;
                esac
            elif [[ $line =~ ^[[:space:]]*(persistence_location|log_dest|user|pid_file)([[:space:]]|$) ]]; then
                echo "# (replaced for tests) $line"
            else
                printf '%s\n' "$line"
            fi
        done <"$MOSQUITTO_CONF_SRC"
        echo
        echo "# --- test overrides (scripts/services.sh) ---"
        echo "persistence_location $dir/data/"
        echo "log_dest file $dir/mosquitto.log"
        # Run as whoever runs the tests (as root mosquitto would otherwise
        # switch to user 'mosquitto', which can't write the data dir).
        echo "user $(id -un)"
    } >"$out"
    # Every listener must be on loopback, and no listener setting may come
    # before the first `listener` line (Mosquitto would open an extra
    # listener on port 1883 of every interface for it).
    if grep -E '^[[:space:]]*listener([[:space:]]|$)' "$out" | grep -Ev "^listener [0-9]+ $HOST\$" | grep -q .; then
        die "mosquitto config: non-loopback listener in $out"
    fi
    if sed '/^[[:space:]]*listener[[:space:]]/,$d' "$out" |
        grep -Eq '^[[:space:]]*(use_username_as_clientid|require_certificate|use_identity_as_username|cafile|certfile|keyfile|tls_version|bind_interface|port|protocol|mount_point)([[:space:]]|$)'; then
        die "mosquitto config: a listener setting comes before the first 'listener' line in $MOSQUITTO_CONF_SRC (it would open a default listener on every interface)"
    fi
    echo "$out"
}

gen_influxdb_conf() {
    local dir=$1 out=$1/influxdb.conf
    [[ -f $INFLUXDB_CONF_SRC ]] || die "missing $INFLUXDB_CONF_SRC"
    mkdir -p "$dir/meta" "$dir/data" "$dir/wal"
    sed -e "s|@DATA_DIR@|$dir|g" \
        -e "s|@HTTP_BIND@|$HOST:$INFLUXDB_PORT|g" \
        -e "s|@RPC_BIND@|$HOST:$INFLUXDB_RPC_PORT|g" \
        "$INFLUXDB_CONF_SRC" >"$out"
    if grep -q '@[A-Z_]*@' "$out"; then die "unreplaced placeholder in $out"; fi
    echo "$out"
}

# Fills the global array CMD with the server's command line.
svc_cmd() {
    local name=$1 dir conf
    dir=$(svc_dir "$name")
    case $name in
        mosquitto)
            conf=$(gen_mosquitto_conf "$dir")
            CMD=(mosquitto -c "$conf")
            ;;
        influxdb)
            conf=$(gen_influxdb_conf "$dir")
            CMD=(influxd run -config "$conf")
            ;;
        victoria-metrics)
            mkdir -p "$dir/data"
            # retentionPeriod 100y: tests write points with fixed old
            # timestamps (the default, 1 month, would silently drop them).
            # latencyOffset 0 / disableCache: a point is visible to
            # /api/v1/query as soon as it is flushed.
            CMD=(victoria-metrics
                "-httpListenAddr=$HOST:$VM_PORT"
                "-storageDataPath=$dir/data"
                -retentionPeriod=100y
                -search.latencyOffset=0s
                -search.disableCache
                -loggerLevel=INFO)
            ;;
        alertmanager)
            [[ -f $ALERTMANAGER_CONF ]] || die "missing $ALERTMANAGER_CONF"
            mkdir -p "$dir/data"
            CMD=(prometheus-alertmanager
                "--config.file=$ALERTMANAGER_CONF"
                "--storage.path=$dir/data"
                "--web.listen-address=$HOST:$ALERTMANAGER_PORT"
                "--cluster.listen-address="
                "--log.level=info")
            ;;
    esac
}

# ---------------------------------------------------------------------------
# start / stop
# ---------------------------------------------------------------------------

start_one() {
    local name=$1 dir pid port lf deadline
    port=$(svc_port "$name")
    dir=$(svc_dir "$name")
    lf=$(log_file "$name")

    if pid=$(svc_pid "$name"); then
        if svc_ready "$name"; then
            log "$name already running (pid $pid) on $HOST:$port"
            return 0
        fi
        log "$name (pid $pid) is not answering; restarting it"
        stop_one "$name"
    fi
    if port_open "$port"; then
        die "$name: port $HOST:$port is already in use by another process (not started by this script from $SERVICES_DIR)"
    fi

    mkdir -p "$dir"
    svc_cmd "$name"
    printf '\n===== %s start: %s\n' "$(date -u +%FT%TZ)" "${CMD[*]}" >>"$lf"
    # Own session (setsid) so a Ctrl-C to the test run doesn't hit it; all fds
    # redirected, the lock fd closed, so a caller waiting on our output (a
    # Rust test's Command::output()) is not held up by the daemon.
    (cd "$dir" && exec setsid nohup "${CMD[@]}" </dev/null >>"$lf" 2>&1 9>&-) &
    pid=$!
    echo "$pid" >"$(pid_file "$name")"

    deadline=$((SECONDS + READY_TIMEOUT))
    until svc_ready "$name"; do
        if ! alive "$pid"; then
            log "$name exited during startup; last lines of $lf:"
            tail -n 40 "$lf" >&2 || true
            rm -f "$(pid_file "$name")"
            die "$name failed to start"
        fi
        if ((SECONDS >= deadline)); then
            log "$name not ready after ${READY_TIMEOUT}s; last lines of $lf:"
            tail -n 40 "$lf" >&2 || true
            stop_one "$name"
            die "$name failed to become ready"
        fi
        sleep 0.2
    done

    if [[ $name == influxdb ]]; then
        local resp
        resp=$(curl -sS -m 10 -XPOST "http://$HOST:$INFLUXDB_PORT/query" \
            --data-urlencode "q=CREATE DATABASE $INFLUXDB_DB") ||
            die "influxdb: CREATE DATABASE $INFLUXDB_DB failed"
        [[ $resp != *'"error"'* ]] || die "influxdb: CREATE DATABASE $INFLUXDB_DB: $resp"
    fi
    log "$name ready (pid $pid) on $HOST:$port"
}

stop_one() {
    local name=$1 pid deadline
    if ! pid=$(svc_pid "$name"); then
        rm -f "$(pid_file "$name")"
        log "$name not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "$name (pid $pid) did not stop in ${STOP_TIMEOUT}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
            break
        fi
        sleep 0.1
    done
    # Wait for the port to be released.
    deadline=$((SECONDS + 10))
    while port_open "$(svc_port "$name")" && ((SECONDS < deadline)); do sleep 0.1; done
    rm -f "$(pid_file "$name")"
    log "$name stopped"
}

env_file() { printf '%s/env' "$SERVICES_DIR"; }

write_env() {
    mkdir -p "$SERVICES_DIR"
    cat >"$(env_file)" <<EOF
WW_TEST_MQTT=$HOST:$MOSQUITTO_PORT
WW_TEST_INFLUXDB=http://$HOST:$INFLUXDB_PORT
WW_TEST_INFLUXDB_DB=$INFLUXDB_DB
WW_TEST_VM=http://$HOST:$VM_PORT
WW_TEST_ALERTMANAGER=http://$HOST:$ALERTMANAGER_PORT
WW_TEST_ALERTMANAGER_WEBHOOK=$ALERTMANAGER_WEBHOOK
WW_SERVICES_SCRIPT=$SCRIPT
WW_SERVICES_DIR=$SERVICES_DIR
WW_TEST_MQTT_TLS=$HOST:$MOSQUITTO_TLS_PORT
WW_TEST_MQTT_TLS_CERT=$HOST:$MOSQUITTO_TLS_CERT_PORT
WW_TEST_MQTT_CA=$(svc_dir mosquitto)/tls/ca.pem
WW_TEST_MQTT_CA_KEY=$(svc_dir mosquitto)/tls/ca.key
EOF
}

lock() {
    mkdir -p "$SERVICES_DIR"
    exec 9>"$SERVICES_DIR/.lock"
    flock -w 120 9 || die "could not get $SERVICES_DIR/.lock in 120s"
}

names_or_all() {
    local n
    if (($# == 0)); then
        printf '%s\n' "${ALL[@]}"
    else
        for n in "$@"; do
            svc_port "$n" >/dev/null
            echo "$n"
        done
    fi
}

cmd_start() {
    require_bins
    local names n
    mapfile -t names < <(names_or_all "$@")
    lock
    if (($# == 0)); then
        # Fresh state for a whole test run.
        for n in "${names[@]}"; do stop_one "$n" 2>/dev/null; done
        for n in "${names[@]}"; do rm -rf "$(svc_dir "$n")"; done
    fi
    write_env
    for n in "${names[@]}"; do start_one "$n"; done
    log "env file: $(env_file)"
}

cmd_stop() {
    local names n
    mapfile -t names < <(names_or_all "$@")
    lock
    for n in "${names[@]}"; do stop_one "$n"; done
}

cmd_restart() {
    (($# > 0)) || die "restart needs a service name (${ALL[*]})"
    require_bins
    local names n
    mapfile -t names < <(names_or_all "$@")
    lock
    write_env
    for n in "${names[@]}"; do
        stop_one "$n"
        start_one "$n"
    done
}

# SIGKILL (no chance to save state), then start again on the same data.
cmd_crash() {
    (($# > 0)) || die "crash needs a service name (${ALL[*]})"
    require_bins
    local names n pid deadline
    mapfile -t names < <(names_or_all "$@")
    lock
    write_env
    for n in "${names[@]}"; do
        if pid=$(svc_pid "$n"); then
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
            while alive "$pid" && ((SECONDS < deadline)); do sleep 0.05; done
            alive "$pid" && die "$n (pid $pid) survived SIGKILL"
            deadline=$((SECONDS + 10))
            while port_open "$(svc_port "$n")" && ((SECONDS < deadline)); do sleep 0.1; done
            rm -f "$(pid_file "$n")"
            log "$n killed (SIGKILL)"
        else
            log "$n was not running"
        fi
        start_one "$n"
    done
}

cmd_status() {
    local n pid state rc=0
    for n in "${ALL[@]}"; do
        if pid=$(svc_pid "$n"); then
            if svc_ready "$n"; then state="running (pid $pid), ready"; else
                state="running (pid $pid), NOT ready"
                rc=3
            fi
        else
            state="stopped"
            rc=3
        fi
        printf '%-17s %-16s %s\n' "$n" "$HOST:$(svc_port "$n")" "$state"
    done
    printf 'services dir: %s\n' "$SERVICES_DIR"
    return $rc
}

# Adds test identities: merges the password file $1 into the broker's (a
# user's old line is replaced), appends the ACL lines of $2 (may be empty),
# regenerates the live ACL and sends SIGHUP. The broker applies it
# asynchronously: callers confirm by logging in.
cmd_mqtt_users() {
    (($# == 2)) || die "mqtt-users needs PASSWD ACL (files; ACL may be empty)"
    local add=$1 acl=$2 dir auth pid
    [[ -f $add && -f $acl ]] || die "mqtt-users: $add or $acl is not a file"
    lock
    dir=$(svc_dir mosquitto)
    auth=$dir/auth
    [[ -f $auth/passwd ]] || die "mqtt-users: no $auth/passwd; start mosquitto first"
    # The ACL first, then the passwords: a reload the broker makes at any
    # moment (another caller's signal is handled asynchronously) that lets
    # a new identity log in then also has its grants. In the other order a
    # reload between the two saw the passwords and the old ACL, and the
    # signal sent below could arrive while that reload ran and be missed:
    # the identity logged in but was refused its publishes.
    cat "$acl" >>"$auth/acl.tests"
    gen_mosquitto_acl "$dir"
    # FILENAME, not NR==FNR: with an empty PASSWD file NR==FNR holds for the
    # broker's file too, and every identity would be dropped.
    awk -F: -v add="$add" 'FILENAME == add { if ($1 != "") new[$1]=1; next } !($1 in new)' "$add" "$auth/passwd" >"$auth/passwd.new"
    grep -v '^[[:space:]]*$' "$add" >>"$auth/passwd.new" || true
    chmod 600 "$auth/passwd.new"
    mv -f "$auth/passwd.new" "$auth/passwd"
    if pid=$(svc_pid mosquitto); then
        kill -HUP "$pid"
    fi
}

cmd_env() {
    write_env
    cat "$(env_file)"
}

main() {
    (($# > 0)) || usage
    local cmd=$1
    shift
    case $cmd in
        install) cmd_install ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        restart) cmd_restart "$@" ;;
        crash) cmd_crash "$@" ;;
        status) cmd_status ;;
        env) cmd_env ;;
        mqtt-users) cmd_mqtt_users "$@" ;;
        -h | --help | help) usage ;;
        *)
            log "unknown command '$cmd'"
            usage
            ;;
    esac
}

main "$@"
