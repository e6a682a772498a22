//! A consumer's durable cursor: the next offset it will read, and where
//! that offset sits on disk so a restart can seek straight to it.
//!
//! One small file per consumer with two 32-byte slots, written alternately
//! in place and fdatasynced:
//!
//! ```text
//! 0        8          16         24        28
//! | seq    | offset   | segment  | byte    | crc32c(0..28) |
//! ```
//!
//! A torn write can damage only the slot being written; the other still
//! holds the previous cursor, and the valid slot with the higher `seq` wins.
//! Writing in place needs no new disk blocks, so a cursor can still move
//! (and free segments) when the file system is full.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

const SLOT: usize = 32;

/// Where a consumer stands: the next offset, and its byte position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Next offset to read.
    pub offset: u64,
    /// Base of the segment holding that offset.
    pub segment: u64,
    /// Byte position of that offset in its segment.
    pub byte: u64,
}

/// One consumer's cursor file.
#[derive(Debug)]
pub struct CursorFile {
    file: File,
    path: PathBuf,
    seq: u64,
}

fn encode(seq: u64, p: Position) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[0..8].copy_from_slice(&seq.to_le_bytes());
    s[8..16].copy_from_slice(&p.offset.to_le_bytes());
    s[16..24].copy_from_slice(&p.segment.to_le_bytes());
    s[24..28].copy_from_slice(&(p.byte.min(u64::from(u32::MAX)) as u32).to_le_bytes());
    let crc = crc32c::crc32c(&s[..28]);
    s[28..32].copy_from_slice(&crc.to_le_bytes());
    s
}

fn decode(s: &[u8]) -> Option<(u64, Position)> {
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let crc = u32::from_le_bytes([s[28], s[29], s[30], s[31]]);
    if crc32c::crc32c(&s[..28]) != crc {
        return None;
    }
    let seq = word(0);
    if seq == 0 {
        return None;
    }
    Some((
        seq,
        Position {
            offset: word(8),
            segment: word(16),
            byte: u64::from(u32::from_le_bytes([s[24], s[25], s[26], s[27]])),
        },
    ))
}

impl CursorFile {
    /// Opens (creating, with both slots allocated) the cursor file `path`.
    /// Returns the saved position, if any slot is valid.
    pub fn open(path: &Path) -> io::Result<(CursorFile, Option<Position>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut buf = [0u8; 2 * SLOT];
        let len = file.metadata()?.len();
        if len < buf.len() as u64 {
            // New (or cut short before its first write): allocate both slots
            // now so later writes never need a new block.
            let mut have = vec![0u8; len as usize];
            file.read_exact_at(&mut have, 0)?;
            buf[..have.len()].copy_from_slice(&have);
            file.write_all_at(&buf, 0)?;
            file.sync_all()?;
            if let Some(dir) = path.parent() {
                super::segment::sync_dir(dir)?;
            }
        } else {
            file.read_exact_at(&mut buf, 0)?;
        }
        let best = [decode(&buf[..SLOT]), decode(&buf[SLOT..])]
            .into_iter()
            .flatten()
            .max_by_key(|(seq, _)| *seq);
        let (seq, pos) = match best {
            Some((seq, p)) => (seq, Some(p)),
            None => (0, None),
        };
        Ok((
            CursorFile {
                file,
                path: path.to_owned(),
                seq,
            },
            pos,
        ))
    }

    /// Durably records `p` (write in place + fdatasync).
    pub fn save(&mut self, p: Position) -> io::Result<()> {
        let seq = self.seq + 1;
        let slot = (seq % 2) * SLOT as u64;
        self.file.write_all_at(&encode(seq, p), slot)?;
        self.file.sync_data()?;
        self.seq = seq;
        Ok(())
    }

    /// The file's path (for error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(o: u64) -> Position {
        Position {
            offset: o,
            segment: o / 10 * 10,
            byte: o * 3,
        }
    }

    #[test]
    fn a_new_cursor_file_has_no_position_and_keeps_the_last_saved_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.cur");
        let (mut c, none) = CursorFile::open(&p).unwrap();
        assert_eq!(none, None);
        for o in 1..=5 {
            c.save(pos(o)).unwrap();
        }
        drop(c);
        assert_eq!(CursorFile::open(&p).unwrap().1, Some(pos(5)));
    }

    #[test]
    fn a_torn_slot_falls_back_to_the_previous_cursor() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.cur");
        let (mut c, _) = CursorFile::open(&p).unwrap();
        c.save(pos(7)).unwrap(); // seq 1 -> slot 1
        c.save(pos(8)).unwrap(); // seq 2 -> slot 0
        drop(c);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[5] ^= 0xff; // damage slot 0
        std::fs::write(&p, &bytes).unwrap();
        let (mut c, got) = CursorFile::open(&p).unwrap();
        assert_eq!(got, Some(pos(7)));
        // The next save goes on; reopening sees it.
        c.save(pos(9)).unwrap();
        drop(c);
        assert_eq!(CursorFile::open(&p).unwrap().1, Some(pos(9)));
    }
}
