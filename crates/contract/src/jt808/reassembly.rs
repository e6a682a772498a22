//! Sub-package reassembly (JT/T 808-2019 §4.4.3.4): a long message is cut
//! into packages numbered 1..=total with consecutive serial numbers; the
//! body is the packages' bodies in order. Pure and bounded: at most
//! `max_pending` messages in progress per connection, at most
//! `max_message_bytes` per message, and each must complete within
//! `timeout_ms` of its first package, else what arrived is handed back (to
//! be quarantined with its raw frames).

use super::frame::{Frame, Header, MAX_BODY};

/// A message put back together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembled {
    /// The first package's header, without the package fields, with the
    /// first package's serial.
    pub header: Header,
    /// The whole body.
    pub body: Vec<u8>,
    /// Every package's raw frame, in package order.
    pub raw: Vec<u8>,
    /// Every package's serial (each is answered).
    pub serials: Vec<u16>,
}

/// What feeding a package gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fed {
    /// More packages are needed.
    Incomplete,
    /// The message is whole.
    Complete(Assembled),
    /// Refused (with the raw frames to quarantine and why).
    Refused {
        /// Raw frames.
        raw: Vec<u8>,
        /// Why.
        detail: String,
    },
}

/// One package received: its body, its raw frame and its serial.
type Part = (Vec<u8>, Vec<u8>, u16);

#[derive(Debug)]
struct Pending {
    msg_id: u16,
    base: u16,
    total: u16,
    header: Header,
    parts: Vec<Option<Part>>,
    started_ms: i64,
}

impl Pending {
    fn raw(&self) -> Vec<u8> {
        self.parts
            .iter()
            .flatten()
            .flat_map(|(_, raw, _)| raw.iter().copied())
            .collect()
    }

    fn missing(&self) -> Vec<u16> {
        (1..=self.total)
            .filter(|i| self.parts[usize::from(*i) - 1].is_none())
            .collect()
    }
}

/// The messages in progress on one connection.
#[derive(Debug)]
pub struct Reassembly {
    pending: Vec<Pending>,
    max_pending: usize,
    max_message_bytes: usize,
    timeout_ms: i64,
}

fn list(v: &[u16]) -> String {
    let s: Vec<String> = v.iter().take(10).map(u16::to_string).collect();
    let more = if v.len() > 10 { ", …" } else { "" };
    format!("{}{more}", s.join(", "))
}

impl Reassembly {
    /// Limits as documented on the module.
    pub fn new(max_pending: usize, max_message_bytes: usize, timeout_ms: i64) -> Reassembly {
        Reassembly {
            pending: Vec::new(),
            max_pending: max_pending.max(1),
            max_message_bytes,
            timeout_ms,
        }
    }

    /// Messages in progress.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is in progress.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Feeds one package (`frame.header.package` is `Some`) received at
    /// `now_ms`, with its raw bytes. An evicted older message (when
    /// `max_pending` are in progress) is returned in `evicted`.
    pub fn feed(
        &mut self,
        frame: Frame,
        raw: &[u8],
        now_ms: i64,
        evicted: &mut Vec<(Vec<u8>, String)>,
    ) -> Fed {
        let Some(p) = frame.header.package else {
            return Fed::Refused {
                raw: raw.to_vec(),
                detail: "not a sub-package".into(),
            };
        };
        let msg_id = frame.header.msg_id;
        let base = frame.header.serial.wrapping_sub(p.index - 1);
        let most = usize::from(p.total) * MAX_BODY;
        if most > self.max_message_bytes && usize::from(p.total) > 1 {
            // Judged on the worst case so that no package of it is held.
            let bytes_if_full = most;
            return Fed::Refused {
                raw: raw.to_vec(),
                detail: format!(
                    "message 0x{msg_id:04X} in {} packages may be up to {bytes_if_full} bytes, above jt808.max_message_bytes ({})",
                    p.total, self.max_message_bytes
                ),
            };
        }
        let pos = self
            .pending
            .iter()
            .position(|q| q.msg_id == msg_id && q.base == base && q.total == p.total);
        let i = match pos {
            Some(i) => i,
            None => {
                if self.pending.len() >= self.max_pending {
                    let old = self.pending.remove(0);
                    evicted.push((
                        old.raw(),
                        format!(
                            "sub-packaged message 0x{:04X} (serial {}) dropped incomplete: {} other messages were in progress (jt808 limit {}); missing packages {} of {}",
                            old.msg_id,
                            old.base,
                            self.max_pending,
                            self.max_pending,
                            list(&old.missing()),
                            old.total
                        ),
                    ));
                }
                let mut header = frame.header.clone();
                header.package = None;
                header.serial = base;
                self.pending.push(Pending {
                    msg_id,
                    base,
                    total: p.total,
                    header,
                    parts: vec![None; usize::from(p.total)],
                    started_ms: now_ms,
                });
                self.pending.len() - 1
            }
        };
        let q = &mut self.pending[i];
        // A repeated package replaces the earlier copy.
        q.parts[usize::from(p.index) - 1] = Some((frame.body, raw.to_vec(), frame.header.serial));
        if q.parts.iter().any(Option::is_none) {
            return Fed::Incomplete;
        }
        let q = self.pending.remove(i);
        let mut body = Vec::new();
        let mut raw_all = Vec::new();
        let mut serials = Vec::with_capacity(q.parts.len());
        for (b, r, s) in q.parts.into_iter().flatten() {
            body.extend_from_slice(&b);
            raw_all.extend_from_slice(&r);
            serials.push(s);
        }
        Fed::Complete(Assembled {
            header: q.header,
            body,
            raw: raw_all,
            serials,
        })
    }

    /// Hands back the messages older than the timeout at `now_ms`: their raw
    /// frames and why.
    pub fn expire(&mut self, now_ms: i64) -> Vec<(Vec<u8>, String)> {
        let timeout = self.timeout_ms;
        let mut out = Vec::new();
        self.pending.retain(|q| {
            if now_ms - q.started_ms < timeout {
                return true;
            }
            out.push((
                q.raw(),
                format!(
                    "sub-packaged message 0x{:04X} (serial {}) incomplete after {} ms: packages {} of {} missing",
                    q.msg_id,
                    q.base,
                    timeout,
                    list(&q.missing()),
                    q.total
                ),
            ));
            false
        });
        out
    }
}
