#!/usr/bin/env python3
"""Driver of scripts/bench-e2e.sh: runs each (offered rate, subscriber) pair
against the already running Mosquitto and TSDB, measures, and writes the
Markdown report. Standard library only. See scripts/bench-e2e.sh for the
usage and the method; this file is not meant to be run by hand.
"""

import argparse
import bisect
import datetime
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

MEASUREMENTS = ["bin_reading", "storage_reading", "truck_fix", "weighbridge_ticket", "device_status"]
TOPIC = "wastewatch/v1/#"
USER_HZ = os.sysconf("SC_CLK_TCK")
SUBSCRIBER_TITLES = {
    "bare": "bare QoS 1 subscriber (mosquitto_sub)",
    "wastewatch": "wastewatch run (release)",
    "bridge": "Python bridge (paho + requests)",
}


def log(msg):
    print("[bench] %s" % msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


def now_ms():
    return int(time.time() * 1000)


# --- /proc ------------------------------------------------------------------


def cpu_ticks(pid):
    """utime + stime of a process, in USER_HZ ticks (None if gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) + int(fields[12])


def vm_hwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def service_pid(services_dir, name):
    try:
        with open(os.path.join(services_dir, name, name + ".pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, data=None, timeout=10):
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


# --- TSDBs ------------------------------------------------------------------


class Influx:
    """InfluxDB 1.x: a fresh database per run, counted with InfluxQL."""

    name = "InfluxDB 1.x"

    def __init__(self, url):
        self.url = url.rstrip("/")

    def query(self, q, db=""):
        body = urllib.parse.urlencode({"q": q, "db": db}).encode()
        status, text = http("POST", self.url + "/query", body)
        if status != 200:
            raise BenchError("InfluxDB %s -> HTTP %d: %s" % (q, status, text[:300]))
        res = json.loads(text)
        err = res.get("error") or (res.get("results") or [{}])[0].get("error")
        if err:
            raise BenchError("InfluxDB %s: %s" % (q, err))
        return res

    def prepare(self, db):
        self.query('CREATE DATABASE "%s"' % db)
        if self.count(db, (0, 2**62)) != 0:
            raise BenchError("fresh database %s is not empty" % db)

    def by_measurement(self, db, window):
        """Points per device measurement with a time in window (ms, inclusive)."""
        q = "SELECT count(\"seq\") FROM %s WHERE time >= %dms AND time <= %dms" % (
            ",".join('"%s"' % m for m in MEASUREMENTS),
            window[0],
            window[1],
        )
        res = self.query(q, db)
        return {s["name"]: int(s["values"][0][1]) for s in res["results"][0].get("series", [])}

    def count(self, db, window):
        return sum(self.by_measurement(db, window).values())

    def cleanup(self, db):
        self.query('DROP DATABASE "%s"' % db)

    def wastewatch_settings(self, db):
        return {"kind": "influxdb_v1", "url": self.url, "database": db}

    def bridge_args(self, db):
        return ["--influx-url", self.url, "--db", db]


class Victoria:
    """VictoriaMetrics through its InfluxDB v2 write endpoint. VM keeps no
    database: each run deletes the device measurements' series first (on the
    throw-away test instance of scripts/services.sh) and counts the samples
    of the `<measurement>_seq` series."""

    name = "VictoriaMetrics (/api/v2/write)"
    SEQ = '{__name__=~"(%s)_seq"}' % "|".join(MEASUREMENTS)

    def __init__(self, url):
        self.url = url.rstrip("/")

    def instant(self, q, at_s):
        args = {"query": q, "time": "%.3f" % at_s}
        status, text = http("GET", self.url + "/api/v1/query?" + urllib.parse.urlencode(args))
        if status != 200:
            raise BenchError("VictoriaMetrics %s -> HTTP %d: %s" % (q, status, text[:300]))
        return json.loads(text)["data"]["result"]

    def prepare(self, db):
        match = '{__name__=~"(%s)_.*"}' % "|".join(MEASUREMENTS)
        status, text = http(
            "POST",
            self.url + "/api/v1/admin/tsdb/delete_series",
            urllib.parse.urlencode({"match[]": match}).encode(),
        )
        if status // 100 != 2:
            raise BenchError("VictoriaMetrics delete_series -> HTTP %d: %s" % (status, text[:300]))
        if self.count(db, (0, now_ms())) != 0:
            raise BenchError("VictoriaMetrics still has device samples after delete_series")

    def by_measurement(self, db, window):
        """Samples of the `<measurement>_seq` series with a time in window
        (ms, inclusive): count_over_time looks back (time - d, time]."""
        q = "sum by (__name__) (count_over_time(%s[%dms]) keep_metric_names)" % (self.SEQ, window[1] - window[0] + 1)
        r = self.instant(q, window[1] / 1000.0)
        return {x["metric"].get("__name__", "?")[: -len("_seq")]: int(float(x["value"][1])) for x in r}

    def count(self, db, window):
        return sum(self.by_measurement(db, window).values())

    def cleanup(self, db):
        pass

    def wastewatch_settings(self, db):
        return {"kind": "influxdb_v2", "url": self.url, "org": "wastewatch", "bucket": db, "token": "bench"}

    def bridge_args(self, db):
        return ["--influx-url", self.url, "--db", db, "--v2"]


# --- broker state -------------------------------------------------------------


# --- broker identities ----------------------------------------------------------

# The test broker runs the shipped config: every client logs in, its client id
# starts with this prefix (the broker then uses the user name as the id), and
# only identities in the ACL may read or write (scripts/services.sh mqtt-users
# adds test identities).
CLIENT_ID_PREFIX = "ww:"


class Identity:
    def __init__(self, name):
        self.name = name
        self.password = secrets.token_urlsafe(24)
        self.client_id = CLIENT_ID_PREFIX + name

    def mosquitto_args(self):
        return ["-u", self.name, "-P", self.password, "-i", self.client_id]

    def password_file(self, d):
        path = os.path.join(d, self.name + ".password")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.password + "\n")
        return path


def register(h, d, grants):
    """Adds identities to the test broker: grants is [(Identity, [ACL topic
    lines])]; returns once the first can log in."""
    passwd = os.path.join(d, "identities.passwd")
    acl = os.path.join(d, "identities.acl")
    open(passwd, "w").close()
    with open(acl, "w") as f:
        for ident, topics in grants:
            subprocess.run(["mosquitto_passwd", "-b", passwd, ident.name, ident.password], check=True, capture_output=True)
            f.write("user %s\n" % ident.name + "".join("topic %s\n" % t for t in topics))
    r = subprocess.run([os.path.join(h.repo, "scripts/services.sh"), "mqtt-users", passwd, acl], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError("scripts/services.sh mqtt-users failed: %s" % r.stderr.strip())
    probe = grants[0][0]
    deadline = time.time() + 15
    while True:
        # Connect and disconnect at once (-E): the broker re-reads its files
        # on SIGHUP asynchronously.
        r = subprocess.run(
            ["mosquitto_sub", "-h", h.mqtt_host, "-p", str(h.mqtt_port), "-t", grants[0][1][0].split(" ", 1)[1], "-E"]
            + probe.mosquitto_args(),
            capture_output=True,
            timeout=20,
        )
        if r.returncode == 0:
            return
        if time.time() > deadline:
            raise BenchError("identity %s cannot log in 15 s after registering it" % probe.name)
        time.sleep(0.1)


def broker_state(host, port, monitor):
    """Mosquitto's retained $SYS counters (updated every 10 s): persistent
    sessions (connected or not) and messages held. A disconnected session
    subscribed to wastewatch/v1/# gets a copy of every benchmark message."""
    keys = ["clients/total", "clients/connected", "store/messages/count"]
    args = ["mosquitto_sub", "-h", host, "-p", str(port), "-v", "-C", str(len(keys)), "-W", "15"] + monitor.mosquitto_args()
    for k in keys:
        args += ["-t", "$SYS/broker/" + k]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return {}
    out = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k.replace("$SYS/broker/", "")] = int(v)
        except ValueError:
            pass
    return out


def describe_broker(st):
    if not st:
        return "broker $SYS counters unavailable"
    other = st.get("clients/total", 0) - st.get("clients/connected", 0)
    return "broker: %d sessions (%d connected, %d disconnected), %d messages held" % (
        st.get("clients/total", 0),
        st.get("clients/connected", 0),
        other,
        st.get("store/messages/count", 0),
    )


# --- sampling -----------------------------------------------------------------


class Sampler(threading.Thread):
    """Samples the stored count every interval: (unix ms, count). The time of
    a sample is the middle of its query."""

    def __init__(self, count_fn, interval_s):
        super().__init__(daemon=True)
        self.count_fn = count_fn
        self.interval = interval_s
        self.samples = []
        self.errors = 0
        self.last_error = None
        self.halt = threading.Event()

    def run(self):
        nxt = time.monotonic()
        while not self.halt.is_set():
            t0 = time.time()
            try:
                c = self.count_fn()
                t1 = time.time()
                self.samples.append((int((t0 + t1) * 500), c))
            except Exception as e:  # keep sampling; reported at the end
                self.errors += 1
                self.last_error = str(e)
            nxt += self.interval
            self.halt.wait(max(0.0, nxt - time.monotonic()))

    def latest(self):
        return self.samples[-1][1] if self.samples else 0

    def stop(self):
        self.halt.set()
        self.join(timeout=30)


def percentile(sorted_vals, p):
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def latencies(timeline, samples, n):
    """Publish -> stored latency of every k-th message (about 1000 of them):
    publish time of message k = first timeline row with published >= k;
    stored time = first sample with stored >= k."""
    if not timeline or not samples or n <= 0:
        return []
    pub_t = [t for t, _ in timeline]
    pub_n = [p for _, p in timeline]
    st_t = [t for t, _ in samples]
    st_n = []
    running = 0
    for _, c in samples:  # a count never goes back
        running = max(running, c)
        st_n.append(running)
    step = max(1, n // 1000)
    out = []
    for k in range(step, n + 1, step):
        i = bisect.bisect_left(pub_n, k)
        j = bisect.bisect_left(st_n, k)
        if i >= len(pub_t) or j >= len(st_t):
            continue
        out.append(max(0, st_t[j] - pub_t[i]))
    return sorted(out)


def read_timeline(path):
    rows = []
    with open(path) as f:
        next(f)
        for line in f:
            t, p, _ = line.strip().split(",")
            rows.append((int(t), int(p)))
    return rows


# --- subscribers --------------------------------------------------------------


class Run:
    def __init__(self, h, sub, rate):
        self.h, self.sub, self.rate = h, sub, rate
        self.id = "%s-%s-%d" % (h.stamp, sub, rate)
        self.client_id = "bench-" + self.id
        self.reader = Identity(self.client_id)
        self.writer = Identity("pub-" + self.id)
        self.db = re.sub(r"[^A-Za-z0-9_]", "_", "bench_" + self.id)
        self.dir = os.path.join(h.run_dir, "%s-%d" % (sub, rate))
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.logf = None
        self.notes = []
        self.row = {"subscriber": sub, "rate": rate, "client_id": self.client_id, "db": self.db, "dir": self.dir}

    def mosquitto_sub(self, *extra, who=None):
        return (
            ["mosquitto_sub", "-h", self.h.mqtt_host, "-p", str(self.h.mqtt_port), "-q", "1", "-t", TOPIC]
            + (who or self.reader).mosquitto_args()
            + list(extra)
        )

    def presubscribe(self, v5):
        """Creates the persistent session and its subscription before the
        subscriber starts, so the broker queues every message of the run."""
        register(self.h, self.dir, [(self.reader, ["read " + TOPIC]), (self.writer, ["write " + TOPIC])])
        args = self.mosquitto_sub("-c", "-E")
        if v5:
            args += ["-V", "mqttv5", "-x", "3600"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise BenchError("mosquitto_sub could not create session %s: %s" % (self.client_id, r.stderr.strip()))

    def drop_session(self):
        """Clean-session connect with the same client id: the broker discards
        the run's session so later runs don't queue into it."""
        subprocess.run(self.mosquitto_sub("-E"), capture_output=True, timeout=20)

    def start(self):
        h = self.h
        self.logf = open(os.path.join(self.dir, "subscriber.log"), "w")
        if self.sub == "bare":
            self.presubscribe(v5=False)
            self.out_path = os.path.join(self.dir, "received.bin")
            out = open(self.out_path, "wb")
            # -N -F x: one byte per message, so the file size is the count.
            self.proc = subprocess.Popen(
                self.mosquitto_sub("-c", "-N", "-F", "x"), stdout=out, stderr=self.logf
            )
            out.close()
            self.count_fn = lambda: os.path.getsize(self.out_path)
            time.sleep(0.5)
        elif self.sub == "wastewatch":
            self.presubscribe(v5=True)
            port = free_port()
            self.http = "127.0.0.1:%d" % port
            conf = os.path.join(self.dir, "wastewatch.toml")
            tsdb = h.tsdb.wastewatch_settings(self.db)
            with open(conf, "w") as f:
                f.write(
                    "# GENERATED by scripts/bench-e2e.sh for one run.\n"
                    "[mqtt]\nhost = %s\nport = %d\nclient_id = %s\nusername = %s\npassword_file = %s\nsubscribe = [%s]\n"
                    "session_expiry_s = 3600\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n\n"
                    "[decode]\nregistry_dir = %s\n\n"
                    "[log]\ndir = %s\n\n"
                    "[tsdb]\n%s\nstats_interval_ms = 0\n\n"
                    "[http]\nlisten = %s\n"
                    % (
                        json.dumps(h.mqtt_host),
                        h.mqtt_port,
                        json.dumps(self.reader.client_id),
                        json.dumps(self.reader.name),
                        json.dumps(self.reader.password_file(self.dir)),
                        json.dumps(TOPIC),
                        json.dumps(os.path.abspath(h.zone)),
                        json.dumps(os.path.join(self.dir, "data")),
                        "\n".join("%s = %s" % (k, json.dumps(v)) for k, v in tsdb.items()),
                        json.dumps(self.http),
                    )
                )
            r = subprocess.run([h.wastewatch, "check-config", "--config", conf], capture_output=True, text=True)
            if r.returncode != 0:
                raise BenchError("wastewatch check-config %s failed:\n%s%s" % (conf, r.stdout, r.stderr))
            env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
            self.proc = subprocess.Popen(
                [h.wastewatch, "run", "--config", conf], stdout=self.logf, stderr=subprocess.STDOUT, env=env
            )
            deadline = time.time() + 60
            while True:
                if self.proc.poll() is not None:
                    raise BenchError("wastewatch exited with %s during start-up; see %s" % (self.proc.returncode, self.logf.name))
                try:
                    status, body = http("GET", "http://%s/readyz" % self.http, timeout=2)
                    if '"mqtt_connected":true' in body:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    raise BenchError("wastewatch not ready (/readyz) after 60 s; see %s" % self.logf.name)
                time.sleep(0.1)
            time.sleep(0.5)
            if h.count_by == "metrics":
                self.count_fn = self.acked_by_tsdb
            else:
                self.count_fn = lambda: h.tsdb.count(self.db, self.window)
        elif self.sub == "bridge":
            self.presubscribe(v5=True)
            ready = os.path.join(self.dir, "ready")
            self.proc = subprocess.Popen(
                [
                    h.python,
                    os.path.join(h.repo, "scripts/bench/bridge.py"),
                    "--mqtt-host", h.mqtt_host,
                    "--mqtt-port", str(h.mqtt_port),
                    "--client-id", self.reader.client_id,
                    "--username", self.reader.name,
                    "--password-file", self.reader.password_file(self.dir),
                    "--topic", TOPIC,
                    "--proto-dir", h.proto_dir,
                    "--ready-file", ready,
                ]
                + h.tsdb.bridge_args(self.db),
                stdout=subprocess.PIPE,
                stderr=self.logf,
                text=True,
            )
            deadline = time.time() + 30
            while not os.path.exists(ready):
                if self.proc.poll() is not None:
                    raise BenchError("bridge.py exited with %s during start-up; see %s" % (self.proc.returncode, self.logf.name))
                if time.time() > deadline:
                    raise BenchError("bridge.py not subscribed after 30 s; see %s" % self.logf.name)
                time.sleep(0.05)
            self.count_fn = lambda: h.tsdb.count(self.db, self.window)
        else:
            raise BenchError("unknown subscriber %r" % self.sub)

    def stop(self):
        """SIGTERM, wait; returns the exit code (and a note if killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            self.notes.append("did not stop within 40 s of SIGTERM; killed")
        if self.sub == "bridge" and out:
            try:
                self.row["bridge_stats"] = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                pass
        return self.proc.returncode

    def wastewatch_metrics(self):
        try:
            status, text = http("GET", "http://%s/metrics" % self.http, timeout=5)
        except OSError:
            return {}
        m = {}
        for line in text.splitlines():
            if line.startswith("#") or " " not in line:
                continue
            k, v = line.rsplit(" ", 1)
            if k.startswith(("ingest_", "tsdb_points_total", "tsdb_retryable", "log_full")):
                try:
                    val = float(v)
                except ValueError:
                    continue
                if val:
                    m[k] = val
        return m

    def acked_by_tsdb(self):
        """Records the TSDB has answered 2xx for, from wastewatch's own
        /metrics: acked messages less the TSDB writer's lag. A lower bound
        (the lag also counts KPI and alert records, and the writer's cursor
        moves after the 2xx), used with --count-by metrics where the TSDB
        makes points searchable only seconds after accepting them."""
        status, text = http("GET", "http://%s/metrics" % self.http, timeout=5)
        if status != 200:
            raise BenchError("wastewatch /metrics -> HTTP %d" % status)
        vals = {}
        for line in text.splitlines():
            if line.startswith(("ingest_acks_total ", "log_tsdb_lag_records ")):
                k, v = line.split(" ", 1)
                vals[k] = int(float(v))
        if len(vals) != 2:
            raise BenchError("wastewatch /metrics lacks ingest_acks_total or log_tsdb_lag_records")
        return max(0, vals["ingest_acks_total"] - vals["log_tsdb_lag_records"])

    def quiet_check(self):
        """Messages on the topic in 2 s before the run: other clients
        publishing to the shared broker would be counted by the bare
        subscriber and stored by the bridge."""
        r = subprocess.run(self.mosquitto_sub("-q", "0", "-W", "2", "-N", "-F", "x", who=self.h.monitor), capture_output=True, timeout=20)
        return len(r.stdout)

    def execute(self):
        h, row = self.h, self.row
        row["load_before"] = os.getloadavg()[0]
        noise = self.quiet_check()
        if noise:
            self.notes.append("broker NOT quiet: %d messages on %s in the 2 s before the run (other clients)" % (noise, TOPIC))
        st = broker_state(h.mqtt_host, h.mqtt_port, h.monitor)
        row["broker_before"] = st
        if st.get("clients/total", 0) - st.get("clients/connected", 0) > 0 or st.get("store/messages/count", 0) > 1000:
            self.notes.append(describe_broker(st) + " before the run")
        # The device times of the run, known in advance: replay shifts the
        # capture to end at end_ms; only points in this window are counted.
        end_ms = now_ms()
        self.window = (end_ms - h.capture_span_ms, end_ms)
        row["window_ms"] = list(self.window)
        try:
            if self.sub != "bare":
                h.tsdb.prepare(self.db)
            self.start()
            pid = self.proc.pid
            broker_pid = service_pid(h.services_dir, "mosquitto")
            tsdb_pid = service_pid(h.services_dir, h.tsdb_service)
            c0 = (cpu_ticks(pid), cpu_ticks(broker_pid) if broker_pid else None, cpu_ticks(tsdb_pid) if tsdb_pid else None)
            sampler = Sampler(self.count_fn, h.sample_s)
            sampler.start()
            timeline = os.path.join(self.dir, "timeline.csv")
            limit_s = h.count / float(self.rate) + 300
            # The publisher's CPU: the only child reaped while it runs.
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            try:
                pub = subprocess.run(
                    [
                        h.fsim, "replay",
                        "--file", h.capture,
                        "--rate", str(self.rate),
                        "--host", h.mqtt_host,
                        "--port", str(h.mqtt_port),
                        "--client-id", self.writer.client_id,
                        "--username", self.writer.name,
                        "--password-file", self.writer.password_file(self.dir),
                        "--qos", "1",
                        "--timeline", timeline,
                        "--rebase-end-ms", str(end_ms),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=limit_s,
                )
            except subprocess.TimeoutExpired:
                raise BenchError("firmware-sim replay did not finish within %.0f s" % limit_s)
            with open(os.path.join(self.dir, "replay.log"), "w") as f:
                f.write(pub.stderr)
            if pub.returncode != 0:
                raise BenchError("firmware-sim replay failed (%d): %s" % (pub.returncode, pub.stderr.strip()[-2000:]))
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            rs = json.loads(pub.stdout)
            if rs["published"]:
                pub_s = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
                row["publisher_cpu_us_per_msg"] = pub_s * 1e6 / rs["published"]
            row.update(
                published=rs["published"],
                acked=rs["acked"],
                achieved_rate=rs["achieved_rate"],
                first_publish_ms=rs["first_publish_unix_ms"],
                last_publish_ms=rs["last_publish_unix_ms"],
                publisher_errors=rs["connection_errors"],
            )
            target = rs["acked"]
            deadline = time.time() + h.drain_timeout
            died = False
            while sampler.latest() < target and time.time() < deadline:
                if self.proc.poll() is not None:
                    died = True
                    break
                time.sleep(0.05)
            t_done = time.time()
            c1 = (cpu_ticks(pid), cpu_ticks(broker_pid) if broker_pid else None, cpu_ticks(tsdb_pid) if tsdb_pid else None)
            row["peak_rss_kb"] = vm_hwm_kb(pid)
            watched = [("mosquitto", broker_pid)] + ([(h.tsdb_service, tsdb_pid)] if self.sub != "bare" else [])
            for name, before in watched:
                after = service_pid(h.services_dir, name)
                if after != before:
                    self.notes.append("%s restarted during the run (pid %s -> %s): results disturbed" % (name, before, after))
            if self.sub == "wastewatch":
                row["wastewatch_metrics"] = self.wastewatch_metrics()
            sampler.stop()
            if died:
                self.notes.append("subscriber exited (code %s) before everything was stored" % self.proc.returncode)
            elif sampler.latest() < target:
                self.notes.append("stored count still %d of %d after the %d s drain timeout" % (sampler.latest(), target, h.drain_timeout))
            rc = self.stop()
            if rc not in (0, None) and not died and self.sub != "bare":
                self.notes.append("exit code %s after SIGTERM" % rc)
            time.sleep(0.2)
            if h.count_by == "metrics" and self.sub == "wastewatch":
                # The final count is queried all the same, waiting out the
                # TSDB's visibility delay.
                row["stored"] = h.tsdb.count(self.db, self.window)
                settle = time.time() + 60
                while row["stored"] < target and time.time() < settle:
                    time.sleep(1)
                    row["stored"] = h.tsdb.count(self.db, self.window)
            else:
                row["stored"] = self.count_fn()
            if sampler.errors:
                self.notes.append("%d count queries failed (last: %s)" % (sampler.errors, sampler.last_error))
            if self.sub != "bare":
                bym = h.tsdb.by_measurement(self.db, self.window)
                row["stored_by_measurement"] = bym
                for m, want in sorted(h.expected_by_measurement.items()):
                    got = bym.get(m, 0)
                    if got != want:
                        self.notes.append("%s: %d stored, %d sent" % (m, got, want))
                for m in sorted(set(bym) - set(h.expected_by_measurement)):
                    self.notes.append("%s: %d stored, none sent (other traffic?)" % (m, bym[m]))
            row["samples"] = len(sampler.samples)
            with open(os.path.join(self.dir, "samples.csv"), "w") as f:
                f.write("unix_ms,stored\n")
                f.writelines("%d,%d\n" % s for s in sampler.samples)
            msgs = max(1, target)
            if c0[0] is not None and c1[0] is not None:
                row["cpu_us_per_msg"] = (c1[0] - c0[0]) * 1e6 / USER_HZ / msgs
            if c0[1] is not None and c1[1] is not None:
                row["broker_cpu_us_per_msg"] = (c1[1] - c0[1]) * 1e6 / USER_HZ / msgs
            if c0[2] is not None and c1[2] is not None and self.sub != "bare":
                row["tsdb_cpu_us_per_msg"] = (c1[2] - c0[2]) * 1e6 / USER_HZ / msgs
            row["ok"] = row["stored"] == row["acked"] == row["published"] == h.count
            done = next((t for t, c in sampler.samples if c >= target), None)
            if row["ok"] and done is not None:
                row["sustained_rate"] = target / max(1e-3, (done - row["first_publish_ms"]) / 1000.0)
            lat = latencies(read_timeline(timeline), sampler.samples, min(target, row["stored"]))
            row["latency_p50_ms"] = percentile(lat, 50)
            row["latency_p99_ms"] = percentile(lat, 99)
            row["wall_s"] = t_done - row["first_publish_ms"] / 1000.0
            if row["stored"] > row["acked"]:
                self.notes.append("more stored/received than acked: other traffic on the broker?")
        except BenchError as e:
            row["error"] = str(e)
            self.notes.append("FAILED: %s" % e)
        finally:
            if self.proc is not None and self.proc.poll() is None:
                self.stop()
            if self.logf:
                self.logf.close()
            self.drop_session()
            if self.sub != "bare" and not h.keep_dbs:
                try:
                    h.tsdb.cleanup(self.db)
                except BenchError as e:
                    self.notes.append("cleanup: %s" % e)
        row["notes"] = self.notes
        return row


# --- report -----------------------------------------------------------------


def fmt(v, spec="{:,.0f}"):
    return "—" if v is None else spec.format(v)


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def tool_version(args):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return (r.stdout + r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def report(h, rows, machine, capture):
    L = []
    L.append("# wastewatch end-to-end benchmark, %s" % machine["date"])
    L.append("")
    L.append(
        "Machine: %s CPUs (`nproc`), %s, Linux %s. Load average at the start: %.2f."
        % (machine["nproc"], machine["cpu"], machine["kernel"], h.load_at_start)
    )
    L.append(
        "At the start, %s%s."
        % (
            describe_broker(h.broker_at_start),
            " (other sessions get copies of the messages and the broker saves all it holds every 10 s: "
            "expect more broker CPU than on a fresh broker, see --fresh-broker)"
            if h.broker_at_start.get("clients/total", 0) - h.broker_at_start.get("clients/connected", 0) > 0
            or h.broker_at_start.get("store/messages/count", 0) > 10000
            else "",
        )
    )
    L.append(
        "Servers: Mosquitto (%s, deploy/mosquitto/wastewatch.conf via scripts/services.sh), %s (%s). "
        "git %s. Python %s." % (h.versions["mosquitto"], h.tsdb.name, h.versions["tsdb"], h.versions["git"], platform.python_version())
    )
    bym = ", ".join("%s %d" % kv for kv in sorted(capture.get("by_measurement", {}).items()))
    L.append(
        "Messages: %d captured from a %d-device zone (seed %d, %d JSON), replayed to every subscriber: %s. "
        "Simulated from %s (China Standard Time) for %.0f s of device time, re-based to end when the replay starts."
        % (
            capture["count"],
            capture["devices"],
            capture["seed"],
            capture.get("json_messages", 0),
            bym,
            datetime.datetime.fromtimestamp(capture["start_unix_ms"] / 1000, datetime.timezone(datetime.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M"),
            capture.get("simulated_span_s", 0),
        )
    )
    L.append("")
    L.append(
        "| subscriber | offered msg/s | achieved offered msg/s | published | acked by broker | stored | stored = acked "
        "| sustained zero-loss msg/s | CPU µs/msg | peak RSS MB | p50 latency ms | p99 latency ms "
        "| broker CPU µs/msg | TSDB CPU µs/msg | publisher CPU µs/msg |"
    )
    L.append("|" + "---|" * 15)
    for r in rows:
        ok = r.get("ok")
        L.append(
            "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
            % (
                SUBSCRIBER_TITLES.get(r["subscriber"], r["subscriber"]),
                fmt(r["rate"]),
                fmt(r.get("achieved_rate")),
                fmt(r.get("published")),
                fmt(r.get("acked")),
                fmt(r.get("stored")) + (" (received)" if r["subscriber"] == "bare" and r.get("stored") is not None else ""),
                "FAILED" if r.get("error") else ("yes" if ok else "**NO**"),
                fmt(r.get("sustained_rate")),
                fmt(r.get("cpu_us_per_msg"), "{:,.1f}"),
                fmt(r["peak_rss_kb"] / 1024.0 if r.get("peak_rss_kb") else None, "{:,.1f}"),
                fmt(r.get("latency_p50_ms")),
                fmt(r.get("latency_p99_ms")),
                fmt(r.get("broker_cpu_us_per_msg"), "{:,.1f}"),
                fmt(r.get("tsdb_cpu_us_per_msg"), "{:,.1f}"),
                fmt(r.get("publisher_cpu_us_per_msg"), "{:,.1f}"),
            )
        )
    L.append("")
    notes = []
    for r in rows:
        extra = []
        if r.get("notes"):
            extra += r["notes"]
        if r.get("wastewatch_metrics"):
            extra.append("metrics: " + ", ".join("%s=%g" % kv for kv in sorted(r["wastewatch_metrics"].items())))
        if r.get("bridge_stats"):
            extra.append("bridge: " + ", ".join("%s=%s" % kv for kv in r["bridge_stats"].items()))
        if r.get("publisher_errors"):
            extra.append("publisher connection errors: %d" % r["publisher_errors"])
        extra.append("load before %.2f" % r.get("load_before", 0))
        notes.append("- %s @ %s msg/s: %s" % (r["subscriber"], fmt(r["rate"]), "; ".join(extra)))
    L.append("Per run:")
    L.append("")
    L += notes
    L.append("")
    L.append(
        "Method: one publisher (`firmware-sim replay`, rumqttc, MQTT 5, QoS 1, one connection, up to 65535 in flight) "
        "offers the same messages at a fixed rate; each subscriber runs alone on a fresh persistent session "
        "(created before the publisher starts) and a fresh database. *stored* is counted back from the TSDB "
        "(`SELECT count(\"seq\")` over the device measurements, only points whose time lies in the run's "
        "device-time window, so a re-stamped point or another client's would not count; the bare subscriber: "
        "messages received). "
        + (
            "With --count-by metrics (this run), wastewatch's count *during* the run is its own /metrics "
            "(ingest_acks_total - log_tsdb_lag_records: records the TSDB answered 2xx for, a lower bound), "
            "and the final *stored* is the query above, repeated for up to 60 s while the TSDB makes points searchable. "
            if h.count_by == "metrics"
            else ""
        )
        + "*sustained zero-loss rate* = messages / (first publish -> first count sample showing all of them), "
        "only when stored = acked = published. *CPU µs/msg* = utime+stime of the subscriber process "
        "(/proc/PID/stat, USER_HZ %d) from just before the first publish to the moment everything was stored, "
        "divided by the messages; broker and TSDB columns are the same for mosquitto and the TSDB server. "
        "*peak RSS* = VmHWM. *latency*: the stored count is sampled every %d ms; message k counts as published "
        "when the publisher's 10 ms timeline first shows >= k published, and as stored at the first sample "
        "showing >= k stored (so it assumes FIFO and has the sampling interval as resolution, and includes each "
        "writer's batching: wastewatch and the bridge both flush at 5000 lines or 1 s). The bare subscriber "
        "writes one byte per message to a file; its latency is the broker's delivery latency. wastewatch runs its "
        "rule engine too; the bridge does no validation and keeps nothing durable (a message is acked before "
        "it is written). The broker is the shared test broker: a 'broker NOT quiet' note means other clients "
        "were publishing.%s Raw data: %s."
        % (
            USER_HZ,
            int(h.sample_s * 1000),
            " VictoriaMetrics makes new samples (and new series) searchable only seconds after they were written, "
            "which dominates its latency columns." if isinstance(h.tsdb, Victoria) else "",
            os.path.relpath(h.run_dir, h.repo),
        )
    )
    return "\n".join(L) + "\n"


# --- main -------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repo", required=True)
    p.add_argument("--capture", required=True)
    p.add_argument("--capture-summary", required=True)
    p.add_argument("--zone", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--rates", required=True)
    p.add_argument("--subscribers", required=True)
    p.add_argument("--tsdb", choices=["influxdb", "vm"], required=True)
    p.add_argument("--mqtt", required=True, help="host:port")
    p.add_argument("--influx-url", required=True)
    p.add_argument("--vm-url", required=True)
    p.add_argument("--services-dir", required=True)
    p.add_argument("--wastewatch", required=True)
    p.add_argument("--firmware-sim", required=True)
    p.add_argument("--python", required=True)
    p.add_argument("--proto-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--sample-ms", type=int, default=100)
    p.add_argument("--drain-timeout", type=int, default=120)
    p.add_argument("--keep-dbs", action="store_true")
    p.add_argument("--count-by", choices=["query", "metrics"], default="query")
    a = p.parse_args()

    h = argparse.Namespace()
    h.repo = a.repo
    h.capture = a.capture
    h.zone = a.zone
    h.count = a.count
    h.mqtt_host, port = a.mqtt.rsplit(":", 1)
    h.mqtt_port = int(port)
    h.tsdb = Influx(a.influx_url) if a.tsdb == "influxdb" else Victoria(a.vm_url)
    h.tsdb_service = "influxdb" if a.tsdb == "influxdb" else "victoria-metrics"
    h.services_dir = a.services_dir
    h.wastewatch = a.wastewatch
    h.fsim = a.firmware_sim
    h.python = a.python
    h.proto_dir = a.proto_dir
    h.sample_s = a.sample_ms / 1000.0
    h.drain_timeout = a.drain_timeout
    h.keep_dbs = a.keep_dbs
    h.count_by = a.count_by
    h.stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    h.run_dir = os.path.join(a.out_dir, "run-" + h.stamp)
    os.makedirs(h.run_dir, exist_ok=True)
    h.load_at_start = os.getloadavg()[0]
    h.versions = {
        "mosquitto": tool_version(["mosquitto", "-h"]).replace("mosquitto version ", ""),
        "tsdb": tool_version(
            ["influxd", "version"] if a.tsdb == "influxdb" else ["dpkg-query", "-W", "-f", "${Version}", "victoria-metrics"]
        ),
        "git": tool_version(["git", "-C", a.repo, "describe", "--always", "--dirty"]),
    }
    with open(a.capture_summary) as f:
        capture = json.load(f)
    h.capture_span_ms = capture["last_recorded_at_ms"] - capture["first_recorded_at_ms"]
    h.expected_by_measurement = capture["by_measurement"]
    machine = machine_info()
    # Reads $SYS and checks the topic is quiet before each run.
    h.monitor = Identity("benchmon-" + h.stamp)
    register(h, h.run_dir, [(h.monitor, ["read $SYS/#", "read " + TOPIC])])
    h.broker_at_start = broker_state(h.mqtt_host, h.mqtt_port, h.monitor)
    stale = h.broker_at_start.get("clients/total", 0) - h.broker_at_start.get("clients/connected", 0)
    held = h.broker_at_start.get("store/messages/count", 0)
    if stale > 0 or held > 10000:
        log(
            "WARNING: %s. Disconnected sessions subscribed to %s are sent a copy of every benchmark message, "
            "and the broker writes everything it holds to disk every autosave_interval (10 s), both costing "
            "broker CPU during the runs; for clean numbers use --fresh-broker (restarts the shared test broker "
            "with empty persistence)." % (describe_broker(h.broker_at_start), TOPIC)
        )
    rates = [int(float(r)) for r in a.rates.split(",") if r.strip()]
    subs = [s.strip() for s in a.subscribers.split(",") if s.strip()]

    rows = []
    for rate in rates:
        for sub in subs:
            log("%s at %d msg/s ..." % (sub, rate))
            row = Run(h, sub, rate).execute()
            rows.append(row)
            log(
                "%s at %d msg/s: published %s acked %s stored %s%s"
                % (sub, rate, row.get("published"), row.get("acked"), row.get("stored"),
                   "" if not row["notes"] else " (" + "; ".join(row["notes"]) + ")")
            )
    md = report(h, rows, machine, capture)
    out_md = os.path.join(a.out_dir, "results-%s.md" % h.stamp)
    with open(out_md, "w") as f:
        f.write(md)
    with open(os.path.join(a.out_dir, "results-%s.json" % h.stamp), "w") as f:
        json.dump({"machine": machine, "capture": capture, "runs": rows}, f, indent=2, default=str)
    print(md)
    log("report: %s" % os.path.relpath(out_md, a.repo))
    bad = ["%s@%d" % (r["subscriber"], r["rate"]) for r in rows if not r.get("ok")]
    if bad:
        log("NOT stored = acked = published (or failed): %s" % ", ".join(bad))
        sys.exit(3)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log("ERROR: %s" % e)
        sys.exit(1)
