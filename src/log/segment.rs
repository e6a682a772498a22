//! Segment files: naming, listing, and the frame-by-frame scan that
//! recovery and readers without a saved position use.
//!
//! A segment is named after the first offset (or quarantine id) it holds,
//! zero-padded so names sort like numbers: `00000000000000012345.seg`.
//! Only the newest segment of a directory is ever appended to; a segment is
//! fsynced before the next one is created, so after a crash only the newest
//! can end in a torn write.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::frame::{self, Bad, Frame};

const SUFFIX: &str = ".seg";

/// Path of the segment starting at `base` in `dir`.
pub fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SUFFIX}"))
}

/// Bases of the segments in `dir`, oldest first. Other files are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(base) = stem.parse::<u64>() {
                out.push(base);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Makes a directory entry change (create, rename, unlink) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Why a scan stopped before the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The bytes at the position are not a frame.
    Bad(Bad),
    /// A well-formed frame the caller refused (wrong offset or kind).
    Refused,
}

/// Where a scan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanEnd {
    /// Byte position after the last accepted frame.
    pub end: u64,
    /// Why it stopped early; `None` when it reached the end of the file.
    pub stop: Option<Stop>,
    /// File length.
    pub file_len: u64,
}

/// Reads the frames of `file` from byte `from`, calling `visit(frame,
/// position)` for each; `visit` returns false to refuse a frame, which ends
/// the scan there. Reads in chunks, so memory stays bounded by the largest
/// frame.
pub fn scan(
    file: &File,
    from: u64,
    mut visit: impl FnMut(&Frame<'_>, u64) -> bool,
) -> io::Result<ScanEnd> {
    let file_len = file.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = from;
    loop {
        if pos >= file_len {
            return Ok(ScanEnd {
                end: pos,
                stop: None,
                file_len,
            });
        }
        let want = ((file_len - pos) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..want], pos)?;
        let mut at = 0usize;
        loop {
            match frame::parse(&buf[at..want]) {
                Ok((f, size)) => {
                    if !visit(&f, pos + at as u64) {
                        return Ok(ScanEnd {
                            end: pos + at as u64,
                            stop: Some(Stop::Refused),
                            file_len,
                        });
                    }
                    at += size;
                }
                Err(Bad::Incomplete { need }) => {
                    if pos + at as u64 >= file_len {
                        return Ok(ScanEnd {
                            end: file_len,
                            stop: None,
                            file_len,
                        });
                    }
                    if pos + at as u64 + need as u64 > file_len {
                        // The file itself ends inside the frame: a torn tail.
                        return Ok(ScanEnd {
                            end: pos + at as u64,
                            stop: Some(Stop::Bad(Bad::Incomplete { need })),
                            file_len,
                        });
                    }
                    if at == 0 {
                        // A frame larger than the buffer: grow and re-read.
                        buf.resize(need, 0);
                    }
                    break;
                }
                Err(bad) => {
                    return Ok(ScanEnd {
                        end: pos + at as u64,
                        stop: Some(Stop::Bad(bad)),
                        file_len,
                    })
                }
            }
        }
        pos += at as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::frame::{stamp, FrameBuf, Kind};

    fn write_frames(path: &Path, n: u64, first: u64) -> Vec<u8> {
        let mut f = FrameBuf::new(Kind::Record);
        for i in 0..n {
            f.push(format!("record {i}").as_bytes()).unwrap();
        }
        let mut b = f.as_bytes().to_vec();
        stamp(&mut b, first);
        std::fs::write(path, &b).unwrap();
        b
    }

    #[test]
    fn segments_are_listed_oldest_first_and_strangers_ignored() {
        let d = tempfile::tempdir().unwrap();
        for base in [300u64, 2, 40] {
            std::fs::write(path(d.path(), base), b"").unwrap();
        }
        std::fs::write(d.path().join("notes.txt"), b"").unwrap();
        std::fs::write(d.path().join("123.seg"), b"").unwrap();
        assert_eq!(list(d.path()).unwrap(), vec![2, 40, 300]);
    }

    #[test]
    fn a_scan_visits_every_frame_and_stops_at_a_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path(), 10);
        let b = write_frames(&p, 3, 10);
        let full = b.len() as u64;
        // Tear the last frame.
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(full - 2).unwrap();
        let file = File::open(&p).unwrap();
        let mut seen = Vec::new();
        let end = scan(&file, 0, |fr, _| {
            seen.push(fr.offset);
            true
        })
        .unwrap();
        assert_eq!(seen, vec![10, 11]);
        assert!(matches!(end.stop, Some(Stop::Bad(Bad::Incomplete { .. }))));
        assert_eq!(end.file_len, full - 2);
        assert!(end.end < end.file_len);
    }

    #[test]
    fn a_refused_frame_ends_the_scan_at_its_position() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path(), 0);
        write_frames(&p, 5, 0);
        let file = File::open(&p).unwrap();
        let mut positions = Vec::new();
        let end = scan(&file, 0, |fr, pos| {
            positions.push(pos);
            fr.offset < 2
        })
        .unwrap();
        assert_eq!(end.stop, Some(Stop::Refused));
        assert_eq!(end.end, positions[2]);
    }

    #[test]
    fn frames_larger_than_the_read_buffer_are_read_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path(), 0);
        let mut f = FrameBuf::new(Kind::Record);
        f.push(&vec![7u8; 3 << 20]).unwrap();
        f.push(b"small").unwrap();
        let mut b = f.as_bytes().to_vec();
        stamp(&mut b, 0);
        std::fs::write(&p, &b).unwrap();
        let mut sizes = Vec::new();
        let end = scan(&File::open(&p).unwrap(), 0, |fr, _| {
            sizes.push(fr.payload.len());
            true
        })
        .unwrap();
        assert_eq!(sizes, vec![3 << 20, 5]);
        assert_eq!(end.stop, None);
    }
}
