#!/usr/bin/env python3
"""InfluxDB 1.x alone: CPU per point for truck_fix lines whose tags are in
wastewatch's order (site, device) against tags sorted by key (device, site),
which spares InfluxDB the sort of each point's key. Standard library only.

    scripts/services.sh start influxdb
    python3 scripts/bench/influx_tag_order.py [ROUNDS]     # default 3

Each round writes 200,000 points in 5,000-line requests (precision=ms) into
a fresh database per variant, alternating, and reads influxd's CPU time from
/proc before the first write and 3 s after the last; the database is dropped
after. Prints µs of InfluxDB CPU per point and the write rate of each run,
then the median per variant. Needs the influxd process on this machine."""

import os
import random
import statistics
import sys
import time
import urllib.request

URL = os.environ.get("WW_TEST_INFLUX_URL", "http://127.0.0.1:18086")
POINTS, BATCH, DEVICES = 200_000, 5_000, 2_000


def influxd_pid():
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip() == "influxd":
                    return int(p)
        except OSError:
            pass
    sys.exit("no influxd process found: start it with scripts/services.sh start influxdb")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def query(q):
    req = urllib.request.Request(f"{URL}/query", data=("q=" + q).encode(), method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    urllib.request.urlopen(req).read()


def lines(sorted_tags, t0):
    out = []
    for i in range(POINTS):
        d, s = f"truck-{i % DEVICES:05d}", f"site-{i % 20:02d}"
        tags = f"device={d},site={s}" if sorted_tags else f"site={s},device={d}"
        ts = t0 + i
        out.append(
            f"truck_fix,{tags} lat=31.{i % 997},lon=121.{i % 991},speed_kmh=42.5,"
            "heading_deg=180,accuracy_m=3.5,loaded=true,cover_closed=true,body_lifted=false,"
            "ignition_on=true,gnss_fix=true,satellites=12i,alarm_bits=0i,load_kg=8000,"
            f'plate="A{i % DEVICES:05d}",permit_id="P-{i % DEVICES}",seq={i}i,'
            f"device_time_ms={ts}i,clock_restamped=false {ts}")
    return out


def run(sorted_tags, db):
    query(f"CREATE DATABASE {db}")
    ls = lines(sorted_tags, 1_764_000_000_000 + random.randint(0, 10**9))
    bodies = ["\n".join(ls[i:i + BATCH]).encode() for i in range(0, POINTS, BATCH)]
    pid = influxd_pid()
    c0, w0 = cpu_s(pid), time.time()
    for b in bodies:
        r = urllib.request.urlopen(urllib.request.Request(
            f"{URL}/write?db={db}&precision=ms", data=b, method="POST"))
        if r.status != 204:
            sys.exit(f"write answered {r.status}")
    w1 = time.time()
    time.sleep(3)
    c1 = cpu_s(pid)
    query(f"DROP DATABASE {db}")
    return (c1 - c0) / POINTS * 1e6, POINTS / (w1 - w0)


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    res = {"wastewatch order": [], "sorted by key": []}
    for r in range(rounds):
        for name, sorted_tags in (("wastewatch order", False), ("sorted by key", True)):
            us, rate = run(sorted_tags, f"tag_order_{int(sorted_tags)}_{r}_{os.getpid()}")
            res[name].append(us)
            print(f"{name}: {us:.1f} µs/point, {rate:,.0f} points/s", flush=True)
    for name, v in res.items():
        print(f"{name}: median {statistics.median(v):.1f} µs of InfluxDB CPU per point")


if __name__ == "__main__":
    main()
