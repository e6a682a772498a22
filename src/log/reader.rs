//! A consumer's reader: batches of records straight out of the segment
//! files, without a copy or an allocation per record.
//!
//! Each read is one `pread` of up to the reader's buffer size from its
//! position to the committed end of the segment (never past it: a reader
//! sees only durable records, so an offset it has seen is never reused
//! after a crash). Frames are verified (CRC-32C, expected offset) and
//! indexed in place; the batch lends slices of the buffer. Damage is
//! reported as [`LogError::Corrupt`]; [`LogReader::skip_damaged`] moves past
//! it and says which offsets were lost.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::cursor::Position;
use super::frame::{self, Bad, Kind};
use super::segment;
use super::store::{Inner, LogError};

/// Default read buffer.
const DEFAULT_BUF: usize = 1 << 20;

/// A consumer's reader (see the module docs).
pub struct LogReader {
    inner: Arc<Inner>,
    pos: Position,
    file: Option<(u64, File)>,
    buf: Vec<u8>,
    index: Vec<(u64, u32, u32)>,
}

/// Records read by one [`LogReader::read`], lent from the reader's buffer.
pub struct Batch<'a> {
    buf: &'a [u8],
    index: &'a [(u64, u32, u32)],
    /// Position after the last record: commit this as the cursor once the
    /// records are handled.
    pub next: Position,
}

impl<'a> Batch<'a> {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// (offset, payload) of each record, in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &'a [u8])> + '_ {
        let buf = self.buf;
        self.index
            .iter()
            .map(move |&(o, s, e)| (o, &buf[s as usize..e as usize]))
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> Option<u64> {
        self.index.last().map(|r| r.0)
    }
}

/// Where the reader stands relative to the committed log.
struct View {
    seg_len: u64,
    next_seg: Option<u64>,
    head: u64,
    oldest: u64,
}

impl LogReader {
    pub(crate) fn new(inner: Arc<Inner>, pos: Position) -> LogReader {
        LogReader {
            inner,
            pos,
            file: None,
            buf: Vec::new(),
            index: Vec::new(),
        }
    }

    /// Position of the next record this reader returns.
    pub fn position(&self) -> Position {
        self.pos
    }

    /// Next offset this reader returns.
    pub fn offset(&self) -> u64 {
        self.pos.offset
    }

    fn view(&self) -> Option<View> {
        let st = self.inner.lock();
        let i = st.rec.iter().position(|s| s.base == self.pos.segment)?;
        Some(View {
            seg_len: st.rec[i].len,
            next_seg: st.rec.get(i + 1).map(|s| s.base),
            head: st.head,
            oldest: st.rec.first().map(|s| s.base).unwrap_or(st.head),
        })
    }

    fn file(&mut self) -> Result<&File, LogError> {
        let seg = self.pos.segment;
        if self.file.as_ref().map(|f| f.0) != Some(seg) {
            let path = segment::path(&self.inner.rec_dir, seg);
            let f = File::open(&path).map_err(|e| LogError::io("cannot open", &path, e))?;
            self.file = Some((seg, f));
        }
        match &self.file {
            Some((_, f)) => Ok(f),
            None => Err(LogError::Closed),
        }
    }

    /// When the records at the reader's position are still in the log's
    /// decoded tail (the newest ingest appends, see `log::tail`), moves
    /// past at most `max` of them and returns them decoded; None when they
    /// are not (use [`LogReader::read`]). Either way the reader ends where
    /// reading the file would have left it.
    pub fn take_decoded(&mut self, max: usize) -> Option<super::DecodedRun> {
        let run = super::tail::take(&self.inner.tail, self.pos, max)?;
        if let Some(end) = run.end() {
            self.pos = end;
        }
        self.inner.read_tail.fetch_add(run.len() as u64, Relaxed);
        Some(run)
    }

    /// Reads up to `max` durable records from the reader's position and
    /// moves past them. An empty batch means the reader is at the head.
    pub fn read(&mut self, max: usize) -> Result<Batch<'_>, LogError> {
        self.index.clear();
        if self.buf.is_empty() {
            self.buf = vec![0u8; DEFAULT_BUF];
        }
        let (start, filled) = loop {
            let Some(v) = self.view() else {
                // Our segment is gone: only possible for a reader left
                // behind every saved cursor. Go to the oldest record kept.
                let (oldest, head) = {
                    let st = self.inner.lock();
                    (st.rec.first().map(|s| s.base).unwrap_or(st.head), st.head)
                };
                self.pos = Position {
                    offset: oldest.min(head),
                    segment: oldest,
                    byte: 0,
                };
                self.file = None;
                continue;
            };
            if self.pos.offset < v.oldest {
                self.pos = Position {
                    offset: v.oldest,
                    segment: v.oldest,
                    byte: 0,
                };
                continue;
            }
            if self.pos.offset >= v.head {
                return Ok(self.empty());
            }
            if self.pos.byte >= v.seg_len {
                match v.next_seg {
                    Some(next) => {
                        self.pos = Position {
                            offset: next,
                            segment: next,
                            byte: 0,
                        };
                        continue;
                    }
                    None => return Ok(self.empty()),
                }
            }
            let want = ((v.seg_len - self.pos.byte) as usize).min(self.buf.len());
            let at = self.pos.byte;
            let mut buf = std::mem::take(&mut self.buf);
            let path = segment::path(&self.inner.rec_dir, self.pos.segment);
            let res = self.file().and_then(|f| {
                f.read_exact_at(&mut buf[..want], at)
                    .map_err(|e| LogError::io("cannot read", &path, e))
            });
            self.buf = buf;
            res?;
            break (at, want);
        };
        let mut at = 0usize;
        let mut expect = self.pos.offset;
        let mut damage = None;
        while self.index.len() < max {
            match frame::parse(&self.buf[at..filled]) {
                Ok((f, size)) if f.kind == Kind::Record && f.offset == expect => {
                    let s = at + frame::HEADER;
                    self.index
                        .push((f.offset, s as u32, (s + f.payload.len()) as u32));
                    expect += 1;
                    at += size;
                }
                Ok((f, _)) => {
                    damage = Some(format!(
                        "frame of kind {:?} with offset {} where a record was expected",
                        f.kind, f.offset
                    ));
                    break;
                }
                Err(Bad::Incomplete { need }) => {
                    if at == 0 {
                        if start + need as u64 > self.view().map(|v| v.seg_len).unwrap_or(0) {
                            damage = Some(format!(
                                "frame of {need} bytes runs past the committed end of the segment"
                            ));
                        } else {
                            // A frame larger than the buffer: grow, re-read.
                            self.buf.resize(need.next_power_of_two(), 0);
                            return self.read(max);
                        }
                    }
                    break;
                }
                Err(bad) => {
                    damage = Some(format!("{bad:?}"));
                    break;
                }
            }
        }
        if self.index.is_empty() {
            if let Some(detail) = damage {
                return Err(LogError::Corrupt {
                    segment: self.pos.segment,
                    byte: start,
                    offset: self.pos.offset,
                    detail,
                });
            }
        }
        self.pos = Position {
            offset: expect,
            segment: self.pos.segment,
            byte: start + at as u64,
        };
        self.inner
            .read_file
            .fetch_add(self.index.len() as u64, Relaxed);
        Ok(Batch {
            buf: &self.buf,
            index: &self.index,
            next: self.pos,
        })
    }

    fn empty(&mut self) -> Batch<'_> {
        self.index.clear();
        Batch {
            buf: &self.buf,
            index: &self.index,
            next: self.pos,
        }
    }

    /// After [`LogError::Corrupt`]: moves to the next intact record (the
    /// next frame in this segment with a higher offset and a good CRC, or
    /// the start of the next segment, or the head). Returns the offsets
    /// lost, which the caller must report.
    pub fn skip_damaged(&mut self) -> Result<Range<u64>, LogError> {
        let from = self.pos.offset;
        let Some(v) = self.view() else {
            return Ok(from..from);
        };
        let path = segment::path(&self.inner.rec_dir, self.pos.segment);
        let file = File::open(&path).map_err(|e| LogError::io("cannot open", &path, e))?;
        let len = v.seg_len.saturating_sub(self.pos.byte) as usize;
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, self.pos.byte)
            .map_err(|e| LogError::io("cannot read", &path, e))?;
        for i in 1..bytes.len() {
            if let Ok((f, _)) = frame::parse(&bytes[i..]) {
                if f.kind == Kind::Record && f.offset > from && f.offset < v.head {
                    self.pos = Position {
                        offset: f.offset,
                        segment: self.pos.segment,
                        byte: self.pos.byte + i as u64,
                    };
                    return Ok(from..f.offset);
                }
            }
        }
        self.pos = match v.next_seg {
            Some(next) => Position {
                offset: next,
                segment: next,
                byte: 0,
            },
            None => Position {
                offset: v.head,
                segment: self.pos.segment,
                byte: v.seg_len,
            },
        };
        Ok(from..self.pos.offset)
    }
}
