//! JT/T 808 framing: delimiters, escaping, check code and the message header
//! of the 2013 and 2019 editions. Pure: bytes in, frames or a precise
//! [`FrameError`] out; never a panic.
//!
//! On the wire a message is `0x7E | escaped(header body check) | 0x7E`
//! (JT/T 808-2019 §4.4): inside, `0x7E` is sent as `0x7D 0x02` and `0x7D` as
//! `0x7D 0x01`; the check code is the XOR of every header and body byte.
//!
//! Header (§4.4.3), big-endian:
//!
//! | edition | bytes |
//! |---|---|
//! | 2013 | msg id u16, properties u16, phone BCD\[6\], serial u16, \[packages u16, index u16\] |
//! | 2019 | msg id u16, properties u16 (bit 14 set), protocol version u8, phone BCD\[10\], serial u16, \[packages u16, index u16\] |
//!
//! Properties: bits 0–9 body length, 10–12 encryption (bit 10: RSA), 13
//! sub-packaged, 14 version flag (2019), 15 reserved.

use std::fmt;

/// Frame delimiter.
pub const FLAG: u8 = 0x7E;
/// Escape byte.
pub const ESCAPE: u8 = 0x7D;
/// Longest body one frame can carry (10-bit length field).
pub const MAX_BODY: usize = 1023;

/// Which edition's header a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// JT/T 808-2013 (and 2011): 6-byte BCD phone number, no version byte.
    V2013,
    /// JT/T 808-2019: version flag set, protocol version byte, 10-byte BCD
    /// phone number.
    V2019 {
        /// The protocol version byte (1 for the first 2019 revision).
        protocol: u8,
    },
}

/// Sub-package fields of a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Package {
    /// Packages the message was cut into (≥ 1).
    pub total: u16,
    /// This package's number, 1-based (1 ≤ index ≤ total).
    pub index: u16,
}

/// A message header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message id, e.g. 0x0200.
    pub msg_id: u16,
    /// Edition.
    pub version: Version,
    /// Encryption bits (properties bits 10–12); 0 = none.
    pub encryption: u8,
    /// Terminal phone number, the BCD digits as sent (12 or 20 digits).
    pub phone: String,
    /// Message serial number (流水号).
    pub serial: u16,
    /// Present when the message is sub-packaged.
    pub package: Option<Package>,
}

impl Header {
    /// Bytes this header takes.
    pub fn len(&self) -> usize {
        let base = match self.version {
            Version::V2013 => 12,
            Version::V2019 { .. } => 17,
        };
        base + if self.package.is_some() { 4 } else { 0 }
    }

    /// Always false: a header has at least 12 bytes.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// One unescaped, checked frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The header.
    pub header: Header,
    /// The body (for a package: this package's part).
    pub body: Vec<u8>,
}

/// Why bytes are not a frame. Each names what was found and what the
/// standard requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// `0x7D` followed by a byte other than `0x01` or `0x02`, or last.
    BadEscape {
        /// Offset of the `0x7D` in the escaped content.
        at: usize,
        /// The byte after it, `None` at the end.
        next: Option<u8>,
    },
    /// Fewer bytes than a header and a check code.
    TooShort {
        /// Unescaped bytes (header, body and check code).
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The check code does not match.
    CheckCode {
        /// XOR of header and body.
        computed: u8,
        /// The last byte of the frame.
        received: u8,
    },
    /// The body length in the properties differs from the bytes present.
    LengthMismatch {
        /// Length field.
        declared: usize,
        /// Bytes between header and check code.
        actual: usize,
    },
    /// The phone number holds a nibble above 9.
    BadPhone {
        /// The phone bytes, hex.
        hex: String,
    },
    /// Sub-package fields that cannot be (index 0, above total, total 0).
    BadPackage {
        /// Total packages.
        total: u16,
        /// This package's number.
        index: u16,
    },
    /// More escaped bytes than the configured frame limit without an end
    /// delimiter.
    TooLong {
        /// The limit, bytes.
        limit: usize,
    },
    /// Bytes received outside `0x7E … 0x7E`.
    Outside {
        /// How many.
        len: usize,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::BadEscape { at, next: Some(b) } => write!(
                f,
                "escape byte 0x7D at offset {at} is followed by 0x{b:02X}; only 0x7D 0x01 (for 0x7D) and 0x7D 0x02 (for 0x7E) are defined"
            ),
            FrameError::BadEscape { at, next: None } => write!(
                f,
                "escape byte 0x7D at offset {at} ends the frame; it must be followed by 0x01 or 0x02"
            ),
            FrameError::TooShort { len, need } => write!(
                f,
                "frame has {len} bytes after unescaping; a header and check code need at least {need}"
            ),
            FrameError::CheckCode { computed, received } => write!(
                f,
                "check code is 0x{received:02X} but the XOR of header and body is 0x{computed:02X}"
            ),
            FrameError::LengthMismatch { declared, actual } => write!(
                f,
                "header declares a body of {declared} bytes but {actual} bytes follow it"
            ),
            FrameError::BadPhone { hex } => write!(
                f,
                "terminal phone number {hex} is not BCD (a nibble above 9)"
            ),
            FrameError::BadPackage { total, index } => write!(
                f,
                "sub-package {index} of {total}; packages are numbered 1 to a total of at least 1"
            ),
            FrameError::TooLong { limit } => write!(
                f,
                "no end delimiter 0x7E within {limit} bytes (jt808.max_frame_bytes); the longest frame the standard allows is about 2.1 KiB escaped"
            ),
            FrameError::Outside { len } => write!(
                f,
                "{len} byte(s) outside a 0x7E … 0x7E frame"
            ),
        }
    }
}

/// Splits a byte stream into the escaped contents between delimiters.
///
/// A frame is the bytes between a `0x7E` and the next one; empty contents
/// (`7E 7E`, as between back-to-back frames) are skipped, and an end flag
/// also opens the next frame, so a shared delimiter works too (bytes
/// between two frames then come as a frame that does not parse). Bytes
/// before the first delimiter are reported as
/// [`Piece::Outside`]; content longer than `max` without a delimiter as
/// [`Piece::TooLong`] (then skipped up to the next delimiter).
#[derive(Debug)]
pub struct Splitter {
    buf: Vec<u8>,
    /// Inside a frame (a start delimiter was seen).
    open: bool,
    /// Discarding an over-long frame up to the next delimiter.
    skipping: bool,
    max: usize,
}

/// What the splitter found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// A frame's escaped bytes, delimiters included, as received.
    Frame(Vec<u8>),
    /// Bytes outside any frame.
    Outside(Vec<u8>),
    /// The first `max` bytes of an over-long frame.
    TooLong(Vec<u8>),
}

impl Splitter {
    /// A splitter allowing frames of up to `max` escaped bytes.
    pub fn new(max: usize) -> Splitter {
        Splitter {
            buf: Vec::new(),
            open: false,
            skipping: false,
            max: max.max(16),
        }
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feeds bytes; appends what is complete to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Piece>) {
        for &b in data {
            if b == FLAG {
                if self.skipping {
                    // The over-long frame ends here; this flag may start the
                    // next one.
                    self.skipping = false;
                    self.open = true;
                    self.buf.clear();
                    self.buf.push(FLAG);
                } else if self.open {
                    if self.buf.len() > 1 {
                        self.buf.push(FLAG);
                        out.push(Piece::Frame(std::mem::take(&mut self.buf)));
                        // The end flag may also start the next frame (some
                        // terminals share it); bytes up to the next flag are
                        // then a frame, or a broken one.
                        self.buf.push(FLAG);
                    } else {
                        // `7E 7E`: the previous frame's end and this one's
                        // start, or a stray flag; stay open.
                        self.buf.clear();
                        self.buf.push(FLAG);
                    }
                } else {
                    if !self.buf.is_empty() {
                        out.push(Piece::Outside(std::mem::take(&mut self.buf)));
                    }
                    self.open = true;
                    self.buf.push(FLAG);
                }
                continue;
            }
            if self.skipping {
                continue;
            }
            self.buf.push(b);
            if self.buf.len() > self.max {
                let mut kept = std::mem::take(&mut self.buf);
                kept.truncate(self.max);
                if self.open {
                    out.push(Piece::TooLong(kept));
                    self.skipping = true;
                    self.open = false;
                } else {
                    out.push(Piece::Outside(kept));
                }
            }
        }
    }
}

/// Removes the escaping of `content` (the bytes between the delimiters).
pub fn unescape(content: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(content.len());
    let mut i = 0;
    while i < content.len() {
        let b = content[i];
        if b == ESCAPE {
            match content.get(i + 1) {
                Some(0x01) => out.push(ESCAPE),
                Some(0x02) => out.push(FLAG),
                next => {
                    return Err(FrameError::BadEscape {
                        at: i,
                        next: next.copied(),
                    })
                }
            }
            i += 2;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

/// XOR of every byte.
pub fn check_code(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Decodes BCD bytes into their digits.
pub fn bcd_digits(bytes: &[u8]) -> Option<String> {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nib in [b >> 4, b & 0x0F] {
            if nib > 9 {
                return None;
            }
            s.push(char::from(b'0' + nib));
        }
    }
    Some(s)
}

/// Parses one frame as received (with or without its delimiters).
pub fn parse(raw: &[u8]) -> Result<Frame, FrameError> {
    let content = raw.strip_prefix(&[FLAG]).unwrap_or(raw);
    let content = content.strip_suffix(&[FLAG]).unwrap_or(content);
    let b = unescape(content)?;
    if b.len() < 13 {
        return Err(FrameError::TooShort {
            len: b.len(),
            need: 13,
        });
    }
    let (data, check) = b.split_at(b.len() - 1);
    let computed = check_code(data);
    if computed != check[0] {
        return Err(FrameError::CheckCode {
            computed,
            received: check[0],
        });
    }
    let msg_id = u16_at(data, 0);
    let props = u16_at(data, 2);
    let body_len = usize::from(props & 0x03FF);
    let encryption = ((props >> 10) & 0x07) as u8;
    let packaged = props & 0x2000 != 0;
    let v2019 = props & 0x4000 != 0;
    let (version, phone_at, phone_len) = if v2019 {
        (Version::V2019 { protocol: data[4] }, 5, 10)
    } else {
        (Version::V2013, 4, 6)
    };
    let serial_at = phone_at + phone_len;
    let header_len = serial_at + 2 + if packaged { 4 } else { 0 };
    if data.len() < header_len {
        return Err(FrameError::TooShort {
            len: b.len(),
            need: header_len + 1,
        });
    }
    let phone_bytes = &data[phone_at..phone_at + phone_len];
    let phone = bcd_digits(phone_bytes).ok_or_else(|| FrameError::BadPhone {
        hex: hex(phone_bytes),
    })?;
    let serial = u16_at(data, serial_at);
    let package = if packaged {
        let total = u16_at(data, serial_at + 2);
        let index = u16_at(data, serial_at + 4);
        if total == 0 || index == 0 || index > total {
            return Err(FrameError::BadPackage { total, index });
        }
        Some(Package { total, index })
    } else {
        None
    };
    let actual = data.len() - header_len;
    if actual != body_len {
        return Err(FrameError::LengthMismatch {
            declared: body_len,
            actual,
        });
    }
    let body = data[header_len..].to_vec();
    Ok(Frame {
        header: Header {
            msg_id,
            version,
            encryption,
            phone,
            serial,
            package,
        },
        body,
    })
}

/// Hex of bytes, upper case, space-separated (for messages).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Why a frame cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Body above the 10-bit length field.
    #[error("body of {0} bytes is above the 1023 bytes one frame can carry")]
    BodyTooLong(usize),
    /// Phone number that is not digits or does not fit the edition.
    #[error("phone number {0:?} is not at most {1} decimal digits")]
    BadPhone(String, usize),
}

/// Encodes the BCD phone field of `width` bytes: the digits right-aligned,
/// zero-padded on the left.
pub fn bcd_phone(phone: &str, width: usize) -> Result<Vec<u8>, EncodeError> {
    let digits = width * 2;
    if phone.len() > digits || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EncodeError::BadPhone(phone.to_owned(), digits));
    }
    let padded = format!("{phone:0>digits$}");
    Ok(padded
        .as_bytes()
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0'))
        .collect())
}

/// Encodes a frame: header, body, check code, escaped and delimited.
pub fn encode(header: &Header, body: &[u8]) -> Result<Vec<u8>, EncodeError> {
    if body.len() > MAX_BODY {
        return Err(EncodeError::BodyTooLong(body.len()));
    }
    let mut data = Vec::with_capacity(header.len() + body.len() + 1);
    data.extend_from_slice(&header.msg_id.to_be_bytes());
    let mut props = body.len() as u16;
    props |= u16::from(header.encryption & 0x07) << 10;
    if header.package.is_some() {
        props |= 0x2000;
    }
    match header.version {
        Version::V2013 => {
            data.extend_from_slice(&props.to_be_bytes());
            data.extend_from_slice(&bcd_phone(&header.phone, 6)?);
        }
        Version::V2019 { protocol } => {
            props |= 0x4000;
            data.extend_from_slice(&props.to_be_bytes());
            data.push(protocol);
            data.extend_from_slice(&bcd_phone(&header.phone, 10)?);
        }
    }
    data.extend_from_slice(&header.serial.to_be_bytes());
    if let Some(p) = header.package {
        data.extend_from_slice(&p.total.to_be_bytes());
        data.extend_from_slice(&p.index.to_be_bytes());
    }
    data.extend_from_slice(body);
    data.push(check_code(&data));
    let mut out = Vec::with_capacity(data.len() + 8);
    out.push(FLAG);
    for b in data {
        match b {
            FLAG => out.extend_from_slice(&[ESCAPE, 0x02]),
            ESCAPE => out.extend_from_slice(&[ESCAPE, 0x01]),
            _ => out.push(b),
        }
    }
    out.push(FLAG);
    Ok(out)
}

#[cfg(test)]
mod tests;
