//! End-to-end load harness: publisher → Mosquitto (shipped config) →
//! `wastewatch run` (release binary) → InfluxDB 1.x. Publishes `--count`
//! messages at `--rate` per second over 16 devices, waits until every
//! (device, seq) is stored, and reports the sustained rate, loss (must be 0)
//! and the wastewatch process's CPU µs per message (utime+stime from
//! /proc). Needs the real servers: run under scripts/services.sh, e.g.
//!
//! ```sh
//! scripts/services.sh start && set -a && . target/services/env && set +a
//! cargo build --release && cargo bench --bench e2e_load -- 20000 5000
//! ```
//!
//! Arguments: COUNT RATE (messages, messages/second).

use std::time::{Duration, Instant};

use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after ')'.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let count: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rate: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5_000.0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let setup = V1Setup::new("load", &[]);
    let (tag, zone, db) = (&setup.tag, &setup.zone, &setup.db);
    let svc = setup.start();
    let pid = svc.child.id();
    let ticks0 = cpu_ticks(pid);
    let t0 = now_ms() - 86_400_000;
    let kinds = [
        DeviceKind::Bin,
        DeviceKind::Storage,
        DeviceKind::Truck,
        DeviceKind::Weighbridge,
    ];
    let msgs: Vec<Msg> = (0..count)
        .map(|i| {
            Msg::pb(
                zone,
                &zone.envelope(kinds[(i % 4) as usize], i / 4 + 1, t0 + i as i64),
            )
        })
        .collect();
    let start = Instant::now();
    // Pace in bursts of 100 to reach the rate with coarse timers.
    let pace = Duration::from_secs_f64(1.0 / rate);
    let acked = rt.block_on(publish_all(format!("pub-{tag}"), msgs, Some(pace)));
    let published_s = start.elapsed().as_secs_f64();
    let stored = || {
        [
            "bin_reading",
            "storage_reading",
            "truck_fix",
            "weighbridge_ticket",
        ]
        .iter()
        .map(|m| stored_seqs(db, m).len() as u64)
        .sum::<u64>()
    };
    let ok = eventually(Duration::from_secs(120), || stored() == count);
    let done_s = start.elapsed().as_secs_f64();
    let ticks = cpu_ticks(pid) - ticks0;
    let hz = 100.0; // USER_HZ on Linux
    let cpu_us_per_msg = ticks as f64 / hz * 1e6 / count as f64;
    println!(
        "count={count} target_rate={rate}/s acked={acked} stored={} lost={} publish_s={published_s:.2} end_to_end_s={done_s:.2} sustained_rate={:.0}/s wastewatch_cpu_us_per_msg={cpu_us_per_msg:.1}",
        stored(),
        count - stored().min(count),
        count as f64 / done_s
    );
    assert!(ok, "loss: {} of {count} stored", stored());
    svc.stop();
}
