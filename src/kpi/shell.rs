//! The KPI stage: the async task around the pure [`KpiEngine`].
//!
//! It reads the durable log on its own cursor (`kpi`, one of
//! [`crate::log::CONSUMERS`], so it holds back deletion like every
//! consumer), feeds each device record to the engine, and every
//! `kpi.flush_interval_ms` appends the points of the periods that changed
//! as `kpi` records to the log — the TSDB writer stores them with its one
//! status policy, exactly like alert points; this stage does no TSDB I/O.
//! Every `kpi.snapshot_interval_ms`, once its points are in the log, it
//! writes the engine state with the log offset it covers to
//! `<log.dir>/kpi-snapshot.json` (write, fsync, rename) and only then moves
//! its cursor. After a crash it restores the snapshot and replays the log
//! from that offset; the points it writes again are the same points
//! (same series, same period start), so nothing is counted twice.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::engine::KpiEngine;
use crate::log::{AppendBatch, Class, Durability, Log, LogError, LogReader, CURSOR_KPI};
use crate::pb;

/// Most records handled between two looks at the tick.
const READ_BATCH: usize = 2000;

/// File name of the snapshot in the log directory.
pub const SNAPSHOT_FILE: &str = "kpi-snapshot.json";

/// What is saved.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// Log offset the engine state covers (the next record to read).
    offset: u64,
    /// The engine state.
    engine: serde_json::Value,
}

/// Writes a serialised [`Snapshot`] to `w`: the engine's JSON goes
/// straight to the writer after the offset, never parsed, copied or held
/// whole in memory. (Held in one buffer, the tens of MB of an hour of a
/// fleet's fixes were freed every few seconds, which glibc's malloc answers
/// by keeping such blocks in its heap: 111 MB peak RSS in an overload run,
/// against 77 MB with large blocks returned to the system.)
fn write_snapshot<W: Write>(mut w: W, offset: u64, engine: &KpiEngine) -> std::io::Result<()> {
    write!(w, "{{\"offset\":{offset},\"engine\":")?;
    engine.snapshot_to(&mut w).map_err(std::io::Error::other)?;
    w.write_all(b"}")
}

/// Path of the snapshot in `dir`.
pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Restores `engine` from the snapshot in `dir`, if there is one; returns
/// the log offset to read from.
pub fn restore(
    engine: &mut KpiEngine,
    dir: &Path,
    log: &Log,
) -> Result<u64, crate::fsutil::StateFileError> {
    const WHAT: &str = "KPI snapshot";
    let path = snapshot_path(dir);
    let Some(bytes) = crate::fsutil::read_state(WHAT, &path)? else {
        return Ok(log.cursor(CURSOR_KPI));
    };
    let invalid = |e: serde_json::Error| crate::fsutil::StateFileError::Invalid {
        what: WHAT,
        path: path.clone(),
        source: Box::new(e),
        remedy: "delete it to recompute the KPIs from the log",
    };
    let snap: Snapshot = serde_json::from_slice(&bytes).map_err(invalid)?;
    engine
        .restore(&serde_json::to_vec(&snap.engine).map_err(invalid)?)
        .map_err(invalid)?;
    info!(offset = snap.offset, "KPI state restored from snapshot");
    Ok(snap.offset)
}

/// Everything the stage owns.
pub struct KpiStage {
    /// The engine.
    pub engine: KpiEngine,
    /// Reader on the `kpi` cursor.
    pub reader: LogReader,
    /// Head of the log.
    pub head: watch::Receiver<u64>,
    /// Where points go, and whose cursor moves.
    pub log: Arc<Log>,
    /// Directory of the snapshot (the log directory).
    pub dir: PathBuf,
    /// How often points are written.
    pub flush_interval: Duration,
    /// How often the state is saved.
    pub snapshot_interval: Duration,
    /// Stop: read to the head, write the last points and the snapshot.
    pub cancel: CancellationToken,
}

/// Runs until cancelled and caught up.
pub async fn run(mut s: KpiStage) {
    let mut tick = tokio::time::interval(s.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = AppendBatch::new(Class::Internal);
    let mut saved_at = tokio::time::Instant::now();
    let mut failing = false;
    loop {
        let stopping = s.cancel.is_cancelled();
        let behind = *s.head.borrow() > s.reader.offset();
        tokio::select! {
            biased;
            _ = tick.tick(), if !stopping => {
                flush(&mut s, &mut pending, &mut failing).await;
                if pending.is_empty() && saved_at.elapsed() >= s.snapshot_interval {
                    save(&s).await;
                    saved_at = tokio::time::Instant::now();
                }
            }
            _ = ready(&mut s.head, s.reader.offset()), if behind || !stopping => {
                if read_batch(&mut s).is_err() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            _ = s.cancel.cancelled(), if !stopping => {}
            else => {}
        }
        if stopping && *s.head.borrow() <= s.reader.offset() {
            flush(&mut s, &mut pending, &mut failing).await;
            if pending.is_empty() {
                save(&s).await;
            } else {
                warn!("KPI points not durable at shutdown; the next start recomputes them from the log");
            }
            break;
        }
    }
    info!("KPI stage stopped");
}

/// Resolves when the log has records past `offset`, letting a small batch
/// fill for up to 25 ms (KPI points are written every `flush_interval`).
async fn ready(head: &mut watch::Receiver<u64>, offset: u64) {
    crate::log::wait_for_records(head, offset, READ_BATCH as u64, Duration::from_millis(25)).await;
}

fn read_batch(s: &mut KpiStage) -> Result<(), ()> {
    // The newest records, still decoded in memory: no read, no decode.
    if let Some(run) = s.reader.take_decoded(READ_BATCH) {
        for (_, rec) in run.iter() {
            s.engine.on_record(rec);
        }
        return Ok(());
    }
    match s.reader.read(READ_BATCH) {
        Ok(batch) => {
            for (_, bytes) in batch.iter() {
                if let Ok(rec) = pb::LogRecord::decode(bytes) {
                    s.engine.on_record(&rec);
                }
            }
            Ok(())
        }
        Err(e @ LogError::Corrupt { .. }) => {
            error!(error = %e, "kpi: durable log damaged; skipping to the next intact record");
            if let Err(e) = s.reader.skip_damaged() {
                error!(error = %e, "kpi: cannot skip the damaged log region");
            }
            Ok(())
        }
        Err(e) => {
            error!(error = %e, "kpi stage cannot read the durable log");
            Err(())
        }
    }
}

/// Appends the points of the changed periods (and any left from a failed
/// append before).
async fn flush(s: &mut KpiStage, pending: &mut AppendBatch, failing: &mut bool) {
    for k in s.engine.flush() {
        let r = pb::LogRecord {
            time_unix_ms: k.period_start_unix_ms,
            kpi: Some(Box::new(k)),
            ..Default::default()
        };
        // Encoding into a Vec cannot run out of space.
        let _ = pending.records.push_with(|b| {
            let _ = r.encode(b);
        });
    }
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::replace(pending, AppendBatch::new(Class::Internal));
    match s.log.append_async(batch).await {
        Ok(reply) => {
            match reply.result {
                Ok(_) => {
                    if *failing {
                        info!("KPI points are being written to the log again");
                    }
                    *failing = false;
                    *pending = AppendBatch::new(Class::Internal);
                    return;
                }
                Err(e) => {
                    if !*failing {
                        error!(error = %e, "KPI points cannot be appended to the durable log; will retry");
                    }
                    *failing = true;
                }
            }
            *pending = reply.batch;
        }
        Err(_) => {
            error!("the durable log writer is gone; KPI points not written");
        }
    }
}

/// Writes the snapshot, then moves the cursor.
async fn save(s: &KpiStage) {
    let offset = s.reader.offset();
    let pos = s.reader.position();
    let path = snapshot_path(&s.dir);
    // Serialised here (the engine is ours), into the page cache through a
    // small buffer; made durable and renamed on a blocking thread.
    let file = crate::fsutil::AtomicFile::create(&path)
        .and_then(|mut f| write_snapshot(f.writer(), offset, &s.engine).map(|()| f));
    let file = match file {
        Ok(f) => f,
        Err(e) => {
            error!(error = %e, path = %path.display(), "KPI snapshot not written; will retry");
            return;
        }
    };
    let log = s.log.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<(), String> {
        file.commit().map_err(|e| e.to_string())?;
        log.commit_cursor(CURSOR_KPI, pos, Durability::Now)
            .map_err(|e| e.to_string())
    })
    .await;
    match r {
        Ok(Ok(())) => {}
        Ok(Err(e)) => error!(error = %e, "KPI snapshot not saved; will retry"),
        Err(e) => error!(error = %e, "KPI snapshot task failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_file_is_a_serialised_snapshot_that_restores_the_engine() {
        let reg = std::sync::Arc::new(
            crate::registry::Registry::load_dir(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zone"),
            )
            .unwrap(),
        );
        let engine = KpiEngine::new(reg.clone(), Default::default());
        let state = engine.snapshot().unwrap();
        let mut bytes = Vec::new();
        write_snapshot(&mut bytes, 12_345, &engine).unwrap();
        let snap: Snapshot = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(snap.offset, 12_345);
        let mut again = KpiEngine::new(reg, Default::default());
        again
            .restore(&serde_json::to_vec(&snap.engine).unwrap())
            .unwrap();
        assert_eq!(again.snapshot().unwrap(), state);
    }

    /// A general-industrial delivery at the shipped zone's utilisation
    /// plant: a record the engine turns into KPI points.
    fn delivery(seq: u64, t: i64) -> Vec<u8> {
        let tk = pb::WeighbridgeTicket {
            ticket_id: format!("T{seq}"),
            plate: "豫AD0001".into(),
            gross_weight_kg: 20_000.0,
            tare_weight_kg: 12_000.0,
            net_weight_kg: 8_000.0,
            category: pb::WasteCategory::GeneralIndustrial as i32,
            direction: pb::Direction::In as i32,
            origin_site_id: "fa-autoparts-jingnan".into(),
            ..Default::default()
        };
        let rec = pb::LogRecord {
            envelope: Some(pb::Envelope {
                site_id: "up-industrial-jingnan".into(),
                device_id: "wb-utilise-01".into(),
                device_kind: pb::DeviceKind::Weighbridge as i32,
                seq,
                recorded_at_unix_ms: t,
                schema_version: 1,
                body: Some(pb::envelope::Body::WeighbridgeTicket(tk)),
            }),
            received_at_unix_ms: t,
            time_unix_ms: t,
            ..Default::default()
        };
        rec.encode_to_vec()
    }

    /// On paused tokio time: after its first flush at start, the stage
    /// writes the points of new records on its flush interval, not before,
    /// and its snapshot only at its interval or when stopping. Records go
    /// into the log with the blocking append and time moves only by
    /// `advance` until the flush (awaiting the log's writer thread would let
    /// tokio auto-advance the paused clock).
    #[tokio::test(start_paused = true)]
    async fn on_paused_time_points_wait_for_the_flush_tick_and_the_snapshot_for_its_interval() {
        let d = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(d.path(), 1 << 26, &crate::log::CONSUMERS).unwrap());
        let t0 = 1_795_000_000_000;
        let reg = std::sync::Arc::new(
            crate::registry::Registry::load_dir(
                &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("zone"),
            )
            .unwrap(),
        );
        let cancel = CancellationToken::new();
        let stage = KpiStage {
            engine: KpiEngine::new(reg, Default::default()),
            reader: log.reader(CURSOR_KPI).unwrap(),
            head: log.subscribe_head(),
            log: log.clone(),
            dir: d.path().to_owned(),
            flush_interval: Duration::from_secs(30),
            snapshot_interval: Duration::from_secs(300),
            cancel: cancel.clone(),
        };
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(run(stage));
        // The flush at start finds nothing.
        tokio::time::advance(Duration::from_millis(10)).await;
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        assert_eq!(*log.subscribe_head().borrow(), 0);
        let mut b = AppendBatch::new(Class::Ingest);
        for seq in 1..=3 {
            b.records
                .push(&delivery(seq, t0 + seq as i64 * 60_000))
                .unwrap();
        }
        // On a thread of its own: a blocking wait inside the runtime panics.
        std::thread::scope(|sc| sc.spawn(|| log.append_batch(b)).join().unwrap())
            .result
            .unwrap();
        let ingest_head = *log.subscribe_head().borrow();
        assert_eq!(ingest_head, 3);
        // Up to 29 s: read, but nothing written.
        for _ in 0..29 {
            tokio::time::advance(Duration::from_secs(1)).await;
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            assert_eq!(
                *log.subscribe_head().borrow(),
                ingest_head,
                "points before the flush tick"
            );
        }
        assert!(!snapshot_path(d.path()).exists());
        // The 30 s tick appends the points (on the writer thread: real time).
        tokio::time::advance(Duration::from_secs(1)).await;
        let t = std::time::Instant::now();
        while *log.subscribe_head().borrow() == ingest_head {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no KPI points after the flush tick"
            );
            tokio::task::yield_now().await;
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(started.elapsed() >= Duration::from_secs(30));
        let mut r = log.reader_at(ingest_head).unwrap();
        let batch = r.read(100).unwrap();
        let kpis: Vec<pb::KpiRecord> = batch
            .iter()
            .filter_map(|(_, b)| pb::LogRecord::decode(b).ok()?.kpi.map(|k| *k))
            .collect();
        assert!(
            kpis.iter().any(|k| k.kpi == "industrial_utilisation"
                && k.scope == "zone"
                && k.denominator == 24_000.0),
            "{kpis:?}"
        );
        // No snapshot before its interval.
        assert!(!snapshot_path(d.path()).exists());
        cancel.cancel();
        task.await.unwrap();
        // Stopping saves it.
        assert!(snapshot_path(d.path()).exists());
    }
}
