//! `firmware-sim capture`: the messages of the simulated fleet written to a
//! file without a broker, so a benchmark can replay exactly the same traffic
//! against several subscribers (`firmware-sim replay`, `replay.rs`;
//! `scripts/bench-e2e.sh`).
//!
//! # File format (version 1)
//!
//! All integers little-endian.
//!
//! ```text
//! magic        8 bytes   b"WWCAP01\n"
//! header_len   u32       length of the header that follows
//! header       JSON      CaptureHeader (seed, zone, counts, device-time span)
//! records      until EOF, each:
//!   flags      u8        bit 0: the payload is JSON (else protobuf Envelope);
//!                        other bits 0
//!   topic_len  u16, topic         UTF-8 MQTT topic
//!   ctype_len  u8,  content_type  UTF-8 MQTT 5 content type ("" = none)
//!   len        u32, payload       the MQTT payload, byte for byte
//! ```
//!
//! Records are in publication order. The payloads are exactly what the
//! devices would have published at the simulated time; their device
//! timestamps (`recorded_at_unix_ms`) therefore lie in the capture's
//! simulated span (`first_recorded_at_ms..=last_recorded_at_ms` in the
//! header), which `replay` shifts to "now" before publishing
//! ([`rebase`]).
//!
//! Only messages the service must accept are captured (scenario `normal`,
//! no faults); a message whose point would overwrite an earlier one —
//! same device, same measurement, same device millisecond, which InfluxDB
//! stores as one point — is left out and counted in the header
//! (`dropped_same_point`), so that "stored == acked" is the zero-loss test.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use firmware_sim::{Fleet, Scenario, SimConfig};
use prost::Message as _;
use serde::{Deserialize, Serialize};
use wastewatch_contract::pb;
use wastewatch_contract::registry::Registry;

/// First bytes of a capture file.
pub const MAGIC: &[u8; 8] = b"WWCAP01\n";
/// Record flag: the payload is JSON.
pub const FLAG_JSON: u8 = 1;
/// Simulated span a capture may cover: the service's clock window keeps
/// device times up to 7 days old (`decode.max_past_ms`); stay well inside.
const MAX_SPAN_MS: i64 = 5 * 86_400_000;
/// Default simulated start: 2026-11-28 20:45 China Standard Time, when the
/// trucks start their night shift (fixed, so a seed gives the same file).
const DEFAULT_START_UNIX_MS: i64 = 1_795_869_900_000;

#[derive(Args)]
pub struct CaptureArgs {
    /// Zone directory (e.g. one written by `gen-zone`).
    #[arg(long, default_value = "zone")]
    zone: PathBuf,
    /// Messages to capture.
    #[arg(long)]
    count: u64,
    /// File to write.
    #[arg(long)]
    out: PathBuf,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of devices speaking legacy JSON (0..1), as in `run`.
    #[arg(long, default_value_t = 0.1)]
    json_share: f64,
    /// Simulated start, Unix ms (default 2026-11-28 20:45 CST).
    #[arg(long, default_value_t = DEFAULT_START_UNIX_MS)]
    start_unix_ms: i64,
}

/// The JSON header of a capture file.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CaptureHeader {
    pub version: u32,
    pub zone: String,
    pub devices: usize,
    pub seed: u64,
    pub json_share: f64,
    pub start_unix_ms: i64,
    /// Records in the file.
    pub count: u64,
    /// Smallest / largest `recorded_at_unix_ms` of the records.
    pub first_recorded_at_ms: i64,
    pub last_recorded_at_ms: i64,
    /// Records per measurement the service writes them to.
    pub by_measurement: BTreeMap<String, u64>,
    /// Records with a JSON payload.
    pub json_messages: u64,
    /// Messages left out because they would overwrite an earlier point.
    pub dropped_same_point: u64,
}

/// One captured MQTT message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub content_type: String,
    pub json: bool,
    pub payload: Vec<u8>,
}

/// The InfluxDB measurement a device message is written to (docs/SCHEMA.md),
/// from its topic `wastewatch/v1/{site}/{kind}/{device}/{channel}[/json]`.
pub fn measurement_of(topic: &str) -> Option<&'static str> {
    let parts: Vec<&str> = topic.split('/').collect();
    let (kind, channel) = (*parts.get(3)?, *parts.get(5)?);
    if channel == "status" {
        return Some("device_status");
    }
    Some(match kind {
        "weighbridge" => "weighbridge_ticket",
        "bin" => "bin_reading",
        "storage" => "storage_reading",
        "truck" => "truck_fix",
        _ => return None,
    })
}

pub fn write_file(path: &Path, header: &CaptureHeader, records: &[Record]) -> anyhow::Result<()> {
    let f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(f);
    let h = serde_json::to_vec(header)?;
    w.write_all(MAGIC)?;
    w.write_all(&u32::try_from(h.len())?.to_le_bytes())?;
    w.write_all(&h)?;
    for r in records {
        let ct = r.content_type.as_bytes();
        w.write_all(&[if r.json { FLAG_JSON } else { 0 }])?;
        w.write_all(&u16::try_from(r.topic.len())?.to_le_bytes())?;
        w.write_all(r.topic.as_bytes())?;
        w.write_all(&[u8::try_from(ct.len())?])?;
        w.write_all(ct)?;
        w.write_all(&u32::try_from(r.payload.len())?.to_le_bytes())?;
        w.write_all(&r.payload)?;
    }
    w.flush()?;
    Ok(())
}

fn read_exact_vec(r: &mut impl Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0; n];
    r.read_exact(&mut v)?;
    Ok(v)
}

pub fn read_file(path: &Path) -> anyhow::Result<(CaptureHeader, Vec<Record>)> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut r = BufReader::new(f);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)
        .with_context(|| format!("{}: too short for a capture", path.display()))?;
    if &magic != MAGIC {
        bail!("{}: not a firmware-sim capture (bad magic)", path.display());
    }
    let mut b4 = [0u8; 4];
    r.read_exact(&mut b4)?;
    let header: CaptureHeader =
        serde_json::from_slice(&read_exact_vec(&mut r, u32::from_le_bytes(b4) as usize)?)
            .with_context(|| format!("{}: bad header", path.display()))?;
    let mut records = Vec::with_capacity(header.count as usize);
    loop {
        let mut flags = [0u8; 1];
        match r.read_exact(&mut flags) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let at = records.len();
        let rec = (|| -> anyhow::Result<Record> {
            let mut b2 = [0u8; 2];
            r.read_exact(&mut b2)?;
            let topic =
                String::from_utf8(read_exact_vec(&mut r, u16::from_le_bytes(b2) as usize)?)?;
            let mut b1 = [0u8; 1];
            r.read_exact(&mut b1)?;
            let content_type = String::from_utf8(read_exact_vec(&mut r, b1[0] as usize)?)?;
            r.read_exact(&mut b4)?;
            let payload = read_exact_vec(&mut r, u32::from_le_bytes(b4) as usize)?;
            Ok(Record {
                topic,
                content_type,
                json: flags[0] & FLAG_JSON != 0,
                payload,
            })
        })()
        .with_context(|| format!("{}: record {at} truncated or bad", path.display()))?;
        records.push(rec);
    }
    if records.len() as u64 != header.count {
        bail!(
            "{}: header says {} records, file has {}",
            path.display(),
            header.count,
            records.len()
        );
    }
    Ok((header, records))
}

/// Adds `shift_ms` to the record's device times (`recorded_at_unix_ms`, and
/// a ticket's non-zero weighing times), re-encoding the payload in its own
/// encoding. Fails if the payload does not decode.
pub fn rebase(rec: &mut Record, shift_ms: i64) -> anyhow::Result<()> {
    if rec.json {
        let mut v: serde_json::Value = serde_json::from_slice(&rec.payload)?;
        let shift = |v: &mut serde_json::Value, key: &str, keep_zero: bool| {
            if let Some(t) = v.get(key).and_then(serde_json::Value::as_i64) {
                if !(keep_zero && t == 0) {
                    v[key] = (t + shift_ms).into();
                }
            }
        };
        shift(&mut v, "recorded_at_unix_ms", false);
        if let Some(t) = v.get_mut("weighbridge_ticket") {
            shift(t, "weighed_in_at_unix_ms", true);
            shift(t, "weighed_out_at_unix_ms", true);
        }
        rec.payload = serde_json::to_vec(&v)?;
    } else {
        let mut env = pb::Envelope::decode(rec.payload.as_slice())?;
        env.recorded_at_unix_ms += shift_ms;
        if let Some(pb::envelope::Body::WeighbridgeTicket(t)) = env.body.as_mut() {
            for x in [&mut t.weighed_in_at_unix_ms, &mut t.weighed_out_at_unix_ms] {
                if *x != 0 {
                    *x += shift_ms;
                }
            }
        }
        rec.payload = env.encode_to_vec();
    }
    Ok(())
}

pub fn capture(a: CaptureArgs) -> anyhow::Result<()> {
    if a.count == 0 {
        bail!("--count must be at least 1");
    }
    let registry = Registry::load_dir(&a.zone)
        .map_err(|e| anyhow::anyhow!("zone {}: {e}", a.zone.display()))?;
    let cfg = SimConfig {
        seed: a.seed,
        scenarios: vec![Scenario::Normal],
        json_share: a.json_share,
        start_unix_ms: a.start_unix_ms,
        ..SimConfig::default()
    };
    let mut fleet = Fleet::new(&registry, &cfg)?;
    let mut header = CaptureHeader {
        version: 1,
        zone: a.zone.display().to_string(),
        devices: fleet.device_count(),
        seed: a.seed,
        json_share: a.json_share,
        start_unix_ms: a.start_unix_ms,
        first_recorded_at_ms: i64::MAX,
        last_recorded_at_ms: i64::MIN,
        ..CaptureHeader::default()
    };
    let mut records = Vec::with_capacity(a.count as usize);
    let mut points: HashSet<(String, &'static str, i64)> = HashSet::new();
    let mut t = a.start_unix_ms;
    'sim: loop {
        if t - a.start_unix_ms > MAX_SPAN_MS {
            bail!(
                "{} devices produced only {} messages in {} simulated days; use a bigger zone (gen-zone --devices) or a smaller --count",
                header.devices,
                records.len(),
                MAX_SPAN_MS / 86_400_000
            );
        }
        t += 1000;
        for m in fleet.next_batch(t) {
            if m.expect_quarantine || m.duplicate || m.last_will {
                continue;
            }
            let Some(meas) = measurement_of(&m.topic) else {
                bail!("unexpected topic {}", m.topic);
            };
            if !points.insert((m.device_id.clone(), meas, m.recorded_at_ms)) {
                header.dropped_same_point += 1;
                continue;
            }
            *header.by_measurement.entry(meas.to_owned()).or_default() += 1;
            header.json_messages += u64::from(m.json);
            header.first_recorded_at_ms = header.first_recorded_at_ms.min(m.recorded_at_ms);
            header.last_recorded_at_ms = header.last_recorded_at_ms.max(m.recorded_at_ms);
            let content_type = if m.json && !m.topic.ends_with("/json") {
                "application/json"
            } else {
                ""
            };
            records.push(Record {
                topic: m.topic,
                content_type: content_type.to_owned(),
                json: m.json,
                payload: m.payload,
            });
            if records.len() as u64 == a.count {
                break 'sim;
            }
        }
    }
    header.count = records.len() as u64;
    write_file(&a.out, &header, &records)?;
    let mut summary = serde_json::to_value(&header)?;
    summary["out"] = a.out.display().to_string().into();
    summary["simulated_span_s"] =
        ((header.last_recorded_at_ms - header.first_recorded_at_ms) as f64 / 1000.0).into();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurement_from_topic() {
        assert_eq!(
            measurement_of("wastewatch/v1/s/bin/b1/telemetry"),
            Some("bin_reading")
        );
        assert_eq!(
            measurement_of("wastewatch/v1/s/truck/t1/status/json"),
            Some("device_status")
        );
        assert_eq!(
            measurement_of("wastewatch/v1/s/weighbridge/w/event"),
            Some("weighbridge_ticket")
        );
        assert_eq!(measurement_of("wastewatch/v1/s"), None);
    }

    #[test]
    fn file_round_trip_and_rebase() {
        let env = pb::Envelope {
            site_id: "s".into(),
            device_id: "w".into(),
            device_kind: pb::DeviceKind::Weighbridge as i32,
            seq: 3,
            recorded_at_unix_ms: 1_000,
            schema_version: 1,
            body: Some(pb::envelope::Body::WeighbridgeTicket(
                pb::WeighbridgeTicket {
                    weighed_in_at_unix_ms: 500,
                    ..Default::default()
                },
            )),
        };
        let recs = vec![
            Record {
                topic: "wastewatch/v1/s/weighbridge/w/event".into(),
                content_type: String::new(),
                json: false,
                payload: env.encode_to_vec(),
            },
            Record {
                topic: "wastewatch/v1/s/bin/b/telemetry".into(),
                content_type: "application/json".into(),
                json: true,
                payload: br#"{"seq":1,"recorded_at_unix_ms":2000,"bin_reading":{}}"#.to_vec(),
            },
        ];
        let dir = std::env::temp_dir().join(format!("wwcap-test-{}", std::process::id()));
        let header = CaptureHeader {
            version: 1,
            count: 2,
            ..Default::default()
        };
        write_file(&dir, &header, &recs).unwrap();
        let (h, mut back) = read_file(&dir).unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(h.count, 2);
        assert_eq!(back, recs);
        for r in &mut back {
            rebase(r, 10).unwrap();
        }
        let e = pb::Envelope::decode(back[0].payload.as_slice()).unwrap();
        assert_eq!(e.recorded_at_unix_ms, 1_010);
        match e.body {
            Some(pb::envelope::Body::WeighbridgeTicket(t)) => {
                assert_eq!(
                    (t.weighed_in_at_unix_ms, t.weighed_out_at_unix_ms),
                    (510, 0)
                );
            }
            _ => panic!("body"),
        }
        let j: serde_json::Value = serde_json::from_slice(&back[1].payload).unwrap();
        assert_eq!(j["recorded_at_unix_ms"], 2010);
        assert_eq!(j["seq"], 1);
    }
}
