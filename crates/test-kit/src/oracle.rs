//! One oracle for every fault test: every (device, seq) the broker
//! acknowledged to the publisher is stored exactly once — one point, not
//! two with different times — or quarantined; nothing is invented.

use std::collections::{BTreeMap, BTreeSet};

use crate::influx_rows;

/// How many points each (device, seq) has in `measurement`.
pub fn stored_counts(db: &str, measurement: &str) -> BTreeMap<(String, u64), usize> {
    let mut out = BTreeMap::new();
    for r in influx_rows(
        db,
        &format!("SELECT \"seq\", \"device\" FROM \"{measurement}\""),
    ) {
        let k = (
            r["device"].as_str().unwrap_or("").to_owned(),
            r["seq"].as_u64().unwrap_or(u64::MAX),
        );
        *out.entry(k).or_insert(0) += 1;
    }
    out
}

/// What the oracle found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Acknowledged but neither stored nor allowed to be quarantined.
    pub missing: BTreeSet<(String, u64)>,
    /// Stored more than once (a second point for one message).
    pub duplicated: BTreeMap<(String, u64), usize>,
    /// Stored but never published.
    pub invented: BTreeSet<(String, u64)>,
}

impl Verdict {
    /// True when nothing is wrong.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.duplicated.is_empty() && self.invented.is_empty()
    }
}

/// Checks the points of `measurements` in `db` against `acked` (what the
/// broker acknowledged to the publisher); `quarantined` are messages the
/// test made invalid on purpose (they must not be stored).
pub fn exactly_once(
    db: &str,
    measurements: &[&str],
    acked: &BTreeSet<(String, u64)>,
    quarantined: &BTreeSet<(String, u64)>,
) -> Verdict {
    let mut counts: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for m in measurements {
        for (k, n) in stored_counts(db, m) {
            *counts.entry(k).or_insert(0) += n;
        }
    }
    let mut v = Verdict::default();
    for k in acked {
        match counts.get(k) {
            None if !quarantined.contains(k) => {
                v.missing.insert(k.clone());
            }
            Some(&n) if n > 1 => {
                v.duplicated.insert(k.clone(), n);
            }
            _ => {}
        }
    }
    for k in counts.keys() {
        if !acked.contains(k) || quarantined.contains(k) {
            v.invented.insert(k.clone());
        }
    }
    v
}
