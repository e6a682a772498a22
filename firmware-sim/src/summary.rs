//! The end-of-run summary: what was sent and what the broker acknowledged,
//! per device kind and per device, so a checker can reconcile it with what
//! the service stored.
//!
//! Per device it lists the seq ranges sent with a valid payload (every one
//! of them must end up in the service's log exactly once, duplicates
//! included), the seqs sent with an expected-quarantine payload, the seqs
//! sent twice, the seqs never acked by the broker, and the seq reserved for
//! an MQTT will that never fired (the service never sees that one).

use std::collections::BTreeMap;

use serde::Serialize;

/// A set of `u64` kept as sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RangeSet(Vec<(u64, u64)>);

impl RangeSet {
    /// Adds `v` (in-order inserts are O(1)).
    pub fn insert(&mut self, v: u64) {
        if let Some(last) = self.0.last_mut() {
            if v == last.1 + 1 {
                last.1 = v;
                return;
            }
            if v >= last.0 && v <= last.1 {
                return;
            }
        }
        let pos = self.0.partition_point(|r| r.1 < v);
        if self.0.get(pos).is_some_and(|r| r.0 <= v) {
            return;
        }
        let joins_prev = pos > 0 && self.0[pos - 1].1 + 1 == v;
        let joins_next = self.0.get(pos).is_some_and(|r| r.0 == v + 1);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.0[pos - 1].1 = self.0[pos].1;
                self.0.remove(pos);
            }
            (true, false) => self.0[pos - 1].1 = v,
            (false, true) => self.0[pos].0 = v,
            (false, false) => self.0.insert(pos, (v, v)),
        }
    }

    /// The ranges.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// True when `v` is in the set.
    pub fn contains(&self, v: u64) -> bool {
        let pos = self.0.partition_point(|r| r.1 < v);
        self.0.get(pos).is_some_and(|r| r.0 <= v)
    }

    /// Number of values.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|r| r.1 - r.0 + 1).sum()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What one device sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DeviceSummary {
    /// Device family (`weighbridge`, `bin`, `storage`, `truck`).
    pub kind: String,
    /// Messages handed to the MQTT client, duplicates included.
    pub sent: u64,
    /// Messages the broker acknowledged (PUBACK).
    pub acked: u64,
    /// Lowest seq sent (0 if none).
    pub first_seq: u64,
    /// Highest seq sent.
    pub last_seq: u64,
    /// Seqs sent with a valid payload, as inclusive ranges (including a
    /// LAST_WILL the broker published for a dropped per-device
    /// connection).
    pub ranges: RangeSet,
    /// Seqs sent with a payload the service must quarantine.
    pub quarantine_seqs: Vec<u64>,
    /// Seqs published more than once (`duplicate_redelivery`).
    pub duplicate_seqs: Vec<u64>,
    /// Seqs sent but not acked when the run ended (0 stands for payloads
    /// without an envelope).
    pub unacked_seqs: Vec<u64>,
    /// Payloads sent without an envelope, hence without a seq (the
    /// `malformed_protobuf` fault); all must be quarantined.
    pub unsequenced_sent: u64,
    /// Seq reserved for the registered MQTT will, when it never fired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unused_will_seq: Option<u64>,
}

/// The whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Seed used.
    pub seed: u64,
    /// Scenarios active.
    pub scenarios: Vec<String>,
    /// Scenario → device it took (fleet-wide scenarios map to "").
    pub assignments: Vec<(String, String, String)>,
    /// Simulated start and end, Unix ms.
    pub sim_start_unix_ms: i64,
    /// Simulated time reached.
    pub sim_end_unix_ms: i64,
    /// Wall-clock seconds of publishing.
    pub wall_seconds: f64,
    /// MQTT connections used.
    pub connections: usize,
    /// Messages handed to the MQTT client.
    pub sent: u64,
    /// Messages acknowledged by the broker.
    pub acked: u64,
    /// PUBACKs with an error reason code (the broker refused the message).
    pub rejected_by_broker: u64,
    /// Sent per device kind.
    pub sent_by_kind: BTreeMap<String, u64>,
    /// Acked per device kind.
    pub acked_by_kind: BTreeMap<String, u64>,
    /// Messages sent that the service must quarantine.
    pub expected_quarantined: u64,
    /// The same by expected quarantine reason.
    pub expected_quarantined_by_reason: BTreeMap<String, u64>,
    /// Second copies sent by `duplicate_redelivery`.
    pub duplicates_sent: u64,
    /// Last wills fired by dropping a per-device connection (the broker
    /// publishes them; not counted in `sent`).
    pub wills_triggered: u64,
    /// Messages generated but not sent when the run stopped.
    pub unsent_backlog: u64,
    /// Per device; messages for devices outside the registry (the
    /// `unknown_device` fault) are under their own ids.
    pub devices: BTreeMap<String, DeviceSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_out_of_order_inserts() {
        let mut s = RangeSet::default();
        for v in [1, 2, 3, 7, 5, 6, 10, 4, 9] {
            s.insert(v);
        }
        assert_eq!(s.ranges(), &[(1, 7), (9, 10)]);
        s.insert(8);
        s.insert(3);
        assert_eq!(s.ranges(), &[(1, 10)]);
        assert_eq!(s.len(), 10);
        assert!(s.contains(8) && !s.contains(11));
    }
}
