//! A truck's recent fixes, held compactly: an hour of a 600-truck fleet is
//! a quarter of a million fixes, so each is 48 bytes in one ring buffer per
//! truck (no tree node, no string), with the permit and home site as
//! indices into one table of names shared by every truck.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What a fix contributes to segments.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct FixLite {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub loaded: bool,
    /// Permit the fix is judged against (index into [`Names`]; the empty
    /// name: none valid).
    pub permit: u32,
    /// The truck's home site (for km without a permit), likewise.
    pub home: u32,
}

/// Where a new fix goes.
pub(super) enum Slot {
    /// Older than everything kept: its neighbours are forgotten.
    Late,
    /// A fix at this very time is there already.
    Seen,
    /// At this index, between these neighbours (either may be missing).
    Between(usize, Option<(i64, FixLite)>, Option<(i64, FixLite)>),
}

/// One truck's fixes of the last `reading_memory_ms` (and the one just
/// before), oldest first. Serialised as a list of
/// `[time, lat, lon, accuracy_m, loaded, permit, home]`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Track(VecDeque<(i64, FixLite)>);

type Row = (i64, f64, f64, f64, bool, u32, u32);

impl Serialize for Track {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|(t, f)| (t, f.lat, f.lon, f.accuracy_m, f.loaded, f.permit, f.home)),
        )
    }
}

impl<'de> Deserialize<'de> for Track {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rows = Vec::<Row>::deserialize(d)?;
        if rows.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(D::Error::custom("a track's fixes are not in time order"));
        }
        Ok(Track(
            rows.into_iter()
                .map(|(t, lat, lon, accuracy_m, loaded, permit, home)| {
                    (
                        t,
                        FixLite {
                            lat,
                            lon,
                            accuracy_m,
                            loaded,
                            permit,
                            home,
                        },
                    )
                })
                .collect(),
        ))
    }
}

impl Track {
    /// Where a fix at `t` goes, `memory` ms being kept.
    pub fn slot(&self, t: i64, memory: i64) -> Slot {
        // Fixes nearly always come in order: after the newest, no search.
        if let Some((newest, f)) = self.0.back() {
            if t > *newest {
                return Slot::Between(self.0.len(), Some((*newest, f.clone())), None);
            }
        }
        match self.0.binary_search_by_key(&t, |(k, _)| *k) {
            Ok(_) => Slot::Seen,
            Err(i) => {
                let oldest = self.0.front().map_or(i64::MIN, |(k, _)| *k);
                let newest = self.0.back().map_or(i64::MIN, |(k, _)| *k);
                if t < oldest && t < newest.saturating_sub(memory) {
                    return Slot::Late;
                }
                let prev = i.checked_sub(1).and_then(|j| self.0.get(j)).cloned();
                Slot::Between(i, prev, self.0.get(i).cloned())
            }
        }
    }

    /// Inserts at the index [`Track::slot`] gave, then keeps the fixes of
    /// the last `memory` ms and the one just before them (the left end of
    /// the first segment a late fix could split).
    pub fn insert(&mut self, at: usize, t: i64, f: FixLite, memory: i64) {
        self.0.insert(at, (t, f));
        let Some(&(newest, _)) = self.0.back() else {
            return;
        };
        // Drop the front while the fix after it is also older than the
        // memory (amortised O(1): each fix leaves once).
        while self.0.get(1).is_some_and(|(k, _)| *k < newest - memory) {
            self.0.pop_front();
        }
    }

    /// The fixes, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &(i64, FixLite)> {
        self.0.iter()
    }
}

/// The permit and site ids held fixes name, each once; fixes refer to them
/// by index. Serialised as the list of names.
#[derive(Clone, Debug, Default)]
pub(super) struct Names {
    list: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl PartialEq for Names {
    fn eq(&self, other: &Self) -> bool {
        self.list == other.list
    }
}

impl Serialize for Names {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.list.iter().map(|n| &**n))
    }
}

impl<'de> Deserialize<'de> for Names {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut names = Names::default();
        for n in Vec::<String>::deserialize(d)? {
            let before = names.len();
            names.intern(&n);
            if names.len() == before {
                return Err(D::Error::custom(format!("name {n:?} listed twice")));
            }
        }
        Ok(names)
    }
}

impl Names {
    /// The index of `s`, added if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        // Past 2^32 names (never: the registry's permits and sites), a new
        // name reads as none.
        let Ok(i) = u32::try_from(self.list.len()) else {
            return u32::MAX;
        };
        let a: Arc<str> = Arc::from(s);
        self.list.push(a.clone());
        self.index.insert(a, i);
        i
    }

    /// The name at `i` (empty if there is none).
    pub fn get(&self, i: u32) -> &str {
        self.list.get(i as usize).map_or("", |n| n)
    }

    /// True when every fix of `tracks` names an index of this table.
    pub fn covers<'a>(&self, mut tracks: impl Iterator<Item = &'a Track>) -> bool {
        let ok = |i: u32| i == u32::MAX || (i as usize) < self.list.len();
        tracks.all(|tr| tr.iter().all(|(_, f)| ok(f.permit) && ok(f.home)))
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

/// A fix as snapshots before the compact track held it (read only, to
/// restore such a snapshot after an upgrade).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub(super) struct LegacyFix {
    pub lat: f64,
    pub lon: f64,
    pub accuracy_m: f64,
    pub loaded: bool,
    pub permit: String,
    pub home: String,
}

/// Converts the fixes of an older snapshot.
pub(super) fn from_legacy(
    legacy: HashMap<String, std::collections::BTreeMap<i64, LegacyFix>>,
    names: &mut Names,
) -> HashMap<String, Track> {
    legacy
        .into_iter()
        .map(|(device, fixes)| {
            let track = fixes
                .into_iter()
                .map(|(t, f)| {
                    (
                        t,
                        FixLite {
                            lat: f.lat,
                            lon: f.lon,
                            accuracy_m: f.accuracy_m,
                            loaded: f.loaded,
                            permit: names.intern(&f.permit),
                            home: names.intern(&f.home),
                        },
                    )
                })
                .collect();
            (device, Track(track))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(i: u32) -> FixLite {
        FixLite {
            lat: 1.0,
            lon: 2.0,
            accuracy_m: 5.0,
            loaded: true,
            permit: i,
            home: 0,
        }
    }

    fn times(t: &Track) -> Vec<i64> {
        t.iter().map(|(k, _)| *k).collect()
    }

    fn add(tr: &mut Track, t: i64, memory: i64) -> bool {
        match tr.slot(t, memory) {
            Slot::Between(i, _, _) => {
                tr.insert(i, t, f(0), memory);
                true
            }
            _ => false,
        }
    }

    #[test]
    fn fixes_stay_in_time_order_and_only_the_memory_and_one_before_are_kept() {
        let mut tr = Track::default();
        for t in [10, 30, 20, 40] {
            assert!(add(&mut tr, t, 100));
        }
        assert_eq!(times(&tr), [10, 20, 30, 40]);
        assert!(matches!(tr.slot(30, 100), Slot::Seen));
        match tr.slot(25, 100) {
            Slot::Between(i, Some((a, _)), Some((b, _))) => assert_eq!((i, a, b), (2, 20, 30)),
            _ => panic!("25 is between 20 and 30"),
        }
        // 200: keep >= 100 and the one before (40).
        assert!(add(&mut tr, 200, 100));
        assert_eq!(times(&tr), [40, 200]);
        // Older than everything kept and than the memory: late.
        assert!(matches!(tr.slot(39, 100), Slot::Late));
        // Older than the oldest kept but inside the memory: taken.
        assert!(add(&mut tr, 150, 100));
        assert_eq!(times(&tr), [40, 150, 200]);
    }

    #[test]
    fn a_track_round_trips_and_a_disordered_one_is_refused() {
        let mut tr = Track::default();
        for t in [5, 1, 3] {
            add(&mut tr, t, 100);
        }
        let json = serde_json::to_string(&tr).unwrap();
        assert_eq!(
            json,
            "[[1,1.0,2.0,5.0,true,0,0],[3,1.0,2.0,5.0,true,0,0],[5,1.0,2.0,5.0,true,0,0]]"
        );
        assert_eq!(serde_json::from_str::<Track>(&json).unwrap(), tr);
        let bad = "[[3,1.0,2.0,5.0,true,0,0],[1,1.0,2.0,5.0,true,0,0]]";
        let e = serde_json::from_str::<Track>(bad).unwrap_err().to_string();
        assert!(e.contains("not in time order"), "{e}");
    }

    #[test]
    fn names_are_kept_once_and_checked() {
        let mut n = Names::default();
        assert_eq!((n.intern(""), n.intern("p-1"), n.intern("p-1")), (0, 1, 1));
        assert_eq!(n.get(1), "p-1");
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, r#"["","p-1"]"#);
        assert_eq!(serde_json::from_str::<Names>(&json).unwrap(), n);
        assert!(serde_json::from_str::<Names>(r#"["a","a"]"#).is_err());
        let mut tr = Track::default();
        tr.insert(0, 1, f(1), 100);
        assert!(n.covers([&tr].into_iter()));
        tr.insert(1, 2, f(2), 100);
        assert!(!n.covers([&tr].into_iter()));
    }

    #[test]
    fn a_fix_with_its_time_is_48_bytes() {
        assert_eq!(std::mem::size_of::<(i64, FixLite)>(), 48);
    }
}
