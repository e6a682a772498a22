//! The log's single writer: one thread that owns the newest segment of
//! each kind, assigns every offset and quarantine id, and commits groups.
//!
//! Group commit: the thread takes every request waiting in its channel
//! (up to [`GROUP_MAX_BYTES`]), admits each against the byte bound, stamps
//! offsets and CRCs into the callers' frame buffers, writes them at the
//! committed end of the segment, and makes them durable with one
//! `fdatasync` per file touched (records, then quarantine), before
//! answering anyone. Only then do the offsets become visible to readers
//! (the committed length and the head move together, under the state lock).
//!
//! A failed write or sync (ENOSPC, EIO) cuts the file back to its committed
//! length, answers every request of the group with the error (their
//! messages stay unacknowledged), marks the storage error for readiness —
//! logged once per episode — and clears it on the next successful commit.
//!
//! A full disk would otherwise be a deadlock: segments are freed only when
//! every consumer's cursor has passed them, and the rules and KPI stages
//! move their cursors only after writing a snapshot — which needs space. So
//! the writer keeps a *disk reserve* (`disk-reserve`, a file of zeros): when
//! a write fails for lack of space it deletes the reserve, internal appends
//! and the stages' snapshots use the space it leaves, cursors move and
//! segments go; ingest appends stay refused until the reserve has been
//! written again in full, so ingest cannot eat the room the stages need.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{error, info, warn};

use super::cursor::Position;
use super::frame::stamp;
use super::segment;
use super::store::{
    compact_quarantine, AppendBatch, AppendReply, Appended, Class, Inner, LogError, QSeg, Seg,
};

/// Most bytes taken into one group commit.
pub const GROUP_MAX_BYTES: u64 = 16 << 20;

/// Requests waiting for the writer.
const QUEUE: usize = 256;

/// A request to the writer.
pub(crate) enum Request {
    /// Append a batch; reply once durable.
    Append {
        batch: AppendBatch,
        reply: oneshot::Sender<AppendReply>,
    },
}

/// The newest segment of one kind.
struct Active {
    dir: PathBuf,
    base: u64,
    file: File,
    /// Committed (durable) length.
    len: u64,
}

impl Active {
    fn open(dir: PathBuf, base: u64, len: u64) -> Result<Active, LogError> {
        let path = segment::path(&dir, base);
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("cannot open", &path, e))?;
        Ok(Active {
            dir,
            base,
            file,
            len,
        })
    }

    /// Starts a new segment at `base` (the current one is already durable).
    fn roll(&mut self, base: u64) -> std::io::Result<()> {
        let path = segment::path(&self.dir, base);
        // A file left by a roll whose commit then failed holds nothing
        // committed: start it afresh.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        segment::sync_dir(&self.dir)?;
        self.file = file;
        self.base = base;
        self.len = 0;
        Ok(())
    }

    /// Writes `bufs` after the committed end and syncs; returns the bytes
    /// written. On failure the file is cut back to the committed end.
    fn write(&mut self, bufs: &[&[u8]]) -> std::io::Result<u64> {
        let mut pos = self.len;
        let res = (|| {
            for b in bufs.iter().filter(|b| !b.is_empty()) {
                self.file.write_all_at(b, pos)?;
                pos += b.len() as u64;
            }
            if pos > self.len {
                self.file.sync_data()?;
            }
            Ok(pos - self.len)
        })();
        if res.is_err() {
            let _ = self.file.set_len(self.len);
        }
        res
    }
}

/// Starts the writer thread.
pub(crate) fn spawn(
    inner: Arc<Inner>,
) -> Result<(SyncSender<Request>, std::thread::JoinHandle<()>), LogError> {
    let (rec, q) = {
        let st = inner.lock();
        let r = st.rec.last().copied().unwrap_or(Seg { base: 0, len: 0 });
        let q = st.q.last().map(|s| (s.base, s.len)).unwrap_or((0, 0));
        (r, q)
    };
    let rec = Active::open(inner.rec_dir.clone(), rec.base, rec.len)?;
    let q = Active::open(inner.q_dir.clone(), q.0, q.1)?;
    let (tx, rx) = sync_channel(QUEUE);
    let mut reserve = Reserve {
        path: inner.dir.join(RESERVE_FILE),
        bytes: inner.opts.disk_reserve_bytes,
        present: false,
        retry_at: None,
    };
    if let Err(e) = reserve.restore() {
        warn!(error = %e, path = %reserve.path.display(), bytes = reserve.bytes, "cannot write the log's disk reserve; ingest waits until it can");
    }
    let w = Writer {
        inner,
        rec,
        q,
        reserve,
        full_disk: false,
    };
    let handle = std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || w.run(rx))
        .map_err(|e| LogError::Storage(format!("cannot start the log writer thread: {e}")))?;
    Ok((tx, handle))
}

struct Writer {
    inner: Arc<Inner>,
    rec: Active,
    q: Active,
    reserve: Reserve,
    /// The last failed write found the disk full.
    full_disk: bool,
}

/// Name of the disk reserve in the log directory.
pub const RESERVE_FILE: &str = "disk-reserve";

/// The disk reserve: space held back for the stages' snapshots on a full
/// disk (module docs).
struct Reserve {
    path: PathBuf,
    bytes: u64,
    /// Written in full and synced.
    present: bool,
    /// A failed write is not tried again before this: each try writes up
    /// to `bytes` of zeros, and ingest retries its appends every 500 ms.
    retry_at: Option<std::time::Instant>,
}

/// Least time between two tries to write the reserve again.
const RESERVE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl Reserve {
    /// Writes the reserve in full (zeros, synced) unless it is there.
    fn restore(&mut self) -> std::io::Result<()> {
        if self.present || self.bytes == 0 {
            self.present = true;
            return Ok(());
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.bytes) {
            // Written by an earlier run; its blocks are allocated (zeros
            // written, never a sparse set_len).
            self.present = true;
            return Ok(());
        }
        let res = (|| {
            let f = File::create(&self.path)?;
            let zeros = vec![0u8; 64 << 10];
            let mut pos = 0u64;
            while pos < self.bytes {
                let n = (self.bytes - pos).min(zeros.len() as u64) as usize;
                f.write_all_at(&zeros[..n], pos)?;
                pos += n as u64;
            }
            f.sync_all()?;
            if let Some(d) = self.path.parent() {
                segment::sync_dir(d)?;
            }
            Ok(())
        })();
        match res {
            Ok(()) => {
                self.present = true;
                Ok(())
            }
            Err(e) => {
                // A partial reserve holds space ingest could use; let it go.
                let _ = std::fs::remove_file(&self.path);
                Err(e)
            }
        }
    }

    /// [`Reserve::restore`], at most once per [`RESERVE_RETRY`] after a
    /// failure.
    fn restore_when_due(&mut self) -> std::io::Result<()> {
        let now = std::time::Instant::now();
        if self.retry_at.is_some_and(|t| now < t) {
            return Err(std::io::Error::other(
                "the last try failed less than a second ago",
            ));
        }
        let r = self.restore();
        self.retry_at = r.is_err().then(|| now + RESERVE_RETRY);
        r
    }

    /// Deletes the reserve, freeing its space.
    fn release(&mut self) -> bool {
        if !self.present || self.bytes == 0 {
            return false;
        }
        self.present = false;
        std::fs::remove_file(&self.path).is_ok()
    }
}

/// True when `e` (or the I/O error under it) says the disk is full.
fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

struct Admitted {
    batch: AppendBatch,
    reply: oneshot::Sender<AppendReply>,
    appended: Appended,
    ingest: bool,
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            let mut bytes = group_bytes(&group);
            while bytes < GROUP_MAX_BYTES {
                match rx.try_recv() {
                    Ok(r) => {
                        group.push(r);
                        bytes = group_bytes(&group);
                    }
                    Err(_) => break,
                }
            }
            self.commit(group);
        }
    }

    fn commit(&mut self, group: Vec<Request>) {
        let opts = self.inner.opts.clone();
        // Ingest waits for the disk reserve (module docs).
        let ingest_blocked = if self.reserve.present {
            None
        } else if group
            .iter()
            .any(|Request::Append { batch, .. }| batch.class == Class::Ingest)
        {
            match self.reserve.restore_when_due() {
                Ok(()) => {
                    info!(
                        bytes = self.reserve.bytes,
                        "log disk reserve written again; ingest may append"
                    );
                    None
                }
                Err(e) => Some(self.inner.lock().storage_error.clone().unwrap_or_else(|| {
                    format!(
                        "cannot write the log's disk reserve {}: {e}",
                        self.reserve.path.display()
                    )
                })),
            }
        } else {
            None
        };
        let mut admitted: Vec<Admitted> = Vec::with_capacity(group.len());
        let (first_offset, first_qid) = {
            let mut st = self.inner.lock();
            let mut used = st.used_bytes();
            let (mut head, mut qid) = (st.head, st.next_qid);
            let start = (head, qid);
            for Request::Append { mut batch, reply } in group {
                if let (Some(msg), Class::Ingest) = (&ingest_blocked, batch.class) {
                    if st.storage_error.is_none() {
                        st.storage_error = Some(msg.clone());
                    }
                    let _ = reply.send(AppendReply {
                        result: Err(LogError::Storage(msg.clone())),
                        batch,
                    });
                    continue;
                }
                let incoming = batch.bytes();
                let limit = match batch.class {
                    Class::Ingest => opts.max_bytes.saturating_sub(opts.reserve_bytes),
                    Class::Internal => opts.max_bytes,
                };
                if incoming > 0 && used + incoming > limit {
                    if batch.class == Class::Ingest {
                        st.full = true;
                    }
                    let _ = reply.send(AppendReply {
                        result: Err(LogError::Full {
                            used_bytes: used,
                            incoming,
                            limit_bytes: limit,
                        }),
                        batch,
                    });
                    continue;
                }
                used += incoming;
                let n = stamp(batch.records.as_mut_bytes(), head);
                let m = stamp(batch.quarantine.as_mut_bytes(), qid);
                let appended = Appended {
                    records: head..head + n,
                    quarantine: qid..qid + m,
                };
                head += n;
                qid += m;
                let ingest = batch.class == Class::Ingest;
                admitted.push(Admitted {
                    batch,
                    reply,
                    appended,
                    ingest,
                });
            }
            start
        };
        if admitted.is_empty() {
            return;
        }
        match self.write(&admitted, first_offset, first_qid) {
            Ok((rec_written, q_written)) => self.publish(admitted, rec_written, q_written),
            Err(e) => {
                let msg = e.to_string();
                {
                    let mut st = self.inner.lock();
                    if st.storage_error.is_none() {
                        error!(error = %msg, dir = %self.inner.dir.display(), "durable log write failed; not acknowledging, retrying (free space or fix the disk)");
                    }
                    st.storage_error = Some(msg.clone());
                }
                if std::mem::take(&mut self.full_disk) && self.reserve.release() {
                    warn!(
                        bytes = self.reserve.bytes,
                        "disk full: released the log's disk reserve so the stages can save their snapshots and free segments; ingest waits until it can be written again"
                    );
                }
                for a in admitted {
                    let _ = a.reply.send(AppendReply {
                        result: Err(LogError::Storage(msg.clone())),
                        batch: a.batch,
                    });
                }
            }
        }
    }

    /// Writes and syncs the admitted batches: records first, then the
    /// quarantine (entries, then tombstones).
    fn write(
        &mut self,
        admitted: &[Admitted],
        first_offset: u64,
        first_qid: u64,
    ) -> Result<(u64, u64), LogError> {
        let seg_max = self.inner.opts.segment_bytes;
        let rec_bytes: u64 = admitted.iter().map(|a| a.batch.records.bytes()).sum();
        let q_entries: u64 = admitted.iter().map(|a| a.batch.quarantine.count()).sum();
        let q_bytes: u64 = admitted
            .iter()
            .map(|a| a.batch.quarantine.bytes() + a.batch.tombstones.bytes())
            .sum();
        if rec_bytes > 0 && self.rec.len > 0 && self.rec.len + rec_bytes > seg_max {
            self.roll_records(first_offset)?;
        }
        if q_entries > 0 && self.q.len > 0 && self.q.len + q_bytes > seg_max {
            self.roll_quarantine(first_qid)?;
        }
        let recs: Vec<&[u8]> = admitted
            .iter()
            .map(|a| a.batch.records.as_bytes())
            .collect();
        let full_disk = &mut self.full_disk;
        let rec_written = self.rec.write(&recs).map_err(|e| {
            *full_disk = is_disk_full(&e);
            LogError::io(
                "cannot write",
                &segment::path(&self.rec.dir, self.rec.base),
                e,
            )
        })?;
        let qs: Vec<&[u8]> = admitted
            .iter()
            .flat_map(|a| [a.batch.quarantine.as_bytes(), a.batch.tombstones.as_bytes()])
            .collect();
        let q_written = match self.q.write(&qs) {
            Ok(n) => n,
            Err(e) => {
                self.full_disk = is_disk_full(&e);
                // Keep disk and state in step: the records are durable but
                // not committed; cut them too (the caller retries all).
                let _ = self.rec.file.set_len(self.rec.len);
                return Err(LogError::io(
                    "cannot write",
                    &segment::path(&self.q.dir, self.q.base),
                    e,
                ));
            }
        };
        Ok((rec_written, q_written))
    }

    fn roll_records(&mut self, base: u64) -> Result<(), LogError> {
        let dir = self.rec.dir.clone();
        let full_disk = &mut self.full_disk;
        self.rec.roll(base).map_err(|e| {
            *full_disk = is_disk_full(&e);
            LogError::io("cannot start segment", &segment::path(&dir, base), e)
        })?;
        let mut st = self.inner.lock();
        // A previous failed roll may have listed it already.
        if st.rec.last().map(|s| s.base) != Some(base) {
            st.rec.push(Seg { base, len: 0 });
        }
        Ok(())
    }

    fn roll_quarantine(&mut self, base: u64) -> Result<(), LogError> {
        let dir = self.q.dir.clone();
        let full_disk = &mut self.full_disk;
        self.q.roll(base).map_err(|e| {
            *full_disk = is_disk_full(&e);
            LogError::io("cannot start segment", &segment::path(&dir, base), e)
        })?;
        let mut st = self.inner.lock();
        if st.q.last().map(|s| s.base) != Some(base) {
            st.q.push(QSeg {
                base,
                len: 0,
                entries: 0,
                released: Default::default(),
            });
        }
        Ok(())
    }

    /// Makes a durable group visible and answers its requesters.
    fn publish(&mut self, mut admitted: Vec<Admitted>, rec_written: u64, q_written: u64) {
        // The decoded records go to the tail before the head moves past
        // them, so a consumer woken by the head finds them there.
        {
            let mut byte = self.rec.len;
            let mut tail = self.inner.tail.lock().unwrap_or_else(|p| p.into_inner());
            for a in &mut admitted {
                let decoded = a.batch.take_decoded();
                if !decoded.records.is_empty() {
                    let start = Position {
                        offset: a.appended.records.start,
                        segment: self.rec.base,
                        byte,
                    };
                    tail.push(start, decoded);
                }
                byte += a.batch.records.bytes();
            }
        }
        self.rec.len += rec_written;
        self.q.len += q_written;
        let head = {
            let mut st = self.inner.lock();
            if let Some(s) = st.rec.last_mut() {
                s.len = self.rec.len;
            }
            if let Some(a) = admitted.last() {
                st.head = st.head.max(a.appended.records.end);
                st.next_qid = st.next_qid.max(a.appended.quarantine.end);
            }
            let entries: u64 = admitted.iter().map(|a| a.batch.quarantine.count()).sum();
            if let Some(s) = st.q.last_mut() {
                s.len = self.q.len;
                s.entries += entries;
            }
            for a in &admitted {
                for id in tombstone_ids(&a.batch) {
                    if let Some(s) =
                        st.q.iter_mut()
                            .find(|s| id >= s.base && id < s.base + s.entries)
                    {
                        s.released.insert(id);
                    }
                }
            }
            compact_quarantine(&self.inner.q_dir, &mut st.q);
            if admitted.iter().any(|a| a.ingest) {
                st.full = false;
            }
            if self.reserve.present && st.storage_error.take().is_some() {
                info!("durable log writable again; acknowledging resumed");
            }
            st.head
        };
        self.inner.head_tx.send_replace(head);
        for mut a in admitted {
            a.batch.clear();
            let _ = a.reply.send(AppendReply {
                result: Ok(a.appended),
                batch: a.batch,
            });
        }
    }
}

fn group_bytes(g: &[Request]) -> u64 {
    g.iter()
        .map(|Request::Append { batch, .. }| batch.bytes())
        .sum()
}

fn tombstone_ids(b: &AppendBatch) -> impl Iterator<Item = u64> + '_ {
    let bytes = b.tombstones.as_bytes();
    bytes
        .chunks_exact(super::frame::HEADER)
        .filter_map(|h| super::frame::parse(h).ok().map(|(f, _)| f.offset))
}
