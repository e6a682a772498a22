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

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{error, info};

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
    let w = Writer { inner, rec, q };
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
        let mut admitted: Vec<Admitted> = Vec::with_capacity(group.len());
        let (first_offset, first_qid) = {
            let mut st = self.inner.lock();
            let mut used = st.used_bytes();
            let (mut head, mut qid) = (st.head, st.next_qid);
            let start = (head, qid);
            for Request::Append { mut batch, reply } in group {
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
        let rec_written = self.rec.write(&recs).map_err(|e| {
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
        self.rec
            .roll(base)
            .map_err(|e| LogError::io("cannot start segment", &segment::path(&dir, base), e))?;
        let mut st = self.inner.lock();
        // A previous failed roll may have listed it already.
        if st.rec.last().map(|s| s.base) != Some(base) {
            st.rec.push(Seg { base, len: 0 });
        }
        Ok(())
    }

    fn roll_quarantine(&mut self, base: u64) -> Result<(), LogError> {
        let dir = self.q.dir.clone();
        self.q
            .roll(base)
            .map_err(|e| LogError::io("cannot start segment", &segment::path(&dir, base), e))?;
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
    fn publish(&mut self, admitted: Vec<Admitted>, rec_written: u64, q_written: u64) {
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
            if st.storage_error.take().is_some() {
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
