//! One terminal connection as a pure state machine: raw frames in, records,
//! quarantine entries and replies out. The async shell (`server.rs`) makes
//! the records and quarantine entries durable before it sends the replies
//! of the same [`Output`], which is how a 0x8001 for a location report comes
//! only after its fix is in the log.
//!
//! States: connected → (registration, optional) → authenticated. Location
//! reports are accepted only from an authenticated terminal and only under
//! the phone number it authenticated with; before that they are answered
//! "failure" (the terminal keeps them and authenticates again), not stored.

use std::sync::Arc;

use crate::decode::{ClockPolicy, ErrorKind};
use crate::pb;
use crate::registry::{normalize_plate, normalize_terminal_phone, Registry};

use super::frame::{self, Frame, FrameError, Header, Piece};
use super::message::{
    self, id, register_result, result, Authentication, Batch, Location, Registration,
};
use super::reassembly::{Fed, Reassembly};
use super::record::{fix_record, Terminal};

/// Content type of quarantined JT/T 808 frames.
pub const CONTENT_TYPE: &str = "application/x-jt808";

/// Failed authentications after which the connection is closed.
pub const MAX_AUTH_FAILURES: u32 = 3;

/// What a connection needs to know, shared by all of them.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Key the authentication codes are derived from (HMAC-SHA256 of the
    /// phone number), so they survive restarts without being stored.
    pub auth_key: Vec<u8>,
    /// Device-clock window (the service's `[decode]` policy).
    pub clock: ClockPolicy,
    /// Sub-packaged messages in progress per connection.
    pub max_pending_messages: usize,
    /// Largest reassembled message, bytes.
    pub max_message_bytes: usize,
    /// A sub-packaged message must complete within this, ms.
    pub subpackage_timeout_ms: i64,
}

impl Policy {
    /// The authentication code of the terminal with this phone number.
    pub fn auth_code(&self, phone: &str) -> String {
        let norm = normalize_terminal_phone(phone).unwrap_or(phone);
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.auth_key);
        let tag = ring::hmac::sign(&key, format!("jt808-auth:{norm}").as_bytes());
        tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }
}

/// What one step produced. The shell appends `records` and `quarantine` to
/// the log (one group), waits until they are durable, and only then writes
/// `replies`; with nothing to append it writes them at once.
#[derive(Debug, Default)]
pub struct Output {
    /// Records (truck fixes).
    pub records: Vec<pb::LogRecord>,
    /// Quarantine entries, with their reason (for the counters).
    pub quarantine: Vec<(ErrorKind, pb::QuarantineRecord)>,
    /// Encoded reply frames, back to back.
    pub replies: Vec<u8>,
    /// Messages answered failure or unsupported (not stored).
    pub refused: u64,
    /// Close the connection after the replies, for this reason.
    pub close: Option<String>,
}

impl Output {
    /// True when nothing needs to be made durable first.
    pub fn nothing_to_store(&self) -> bool {
        self.records.is_empty() && self.quarantine.is_empty()
    }
}

/// One connection.
#[derive(Debug)]
pub struct Conn {
    registry: Arc<Registry>,
    policy: Arc<Policy>,
    peer: String,
    authed: Option<Terminal>,
    reassembly: Reassembly,
    next_serial: u16,
    auth_failures: u32,
}

impl Conn {
    /// A new connection from `peer` (for messages and quarantine topics).
    pub fn new(registry: Arc<Registry>, policy: Arc<Policy>, peer: String) -> Conn {
        let reassembly = Reassembly::new(
            policy.max_pending_messages,
            policy.max_message_bytes,
            policy.subpackage_timeout_ms,
        );
        Conn {
            registry,
            policy,
            peer,
            authed: None,
            reassembly,
            next_serial: 0,
            auth_failures: 0,
        }
    }

    /// The authenticated terminal, if any.
    pub fn terminal(&self) -> Option<&Terminal> {
        self.authed.as_ref()
    }

    fn quarantine(
        &self,
        out: &mut Output,
        topic: String,
        raw: &[u8],
        kind: ErrorKind,
        detail: String,
        received_at_ms: i64,
    ) {
        tracing::debug!(peer = %self.peer, %topic, reason = %kind, %detail, "jt808 message quarantined");
        out.quarantine.push((
            kind,
            pb::QuarantineRecord {
                topic,
                payload: raw.to_vec(),
                content_type: CONTENT_TYPE.to_owned(),
                reason: kind.as_str().to_owned(),
                detail,
                received_at_unix_ms: received_at_ms,
                ..Default::default()
            },
        ));
    }

    fn topic(&self, h: Option<&Header>) -> String {
        match h {
            Some(h) => format!("jt808/{}/0x{:04X}", h.phone, h.msg_id),
            None => format!("jt808/{}", self.peer),
        }
    }

    /// One piece of the byte stream (see [`frame::Splitter`]).
    pub fn on_piece(&mut self, piece: &Piece, received_at_ms: i64) -> Output {
        let mut out = Output::default();
        match piece {
            Piece::Frame(raw) => self.on_frame(raw, received_at_ms, &mut out),
            Piece::Outside(raw) => {
                let detail = FrameError::Outside { len: raw.len() }.to_string();
                let topic = self.topic(None);
                self.quarantine(
                    &mut out,
                    topic,
                    raw,
                    ErrorKind::MalformedFrame,
                    detail,
                    received_at_ms,
                );
            }
            Piece::TooLong(raw) => {
                let detail = FrameError::TooLong { limit: raw.len() }.to_string();
                let topic = self.topic(None);
                self.quarantine(
                    &mut out,
                    topic,
                    raw,
                    ErrorKind::MalformedFrame,
                    detail,
                    received_at_ms,
                );
            }
        }
        out
    }

    /// Sub-packaged messages that timed out at `now_ms`, quarantined.
    pub fn on_tick(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        for (raw, detail) in self.reassembly.expire(now_ms) {
            let topic = self.topic(None);
            self.quarantine(
                &mut out,
                topic,
                &raw,
                ErrorKind::MalformedFrame,
                detail,
                now_ms,
            );
        }
        out
    }

    fn on_frame(&mut self, raw: &[u8], now: i64, out: &mut Output) {
        let f = match frame::parse(raw) {
            Ok(f) => f,
            Err(e) => {
                // Not answered: the header cannot be trusted, and a terminal
                // retransmits what is not answered (a corrupted frame comes
                // again intact).
                let topic = self.topic(None);
                self.quarantine(
                    out,
                    topic,
                    raw,
                    ErrorKind::MalformedFrame,
                    e.to_string(),
                    now,
                );
                return;
            }
        };
        if f.header.encryption != 0 {
            let topic = self.topic(Some(&f.header));
            self.quarantine(
                out,
                topic,
                raw,
                ErrorKind::MalformedFrame,
                format!(
                    "body is encrypted (properties bits 10-12 = {:03b}); wastewatch does not hold terminal RSA keys, send it unencrypted",
                    f.header.encryption
                ),
                now,
            );
            self.reply_general(out, &f.header, f.header.serial, result::UNSUPPORTED);
            return;
        }
        if f.header.package.is_some() {
            let mut evicted = Vec::new();
            let fed = self.reassembly.feed(f, raw, now, &mut evicted);
            for (raw, detail) in evicted {
                let topic = self.topic(None);
                self.quarantine(out, topic, &raw, ErrorKind::MalformedFrame, detail, now);
            }
            match fed {
                Fed::Incomplete => {}
                Fed::Refused { raw, detail } => {
                    let topic = self.topic(None);
                    self.quarantine(out, topic, &raw, ErrorKind::MalformedFrame, detail, now);
                }
                Fed::Complete(a) => {
                    self.handle(&a.header, &a.body, &a.raw, &a.serials, now, out);
                }
            }
            return;
        }
        let Frame { header, body } = f;
        let serial = header.serial;
        self.handle(&header, &body, raw, &[serial], now, out);
    }

    fn reply(&mut self, out: &mut Output, to: &Header, msg_id: u16, body: &[u8]) {
        let h = Header {
            msg_id,
            version: to.version,
            encryption: 0,
            phone: to.phone.clone(),
            serial: self.next_serial,
            package: None,
        };
        self.next_serial = self.next_serial.wrapping_add(1);
        match frame::encode(&h, body) {
            Ok(b) => out.replies.extend_from_slice(&b),
            // The phone came from a parsed header of the same width and the
            // bodies are a few bytes: cannot happen.
            Err(e) => tracing::error!(error = %e, "jt808 reply not encodable"),
        }
    }

    fn reply_general(&mut self, out: &mut Output, to: &Header, serial: u16, code: u8) {
        let body = message::platform_response(serial, to.msg_id, code);
        self.reply(out, to, id::PLATFORM_RESPONSE, &body);
    }

    fn reply_all(&mut self, out: &mut Output, to: &Header, serials: &[u16], code: u8) {
        for s in serials {
            self.reply_general(out, to, *s, code);
        }
    }

    fn handle(
        &mut self,
        h: &Header,
        body: &[u8],
        raw: &[u8],
        serials: &[u16],
        now: i64,
        out: &mut Output,
    ) {
        let topic = self.topic(Some(h));
        match h.msg_id {
            id::TERMINAL_RESPONSE => {}
            id::HEARTBEAT => self.reply_all(out, h, serials, result::OK),
            id::LOGOUT => {
                self.authed = None;
                self.reply_all(out, h, serials, result::OK);
                out.close = Some("terminal logged out (0x0003)".into());
            }
            id::REGISTER => match Registration::parse(body, h.version) {
                Err(e) => {
                    self.quarantine(out, topic, raw, ErrorKind::MalformedFrame, e.0, now);
                    self.reply_all(out, h, serials, result::MESSAGE_ERROR);
                }
                Ok(reg) => self.register(out, h, &reg),
            },
            id::AUTHENTICATE => match Authentication::parse(body, h.version) {
                Err(e) => {
                    self.quarantine(out, topic, raw, ErrorKind::MalformedFrame, e.0, now);
                    self.reply_all(out, h, serials, result::MESSAGE_ERROR);
                }
                Ok(a) => self.authenticate(out, h, &a),
            },
            id::LOCATION | id::BATCH_LOCATION => {
                let Some(t) = self
                    .authed
                    .clone()
                    .filter(|t| normalize_terminal_phone(&h.phone) == Some(t.phone.as_str()))
                else {
                    tracing::info!(peer = %self.peer, phone = %h.phone, "jt808 location report before authentication answered failure");
                    out.refused += 1;
                    self.reply_all(out, h, serials, result::FAILURE);
                    return;
                };
                if h.msg_id == id::LOCATION {
                    match Location::parse(body) {
                        Err(e) => {
                            self.quarantine(out, topic, raw, ErrorKind::MalformedFrame, e.0, now)
                        }
                        Ok(l) => match fix_record(&l, &t, now, &self.policy.clock) {
                            Ok(r) => out.records.push(r),
                            Err(e) => self.quarantine(out, topic, raw, e.kind, e.detail, now),
                        },
                    }
                } else {
                    match Batch::parse(body) {
                        Err(e) => {
                            self.quarantine(out, topic, raw, ErrorKind::MalformedFrame, e.0, now)
                        }
                        Ok(b) => {
                            let n = b.items.len();
                            for (i, item) in b.items.iter().enumerate() {
                                let what = format!("item {} of {n}: ", i + 1);
                                match Location::parse(item) {
                                    Err(e) => self.quarantine(
                                        out,
                                        topic.clone(),
                                        raw,
                                        ErrorKind::MalformedFrame,
                                        what + &e.0,
                                        now,
                                    ),
                                    Ok(l) => match fix_record(&l, &t, now, &self.policy.clock) {
                                        Ok(r) => out.records.push(r),
                                        Err(e) => self.quarantine(
                                            out,
                                            topic.clone(),
                                            raw,
                                            e.kind,
                                            what + &e.detail,
                                            now,
                                        ),
                                    },
                                }
                            }
                        }
                    }
                }
                // Answered once what it carried (records or quarantine) is
                // durable: the shell writes replies after the append.
                self.reply_all(out, h, serials, result::OK);
            }
            other => {
                tracing::debug!(peer = %self.peer, msg_id = format!("0x{other:04X}"), "jt808 message not supported");
                out.refused += 1;
                self.reply_all(out, h, serials, result::UNSUPPORTED);
            }
        }
    }

    fn register(&mut self, out: &mut Output, h: &Header, reg: &Registration) {
        let Some(dev) = self.registry.truck_by_terminal_phone(&h.phone) else {
            tracing::warn!(peer = %self.peer, phone = %h.phone, "jt808 registration refused: no truck has this terminal phone number");
            out.refused += 1;
            let b = message::register_response(h.serial, register_result::NO_SUCH_TERMINAL, "");
            self.reply(out, h, id::REGISTER_RESPONSE, &b);
            return;
        };
        let registered = dev.truck.as_ref().map_or("", |t| t.plate.as_str());
        if reg.plate_color != 0
            && !reg.plate.is_empty()
            && normalize_plate(&reg.plate) != normalize_plate(registered)
        {
            tracing::warn!(peer = %self.peer, phone = %h.phone, plate = %reg.plate, registered, "jt808 registration refused: the plate is not the registered vehicle's");
            out.refused += 1;
            let b = message::register_response(h.serial, register_result::NO_SUCH_VEHICLE, "");
            self.reply(out, h, id::REGISTER_RESPONSE, &b);
            return;
        }
        let code = self.policy.auth_code(&h.phone);
        tracing::info!(peer = %self.peer, phone = %h.phone, device = %dev.id, "jt808 terminal registered");
        let b = message::register_response(h.serial, register_result::OK, &code);
        self.reply(out, h, id::REGISTER_RESPONSE, &b);
    }

    fn authenticate(&mut self, out: &mut Output, h: &Header, a: &Authentication) {
        let dev = self.registry.truck_by_terminal_phone(&h.phone);
        let ok = dev.is_some() && a.code == self.policy.auth_code(&h.phone);
        match (ok, dev) {
            (true, Some(dev)) => {
                tracing::info!(peer = %self.peer, phone = %h.phone, device = %dev.id, "jt808 terminal authenticated");
                self.authed = Some(Terminal {
                    device_id: dev.id.clone(),
                    site_id: dev.site_id.clone(),
                    plate: dev
                        .truck
                        .as_ref()
                        .map(|t| t.plate.clone())
                        .unwrap_or_default(),
                    phone: normalize_terminal_phone(&h.phone).unwrap_or("").to_owned(),
                });
                self.auth_failures = 0;
                self.reply_general(out, h, h.serial, result::OK);
            }
            _ => {
                self.auth_failures += 1;
                out.refused += 1;
                tracing::warn!(peer = %self.peer, phone = %h.phone, known = dev.is_some(), "jt808 authentication failed");
                self.reply_general(out, h, h.serial, result::FAILURE);
                if self.auth_failures >= MAX_AUTH_FAILURES {
                    out.close = Some(format!("{MAX_AUTH_FAILURES} failed authentications"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
