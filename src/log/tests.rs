//! Tests of the whole log: recovery, cursors, deletion, the bound, the
//! quarantine, concurrent appenders, and a model-based property test.

use super::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn open(dir: &Path, max: u64) -> Log {
    Log::open(dir, max, &["a", "b"]).unwrap()
}

fn small(max: u64, segment: u64) -> LogOptions {
    LogOptions {
        max_bytes: max,
        segment_bytes: segment,
        reserve_bytes: max / 16,
        cursor_sync: Duration::from_secs(3600),
        disk_reserve_bytes: 0,
        decoded_tail_records: DEFAULT_DECODED_TAIL_RECORDS,
    }
}

fn read_all(log: &Log, from: u64) -> Vec<(u64, Vec<u8>)> {
    let mut r = log.reader_at(from).unwrap();
    let mut out = Vec::new();
    loop {
        let b = r.read(1000).unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend(b.iter().map(|(o, p)| (o, p.to_vec())));
    }
}

/// Reads everything from `consumer`'s cursor and commits it.
fn consume(log: &Log, consumer: &str, durability: Durability) -> Vec<u64> {
    let mut r = log.reader(consumer).unwrap();
    let mut seen = Vec::new();
    loop {
        let b = r.read(7).unwrap();
        if b.is_empty() {
            break;
        }
        seen.extend(b.iter().map(|(o, _)| o));
        let next = b.next;
        log.commit_cursor(consumer, next, durability).unwrap();
    }
    seen
}

fn seg_files(dir: &Path) -> Vec<u64> {
    segment::list(&dir.join("records")).unwrap()
}

#[test]
fn appended_records_survive_reopen_in_order() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path(), 1 << 20);
        assert_eq!(
            log.append(&[b"one".to_vec(), b"two".to_vec()], &[])
                .unwrap(),
            0..2
        );
        assert_eq!(
            log.append(&[b"three".to_vec()], &[b"bad".to_vec()])
                .unwrap(),
            2..3
        );
    }
    let log = open(d.path(), 1 << 20);
    let got: Vec<_> = read_all(&log, 0)
        .into_iter()
        .map(|(o, v)| (o, String::from_utf8(v).unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![(0, "one".into()), (1, "two".into()), (2, "three".into())]
    );
    assert_eq!(
        log.quarantine_list(0, 10).unwrap(),
        vec![(0, b"bad".to_vec())]
    );
    assert_eq!(log.stats().quarantined, 1);
    assert_eq!(log.stats().head, 3);
}

#[test]
fn segments_are_deleted_only_when_every_consumer_has_passed_them() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open_with(d.path(), small(1 << 20, 64 << 10), &["a", "b"]).unwrap();
    // ~100 KiB per append: every append after the first starts a segment.
    for i in 0..4u8 {
        log.append(&[vec![i; 100 << 10]], &[]).unwrap();
    }
    assert_eq!(seg_files(d.path()).len(), 4);
    assert_eq!(consume(&log, "a", Durability::Now), vec![0, 1, 2, 3]);
    assert_eq!(seg_files(d.path()).len(), 4, "b has not read them");
    assert_eq!(log.stats().depth, 4);
    let mut r = log.reader("b").unwrap();
    let mut seen = 0;
    while seen < 2 {
        // A batch never spans two segments.
        let b = r.read(2 - seen).unwrap();
        seen += b.len();
        let next = b.next;
        log.commit_cursor("b", next, Durability::Now).unwrap();
    }
    assert_eq!(seg_files(d.path()), vec![2, 3]);
    assert_eq!(log.stats().depth, 2);
    drop(r);
    drop(log);
    let log = Log::open_with(d.path(), small(1 << 20, 64 << 10), &["a", "b"]).unwrap();
    assert_eq!((log.cursor("a"), log.cursor("b")), (4, 2));
    assert_eq!(consume(&log, "b", Durability::Now), vec![2, 3]);
    assert_eq!(
        log.append(&[vec![4]], &[]).unwrap(),
        4..5,
        "offsets never go back"
    );
    consume(&log, "a", Durability::Now);
    consume(&log, "b", Durability::Now);
    // Only the newest segment is left once everyone has passed the rest.
    assert_eq!(seg_files(d.path()), vec![4]);
}

#[test]
fn a_full_log_refuses_the_ingest_append_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut o = small(1 << 20, 64 << 10);
    o.reserve_bytes = 1 << 16;
    let log = Log::open_with(d.path(), o, &["a"]).unwrap();
    log.append(&[vec![0; 900 << 10]], &[]).unwrap();
    let err = log.append(&[vec![0; 100 << 10]], &[]).unwrap_err();
    assert!(
        matches!(err, LogError::Full { incoming, limit_bytes, .. } if incoming == (100 << 10) + 16 && limit_bytes == (1 << 20) - (1 << 16)),
        "{err}"
    );
    assert!(log.stats().full);
    assert_eq!(log.stats().head, 1, "nothing written");
    // The reserve is for internal appends (the TSDB writer's quarantine).
    let a = log
        .append_class(&[], &[vec![1; 20 << 10]], Class::Internal)
        .unwrap();
    assert_eq!(a.quarantine, 0..1);
    consume(&log, "a", Durability::Now);
    assert_eq!(
        log.append(&[vec![0; 100 << 10]], &[]).unwrap(),
        1..2,
        "space returned"
    );
    assert!(!log.stats().full);
}

#[test]
fn a_lazily_committed_cursor_frees_space_only_once_saved() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open_with(d.path(), small(1 << 20, 64 << 10), &["a"]).unwrap();
    for i in 0..4u8 {
        log.append(&[vec![i; 100 << 10]], &[]).unwrap();
    }
    consume(&log, "a", Durability::Lazy);
    assert!(log.has_unsaved_cursor("a"));
    assert_eq!(seg_files(d.path()).len(), 4, "deletion waits for the save");
    assert!(log.stats().live_bytes > 300 << 10);
    log.flush_cursors().unwrap();
    assert!(!log.has_unsaved_cursor("a"));
    assert_eq!(seg_files(d.path()).len(), 1);
    assert_eq!(log.stats().live_bytes, 0);
}

#[test]
fn a_second_open_of_the_same_log_is_refused_clearly() {
    let d = tempfile::tempdir().unwrap();
    let _log = open(d.path(), 1 << 20);
    let err = Log::open(d.path(), 1 << 20, &["a"]).err().unwrap();
    assert!(matches!(err, LogError::InUse { .. }), "{err}");
}

#[test]
fn a_log_of_the_previous_format_is_not_silently_ignored() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("wastewatch-log.redb"), b"old").unwrap();
    let err = Log::open(d.path(), 1 << 20, &["a"]).err().unwrap();
    assert!(matches!(err, LogError::OldFormat { .. }), "{err}");
    assert!(err.to_string().contains("drain it"), "{err}");
}

#[test]
fn released_quarantine_entries_move_into_the_log_and_stay_released() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path(), 1 << 20);
        log.append(&[], &[b"q0".to_vec(), b"q1".to_vec()]).unwrap();
        log.release_from_quarantine(&[(1, b"rec".to_vec())])
            .unwrap();
        assert_eq!(
            log.quarantine_list(0, 10).unwrap(),
            vec![(0, b"q0".to_vec())]
        );
        assert_eq!(read_all(&log, 0), vec![(0, b"rec".to_vec())]);
        assert!(matches!(
            log.release_from_quarantine(&[(1, b"again".to_vec())]),
            Err(LogError::NoSuchQuarantineEntry(1))
        ));
    }
    let log = open(d.path(), 1 << 20);
    assert_eq!(
        log.quarantine_list(0, 10).unwrap(),
        vec![(0, b"q0".to_vec())]
    );
    assert_eq!(log.stats().quarantined, 1);
    assert_eq!(log.append(&[], &[b"q2".to_vec()]).unwrap(), 1..1);
    assert_eq!(
        log.quarantine_list(0, 10).unwrap(),
        vec![(0, b"q0".to_vec()), (2, b"q2".to_vec())],
        "ids are never reused"
    );
}

#[test]
fn fully_released_quarantine_segments_are_deleted() {
    let d = tempfile::tempdir().unwrap();
    let log = Log::open_with(d.path(), small(8 << 20, 64 << 10), &["a"]).unwrap();
    for i in 0..3u8 {
        log.append(&[], &[vec![i; 50 << 10], vec![i; 50 << 10]])
            .unwrap();
    }
    let q_files = || segment::list(&d.path().join("quarantine")).unwrap().len();
    assert_eq!(q_files(), 3);
    let before = log.stats().quarantine_bytes;
    assert_eq!(log.purge_quarantine(&[0, 1, 2]).unwrap(), 3);
    assert_eq!(q_files(), 2, "the first segment is all released");
    assert!(log.stats().quarantine_bytes < before);
    assert_eq!(log.stats().quarantined, 3);
    let ids: Vec<u64> = log
        .quarantine_list(0, 10)
        .unwrap()
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(ids, vec![3, 4, 5]);
}

#[test]
fn a_torn_tail_is_cut_and_the_next_append_continues_after_the_last_whole_record() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path(), 1 << 20);
        log.append(&[b"keep-0".to_vec(), b"keep-1".to_vec()], &[])
            .unwrap();
        log.append(&[b"torn".to_vec()], &[]).unwrap();
    }
    let seg = segment::path(&d.path().join("records"), 0);
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let log = open(d.path(), 1 << 20);
    assert_eq!(log.stats().head, 2);
    assert_eq!(log.append(&[b"new".to_vec()], &[]).unwrap(), 2..3);
    let got: Vec<Vec<u8>> = read_all(&log, 0).into_iter().map(|r| r.1).collect();
    assert_eq!(
        got,
        vec![b"keep-0".to_vec(), b"keep-1".to_vec(), b"new".to_vec()]
    );
}

#[test]
fn a_cursor_past_damaged_records_is_never_given_their_offsets_again() {
    let d = tempfile::tempdir().unwrap();
    {
        let log = open(d.path(), 1 << 20);
        log.append(&[b"0".to_vec(), b"1".to_vec(), b"2".to_vec()], &[])
            .unwrap();
        consume(&log, "a", Durability::Now);
    }
    // Damage the middle record on disk (bit rot after it was consumed).
    let seg = segment::path(&d.path().join("records"), 0);
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[frame::HEADER + 1 + frame::HEADER] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    let log = open(d.path(), 1 << 20);
    assert_eq!(
        log.stats().head,
        3,
        "the head never goes below a saved cursor"
    );
    assert_eq!(log.append(&[b"3".to_vec()], &[]).unwrap(), 3..4);
    assert_eq!(consume(&log, "a", Durability::Now), vec![3]);
    let b: Vec<u64> = consume(&log, "b", Durability::Now);
    assert_eq!(b, vec![0, 3], "b sees what survived, and no offset twice");
}

#[test]
fn a_reader_sees_only_durable_records_and_wakes_on_the_head() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), 1 << 20);
    let mut head = log.subscribe_head();
    let mut r = log.reader("a").unwrap();
    assert!(r.read(10).unwrap().is_empty());
    log.append(&[b"x".to_vec()], &[]).unwrap();
    assert!(head.has_changed().unwrap());
    assert_eq!(*head.borrow_and_update(), 1);
    let b = r.read(10).unwrap();
    assert_eq!(
        b.iter().map(|(o, p)| (o, p.to_vec())).collect::<Vec<_>>(),
        vec![(0, b"x".to_vec())]
    );
}

#[test]
fn a_record_larger_than_the_read_buffer_is_returned_whole() {
    let d = tempfile::tempdir().unwrap();
    let log = open(d.path(), 64 << 20);
    let big = vec![9u8; 3 << 20];
    log.append(&[b"a".to_vec(), big.clone(), b"c".to_vec()], &[])
        .unwrap();
    let got = read_all(&log, 0);
    assert_eq!(got.len(), 3);
    assert_eq!(got[1].1, big);
}

#[test]
fn concurrent_ingest_and_sink_quarantine_appends_never_share_an_offset_or_id() {
    // The race of log v1: the TSDB writer's quarantine appends ran
    // concurrently with ingest and could take the same offsets. Here both
    // paths append many times at once; every offset and quarantine id must
    // be handed out exactly once, and the bytes at each must be the ones
    // appended there.
    let d = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(open(d.path(), 256 << 20));
    let rounds = 300;
    let ingest = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            for i in 0..rounds {
                let recs: Vec<Vec<u8>> = (0..5).map(|j| format!("i{i}-{j}").into_bytes()).collect();
                let q = vec![format!("iq{i}").into_bytes()];
                let a = log.append_class(&recs, &q, Class::Ingest).unwrap();
                got.push((a, recs, q));
            }
            got
        })
    };
    let sink = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            for i in 0..rounds {
                let q = vec![
                    format!("sq{i}-0").into_bytes(),
                    format!("sq{i}-1").into_bytes(),
                ];
                let a = log.append_class(&[], &q, Class::Internal).unwrap();
                got.push((a, Vec::new(), q));
            }
            got
        })
    };
    let mut all = ingest.join().unwrap();
    all.extend(sink.join().unwrap());
    let mut offsets = BTreeMap::new();
    let mut ids = BTreeMap::new();
    for (a, recs, q) in &all {
        assert_eq!(a.records.end - a.records.start, recs.len() as u64);
        assert_eq!(a.quarantine.end - a.quarantine.start, q.len() as u64);
        for (o, r) in a.records.clone().zip(recs) {
            assert!(
                offsets.insert(o, r.clone()).is_none(),
                "offset {o} given twice"
            );
        }
        for (id, e) in a.quarantine.clone().zip(q) {
            assert!(
                ids.insert(id, e.clone()).is_none(),
                "quarantine id {id} given twice"
            );
        }
    }
    assert_eq!(offsets.len() as u64, rounds * 5);
    assert_eq!(ids.len() as u64, rounds * 3);
    let stored: BTreeMap<u64, Vec<u8>> = read_all(&log, 0).into_iter().collect();
    assert_eq!(stored, offsets);
    let listed: BTreeMap<u64, Vec<u8>> = log
        .quarantine_list(0, usize::MAX)
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(listed, ids);
}

mod model {
    //! A model-based property test: random appends, reads, cursor commits,
    //! reopens and damage to the tail, checked against an in-memory model.

    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Append {
            sizes: Vec<usize>,
            quarantine: usize,
            /// As ingest appends: `pb::LogRecord`s kept decoded for the
            /// consumers (the decoded tail).
            decoded: bool,
        },
        Consume {
            consumer: usize,
            max: usize,
            lazy: bool,
            /// Take the records from the decoded tail when it holds them.
            decoded: bool,
        },
        Reopen,
        /// Truncate (or flip a byte of) the newest segment at a fraction
        /// of its length, as a crash or a bad disk would.
        Damage {
            at: f64,
            flip: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (proptest::collection::vec(0usize..300, 0..6), 0usize..3, any::<bool>())
                .prop_map(|(sizes, quarantine, decoded)| Op::Append { sizes, quarantine, decoded }),
            3 => (0usize..2, 1usize..20, any::<bool>(), any::<bool>())
                .prop_map(|(consumer, max, lazy, decoded)| Op::Consume { consumer, max, lazy, decoded }),
            1 => Just(Op::Reopen),
            1 => (0.0f64..1.0, any::<bool>()).prop_map(|(at, flip)| Op::Damage { at, flip }),
        ]
    }

    struct Model {
        /// Offset -> payload of the records that exist.
        records: BTreeMap<u64, Vec<u8>>,
        /// Next offset the log will give.
        head: u64,
        /// Next offset per consumer (committed).
        cursors: [u64; 2],
        /// Every offset ever handed out.
        given: std::collections::BTreeSet<u64>,
        quarantine: BTreeMap<u64, Vec<u8>>,
        counter: u64,
    }

    const NAMES: [&str; 2] = ["tsdb", "rules"];

    fn opts() -> LogOptions {
        LogOptions {
            max_bytes: 64 << 20,
            segment_bytes: 2048,
            reserve_bytes: 1 << 16,
            cursor_sync: Duration::from_secs(3600),
            disk_reserve_bytes: 0,
            // Small, so that groups leave the decoded tail while read.
            decoded_tail_records: 12,
        }
    }

    fn open(dir: &Path) -> Log {
        Log::open_with(dir, opts(), &NAMES).unwrap()
    }

    fn run(ops: Vec<Op>) {
        let d = tempfile::tempdir().unwrap();
        let mut log = Some(open(d.path()));
        let mut m = Model {
            records: BTreeMap::new(),
            head: 0,
            cursors: [0, 0],
            given: Default::default(),
            quarantine: BTreeMap::new(),
            counter: 0,
        };
        let mut next_qid = 0;
        for op in ops {
            match op {
                Op::Append {
                    sizes,
                    quarantine,
                    decoded,
                } => {
                    use prost::Message as _;
                    let l = log.as_ref().unwrap();
                    let mut batch = AppendBatch::new(Class::Ingest);
                    let recs: Vec<Vec<u8>> = sizes
                        .iter()
                        .map(|&n| {
                            m.counter += 1;
                            if decoded {
                                let rec = crate::pb::LogRecord {
                                    time_unix_ms: m.counter as i64,
                                    received_at_unix_ms: n as i64,
                                    from_json: n % 2 == 1,
                                    ..Default::default()
                                };
                                let v = rec.encode_to_vec();
                                batch.push_record(rec).unwrap();
                                v
                            } else {
                                let mut v = m.counter.to_le_bytes().to_vec();
                                v.resize(n.max(8), (m.counter % 251) as u8);
                                batch.records.push(&v).unwrap();
                                v
                            }
                        })
                        .collect();
                    let q: Vec<Vec<u8>> = (0..quarantine)
                        .map(|i| format!("q{}-{i}", m.counter).into_bytes())
                        .collect();
                    for e in &q {
                        batch.quarantine.push(e).unwrap();
                    }
                    let a = l.append_batch(batch).result.unwrap();
                    assert_eq!(a.records.start, m.head, "appends continue at the head");
                    for (o, r) in a.records.clone().zip(recs) {
                        assert!(m.given.insert(o), "offset {o} handed out twice");
                        m.records.insert(o, r);
                    }
                    m.head = a.records.end;
                    assert_eq!(a.quarantine.start, next_qid);
                    for (id, e) in a.quarantine.clone().zip(q) {
                        m.quarantine.insert(id, e);
                    }
                    next_qid = a.quarantine.end;
                }
                Op::Consume {
                    consumer,
                    max,
                    lazy,
                    decoded,
                } => {
                    use prost::Message as _;
                    let l = log.as_ref().unwrap();
                    let name = NAMES[consumer];
                    // A cursor may sit past offsets that hold no record
                    // (lost to damage), never past a record.
                    let c = l.cursor(name);
                    assert!(c >= m.cursors[consumer], "{name} cursor went back");
                    assert_eq!(
                        m.records.range(m.cursors[consumer]..c).count(),
                        0,
                        "{name} skipped records"
                    );
                    m.cursors[consumer] = c;
                    let mut r = l.reader(name).unwrap();
                    let (got, next) = match r.take_decoded(max).filter(|_| decoded) {
                        Some(run) => {
                            let got: Vec<(u64, Vec<u8>)> = run
                                .iter()
                                .map(|(o, rec)| (o, rec.encode_to_vec()))
                                .collect();
                            assert!(!got.is_empty() && got.len() <= max);
                            (got, r.position())
                        }
                        None => {
                            // Not taken (or not wanted): read the file, from
                            // where the cursor is.
                            let mut r = l.reader(name).unwrap();
                            let b = r.read(max).unwrap();
                            let got: Vec<(u64, Vec<u8>)> =
                                b.iter().map(|(o, p)| (o, p.to_vec())).collect();
                            (got, b.next)
                        }
                    };
                    let want: Vec<(u64, Vec<u8>)> = m
                        .records
                        .range(m.cursors[consumer]..)
                        .take(max)
                        .map(|(o, v)| (*o, v.clone()))
                        .collect();
                    // A batch stops at the end of a segment: it is a
                    // prefix of what the model holds, never empty when
                    // something is there.
                    assert_eq!(
                        got.is_empty(),
                        want.is_empty(),
                        "{name}: {got:?} vs {want:?}"
                    );
                    assert!(
                        want.starts_with(&got),
                        "{name} reads exactly the model's records"
                    );
                    if let Some(&(last, _)) = got.last() {
                        let d = if lazy {
                            Durability::Lazy
                        } else {
                            Durability::Now
                        };
                        assert_eq!(next.offset, last + 1);
                        l.commit_cursor(name, next, d).unwrap();
                        m.cursors[consumer] = last + 1;
                        // Where the position says, the file has the next
                        // record (a wrong byte position would fail here).
                        let mut after = l.reader(name).unwrap();
                        let b = after.read(1).unwrap();
                        let want_next = m.records.range(last + 1..).next();
                        let first = b.iter().next();
                        match (first, want_next) {
                            (Some((o, p)), Some((wo, wp))) => {
                                assert_eq!((o, p), (*wo, wp.as_slice()));
                            }
                            (None, None) => {}
                            (got, want) => panic!("after {last}: {got:?} vs {want:?}"),
                        };
                    }
                }
                Op::Reopen => {
                    drop(log.take());
                    log = Some(open(d.path()));
                }
                Op::Damage { at, flip } => {
                    drop(log.take());
                    let dir = d.path().join("records");
                    let base = *segment::list(&dir).unwrap().last().unwrap();
                    let p = segment::path(&dir, base);
                    let len = std::fs::metadata(&p).unwrap().len();
                    if len > 0 {
                        let b = ((len as f64 * at) as u64).min(len - 1);
                        if flip {
                            let mut bytes = std::fs::read(&p).unwrap();
                            bytes[b as usize] ^= 0x10;
                            std::fs::write(&p, &bytes).unwrap();
                        } else {
                            std::fs::OpenOptions::new()
                                .write(true)
                                .open(&p)
                                .unwrap()
                                .set_len(b)
                                .unwrap();
                        }
                        // Records of this segment whose frame ends after
                        // byte b are lost (the first damaged one and all
                        // after it).
                        let mut end = 0u64;
                        let mut cut = m.head;
                        for (o, r) in m.records.range(base..) {
                            end += (frame::HEADER + r.len()) as u64;
                            if end > b {
                                cut = *o;
                                break;
                            }
                        }
                        let lost: Vec<u64> = m.records.range(cut..).map(|(o, _)| *o).collect();
                        // After a flipped byte the frames behind the
                        // damaged one are still intact on disk: their
                        // offsets were handed out and are not reused.
                        let beyond = if flip && lost.len() > 1 { m.head } else { 0 };
                        for o in lost {
                            m.records.remove(&o);
                        }
                        // The log continues after the last record kept, but
                        // never below a saved cursor nor below an intact
                        // frame found after the damage. Only offsets of
                        // records that left no trace may be given again.
                        let floor = m.cursors.iter().copied().max().unwrap_or(0);
                        m.head = cut.max(floor).max(beyond);
                        let reusable: Vec<u64> = m.given.range(m.head..).copied().collect();
                        for o in reusable {
                            m.given.remove(&o);
                        }
                        for c in m.cursors.iter_mut() {
                            *c = (*c).min(m.head);
                        }
                    }
                    log = Some(open(d.path()));
                }
            }
            let l = log.as_ref().unwrap();
            let s = l.stats();
            assert_eq!(s.head, m.head);
            assert_eq!(s.quarantined, m.quarantine.len() as u64);
            // Nothing invented, nothing lost.
            let all: BTreeMap<u64, Vec<u8>> = read_all(l, 0).into_iter().collect();
            let min = m.cursors.iter().copied().min().unwrap();
            let kept: BTreeMap<u64, Vec<u8>> = m
                .records
                .range(min..)
                .map(|(o, v)| (*o, v.clone()))
                .collect();
            let all_from_min: BTreeMap<u64, Vec<u8>> =
                all.range(min..).map(|(o, v)| (*o, v.clone())).collect();
            assert_eq!(all_from_min, kept);
            for (o, v) in &all {
                assert_eq!(m.records.get(o), Some(v), "record {o} invented");
            }
        }
        let l = log.as_ref().unwrap();
        let listed: BTreeMap<u64, Vec<u8>> = l
            .quarantine_list(0, usize::MAX)
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(listed, m.quarantine);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        #[test]
        fn the_log_agrees_with_its_model_across_reopens_and_damage(
            ops in proptest::collection::vec(op(), 1..60)
        ) {
            run(ops);
        }
    }
}

/// Ingest's appends reach the consumers decoded, at the offsets and byte
/// positions the file has, also when several appends share one group
/// commit, a segment rolls between them, and raw appends (alert and KPI
/// records) sit between them.
#[test]
fn the_decoded_tail_gives_the_records_and_positions_the_file_has() {
    use prost::Message as _;
    let d = tempfile::tempdir().unwrap();
    let log = Log::open_with(d.path(), small(64 << 20, 4096), &["a", "b"]).unwrap();
    let mut n = 0i64;
    for round in 0..20 {
        // Queued before the writer answers any: one or a few groups.
        let replies: Vec<_> = (0..4)
            .map(|k| {
                let mut b = AppendBatch::new(Class::Ingest);
                if (round + k) % 5 == 4 {
                    b.records
                        .push(format!("raw {round} {k}").as_bytes())
                        .unwrap();
                } else {
                    for _ in 0..(1 + (round + k) % 7) {
                        n += 1;
                        b.push_record(crate::pb::LogRecord {
                            time_unix_ms: n,
                            received_at_unix_ms: n * 1000,
                            ..Default::default()
                        })
                        .unwrap();
                    }
                }
                log.append_async(b)
            })
            .collect();
        for r in replies {
            r.blocking_recv().unwrap().result.unwrap();
        }
    }
    let file = read_all(&log, 0);
    assert!(seg_files(d.path()).len() > 1, "the segment rolled");
    // Consumer "a" takes from the tail whenever it can, in steps of 3.
    let mut r = log.reader("a").unwrap();
    let mut got: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut from_tail = 0;
    loop {
        if let Some(run) = r.take_decoded(3) {
            assert!(run.len() <= 3);
            from_tail += run.len();
            got.extend(run.iter().map(|(o, rec)| (o, rec.encode_to_vec())));
        } else {
            let b = r.read(3).unwrap();
            if b.is_empty() {
                break;
            }
            got.extend(b.iter().map(|(o, p)| (o, p.to_vec())));
        }
        // The position is where the file has the next record.
        let pos = r.position();
        let mut check = log.reader_at(pos.offset).unwrap();
        let want = check
            .read(1)
            .unwrap()
            .iter()
            .next()
            .map(|(o, p)| (o, p.to_vec()));
        // Consumer "b" resumes exactly at that position.
        log.commit_cursor("b", pos, Durability::Lazy).unwrap();
        let mut at_pos = log.reader("b").unwrap();
        assert_eq!(at_pos.position(), pos);
        let b = at_pos.read(1).unwrap();
        let have = b.iter().next().map(|(o, p)| (o, p.to_vec()));
        assert_eq!(have, want, "position {pos:?}");
    }
    assert_eq!(got, file);
    assert!(from_tail > 100, "the tail was used: {from_tail}");
    assert_eq!(log.stats().read_tail, from_tail as u64);
    assert!(log.stats().read_file >= (file.len() - from_tail) as u64);
}
