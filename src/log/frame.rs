//! The frame: how one entry sits in a segment file.
//!
//! ```text
//! 0      4      8                      16                 16+len
//! | len  | crc  | offset (56) kind (8)  | payload ........ |
//! ```
//!
//! All integers little-endian. `len` is the payload length. `crc` is
//! CRC-32C (Castagnoli, as in iSCSI, ext4 and Kafka's record batches) over
//! bytes 8..16+len, so a frame whose offset, kind or payload changed is
//! detected, and so is a frame copied to the wrong place. The offset is the
//! log offset of a record, the id of a quarantine entry, or, for a
//! tombstone, the id of the quarantine entry it releases.
//!
//! Producers build frames with [`FrameBuf`], leaving offset and CRC zero;
//! the log's single writer stamps both ([`stamp`]) when it assigns offsets,
//! so no other code path can give an entry an offset.

/// Bytes before the payload.
pub const HEADER: usize = 16;

/// Largest payload a frame may carry. A length above it can only be a
/// damaged header, which is how recovery tells garbage from a record.
pub const MAX_PAYLOAD: usize = 16 << 20;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A decoded record (`pb::LogRecord`).
    Record = 1,
    /// A quarantined message (`pb::QuarantineRecord`).
    Quarantine = 2,
    /// Releases the quarantine entry whose id is the frame's offset.
    Tombstone = 3,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Record),
            2 => Some(Kind::Quarantine),
            3 => Some(Kind::Tombstone),
            _ => None,
        }
    }
}

const OFFSET_MASK: u64 = (1 << 56) - 1;

/// Frames of one kind, built back to back in one buffer without a
/// per-entry allocation; offsets and CRCs are filled in by the writer.
#[derive(Debug)]
pub struct FrameBuf {
    kind: Kind,
    buf: Vec<u8>,
    count: u64,
}

impl FrameBuf {
    /// An empty buffer of frames of `kind`.
    pub fn new(kind: Kind) -> FrameBuf {
        FrameBuf {
            kind,
            buf: Vec::new(),
            count: 0,
        }
    }

    /// Appends one frame whose payload `write` puts at the end of the
    /// buffer it is given. A payload above [`MAX_PAYLOAD`] is refused and
    /// nothing is appended.
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Result<(), TooLarge> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; HEADER]);
        write(&mut self.buf);
        let len = self.buf.len() - start - HEADER;
        if len > MAX_PAYLOAD {
            self.buf.truncate(start);
            return Err(TooLarge { len });
        }
        self.buf[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
        self.buf[start + 15] = self.kind as u8;
        self.count += 1;
        Ok(())
    }

    /// Appends one frame with `payload`.
    pub fn push(&mut self, payload: &[u8]) -> Result<(), TooLarge> {
        self.push_with(|b| b.extend_from_slice(payload))
    }

    /// Appends a tombstone for quarantine entry `id` (its offset is the id,
    /// so the writer does not stamp it). Only for [`Kind::Tombstone`]
    /// buffers.
    pub(crate) fn push_tombstone(&mut self, id: u64) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0u8; HEADER]);
        let word = (id & OFFSET_MASK) | (u64::from(Kind::Tombstone as u8) << 56);
        self.buf[start + 8..start + 16].copy_from_slice(&word.to_le_bytes());
        let crc = crc32c::crc32c(&self.buf[start + 8..]);
        self.buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        self.count += 1;
    }

    /// Frames held.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes held (headers included): what the frames take on disk.
    pub fn bytes(&self) -> u64 {
        self.buf.len() as u64
    }

    /// True when no frame is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The kind of its frames.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Drops every frame, keeping the allocation for the next batch.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.buf
    }
}

/// A payload above [`MAX_PAYLOAD`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("log entry of {len} bytes is larger than the largest frame ({MAX_PAYLOAD} bytes)")]
pub struct TooLarge {
    /// Payload length.
    pub len: usize,
}

/// Gives the frames in `buf` (built by [`FrameBuf`]) consecutive offsets
/// from `first` and computes their CRCs. Returns how many frames there were.
pub(crate) fn stamp(buf: &mut [u8], first: u64) -> u64 {
    let mut pos = 0;
    let mut n = 0u64;
    while pos + HEADER <= buf.len() {
        let len = u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
        let end = pos + HEADER + len;
        let kind = buf[pos + 15];
        let word = ((first + n) & OFFSET_MASK) | (u64::from(kind) << 56);
        buf[pos + 8..pos + 16].copy_from_slice(&word.to_le_bytes());
        let crc = crc32c::crc32c(&buf[pos + 8..end]);
        buf[pos + 4..pos + 8].copy_from_slice(&crc.to_le_bytes());
        pos = end;
        n += 1;
    }
    n
}

/// One frame read back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Offset (record), id (quarantine entry) or released id (tombstone).
    pub offset: u64,
    /// What it holds.
    pub kind: Kind,
    /// The payload.
    pub payload: &'a [u8],
}

/// Why the bytes at a position are not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    /// The buffer ends inside the frame (a torn write, or simply a read
    /// that stopped early).
    Incomplete {
        /// Bytes the whole frame would need.
        need: usize,
    },
    /// The length is impossible: the header is damaged.
    BadLength {
        /// The length read.
        len: u32,
    },
    /// The checksum does not match.
    BadCrc {
        /// Payload length in the (possibly damaged) header.
        len: u32,
        /// Offset in the (possibly damaged) header.
        offset: u64,
    },
    /// The checksum matches but the kind byte is unknown.
    BadKind {
        /// The kind byte.
        kind: u8,
    },
}

/// Parses the frame at the start of `buf`. On success returns it and its
/// total size.
pub fn parse(buf: &[u8]) -> Result<(Frame<'_>, usize), Bad> {
    if buf.len() < HEADER {
        return Err(Bad::Incomplete { need: HEADER });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len as usize > MAX_PAYLOAD {
        return Err(Bad::BadLength { len });
    }
    let total = HEADER + len as usize;
    if buf.len() < total {
        return Err(Bad::Incomplete { need: total });
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let mut w = [0u8; 8];
    w.copy_from_slice(&buf[8..16]);
    let word = u64::from_le_bytes(w);
    if crc32c::crc32c(&buf[8..total]) != crc {
        return Err(Bad::BadCrc {
            len,
            offset: word & OFFSET_MASK,
        });
    }
    let kind = (word >> 56) as u8;
    let Some(kind) = Kind::from_u8(kind) else {
        return Err(Bad::BadKind { kind });
    };
    Ok((
        Frame {
            offset: word & OFFSET_MASK,
            kind,
            payload: &buf[HEADER..total],
        },
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(kind: Kind, payloads: &[&[u8]], first: u64) -> Vec<u8> {
        let mut f = FrameBuf::new(kind);
        for p in payloads {
            f.push(p).unwrap();
        }
        let mut b = f.as_bytes().to_vec();
        assert_eq!(stamp(&mut b, first), payloads.len() as u64);
        b
    }

    #[test]
    fn stamped_frames_parse_back_with_consecutive_offsets() {
        let b = stamped(Kind::Record, &[b"one", b"", b"three"], 41);
        let (f, n) = parse(&b).unwrap();
        assert_eq!(
            (f.offset, f.kind, f.payload, n),
            (41, Kind::Record, &b"one"[..], 19)
        );
        let (f, m) = parse(&b[n..]).unwrap();
        assert_eq!((f.offset, f.payload), (42, &b""[..]));
        let (f, _) = parse(&b[n + m..]).unwrap();
        assert_eq!((f.offset, f.payload), (43, &b"three"[..]));
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let b = stamped(Kind::Quarantine, &[b"payload bytes"], 7);
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(parse(&c).is_err(), "flip of bit {bit} in byte {i} accepted");
            }
        }
    }

    #[test]
    fn a_truncated_frame_is_incomplete_not_garbage() {
        let b = stamped(Kind::Record, &[b"0123456789"], 0);
        for cut in 0..b.len() {
            assert!(
                matches!(parse(&b[..cut]), Err(Bad::Incomplete { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_impossible_length_is_reported_as_such() {
        let mut b = stamped(Kind::Record, &[b"x"], 0);
        b[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse(&b), Err(Bad::BadLength { len: u32::MAX }));
    }

    #[test]
    fn a_tombstone_carries_the_released_id() {
        let mut f = FrameBuf::new(Kind::Tombstone);
        f.push_tombstone(99);
        let (fr, n) = parse(f.as_bytes()).unwrap();
        assert_eq!(
            (fr.offset, fr.kind, fr.payload.len(), n),
            (99, Kind::Tombstone, 0, HEADER)
        );
    }

    #[test]
    fn a_payload_above_the_limit_is_refused_and_leaves_the_buffer_as_it_was() {
        let mut f = FrameBuf::new(Kind::Record);
        f.push(b"ok").unwrap();
        let err = f
            .push_with(|b| b.resize(b.len() + MAX_PAYLOAD + 1, 0))
            .unwrap_err();
        assert_eq!(err.len, MAX_PAYLOAD + 1);
        assert_eq!((f.count(), f.bytes()), (1, (HEADER + 2) as u64));
    }
}
