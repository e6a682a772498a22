#!/usr/bin/env python3
"""A plain MQTT -> InfluxDB bridge for the wastewatch telemetry: the peer a
user would otherwise write in an afternoon, benchmarked next to wastewatch by
scripts/bench-e2e.sh.

- paho-mqtt, MQTT 5, QoS 1 subscription on a persistent session; paho acks
  each message as soon as on_message returns (no durability: a message acked
  but not yet POSTed is lost if the bridge dies).
- Payloads: protobuf `wastewatch.v1.Envelope` (Python code generated from
  proto/ with grpcio-tools' protoc, directory given by --proto-dir), or the
  legacy JSON form (content type application/json or topic suffix /json,
  docs/JSON.md).
- One line-protocol point per message, measurement / tags / fields named as
  in docs/SCHEMA.md, point time = device time in ms. No validation, no
  registry, no rules.
- Batches of --batch-lines lines or --batch-age-s seconds, whichever comes
  first, POSTed with requests to InfluxDB 1.x /write (or, with --v2, the
  InfluxDB 2 API /api/v2/write, e.g. VictoriaMetrics); failed POSTs are
  retried with backoff.

SIGTERM/SIGINT: disconnect, flush what is buffered, print counters as JSON.
"""

import argparse
import json
import signal
import sys
import threading
import time

import paho.mqtt.client as mqtt
import requests
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mqtt-host", default="127.0.0.1")
    p.add_argument("--mqtt-port", type=int, default=1883)
    p.add_argument("--client-id", default="py-bridge")
    p.add_argument("--username", help="MQTT user name (the broker refuses anonymous clients)")
    p.add_argument("--password-file", help="file holding the password of --username (first line)")
    p.add_argument("--topic", default="wastewatch/v1/#")
    p.add_argument("--influx-url", default="http://127.0.0.1:8086")
    p.add_argument("--db", default="wastewatch", help="database (v1) or bucket (v2)")
    p.add_argument("--v2", action="store_true", help="write with /api/v2/write")
    p.add_argument("--org", default="wastewatch")
    p.add_argument("--token", default="")
    p.add_argument("--batch-lines", type=int, default=5000)
    p.add_argument("--batch-age-s", type=float, default=1.0)
    p.add_argument("--proto-dir", required=True, help="where wastewatch/v1/*_pb2.py are")
    p.add_argument("--ready-file", help="touched once the subscription is acknowledged")
    return p.parse_args()


ARGS = parse_args()
sys.path.insert(0, ARGS.proto_dir)
from wastewatch.v1 import common_pb2, envelope_pb2, status_pb2  # noqa: E402


# --- line protocol ----------------------------------------------------------


def tag(s):
    return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def strv(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def enum_names(enum, prefix):
    """int -> lowercase name without prefix (WASTE_CATEGORY_HAZARDOUS -> hazardous)."""
    return {v.number: v.name[len(prefix):].lower() for v in enum.DESCRIPTOR.values}


CATEGORY = enum_names(common_pb2.WasteCategory, "WASTE_CATEGORY_")
DESTINATION = enum_names(common_pb2.DestinationType, "DESTINATION_TYPE_")
DIRECTION = enum_names(common_pb2.Direction, "DIRECTION_")
DEVICE_KIND = enum_names(common_pb2.DeviceKind, "DEVICE_KIND_")
STATUS = enum_names(status_pb2.StatusKind, "STATUS_KIND_")


def F(v):  # float field
    return repr(float(v))


def I(v):  # integer field
    return "%di" % int(v)


def B(v):  # boolean field
    return "true" if v else "false"


def S(v):  # string field
    return strv(v)


def deci(v):
    return repr(v / 10.0)


def volts(mv):
    return repr(mv / 1000.0)


# measurement -> (body name, enum tags, fields); an enum tag is
# (tag name, body key, int -> name); a field is
# (line name, body key, formatter, default when absent, optional sensor?)
SCHEMA = {
    "weighbridge_ticket": (
        "weighbridge_ticket",
        [
            ("category", "category", CATEGORY),
            ("destination_type", "destination_type", DESTINATION),
            ("direction", "direction", DIRECTION),
        ],
        [
            ("gross_kg", "gross_weight_kg", F, 0.0, False),
            ("tare_kg", "tare_weight_kg", F, 0.0, False),
            ("net_kg", "net_weight_kg", F, 0.0, False),
            ("ticket_id", "ticket_id", S, "", False),
            ("plate", "plate", S, "", False),
            ("hazardous_code", "hazardous_waste_code", S, "", False),
            ("catalogue_edition", "catalogue_edition", S, "", False),
            ("origin_site", "origin_site_id", S, "", False),
            ("destination_site", "destination_site_id", S, "", False),
            ("operator", "operator_id", S, "", False),
            ("permit_id", "permit_id", S, "", False),
            ("anpr_confirmed", "anpr_confirmed", B, False, False),
            ("axle_count", "axle_count", I, 0, False),
            ("weighed_in_ms", "weighed_in_at_unix_ms", I, 0, False),
            ("weighed_out_ms", "weighed_out_at_unix_ms", I, 0, False),
        ],
    ),
    "bin_reading": (
        "bin_reading",
        [],
        [
            ("fill_pct", "fill_level_pct", F, 0.0, False),
            ("temperature_c", "temperature_deci_c", deci, 0, False),
            ("tilt_deg", "tilt_deg", F, 0.0, False),
            ("battery_v", "battery_mv", volts, 0, False),
            ("fire_flag", "fire_flag", B, False, False),
            ("battery_low", "battery_low_flag", B, False, False),
        ],
    ),
    "storage_reading": (
        "storage_reading",
        [],
        [
            ("stock_kg", "stock_kg", F, 0.0, False),
            ("oldest_container_age_d", "oldest_container_age_s", lambda s: repr(s / 86400.0), 0, False),
            ("temperature_c", "temperature_deci_c", deci, 0, False),
            ("combustible_gas_pct_lel", "combustible_gas_pct_lel", F, None, True),
            ("toxic_gas_pct_of_limit", "toxic_gas_pct_of_limit", F, None, True),
            ("oxygen_pct_vol", "oxygen_pct_vol", F, None, True),
            ("oldest_medical_lot_age_h", "oldest_medical_lot_age_s", lambda s: repr(s / 3600.0), None, True),
            ("outside_temperature_c", "outside_temperature_deci_c", deci, None, True),
            ("leak", "leak_detected", B, False, False),
            ("door_open", "door_open", B, False, False),
            ("container_count", "container_count", I, 0, False),
            ("battery_v", "battery_mv", volts, 0, False),
        ],
    ),
    "truck_fix": (
        "truck_fix",
        [],
        [
            ("lat", "latitude_deg", F, 0.0, False),
            ("lon", "longitude_deg", F, 0.0, False),
            ("speed_kmh", "speed_kmh", F, 0.0, False),
            ("heading_deg", "heading_deg", F, 0.0, False),
            ("accuracy_m", "accuracy_m", F, 0.0, False),
            ("loaded", "loaded", B, False, False),
            ("cover_closed", "cover_closed", B, False, False),
            ("body_lifted", "body_lifted", B, False, False),
            ("ignition_on", "ignition_on", B, False, False),
            ("gnss_fix", "gnss_fix", B, False, False),
            ("satellites", "satellites", I, 0, False),
            ("alarm_bits", "terminal_alarm_bits", I, 0, False),
            ("load_kg", "load_kg", F, None, True),
            ("plate", "plate", S, "", False),
            ("permit_id", "permit_id", S, "", False),
        ],
    ),
    "device_status": (
        "device_status",
        [("status", "kind", STATUS)],
        [
            ("firmware", "firmware_version", S, "", False),
            ("battery_v", "battery_mv", volts, 0, False),
            ("signal_dbm", "signal_dbm", I, None, True),
            ("uptime_s", "uptime_s", I, 0, False),
        ],
    ),
}
BODY_TO_MEASUREMENT = {body: m for m, (body, _, _) in SCHEMA.items()}


def to_line(env, is_json):
    """One point from an Envelope (protobuf message or JSON dict)."""
    if is_json:
        body_name = next(k for k in env if k in BODY_TO_MEASUREMENT)
        body = env[body_name]
        # Absent optional sensors may come as null.
        get = lambda k, d: d if body.get(k) is None else body[k]  # noqa: E731
        has = lambda k: body.get(k) is not None  # noqa: E731
        site, device = env["site_id"], env["device_id"]
        seq, t = env.get("seq", 0), env.get("recorded_at_unix_ms", 0)
        kind = env.get("device_kind", "unspecified")
    else:
        body_name = env.WhichOneof("body")
        body = getattr(env, body_name)
        get = lambda k, d: getattr(body, k)  # noqa: E731
        has = body.HasField
        site, device, seq, t = env.site_id, env.device_id, env.seq, env.recorded_at_unix_ms
        kind = DEVICE_KIND.get(env.device_kind, "unspecified")
    meas = BODY_TO_MEASUREMENT[body_name]
    _, tag_spec, field_spec = SCHEMA[meas]
    tags = ["%s,site=%s,device=%s" % (meas, tag(site), tag(device))]
    if meas == "device_status":
        tags.append("device_kind=" + tag(kind))
    for name, key, names in tag_spec:
        v = get(key, "unspecified") if is_json else names.get(get(key, 0), "unspecified")
        tags.append("%s=%s" % (name, tag(v)))
    fields = ["seq=%di" % seq, "device_time_ms=%di" % t]
    for name, key, fmt, default, optional in field_spec:
        if optional and not has(key):
            continue
        fields.append("%s=%s" % (name, fmt(get(key, default))))
    return "%s %s %d" % (",".join(tags), ",".join(fields), t)


# --- batching writer --------------------------------------------------------


class Writer:
    def __init__(self):
        self.lines = []
        self.first_at = None
        self.cv = threading.Condition()
        self.stopping = False
        self.session = requests.Session()
        if ARGS.v2:
            self.url = ARGS.influx_url.rstrip("/") + "/api/v2/write"
            self.params = {"org": ARGS.org, "bucket": ARGS.db, "precision": "ms"}
            if ARGS.token:
                self.session.headers["Authorization"] = "Token " + ARGS.token
        else:
            self.url = ARGS.influx_url.rstrip("/") + "/write"
            self.params = {"db": ARGS.db, "precision": "ms"}
        self.written = 0
        self.posts = 0
        self.post_errors = 0

    def add(self, line):
        with self.cv:
            if not self.lines:
                self.first_at = time.monotonic()
            self.lines.append(line)
            if len(self.lines) >= ARGS.batch_lines:
                self.cv.notify()

    def run(self):
        while True:
            with self.cv:
                while True:
                    n = len(self.lines)
                    if n == 0 and self.stopping:
                        return
                    age = time.monotonic() - self.first_at if n else 0.0
                    if n >= ARGS.batch_lines or (n and age >= ARGS.batch_age_s) or (n and self.stopping):
                        break
                    self.cv.wait(ARGS.batch_age_s - age if n else ARGS.batch_age_s)
                batch = self.lines[: ARGS.batch_lines]
                del self.lines[: ARGS.batch_lines]
                self.first_at = time.monotonic() if self.lines else None
            self.post(batch)

    def post(self, batch):
        body = ("\n".join(batch) + "\n").encode()
        delay = 0.2
        while True:
            try:
                r = self.session.post(self.url, params=self.params, data=body, timeout=10)
                if r.status_code // 100 == 2:
                    self.written += len(batch)
                    self.posts += 1
                    return
                err = "HTTP %d: %s" % (r.status_code, r.text[:200])
                if 400 <= r.status_code < 500 and r.status_code != 429:
                    # The data is bad; retrying won't help.
                    print("bridge: batch of %d refused: %s" % (len(batch), err), file=sys.stderr)
                    self.post_errors += 1
                    return
            except requests.RequestException as e:
                err = str(e)
            self.post_errors += 1
            print("bridge: write failed (%s); retrying in %.1f s" % (err, delay), file=sys.stderr)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)

    def stop(self):
        with self.cv:
            self.stopping = True
            self.cv.notify()


# --- MQTT ---------------------------------------------------------------------

writer = Writer()
stats = {"received": 0, "decode_errors": 0}


def on_connect(client, userdata, flags, reason_code, properties):
    if reason_code.is_failure:
        print("bridge: connect refused: %s" % reason_code, file=sys.stderr)
        return
    client.subscribe(ARGS.topic, qos=1)


def on_subscribe(client, userdata, mid, reason_codes, properties):
    if any(rc.is_failure for rc in reason_codes):
        print("bridge: subscribe refused: %s" % reason_codes, file=sys.stderr)
        return
    print("bridge: subscribed to %s" % ARGS.topic, file=sys.stderr)
    if ARGS.ready_file:
        open(ARGS.ready_file, "w").close()


def on_message(client, userdata, msg):
    stats["received"] += 1
    try:
        ct = getattr(msg.properties, "ContentType", None) if msg.properties else None
        is_json = msg.topic.endswith("/json") or ct == "application/json"
        if is_json:
            env = json.loads(msg.payload)
        else:
            env = envelope_pb2.Envelope()
            env.ParseFromString(msg.payload)
        line = to_line(env, is_json)
    except Exception as e:  # a bad message must not stop the bridge
        stats["decode_errors"] += 1
        if stats["decode_errors"] <= 10:
            print("bridge: cannot decode %s: %r" % (msg.topic, e), file=sys.stderr)
        return
    writer.add(line)


def main():
    t = threading.Thread(target=writer.run, name="writer", daemon=True)
    t.start()
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=ARGS.client_id, protocol=mqtt.MQTTv5
    )
    if ARGS.username:
        with open(ARGS.password_file) as f:
            client.username_pw_set(ARGS.username, f.readline().strip())
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600  # keep the session (queued messages) across reconnects
    client.connect(ARGS.mqtt_host, ARGS.mqtt_port, keepalive=30, clean_start=False, properties=props)

    def stop(signum, frame):
        client.disconnect()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    client.loop_forever(retry_first_connection=True)
    writer.stop()
    t.join(timeout=30)
    print(json.dumps({**stats, "written": writer.written, "posts": writer.posts,
                      "post_errors": writer.post_errors, "unwritten": len(writer.lines)}))


if __name__ == "__main__":
    main()
