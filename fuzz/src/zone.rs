//! The shipped zone (`zone/*.json`, embedded at build time) and decoders
//! over it.

use std::sync::{Arc, OnceLock};

use wastewatch::decode::{ClockAction, DecodePolicy, Decoder};
use wastewatch::pb::DeviceKind;
use wastewatch::registry::Registry;

/// `zone/sites.json` as shipped.
pub const SITES: &str = include_str!("../../zone/sites.json");
/// `zone/devices.json` as shipped.
pub const DEVICES: &str = include_str!("../../zone/devices.json");
/// `zone/permits.json` as shipped.
pub const PERMITS: &str = include_str!("../../zone/permits.json");
/// `config/wastewatch.example.toml` as shipped.
pub const EXAMPLE_TOML: &str = include_str!("../../config/wastewatch.example.toml");

/// Receive time of every fuzzed message (2026-09-21).
pub const NOW_MS: i64 = 1_790_000_000_000;

/// The shipped registry. The shipped files must load: a zone that does not
/// is a failure of its own, reported here rather than hidden by an empty
/// registry.
pub fn registry() -> &'static Arc<Registry> {
    static R: OnceLock<Arc<Registry>> = OnceLock::new();
    R.get_or_init(|| match Registry::from_json_strs(SITES, DEVICES, PERMITS) {
        Ok(r) => Arc::new(r),
        Err(e) => panic!("the shipped zone does not load: {e}"),
    })
}

/// A registered device, flattened.
#[derive(Clone, Debug)]
pub struct Dev {
    /// Device id.
    pub id: String,
    /// Its site.
    pub site_id: String,
    /// Its kind.
    pub kind: DeviceKind,
}

/// Every registered device, sorted by id (so an input byte picks the same
/// device on every run).
pub fn devices() -> &'static [Dev] {
    static D: OnceLock<Vec<Dev>> = OnceLock::new();
    D.get_or_init(|| {
        let mut v: Vec<Dev> = registry()
            .devices
            .values()
            .map(|d| Dev {
                id: d.id.clone(),
                site_id: d.site_id.clone(),
                kind: d.kind,
            })
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    })
}

/// Every registered site id, sorted.
pub fn site_ids() -> &'static [String] {
    static S: OnceLock<Vec<String>> = OnceLock::new();
    S.get_or_init(|| {
        let mut v: Vec<String> = registry().sites.keys().cloned().collect();
        v.sort();
        v
    })
}

/// The decoder of the shipped configuration (clock action `restamp`).
pub fn decoder() -> &'static Decoder {
    static D: OnceLock<Decoder> = OnceLock::new();
    D.get_or_init(|| Decoder::new(registry().clone(), DecodePolicy::default()))
}

/// The same decoder with clock action `reject`.
pub fn rejecting_decoder() -> &'static Decoder {
    static D: OnceLock<Decoder> = OnceLock::new();
    D.get_or_init(|| {
        let mut p = DecodePolicy::default();
        p.clock.action = ClockAction::Reject;
        Decoder::new(registry().clone(), p)
    })
}
