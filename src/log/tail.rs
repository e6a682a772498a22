//! The decoded tail: the newest group commits of ingest, kept in memory
//! as the records ingest decoded, so the consumers (rules, KPI, TSDB
//! writer) that keep up do not each decode every record again from the
//! segment file.
//!
//! It is a cache of the log, never a second source: an entry is added by
//! the writer thread only after its records are durable and before the
//! head moves past them, it holds exactly the records the segment holds at
//! those offsets (ingest appends them through [`AppendBatch::push_record`],
//! which encodes the frame and keeps the record together or not at all),
//! and a reader that does not find its offset here reads the file as
//! before. Entries are dropped oldest first past a bound on records held.
//!
//! [`AppendBatch::push_record`]: super::AppendBatch::push_record

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::cursor::Position;
use crate::pb;

/// Records of one admitted append, in offset order.
#[derive(Debug)]
pub struct Decoded {
    /// Offset of `records[0]`.
    first: u64,
    /// Segment holding them (a group is never split across segments).
    segment: u64,
    /// Byte position of `records[0]` in the segment.
    byte: u64,
    /// End of each record's frame, in bytes from `byte`.
    ends: Vec<u64>,
    records: Vec<pb::LogRecord>,
}

impl Decoded {
    fn end_offset(&self) -> u64 {
        self.first + self.records.len() as u64
    }

    /// Position after `records[i]`.
    fn after(&self, i: usize) -> Position {
        Position {
            offset: self.first + i as u64 + 1,
            segment: self.segment,
            byte: self.byte + self.ends[i],
        }
    }
}

/// One append's decoded records and where their frames end, as
/// [`super::AppendBatch`] collected them.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub records: Vec<pb::LogRecord>,
    /// End of each frame, in bytes from the start of the batch's records.
    pub ends: Vec<u64>,
}

/// Bounded list of [`Decoded`] groups, oldest first, offsets ascending.
#[derive(Debug)]
pub(crate) struct Tail {
    max_records: usize,
    held: usize,
    groups: VecDeque<Arc<Decoded>>,
}

impl Tail {
    pub fn new(max_records: usize) -> Tail {
        Tail {
            max_records,
            held: 0,
            groups: VecDeque::new(),
        }
    }

    /// Adds the records of a durable append whose first record is at
    /// `start`.
    pub fn push(&mut self, start: Position, c: Collected) {
        let Collected { records, ends } = c;
        let first = start.offset;
        if self.max_records == 0
            || records.is_empty()
            || records.len() > self.max_records
            || ends.len() != records.len()
            || ends.windows(2).any(|w| w[0] >= w[1])
        {
            return;
        }
        // Offsets only grow; anything else means the caller is confused:
        // keep nothing rather than something that could be wrong.
        if self.groups.back().is_some_and(|g| g.end_offset() > first) {
            self.groups.clear();
            self.held = 0;
        }
        self.held += records.len();
        self.groups.push_back(Arc::new(Decoded {
            first,
            segment: start.segment,
            byte: start.byte,
            ends,
            records,
        }));
        while self.held > self.max_records {
            match self.groups.pop_front() {
                Some(g) => self.held -= g.records.len(),
                None => break,
            }
        }
    }

    /// Up to `max` records from `offset` on, as long as they are held
    /// without a gap: (group, first index, end index) of each group.
    fn run_from(&self, offset: u64, max: usize) -> Vec<(Arc<Decoded>, usize, usize)> {
        let mut out = Vec::new();
        let i = self.groups.partition_point(|g| g.end_offset() <= offset);
        let mut at = offset;
        let mut left = max;
        for g in self.groups.range(i..) {
            if left == 0 || g.first > at || g.end_offset() <= at {
                break;
            }
            let from = (at - g.first) as usize;
            let to = g.records.len().min(from + left);
            left -= to - from;
            at = g.first + to as u64;
            out.push((g.clone(), from, to));
        }
        out
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held
    }
}

/// The shared tail of one log.
pub(crate) type SharedTail = Mutex<Tail>;

/// Records taken from the decoded tail by one reader call.
#[derive(Debug, Default)]
pub struct DecodedRun {
    groups: Vec<(Arc<Decoded>, usize, usize)>,
}

impl DecodedRun {
    /// (offset, record) of each, in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &pb::LogRecord)> + '_ {
        self.groups.iter().flat_map(|(g, from, to)| {
            g.records[*from..*to]
                .iter()
                .enumerate()
                .map(move |(i, r)| (g.first + (*from + i) as u64, r))
        })
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|(_, from, to)| to - from).sum()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Position after the last record.
    pub(crate) fn end(&self) -> Option<Position> {
        self.groups.last().map(|(g, _, to)| g.after(to - 1))
    }
}

/// Takes the run at `pos` (see [`Tail::run_from`]); None when the tail
/// does not hold `pos.offset`.
pub(crate) fn take(tail: &SharedTail, pos: Position, max: usize) -> Option<DecodedRun> {
    let t = tail.lock().unwrap_or_else(|p| p.into_inner());
    let groups = t.run_from(pos.offset, max);
    drop(t);
    if groups.is_empty() {
        None
    } else {
        Some(DecodedRun { groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: i64) -> pb::LogRecord {
        pb::LogRecord {
            time_unix_ms: t,
            ..Default::default()
        }
    }

    /// Every frame 10 bytes, segment 0 from offset 0: offset o starts at
    /// byte 10·o.
    fn pos(offset: u64) -> Position {
        Position {
            offset,
            segment: 0,
            byte: offset * 10,
        }
    }

    fn collected(first: u64, n: u64) -> Collected {
        Collected {
            records: (first..first + n).map(|o| rec(o as i64)).collect(),
            ends: (1..=n).map(|k| k * 10).collect(),
        }
    }

    fn push(t: &mut Tail, first: u64, n: u64) {
        t.push(pos(first), collected(first, n));
    }

    fn run(t: &Tail, at: u64, max: usize) -> DecodedRun {
        DecodedRun {
            groups: t.run_from(at, max),
        }
    }

    fn offsets(t: &Tail, at: u64, max: usize) -> Vec<(u64, i64)> {
        run(t, at, max)
            .iter()
            .map(|(o, r)| (o, r.time_unix_ms))
            .collect()
    }

    #[test]
    fn a_run_is_the_records_at_their_offsets_and_stops_at_a_gap() {
        let mut t = Tail::new(100);
        push(&mut t, 10, 3);
        push(&mut t, 13, 2);
        // 15 was appended without decoded records (an alert record).
        push(&mut t, 16, 4);
        let got = offsets(&t, 11, 100);
        assert_eq!(got, vec![(11, 11), (12, 12), (13, 13), (14, 14)]);
        let r = run(&t, 11, 100);
        assert_eq!(r.len(), 4);
        assert_eq!(r.end(), Some(pos(15)));
        assert!(offsets(&t, 15, 100).is_empty(), "15 is not held");
        assert_eq!(offsets(&t, 16, 100).len(), 4);
        assert_eq!(run(&t, 16, 100).end(), Some(pos(20)));
        assert!(offsets(&t, 9, 100).is_empty());
        assert!(offsets(&t, 20, 100).is_empty());
    }

    #[test]
    fn a_run_never_passes_max_and_ends_where_its_last_record_ends() {
        let mut t = Tail::new(100);
        push(&mut t, 0, 5);
        push(&mut t, 5, 5);
        push(&mut t, 10, 5);
        for (at, max, want) in [(0, 1, 1), (0, 6, 6), (2, 3, 3), (2, 4, 4), (3, 100, 12)] {
            let r = run(&t, at, max);
            assert_eq!(r.len(), want, "from {at}, max {max}");
            assert_eq!(r.end(), Some(pos(at + want as u64)), "from {at}, max {max}");
            let offs: Vec<u64> = r.iter().map(|(o, _)| o).collect();
            assert_eq!(offs, (at..at + want as u64).collect::<Vec<_>>());
        }
        assert!(run(&t, 0, 0).is_empty());
    }

    #[test]
    fn the_bound_drops_the_oldest_groups() {
        let mut t = Tail::new(10);
        push(&mut t, 0, 4);
        push(&mut t, 4, 4);
        push(&mut t, 8, 4);
        assert_eq!(t.held(), 8);
        assert!(offsets(&t, 0, 100).is_empty());
        assert_eq!(offsets(&t, 4, 100).len(), 8);
        // A group larger than the bound is not kept at all.
        push(&mut t, 12, 11);
        assert!(offsets(&t, 12, 100).is_empty());
        assert_eq!(t.held(), 8);
    }

    #[test]
    fn inconsistent_pushes_are_refused_or_reset_the_tail() {
        let mut t = Tail::new(100);
        push(&mut t, 0, 4);
        // Frame ends that do not match the records: refused.
        let mut c = collected(4, 2);
        c.ends.pop();
        t.push(pos(4), c);
        let mut c = collected(4, 2);
        c.ends = vec![10, 10];
        t.push(pos(4), c);
        assert!(offsets(&t, 4, 100).is_empty());
        // Offsets going backwards: nothing kept is trusted any more.
        push(&mut t, 2, 2);
        assert_eq!(offsets(&t, 2, 100), vec![(2, 2), (3, 3)]);
        assert!(offsets(&t, 0, 100).is_empty());
        // Disabled.
        let mut off = Tail::new(0);
        push(&mut off, 0, 1);
        assert!(offsets(&off, 0, 100).is_empty());
    }
}
