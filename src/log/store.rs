//! The `redb`-backed log store. Blocking API: call from a blocking thread
//! (`tokio::task::spawn_blocking`) in async code.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use tokio::sync::watch;

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
const CURSORS: TableDefinition<&str, u64> = TableDefinition::new("cursors");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Log failures.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Appending would pass the byte bound; nothing was written.
    #[error("durable log is full: {live_bytes} bytes unconsumed + {incoming} incoming > limit {max_bytes} bytes; waiting for consumers (is the TSDB reachable?)")]
    Full {
        /// Unconsumed bytes now.
        live_bytes: u64,
        /// Bytes of the refused append.
        incoming: u64,
        /// The bound.
        max_bytes: u64,
    },
    /// Another process holds the database.
    #[error("durable log {path} is in use by another process (is wastewatch running? use its HTTP API instead)")]
    InUse {
        /// Database file.
        path: String,
    },
    /// Storage error from redb or the file system.
    #[error("durable log storage error: {0}")]
    Storage(String),
}

fn st<E: std::fmt::Display>(e: E) -> LogError {
    LogError::Storage(e.to_string())
}

/// Point-in-time numbers for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Next offset to be written.
    pub head: u64,
    /// Records not yet consumed by every consumer.
    pub depth: u64,
    /// Bytes of those records.
    pub live_bytes: u64,
    /// The bound.
    pub max_bytes: u64,
    /// Messages in quarantine.
    pub quarantined: u64,
}

struct State {
    head: u64,
    live_bytes: u64,
    cursors: HashMap<String, u64>,
    next_quarantine: u64,
    quarantined: u64,
}

/// The durable log.
pub struct Log {
    db: Database,
    state: Mutex<State>,
    consumers: Vec<String>,
    max_bytes: u64,
    head_tx: watch::Sender<u64>,
}

impl Log {
    /// Opens (or creates) the log in `dir`. `consumers` are the cursors that
    /// hold back deletion; each starts at offset 0 when new.
    pub fn open(dir: &Path, max_bytes: u64, consumers: &[&str]) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            LogError::Storage(format!("cannot create log dir {}: {e}", dir.display()))
        })?;
        let path = dir.join("wastewatch-log.redb");
        let db = match Database::create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(LogError::InUse {
                    path: path.display().to_string(),
                })
            }
            Err(e) => {
                return Err(LogError::Storage(format!(
                    "cannot open {}: {e}",
                    path.display()
                )))
            }
        };
        let txn = db.begin_write().map_err(st)?;
        let (head, cursors, live_bytes, next_quarantine, quarantined) = {
            let records = txn.open_table(RECORDS).map_err(st)?;
            let quarantine = txn.open_table(QUARANTINE).map_err(st)?;
            let mut cur_t = txn.open_table(CURSORS).map_err(st)?;
            let meta = txn.open_table(META).map_err(st)?;
            let last = records.last().map_err(st)?.map(|(k, _)| k.value() + 1);
            let head = last.unwrap_or(0).max(
                meta.get("head")
                    .map_err(st)?
                    .map(|v| v.value())
                    .unwrap_or(0),
            );
            let mut cursors = HashMap::new();
            for c in consumers {
                let v = cur_t.get(*c).map_err(st)?.map(|v| v.value());
                let v = match v {
                    Some(v) => v,
                    None => {
                        // A new consumer starts at the oldest retained record.
                        let first = records
                            .first()
                            .map_err(st)?
                            .map(|(k, _)| k.value())
                            .unwrap_or(head);
                        cur_t.insert(*c, first).map_err(st)?;
                        first
                    }
                };
                cursors.insert((*c).to_owned(), v);
            }
            let min = cursors.values().copied().min().unwrap_or(head);
            let mut live = 0u64;
            for item in records.range(min..).map_err(st)? {
                let (_, v) = item.map_err(st)?;
                live += v.value().len() as u64;
            }
            let nq = quarantine
                .last()
                .map_err(st)?
                .map(|(k, _)| k.value() + 1)
                .unwrap_or(0);
            (head, cursors, live, nq, quarantine.len().map_err(st)?)
        };
        txn.commit().map_err(st)?;
        let (head_tx, _) = watch::channel(head);
        Ok(Log {
            db,
            state: Mutex::new(State {
                head,
                live_bytes,
                cursors,
                next_quarantine,
                quarantined,
            }),
            consumers: consumers.iter().map(|s| (*s).to_owned()).collect(),
            max_bytes,
            head_tx,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain counters; the database itself is transactional.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Watch the head offset (changes after every append).
    pub fn subscribe_head(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    /// Appends records and quarantine entries in one durable transaction.
    /// Returns the offsets given to the records.
    pub fn append(
        &self,
        records: &[Vec<u8>],
        quarantine: &[Vec<u8>],
    ) -> Result<std::ops::Range<u64>, LogError> {
        let incoming: u64 = records.iter().map(|r| r.len() as u64).sum();
        let (start, qstart) = {
            let s = self.lock();
            if incoming > 0 && s.live_bytes + incoming > self.max_bytes {
                return Err(LogError::Full {
                    live_bytes: s.live_bytes,
                    incoming,
                    max_bytes: self.max_bytes,
                });
            }
            (s.head, s.next_quarantine)
        };
        let txn = self.db.begin_write().map_err(st)?;
        {
            let mut t = txn.open_table(RECORDS).map_err(st)?;
            for (i, r) in records.iter().enumerate() {
                t.insert(start + i as u64, r.as_slice()).map_err(st)?;
            }
            let mut q = txn.open_table(QUARANTINE).map_err(st)?;
            for (i, r) in quarantine.iter().enumerate() {
                q.insert(qstart + i as u64, r.as_slice()).map_err(st)?;
            }
            let mut m = txn.open_table(META).map_err(st)?;
            m.insert("head", start + records.len() as u64).map_err(st)?;
        }
        txn.commit().map_err(st)?;
        let end = start + records.len() as u64;
        {
            let mut s = self.lock();
            s.head = end;
            s.live_bytes += incoming;
            s.next_quarantine = qstart + quarantine.len() as u64;
            s.quarantined += quarantine.len() as u64;
        }
        self.head_tx.send_replace(end);
        Ok(start..end)
    }

    /// Reads up to `max` records from offset `from`.
    pub fn read(&self, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        let txn = self.db.begin_read().map_err(st)?;
        let t = txn.open_table(RECORDS).map_err(st)?;
        let mut out = Vec::with_capacity(max.min(4096));
        for item in t.range(from..).map_err(st)? {
            if out.len() >= max {
                break;
            }
            let (k, v) = item.map_err(st)?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Cursor of a consumer (next offset it will read).
    pub fn cursor(&self, name: &str) -> u64 {
        self.lock().cursors.get(name).copied().unwrap_or(0)
    }

    /// Durably moves a consumer's cursor to `next` and deletes records that
    /// every consumer has passed.
    pub fn commit_cursor(&self, name: &str, next: u64) -> Result<(), LogError> {
        let min_after = {
            let s = self.lock();
            self.consumers
                .iter()
                .map(|c| {
                    if c == name {
                        next
                    } else {
                        s.cursors.get(c).copied().unwrap_or(0)
                    }
                })
                .min()
                .unwrap_or(next)
        };
        let txn = self.db.begin_write().map_err(st)?;
        let mut freed = 0u64;
        {
            let mut c = txn.open_table(CURSORS).map_err(st)?;
            c.insert(name, next).map_err(st)?;
            let mut t = txn.open_table(RECORDS).map_err(st)?;
            t.retain_in(..min_after, |_, v| {
                freed += v.len() as u64;
                false
            })
            .map_err(st)?;
        }
        txn.commit().map_err(st)?;
        let mut s = self.lock();
        s.cursors.insert(name.to_owned(), next);
        s.live_bytes = s.live_bytes.saturating_sub(freed);
        Ok(())
    }

    /// Current numbers.
    pub fn stats(&self) -> LogStats {
        let s = self.lock();
        let min = self
            .consumers
            .iter()
            .map(|c| s.cursors.get(c).copied().unwrap_or(0))
            .min()
            .unwrap_or(s.head);
        LogStats {
            head: s.head,
            depth: s.head.saturating_sub(min),
            live_bytes: s.live_bytes,
            max_bytes: self.max_bytes,
            quarantined: s.quarantined,
        }
    }

    /// Lists up to `limit` quarantined messages from id `from`.
    pub fn quarantine_list(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, LogError> {
        let txn = self.db.begin_read().map_err(st)?;
        let t = txn.open_table(QUARANTINE).map_err(st)?;
        let mut out = Vec::new();
        for item in t.range(from..).map_err(st)? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(st)?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Moves quarantined messages that now decode into the log, in one
    /// transaction: `accepted` are (quarantine id, record bytes) pairs. Ids
    /// are deleted from quarantine, records appended.
    pub fn release_from_quarantine(
        &self,
        accepted: &[(u64, Vec<u8>)],
    ) -> Result<std::ops::Range<u64>, LogError> {
        let incoming: u64 = accepted.iter().map(|(_, r)| r.len() as u64).sum();
        let start = {
            let s = self.lock();
            if incoming > 0 && s.live_bytes + incoming > self.max_bytes {
                return Err(LogError::Full {
                    live_bytes: s.live_bytes,
                    incoming,
                    max_bytes: self.max_bytes,
                });
            }
            s.head
        };
        let txn = self.db.begin_write().map_err(st)?;
        {
            let mut t = txn.open_table(RECORDS).map_err(st)?;
            let mut q = txn.open_table(QUARANTINE).map_err(st)?;
            for (i, (id, r)) in accepted.iter().enumerate() {
                t.insert(start + i as u64, r.as_slice()).map_err(st)?;
                q.remove(*id).map_err(st)?;
            }
            let mut m = txn.open_table(META).map_err(st)?;
            m.insert("head", start + accepted.len() as u64)
                .map_err(st)?;
        }
        txn.commit().map_err(st)?;
        let end = start + accepted.len() as u64;
        {
            let mut s = self.lock();
            s.head = end;
            s.live_bytes += incoming;
            s.quarantined = s.quarantined.saturating_sub(accepted.len() as u64);
        }
        self.head_tx.send_replace(end);
        Ok(start..end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max: u64) -> Log {
        Log::open(dir, max, &["a", "b"]).unwrap()
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
        let got: Vec<_> = log
            .read(0, 10)
            .unwrap()
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
        assert_eq!(log.stats().live_bytes, 11);
    }

    #[test]
    fn records_are_deleted_only_when_every_consumer_has_passed_them() {
        let d = tempfile::tempdir().unwrap();
        let log = open(d.path(), 1 << 20);
        log.append(&[vec![1; 10], vec![2; 10], vec![3; 10]], &[])
            .unwrap();
        log.commit_cursor("a", 3).unwrap();
        assert_eq!(log.read(0, 10).unwrap().len(), 3, "b has not read them");
        assert_eq!(log.stats().depth, 3);
        log.commit_cursor("b", 2).unwrap();
        assert_eq!(
            log.read(0, 10)
                .unwrap()
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            vec![2]
        );
        assert_eq!(log.stats().live_bytes, 10);
        drop(log);
        let log = open(d.path(), 1 << 20);
        assert_eq!((log.cursor("a"), log.cursor("b")), (3, 2));
        assert_eq!(log.stats().live_bytes, 10);
        assert_eq!(
            log.append(&[vec![4]], &[]).unwrap(),
            3..4,
            "offsets never go back"
        );
    }

    #[test]
    fn a_full_log_refuses_the_append_and_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let log = open(d.path(), 25);
        log.append(&[vec![0; 20]], &[]).unwrap();
        let err = log.append(&[vec![0; 6]], &[]).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::Full {
                    live_bytes: 20,
                    incoming: 6,
                    max_bytes: 25
                }
            ),
            "{err}"
        );
        assert_eq!(log.stats().head, 1);
        log.commit_cursor("a", 1).unwrap();
        log.commit_cursor("b", 1).unwrap();
        assert_eq!(
            log.append(&[vec![0; 6]], &[]).unwrap(),
            1..2,
            "space returned"
        );
    }

    #[test]
    fn a_second_open_of_the_same_log_is_refused_clearly() {
        let d = tempfile::tempdir().unwrap();
        let _log = open(d.path(), 1 << 20);
        let err = Log::open(d.path(), 1 << 20, &["a"]).err().unwrap();
        assert!(matches!(err, LogError::InUse { .. }), "{err}");
    }

    #[test]
    fn released_quarantine_entries_move_into_the_log() {
        let d = tempfile::tempdir().unwrap();
        let log = open(d.path(), 1 << 20);
        log.append(&[], &[b"q0".to_vec(), b"q1".to_vec()]).unwrap();
        log.release_from_quarantine(&[(1, b"rec".to_vec())])
            .unwrap();
        assert_eq!(
            log.quarantine_list(0, 10).unwrap(),
            vec![(0, b"q0".to_vec())]
        );
        assert_eq!(log.read(0, 10).unwrap(), vec![(0, b"rec".to_vec())]);
    }
}
