//! The log's shared state and its public handle, [`Log`]: open and
//! recovery, cursors and segment deletion, stats, the quarantine.
//!
//! Blocking API (file I/O): call it from a blocking thread in async code,
//! except [`Log::append_async`], which only hands the batch to the writer
//! thread.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use super::cursor::{CursorFile, Position};
use super::frame::{FrameBuf, Kind, TooLarge};
use super::reader::LogReader;
use super::segment;
use super::writer::{self, Request};

/// Log failures.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Appending would pass the byte bound; nothing was written.
    #[error("durable log is full: {used_bytes} bytes held (unconsumed records + quarantine) + {incoming} incoming > limit {limit_bytes} bytes; waiting for consumers (is the TSDB reachable? is the quarantine large?)")]
    Full {
        /// Bytes held now.
        used_bytes: u64,
        /// Bytes of the refused append.
        incoming: u64,
        /// The limit that applied (the bound, less the reserve for
        /// ingest).
        limit_bytes: u64,
    },
    /// Another process holds the log.
    #[error("durable log {path} is in use by another process (is wastewatch running? use its HTTP API instead)")]
    InUse {
        /// The log directory.
        path: String,
    },
    /// A log of the previous format (redb) is in the directory.
    #[error("{path} holds a durable log of the previous format (redb, wastewatch before log v2); drain it with that version (stop publishing and let the TSDB writer catch up), then move the file away")]
    OldFormat {
        /// The old database file.
        path: String,
    },
    /// Bytes on disk that are not the frames they should be.
    #[error("durable log damaged in segment {segment} at byte {byte} (expected offset {offset}): {detail}")]
    Corrupt {
        /// Base of the segment.
        segment: u64,
        /// Byte position in it.
        byte: u64,
        /// The offset expected there.
        offset: u64,
        /// What was found.
        detail: String,
    },
    /// A name that is not a consumer of this log.
    #[error("unknown log consumer {0:?}")]
    UnknownConsumer(String),
    /// A quarantine id that is not (or no longer) in the quarantine.
    #[error("quarantine entry {0} does not exist or was already released")]
    NoSuchQuarantineEntry(u64),
    /// The writer thread is gone (the log is closing).
    #[error("durable log is closed")]
    Closed,
    /// File-system error.
    #[error("durable log storage error: {0}")]
    Storage(String),
}

impl LogError {
    pub(crate) fn io(what: &str, path: &Path, e: std::io::Error) -> LogError {
        LogError::Storage(format!("{what} {}: {e}", path.display()))
    }
}

/// Tuning of the log (validated by the config layer).
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Bound on bytes held: unconsumed records plus the quarantine.
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Headroom above which only internal appends (quarantine writes of
    /// the TSDB writer, which free space once done) may go, so a full log
    /// can always drain.
    pub reserve_bytes: u64,
    /// Lazily committed cursors are saved at most this often.
    pub cursor_sync: Duration,
    /// Bytes of the disk reserve (`disk-reserve` in the log directory), 0 =
    /// none: a file of zeros the writer deletes when a write finds the disk
    /// full, so the stages can still save their snapshots and move their
    /// cursors, which is what frees segments; ingest stays refused until
    /// the reserve can be written again (docs/LOG.md "A full disk").
    pub disk_reserve_bytes: u64,
    /// Records of the newest ingest appends kept decoded in memory for the
    /// consumers that keep up (module [`super::tail`]); 0 = none.
    pub decoded_tail_records: usize,
}

/// Default [`LogOptions::decoded_tail_records`]: 0.1–0.2 s at 20,000–40,000
/// messages/s, which the rules and KPI stages (a few ms behind the head)
/// always find; the TSDB writer, behind by its batch and the write, finds it
/// only when the TSDB is quick. About 5 MB of RSS; 16,384 cost 12 MB
/// (docs/BENCHMARKS.md "The decoded tail").
pub const DEFAULT_DECODED_TAIL_RECORDS: usize = 4_096;

/// Default [`LogOptions::disk_reserve_bytes`].
pub const DEFAULT_DISK_RESERVE_BYTES: u64 = 4 << 20;

impl LogOptions {
    /// Options for a bound of `max_bytes`, other values derived from it.
    pub fn with_max_bytes(max_bytes: u64) -> LogOptions {
        LogOptions {
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(64 << 10, 64 << 20),
            reserve_bytes: (max_bytes / 16).clamp(16 << 10, 64 << 20),
            cursor_sync: Duration::from_secs(1),
            disk_reserve_bytes: DEFAULT_DISK_RESERVE_BYTES,
            decoded_tail_records: DEFAULT_DECODED_TAIL_RECORDS,
        }
    }
}

/// Who is appending: decides whether the reserve may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// New data from outside (ingest, quarantine replay): refused once the
    /// log holds `max_bytes - reserve_bytes`.
    Ingest,
    /// The TSDB writer's quarantine of refused lines: may use the reserve.
    Internal,
}

/// How soon a cursor commit must be on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Saved (fdatasync) before the call returns.
    Now,
    /// Saved within `cursor_sync` (or on [`Log::flush_cursors`]); a crash
    /// can roll the cursor back by that much, so the consumer must be
    /// idempotent.
    Lazy,
}

/// Offsets given to one append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Offsets of the records.
    pub records: Range<u64>,
    /// Ids of the quarantine entries.
    pub quarantine: Range<u64>,
}

/// A group of frames handed to the writer, and handed back after the
/// commit so the caller can reuse the buffers.
#[derive(Debug)]
pub struct AppendBatch {
    /// Records.
    pub records: FrameBuf,
    /// Quarantine entries.
    pub quarantine: FrameBuf,
    /// Tombstones (quarantine ids released).
    pub(crate) tombstones: FrameBuf,
    /// Whether the reserve may be used.
    pub class: Class,
    /// The records of `records`, decoded, when every one was added with
    /// [`AppendBatch::push_record`] (else ignored): the writer hands them to
    /// the decoded tail.
    decoded: super::tail::Collected,
}

impl AppendBatch {
    /// An empty batch.
    pub fn new(class: Class) -> AppendBatch {
        AppendBatch {
            records: FrameBuf::new(Kind::Record),
            quarantine: FrameBuf::new(Kind::Quarantine),
            tombstones: FrameBuf::new(Kind::Tombstone),
            class,
            decoded: Default::default(),
        }
    }

    /// Appends `rec` as a record frame and keeps it decoded for the
    /// consumers (the log's decoded tail). Nothing is added when it is too
    /// large for a frame.
    pub fn push_record(&mut self, rec: crate::pb::LogRecord) -> Result<(), TooLarge> {
        use prost::Message as _;
        self.records.push_with(|b| {
            // Encoding into a Vec cannot run out of space.
            let _ = rec.encode(b);
        })?;
        self.decoded.records.push(rec);
        self.decoded.ends.push(self.records.bytes());
        Ok(())
    }

    /// The decoded records, when they are exactly the record frames.
    pub(crate) fn take_decoded(&mut self) -> super::tail::Collected {
        let d = std::mem::take(&mut self.decoded);
        if d.records.len() as u64 == self.records.count() {
            d
        } else {
            Default::default()
        }
    }

    /// Bytes it will take on disk.
    pub fn bytes(&self) -> u64 {
        self.records.bytes() + self.quarantine.bytes() + self.tombstones.bytes()
    }

    /// True when it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.quarantine.is_empty() && self.tombstones.is_empty()
    }

    /// Empties it, keeping the buffers.
    pub fn clear(&mut self) {
        self.records.clear();
        self.quarantine.clear();
        self.tombstones.clear();
        self.decoded.records.clear();
        self.decoded.ends.clear();
    }
}

/// The writer's answer: the result, and the batch back for reuse.
#[derive(Debug)]
pub struct AppendReply {
    /// Offsets, or why nothing was written.
    pub result: Result<Appended, LogError>,
    /// The buffers, emptied.
    pub batch: AppendBatch,
}

/// Point-in-time numbers for metrics and readiness.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Next offset to be written.
    pub head: u64,
    /// Records not yet consumed by every consumer.
    pub depth: u64,
    /// Bytes of those records (as of the saved cursors).
    pub live_bytes: u64,
    /// The bound.
    pub max_bytes: u64,
    /// Messages in quarantine.
    pub quarantined: u64,
    /// Bytes of the quarantine on disk.
    pub quarantine_bytes: u64,
    /// Record segments on disk.
    pub segments: u64,
    /// The last ingest append was refused for lack of space.
    pub full: bool,
    /// The last write failed (ENOSPC, EIO …) and has not succeeded since.
    pub storage_error: bool,
    /// Records readers took from the decoded tail, since open.
    pub read_tail: u64,
    /// Records readers read from the segment files, since open.
    pub read_file: u64,
}

/// One record segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seg {
    pub base: u64,
    /// Committed (durable) bytes.
    pub len: u64,
}

/// One quarantine segment.
#[derive(Clone, Debug)]
pub(crate) struct QSeg {
    pub base: u64,
    pub len: u64,
    /// Entry frames in it (ids `base..base+entries`).
    pub entries: u64,
    /// Ids of its entries released since.
    pub released: BTreeSet<u64>,
}

/// Positions of one consumer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CursorState {
    /// Committed, possibly not yet saved.
    pub mem: Position,
    /// Saved on disk: what deletion and the byte bound go by.
    pub durable: Position,
    pub last_save: Instant,
}

pub(crate) struct State {
    pub rec: Vec<Seg>,
    pub head: u64,
    pub q: Vec<QSeg>,
    pub next_qid: u64,
    pub cursors: HashMap<String, CursorState>,
    pub full: bool,
    pub storage_error: Option<String>,
}

impl State {
    /// Bytes of records not yet passed by every saved cursor.
    pub fn live_bytes(&self) -> u64 {
        let Some(min) = self
            .cursors
            .values()
            .map(|c| c.durable)
            .min_by_key(|p| p.offset)
        else {
            return 0;
        };
        let mut live = 0;
        for s in &self.rec {
            if s.base > min.segment {
                live += s.len;
            } else if s.base == min.segment {
                live += s.len.saturating_sub(min.byte);
            }
        }
        live
    }

    pub fn quarantine_bytes(&self) -> u64 {
        self.q.iter().map(|s| s.len).sum()
    }

    pub fn quarantined(&self) -> u64 {
        self.q
            .iter()
            .map(|s| s.entries - s.released.len() as u64)
            .sum()
    }

    /// Bytes that count against the bound.
    pub fn used_bytes(&self) -> u64 {
        self.live_bytes() + self.quarantine_bytes()
    }

    fn min_durable_offset(&self) -> u64 {
        self.cursors
            .values()
            .map(|c| c.durable.offset)
            .min()
            .unwrap_or(self.head)
    }

    /// Removes (from the list) the record segments every saved cursor has
    /// passed, never the newest; returns their bases.
    fn take_passed_segments(&mut self) -> Vec<u64> {
        let min = self.min_durable_offset();
        let mut out = Vec::new();
        while self.rec.len() > 1 && self.rec[1].base <= min {
            out.push(self.rec.remove(0).base);
        }
        out
    }
}

pub(crate) struct Inner {
    pub dir: PathBuf,
    pub rec_dir: PathBuf,
    pub q_dir: PathBuf,
    pub opts: LogOptions,
    pub state: Mutex<State>,
    pub head_tx: watch::Sender<u64>,
    pub tail: super::tail::SharedTail,
    /// Records readers took from the tail / read from the files.
    pub read_tail: AtomicU64,
    pub read_file: AtomicU64,
    cursor_files: HashMap<String, Mutex<CursorFile>>,
}

impl Inner {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked between two
        // plain field updates; the files on disk are the truth.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The durable log.
pub struct Log {
    inner: Arc<Inner>,
    tx: Mutex<Option<SyncSender<Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    _lock: File,
}

const OLD_REDB: &str = "wastewatch-log.redb";

fn mkdir(p: &Path) -> Result<(), LogError> {
    std::fs::create_dir_all(p).map_err(|e| LogError::io("cannot create log dir", p, e))
}

impl Log {
    /// Opens (or creates) the log in `dir` with the byte bound
    /// `max_bytes` and other options derived from it.
    pub fn open(dir: &Path, max_bytes: u64, consumers: &[&str]) -> Result<Log, LogError> {
        Log::open_with(dir, LogOptions::with_max_bytes(max_bytes), consumers)
    }

    /// Opens (or creates) the log in `dir`. `consumers` are the cursors
    /// that hold back deletion; a new one starts at the oldest record kept.
    /// Recovery: the newest segment of each kind is verified frame by frame
    /// and cut at the first frame that is torn, fails its CRC, or has an
    /// unexpected offset.
    pub fn open_with(dir: &Path, opts: LogOptions, consumers: &[&str]) -> Result<Log, LogError> {
        mkdir(dir)?;
        let old = dir.join(OLD_REDB);
        if old.exists() {
            return Err(LogError::OldFormat {
                path: old.display().to_string(),
            });
        }
        let lock_path = dir.join("LOCK");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| LogError::io("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::InUse {
                    path: dir.display().to_string(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(LogError::io("cannot lock", &lock_path, e))
            }
        }
        let rec_dir = dir.join("records");
        let q_dir = dir.join("quarantine");
        let cur_dir = dir.join("cursors");
        for d in [&rec_dir, &q_dir, &cur_dir] {
            mkdir(d)?;
        }
        let (mut rec, mut head, beyond) = recover_records(&rec_dir)?;
        let (q, next_qid) = recover_quarantine(&q_dir)?;

        let mut saved = Vec::with_capacity(consumers.len());
        for name in consumers {
            let path = cur_dir.join(format!("{name}.cur"));
            let (file, pos) = CursorFile::open(&path)
                .map_err(|e| LogError::io("cannot open cursor", &path, e))?;
            saved.push((*name, file, pos));
        }
        // Offsets a consumer has passed are never handed out again, even
        // if the records behind them were lost to damage: the log goes on
        // from the highest saved cursor, in a new segment.
        // So are those of intact records found after a damaged frame.
        let floor = saved
            .iter()
            .filter_map(|(_, _, p)| p.map(|p| p.offset))
            .chain(beyond)
            .max()
            .unwrap_or(0);
        if floor > head {
            tracing::error!(
                from = head,
                to = floor,
                "log records lost to damage after they were made durable; the log continues after the highest offset handed out that is known"
            );
            if let Some(last) = rec.last() {
                if last.len == 0 {
                    let base = last.base;
                    rec.pop();
                    remove_segments(&rec_dir, &[base]);
                }
            }
            let path = segment::path(&rec_dir, floor);
            File::create(&path).map_err(|e| LogError::io("cannot create", &path, e))?;
            segment::sync_dir(&rec_dir).map_err(|e| LogError::io("cannot sync", &rec_dir, e))?;
            rec.push(Seg {
                base: floor,
                len: 0,
            });
            head = floor;
        }

        let mut cursors = HashMap::new();
        let mut cursor_files = HashMap::new();
        let now = Instant::now();
        for (name, file, saved) in saved {
            let oldest = rec.first().map(|s| s.base).unwrap_or(head);
            let pos = match saved {
                None => locate(&rec_dir, &rec, oldest)?,
                Some(p) if p.offset < oldest => {
                    warn!(consumer = %name, cursor = p.offset, oldest, "log cursor points before the oldest record kept; starting at the oldest");
                    locate(&rec_dir, &rec, oldest)?
                }
                Some(p) if position_is_valid(&rec_dir, &rec, head, p) => p,
                Some(p) => locate(&rec_dir, &rec, p.offset)?,
            };
            cursors.insert(
                name.to_owned(),
                CursorState {
                    mem: pos,
                    durable: pos,
                    last_save: now,
                },
            );
            cursor_files.insert(name.to_owned(), Mutex::new(file));
        }
        let mut state = State {
            rec,
            head,
            q,
            next_qid,
            cursors,
            full: false,
            storage_error: None,
        };
        let passed = state.take_passed_segments();
        remove_segments(&rec_dir, &passed);
        let (head_tx, _) = watch::channel(head);
        let inner = Arc::new(Inner {
            dir: dir.to_owned(),
            rec_dir,
            q_dir,
            tail: Mutex::new(super::tail::Tail::new(opts.decoded_tail_records)),
            opts,
            state: Mutex::new(state),
            head_tx,
            read_tail: Default::default(),
            read_file: Default::default(),
            cursor_files,
        });
        let (tx, thread) = writer::spawn(inner.clone())?;
        info!(dir = %dir.display(), head, "durable log open");
        Ok(Log {
            inner,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            _lock: lock,
        })
    }

    /// Hands `batch` to the writer; the reply comes once it is durable (or
    /// refused). Does no I/O itself, so it may be called from async code.
    pub fn append_async(&self, batch: AppendBatch) -> oneshot::Receiver<AppendReply> {
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match tx {
            Some(tx) => {
                if let Err(std::sync::mpsc::SendError(Request::Append { batch, reply, .. })) =
                    tx.send(Request::Append { batch, reply })
                {
                    let _ = reply.send(AppendReply {
                        result: Err(LogError::Closed),
                        batch,
                    });
                }
            }
            None => {
                let _ = reply.send(AppendReply {
                    result: Err(LogError::Closed),
                    batch,
                });
            }
        }
        rx
    }

    /// Appends `batch` and waits until it is durable. Blocking.
    pub fn append_batch(&self, batch: AppendBatch) -> AppendReply {
        match self.append_async(batch).blocking_recv() {
            Ok(r) => r,
            Err(_) => AppendReply {
                result: Err(LogError::Closed),
                batch: AppendBatch::new(Class::Ingest),
            },
        }
    }

    /// Appends records and quarantine entries (as ingest does) and waits
    /// until they are durable. Returns the offsets of the records.
    /// Blocking; a convenience over [`Log::append_batch`].
    pub fn append(
        &self,
        records: &[Vec<u8>],
        quarantine: &[Vec<u8>],
    ) -> Result<Range<u64>, LogError> {
        self.append_class(records, quarantine, Class::Ingest)
            .map(|a| a.records)
    }

    /// Like [`Log::append`] with an explicit class.
    pub fn append_class(
        &self,
        records: &[Vec<u8>],
        quarantine: &[Vec<u8>],
        class: Class,
    ) -> Result<Appended, LogError> {
        let mut b = AppendBatch::new(class);
        for r in records {
            b.records
                .push(r)
                .map_err(|e| LogError::Storage(e.to_string()))?;
        }
        for q in quarantine {
            b.quarantine
                .push(q)
                .map_err(|e| LogError::Storage(e.to_string()))?;
        }
        self.append_batch(b).result
    }

    /// Watch the head offset (changes after every durable append).
    pub fn subscribe_head(&self) -> watch::Receiver<u64> {
        self.inner.head_tx.subscribe()
    }

    /// A reader positioned at the committed cursor of `consumer`.
    pub fn reader(&self, consumer: &str) -> Result<LogReader, LogError> {
        let pos = {
            let st = self.inner.lock();
            st.cursors
                .get(consumer)
                .map(|c| c.mem)
                .ok_or_else(|| LogError::UnknownConsumer(consumer.to_owned()))?
        };
        Ok(LogReader::new(self.inner.clone(), pos))
    }

    /// A reader positioned at `offset` (the oldest record kept if it is
    /// older, the head if it is past the head).
    pub fn reader_at(&self, offset: u64) -> Result<LogReader, LogError> {
        let pos = {
            let st = self.inner.lock();
            let oldest = st.rec.first().map(|s| s.base).unwrap_or(st.head);
            let offset = offset.clamp(oldest, st.head);
            // A consumer's own position, when it matches, saves a scan.
            match st.cursors.values().find(|c| c.mem.offset == offset) {
                Some(c) => Ok(c.mem),
                None => locate(&self.inner.rec_dir, &st.rec, offset),
            }
        }?;
        Ok(LogReader::new(self.inner.clone(), pos))
    }

    /// A reader at the start of the `n` newest record segments.
    pub fn reader_recent(&self, n: usize) -> Result<LogReader, LogError> {
        let pos = {
            let st = self.inner.lock();
            let i = st.rec.len().saturating_sub(n.max(1));
            let base = st.rec.get(i).map(|s| s.base).unwrap_or(st.head);
            Position {
                offset: base,
                segment: base,
                byte: 0,
            }
        };
        Ok(LogReader::new(self.inner.clone(), pos))
    }

    /// Next offset `consumer` will read (as last committed).
    pub fn cursor(&self, consumer: &str) -> u64 {
        self.inner
            .lock()
            .cursors
            .get(consumer)
            .map(|c| c.mem.offset)
            .unwrap_or(0)
    }

    /// Moves `consumer`'s cursor to `pos` (from [`LogReader::position`] or
    /// a batch's `next`), saving it now or lazily, and deletes the
    /// segments every saved cursor has passed. A cursor never moves back.
    pub fn commit_cursor(
        &self,
        consumer: &str,
        pos: Position,
        durability: Durability,
    ) -> Result<(), LogError> {
        let inner = &self.inner;
        let save = {
            let mut st = inner.lock();
            let sync = inner.opts.cursor_sync;
            let c = st
                .cursors
                .get_mut(consumer)
                .ok_or_else(|| LogError::UnknownConsumer(consumer.to_owned()))?;
            if pos.offset > c.mem.offset {
                c.mem = pos;
            }
            durability == Durability::Now
                || (c.mem.offset > c.durable.offset && c.last_save.elapsed() >= sync)
        };
        if save {
            self.save_cursor(consumer)?;
        }
        Ok(())
    }

    /// True when `consumer` has committed a position not yet saved.
    pub fn has_unsaved_cursor(&self, consumer: &str) -> bool {
        self.inner
            .lock()
            .cursors
            .get(consumer)
            .is_some_and(|c| c.mem.offset > c.durable.offset)
    }

    /// Saves every cursor whose committed position is not yet on disk.
    pub fn flush_cursors(&self) -> Result<(), LogError> {
        let names: Vec<String> = {
            let st = self.inner.lock();
            st.cursors
                .iter()
                .filter(|(_, c)| c.mem.offset > c.durable.offset)
                .map(|(n, _)| n.clone())
                .collect()
        };
        for n in names {
            self.save_cursor(&n)?;
        }
        Ok(())
    }

    fn save_cursor(&self, consumer: &str) -> Result<(), LogError> {
        let inner = &self.inner;
        let Some(file) = inner.cursor_files.get(consumer) else {
            return Err(LogError::UnknownConsumer(consumer.to_owned()));
        };
        // One saver per cursor at a time; the position is read under the
        // file lock so saves of one cursor are ordered.
        let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
        let pos = match inner.lock().cursors.get(consumer) {
            Some(c) => c.mem,
            None => return Err(LogError::UnknownConsumer(consumer.to_owned())),
        };
        f.save(pos)
            .map_err(|e| LogError::io("cannot save cursor", f.path(), e))?;
        drop(f);
        let passed = {
            let mut st = inner.lock();
            if let Some(c) = st.cursors.get_mut(consumer) {
                if pos.offset > c.durable.offset {
                    c.durable = pos;
                }
                c.last_save = Instant::now();
            }
            st.take_passed_segments()
        };
        remove_segments(&inner.rec_dir, &passed);
        Ok(())
    }

    /// Current numbers.
    pub fn stats(&self) -> LogStats {
        let st = self.inner.lock();
        let min = st
            .cursors
            .values()
            .map(|c| c.mem.offset)
            .min()
            .unwrap_or(st.head);
        LogStats {
            head: st.head,
            depth: st.head.saturating_sub(min),
            live_bytes: st.live_bytes(),
            max_bytes: self.inner.opts.max_bytes,
            quarantined: st.quarantined(),
            quarantine_bytes: st.quarantine_bytes(),
            segments: st.rec.len() as u64,
            full: st.full,
            storage_error: st.storage_error.is_some(),
            read_tail: self.inner.read_tail.load(Relaxed),
            read_file: self.inner.read_file.load(Relaxed),
        }
    }

    /// Records each consumer has still to commit (head − its committed
    /// cursor), by consumer name, sorted by name.
    pub fn consumer_lags(&self) -> Vec<(String, u64)> {
        let st = self.inner.lock();
        let mut v: Vec<(String, u64)> = st
            .cursors
            .iter()
            .map(|(n, c)| (n.clone(), st.head.saturating_sub(c.mem.offset)))
            .collect();
        v.sort();
        v
    }

    /// The storage error of the current episode, if any.
    pub fn storage_error(&self) -> Option<String> {
        self.inner.lock().storage_error.clone()
    }

    /// Records whether the last ingest append was refused for space (for
    /// readiness and metrics).
    pub fn set_full(&self, full: bool) {
        self.inner.lock().full = full;
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Lists up to `limit` quarantined messages from id `from`, oldest
    /// first.
    pub fn quarantine_list(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        let segs: Vec<QSeg> = self.inner.lock().q.clone();
        let mut out = Vec::new();
        for s in segs.iter().filter(|s| s.base + s.entries > from) {
            if out.len() >= limit {
                break;
            }
            let path = segment::path(&self.inner.q_dir, s.base);
            let file = match File::open(&path) {
                Ok(f) => f,
                // Compacted away since the list was taken.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(LogError::io("cannot open", &path, e)),
            };
            segment::scan(&file, 0, |f, pos| {
                if pos >= s.len || out.len() >= limit {
                    return false;
                }
                if f.kind == Kind::Quarantine && f.offset >= from && !s.released.contains(&f.offset)
                {
                    out.push((f.offset, f.payload.to_vec()));
                }
                true
            })
            .map_err(|e| LogError::io("cannot read", &path, e))?;
        }
        Ok(out)
    }

    /// True when quarantine entry `id` exists and is not released.
    fn quarantine_live(&self, id: u64) -> bool {
        let st = self.inner.lock();
        st.q.iter()
            .any(|s| id >= s.base && id < s.base + s.entries && !s.released.contains(&id))
    }

    /// Moves quarantined messages that now decode into the log: `accepted`
    /// are (quarantine id, record bytes) pairs. The records are made
    /// durable first, then the tombstones that release the ids, so a crash
    /// between the two can only replay an entry twice (the points are
    /// idempotent), never lose it.
    pub fn release_from_quarantine(
        &self,
        accepted: &[(u64, Vec<u8>)],
    ) -> Result<Range<u64>, LogError> {
        let mut b = AppendBatch::new(Class::Ingest);
        for (id, rec) in accepted {
            if !self.quarantine_live(*id) {
                return Err(LogError::NoSuchQuarantineEntry(*id));
            }
            b.records
                .push(rec)
                .map_err(|e| LogError::Storage(e.to_string()))?;
            b.tombstones.push_tombstone(*id);
        }
        self.append_batch(b).result.map(|a| a.records)
    }

    /// Releases quarantine entries without moving anything into the log
    /// (the operator's purge). Returns how many were released.
    pub fn purge_quarantine(&self, ids: &[u64]) -> Result<usize, LogError> {
        let mut b = AppendBatch::new(Class::Internal);
        let mut n = 0;
        for id in ids {
            if self.quarantine_live(*id) {
                b.tombstones.push_tombstone(*id);
                n += 1;
            }
        }
        if n > 0 {
            self.append_batch(b).result?;
        }
        Ok(n)
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Err(e) = self.flush_cursors() {
            warn!(error = %e, "log cursors not saved at close; consumers will redo some work");
        }
        // Closing the channel ends the writer thread once it has answered
        // what it holds.
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn remove_segments(dir: &Path, bases: &[u64]) {
    for b in bases {
        let p = segment::path(dir, *b);
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(path = %p.display(), error = %e, "cannot delete a consumed log segment; retried after the next cursor save");
            }
        }
    }
}

/// Intact record frames after the damage in a cut tail: their offsets
/// were handed out, so the log goes on after the highest of them.
fn salvage_hint(file: &File, from: u64, to: u64, next: u64) -> std::io::Result<Option<u64>> {
    use std::os::unix::fs::FileExt as _;
    let mut bytes = vec![0u8; (to - from) as usize];
    file.read_exact_at(&mut bytes, from)?;
    let mut highest = None;
    for i in 1..bytes.len() {
        if let Ok((f, _)) = super::frame::parse(&bytes[i..]) {
            if f.kind == Kind::Record && f.offset >= next {
                highest = Some(highest.unwrap_or(0).max(f.offset + 1));
            }
        }
    }
    Ok(highest)
}

/// Opens the record segments; verifies and, if needed, cuts the tail of the
/// newest. Returns the segments, the head, and the offset after any intact
/// record found beyond the cut.
fn recover_records(dir: &Path) -> Result<(Vec<Seg>, u64, Option<u64>), LogError> {
    let bases = segment::list(dir).map_err(|e| LogError::io("cannot list", dir, e))?;
    let mut rec = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let path = segment::path(dir, base);
        if i + 1 < bases.len() {
            let len = std::fs::metadata(&path)
                .map_err(|e| LogError::io("cannot stat", &path, e))?
                .len();
            rec.push(Seg { base, len });
            continue;
        }
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("cannot open", &path, e))?;
        let mut next = base;
        let end = segment::scan(&file, 0, |f, _| {
            let ok = f.kind == Kind::Record && f.offset == next;
            next += u64::from(ok);
            ok
        })
        .map_err(|e| LogError::io("cannot read", &path, e))?;
        if end.end < end.file_len {
            warn!(
                segment = %path.display(),
                kept_bytes = end.end,
                cut_bytes = end.file_len - end.end,
                next_offset = next,
                reason = ?end.stop,
                "log tail cut at the first damaged or torn frame (an interrupted write is expected after a crash; records after it were never acknowledged)"
            );
            let beyond = salvage_hint(&file, end.end, end.file_len, next)
                .map_err(|e| LogError::io("cannot read", &path, e))?;
            cut(&file, &path, end.end)?;
            rec.push(Seg { base, len: end.end });
            return Ok((rec, next, beyond));
        }
        rec.push(Seg { base, len: end.end });
        return Ok((rec, next, None));
    }
    // A new log.
    let path = segment::path(dir, 0);
    File::create(&path).map_err(|e| LogError::io("cannot create", &path, e))?;
    segment::sync_dir(dir).map_err(|e| LogError::io("cannot sync", dir, e))?;
    Ok((vec![Seg { base: 0, len: 0 }], 0, None))
}

fn cut(file: &File, path: &Path, len: u64) -> Result<(), LogError> {
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| LogError::io("cannot cut the damaged tail of", path, e))
}

/// Opens the quarantine segments: counts entries, applies tombstones, cuts
/// a damaged tail of the newest and deletes fully released old segments.
fn recover_quarantine(dir: &Path) -> Result<(Vec<QSeg>, u64), LogError> {
    let bases = segment::list(dir).map_err(|e| LogError::io("cannot list", dir, e))?;
    let mut q: Vec<QSeg> = Vec::with_capacity(bases.len());
    let mut tombstones = Vec::new();
    let mut next_id = 0u64;
    for (i, &base) in bases.iter().enumerate() {
        let path = segment::path(dir, base);
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io("cannot open", &path, e))?;
        let mut next = base.max(next_id);
        let mut entries = 0u64;
        let end = segment::scan(&file, 0, |f, _| match f.kind {
            Kind::Quarantine if f.offset == next => {
                next += 1;
                entries += 1;
                true
            }
            Kind::Tombstone if f.offset < next => {
                tombstones.push(f.offset);
                true
            }
            _ => false,
        })
        .map_err(|e| LogError::io("cannot read", &path, e))?;
        if end.end < end.file_len {
            if i + 1 == bases.len() {
                warn!(segment = %path.display(), cut_bytes = end.file_len - end.end, reason = ?end.stop, "quarantine tail cut at the first damaged or torn frame");
                cut(&file, &path, end.end)?;
            } else {
                tracing::error!(segment = %path.display(), unreadable_bytes = end.file_len - end.end, reason = ?end.stop, "quarantine segment damaged; entries after the damage are not listed");
            }
        }
        q.push(QSeg {
            base,
            len: end.end,
            entries,
            released: BTreeSet::new(),
        });
        next_id = next;
    }
    for id in tombstones {
        if let Some(s) = q
            .iter_mut()
            .find(|s| id >= s.base && id < s.base + s.entries)
        {
            s.released.insert(id);
        }
    }
    compact_quarantine(dir, &mut q);
    if q.is_empty() {
        let path = segment::path(dir, next_id);
        File::create(&path).map_err(|e| LogError::io("cannot create", &path, e))?;
        segment::sync_dir(dir).map_err(|e| LogError::io("cannot sync", dir, e))?;
        q.push(QSeg {
            base: next_id,
            len: 0,
            entries: 0,
            released: BTreeSet::new(),
        });
    }
    Ok((q, next_id))
}

/// Deletes the oldest quarantine segments whose entries are all released
/// (oldest first only: a tombstone always sits after its entry, so
/// deleting in order never revives an entry).
pub(crate) fn compact_quarantine(dir: &Path, q: &mut Vec<QSeg>) {
    while q.len() > 1 && q[0].released.len() as u64 == q[0].entries {
        let s = q.remove(0);
        remove_segments(dir, &[s.base]);
    }
}

/// The byte position of `offset`, found by scanning its segment.
pub(crate) fn locate(dir: &Path, rec: &[Seg], offset: u64) -> Result<Position, LogError> {
    let i = rec.partition_point(|s| s.base <= offset);
    let Some(i) = i.checked_sub(1) else {
        let base = rec.first().map(|s| s.base).unwrap_or(0);
        return Ok(Position {
            offset: base,
            segment: base,
            byte: 0,
        });
    };
    let s = rec[i];
    if offset == s.base {
        return Ok(Position {
            offset,
            segment: s.base,
            byte: 0,
        });
    }
    let path = segment::path(dir, s.base);
    let file = File::open(&path).map_err(|e| LogError::io("cannot open", &path, e))?;
    let mut found = None;
    let end = segment::scan(&file, 0, |f, pos| {
        if pos >= s.len {
            return false;
        }
        if f.offset == offset {
            found = Some(pos);
            return false;
        }
        true
    })
    .map_err(|e| LogError::io("cannot read", &path, e))?;
    match found {
        Some(byte) => Ok(Position {
            offset,
            segment: s.base,
            byte,
        }),
        // The offset is the end of this segment (the head, or the next
        // segment's base).
        None if end.end == s.len => Ok(Position {
            offset,
            segment: s.base,
            byte: s.len,
        }),
        None => Err(LogError::Corrupt {
            segment: s.base,
            byte: end.end,
            offset,
            detail: format!("cannot find the frame of offset {offset}: {:?}", end.stop),
        }),
    }
}

/// True when the frame at `p` is the one of `p.offset` (or `p` is the end of
/// the log).
fn position_is_valid(dir: &Path, rec: &[Seg], head: u64, p: Position) -> bool {
    let Some(s) = rec.iter().find(|s| s.base == p.segment) else {
        return false;
    };
    if p.byte > s.len {
        return false;
    }
    if p.offset == head {
        return p.byte == s.len;
    }
    let Ok(file) = File::open(segment::path(dir, s.base)) else {
        return false;
    };
    let mut ok = false;
    let _ = segment::scan(&file, p.byte, |f, _| {
        ok = f.offset == p.offset && f.kind == Kind::Record;
        false
    });
    ok
}
