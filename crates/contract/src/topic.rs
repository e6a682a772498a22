//! MQTT topic grammar: `wastewatch/v1/{site_id}/{device_kind}/{device_id}/{channel}`,
//! optionally followed by `/json` for legacy devices that cannot set the
//! MQTT 5 content type.
//!
//! Parsing borrows from the topic string (no allocation on the hot path) and
//! checks every id against the id grammar, so an id that reaches a
//! line-protocol tag is always made of safe characters.

use crate::error::{DecodeError, ErrorKind};
use crate::pb::DeviceKind;

/// Topic prefix including the contract version.
pub const PREFIX: &str = "wastewatch/v1/";
/// Subscription filter matching every device topic.
pub const FILTER_ALL: &str = "wastewatch/v1/#";
/// Longest id accepted, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// What a message on a topic carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Periodic readings and fixes.
    Telemetry,
    /// Event-driven messages (a weighing, a door opening…).
    Event,
    /// Birth, heartbeat, last will.
    Status,
}

impl Channel {
    /// Topic segment for this channel.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telemetry => "telemetry",
            Channel::Event => "event",
            Channel::Status => "status",
        }
    }
}

/// A parsed device topic, borrowing its ids from the topic string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topic<'a> {
    /// Site id segment.
    pub site_id: &'a str,
    /// Device family segment.
    pub kind: DeviceKind,
    /// Device id segment.
    pub device_id: &'a str,
    /// Channel segment.
    pub channel: Channel,
    /// True when the topic ends in `/json` (legacy JSON payload).
    pub json_suffix: bool,
}

/// Topic segment name of a device kind.
pub fn kind_segment(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Weighbridge => "weighbridge",
        DeviceKind::Bin => "bin",
        DeviceKind::Storage => "storage",
        DeviceKind::Truck => "truck",
        DeviceKind::Unspecified => "unspecified",
    }
}

/// Parses a topic kind segment; `None` for anything outside the four kinds.
pub fn parse_kind(s: &str) -> Option<DeviceKind> {
    match s {
        "weighbridge" => Some(DeviceKind::Weighbridge),
        "bin" => Some(DeviceKind::Bin),
        "storage" => Some(DeviceKind::Storage),
        "truck" => Some(DeviceKind::Truck),
        _ => None,
    }
}

/// Bytes allowed in an id after the first: `[A-Za-z0-9_.:-]`.
const ID_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
        c += 1;
    }
    t
};

/// Checks an id against `[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}`.
pub fn check_id(what: &str, id: &str) -> Result<(), DecodeError> {
    let bytes = id.as_bytes();
    if bytes.is_empty() {
        return Err(DecodeError::new(
            ErrorKind::InvalidId,
            format!("{what} is empty"),
        ));
    }
    if bytes.len() > MAX_ID_LEN {
        return Err(DecodeError::new(
            ErrorKind::InvalidId,
            format!(
                "{what} is {} bytes long, the limit is {MAX_ID_LEN}",
                bytes.len()
            ),
        ));
    }
    // One table lookup per byte (the hot path checks two ids per message).
    if !bytes[0].is_ascii_alphanumeric() || !bytes.iter().all(|&c| ID_BYTES[usize::from(c)]) {
        return Err(DecodeError::new(
            ErrorKind::InvalidId,
            format!("{what} {id:?} must match [A-Za-z0-9][A-Za-z0-9_.:-]*"),
        ));
    }
    Ok(())
}

/// Splits `s` at its first `/` when everything before it is a valid id
/// (the grammar of [`check_id`]); `None` otherwise.
#[inline]
fn id_segment(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let n = b.iter().position(|&c| !ID_BYTES[usize::from(c)])?;
    if n == 0 || n > MAX_ID_LEN || b[n] != b'/' || !b[0].is_ascii_alphanumeric() {
        return None;
    }
    // `/` is ASCII: `n` and `n + 1` are char boundaries.
    Some((s.get(..n)?, s.get(n + 1..)?))
}

/// The `/`-separated segments of a topic: the same items as
/// `str::split('/')`, found with a plain byte search (segments are short, so
/// this beats the generic `memchr`-based searcher).
struct Segments<'a>(Option<&'a str>);

impl<'a> Iterator for Segments<'a> {
    type Item = &'a str;

    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        let s = self.0?;
        match s.bytes().position(|b| b == b'/') {
            Some(i) => {
                // `/` is ASCII, so `i` and `i + 1` are char boundaries.
                self.0 = s.get(i + 1..);
                s.get(..i)
            }
            None => {
                self.0 = None;
                Some(s)
            }
        }
    }
}

impl<'a> Topic<'a> {
    /// Parses and checks a topic.
    pub fn parse(topic: &'a str) -> Result<Topic<'a>, DecodeError> {
        match Topic::parse_fast(topic) {
            Some(t) => Ok(t),
            None => Topic::parse_checked(topic),
        }
    }

    /// The common case in one pass: each id is checked while its end is
    /// searched for. `None` for anything unusual (a bad id, an unknown kind
    /// or channel, a wrong segment count…), which [`Topic::parse_checked`]
    /// then refuses with its precise error; whenever this returns `Some`,
    /// that function would return the same topic.
    #[inline]
    fn parse_fast(topic: &'a str) -> Option<Topic<'a>> {
        let rest = topic.strip_prefix(PREFIX)?;
        let (site_id, rest) = id_segment(rest)?;
        let slash = rest.bytes().position(|b| b == b'/')?;
        let kind = parse_kind(rest.get(..slash)?)?;
        let (device_id, rest) = id_segment(rest.get(slash + 1..)?)?;
        let (channel_s, json_suffix) = match rest.strip_suffix("/json") {
            Some(c) => (c, true),
            None => (rest, false),
        };
        let channel = match channel_s {
            "telemetry" => Channel::Telemetry,
            "event" => Channel::Event,
            "status" => Channel::Status,
            _ => return None,
        };
        Some(Topic {
            site_id,
            kind,
            device_id,
            channel,
            json_suffix,
        })
    }

    /// Parses and checks a topic segment by segment, naming the first
    /// problem found.
    fn parse_checked(topic: &'a str) -> Result<Topic<'a>, DecodeError> {
        let malformed = |why: &str| {
            DecodeError::new(
                ErrorKind::MalformedTopic,
                format!(
                    "topic {topic:?} {why}; expected wastewatch/v1/{{site}}/{{kind}}/{{device}}/{{channel}}[/json]"
                ),
            )
        };
        let rest = topic
            .strip_prefix(PREFIX)
            .ok_or_else(|| malformed("does not start with wastewatch/v1/"))?;
        let mut parts = Segments(Some(rest));
        let site_id = parts.next().ok_or_else(|| malformed("has no site"))?;
        let kind_s = parts
            .next()
            .ok_or_else(|| malformed("has no device kind"))?;
        let device_id = parts.next().ok_or_else(|| malformed("has no device id"))?;
        let channel_s = parts.next().ok_or_else(|| malformed("has no channel"))?;
        let json_suffix = match parts.next() {
            None => false,
            Some("json") => true,
            Some(other) => return Err(malformed(&format!("has unexpected segment {other:?}"))),
        };
        if parts.next().is_some() {
            return Err(malformed("has too many segments"));
        }
        let kind = parse_kind(kind_s).ok_or_else(|| {
            DecodeError::new(
                ErrorKind::UnknownKind,
                format!("device kind {kind_s:?} in topic is not one of weighbridge, bin, storage, truck"),
            )
        })?;
        let channel = match channel_s {
            "telemetry" => Channel::Telemetry,
            "event" => Channel::Event,
            "status" => Channel::Status,
            other => {
                return Err(malformed(&format!(
                    "has channel {other:?}, expected telemetry, event or status"
                )))
            }
        };
        check_id("site id in topic", site_id)?;
        check_id("device id in topic", device_id)?;
        Ok(Topic {
            site_id,
            kind,
            device_id,
            channel,
            json_suffix,
        })
    }

    /// Formats a topic for publishing.
    pub fn format(
        site_id: &str,
        kind: DeviceKind,
        device_id: &str,
        channel: Channel,
        json: bool,
    ) -> String {
        let mut s = format!(
            "{PREFIX}{site_id}/{}/{device_id}/{}",
            kind_segment(kind),
            channel.as_str()
        );
        if json {
            s.push_str("/json");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_well_formed_topic_parses_into_its_parts() {
        let t = Topic::parse("wastewatch/v1/site-1/truck/truck-7/telemetry").unwrap();
        assert_eq!(t.site_id, "site-1");
        assert_eq!(t.kind, DeviceKind::Truck);
        assert_eq!(t.device_id, "truck-7");
        assert_eq!(t.channel, Channel::Telemetry);
        assert!(!t.json_suffix);
    }

    #[test]
    fn format_and_parse_are_inverse() {
        for kind in [
            DeviceKind::Weighbridge,
            DeviceKind::Bin,
            DeviceKind::Storage,
            DeviceKind::Truck,
        ] {
            for ch in [Channel::Telemetry, Channel::Event, Channel::Status] {
                for json in [false, true] {
                    let s = Topic::format("s.1", kind, "d:2", ch, json);
                    let t = Topic::parse(&s).unwrap();
                    assert_eq!(
                        (t.site_id, t.kind, t.device_id, t.channel, t.json_suffix),
                        ("s.1", kind, "d:2", ch, json)
                    );
                }
            }
        }
    }

    #[test]
    fn bad_topics_are_refused_with_the_right_kind() {
        let cases: &[(&str, ErrorKind)] = &[
            ("", ErrorKind::MalformedTopic),
            ("other/v1/s/bin/d/telemetry", ErrorKind::MalformedTopic),
            ("wastewatch/v2/s/bin/d/telemetry", ErrorKind::MalformedTopic),
            ("wastewatch/v1/s/bin/d", ErrorKind::MalformedTopic),
            (
                "wastewatch/v1/s/bin/d/telemetry/xml",
                ErrorKind::MalformedTopic,
            ),
            (
                "wastewatch/v1/s/bin/d/telemetry/json/x",
                ErrorKind::MalformedTopic,
            ),
            ("wastewatch/v1/s/bin/d/metrics", ErrorKind::MalformedTopic),
            ("wastewatch/v1/s/drone/d/telemetry", ErrorKind::UnknownKind),
            ("wastewatch/v1//bin/d/telemetry", ErrorKind::InvalidId),
            ("wastewatch/v1/s/bin/d x/telemetry", ErrorKind::InvalidId),
            ("wastewatch/v1/s/bin/-d/telemetry", ErrorKind::InvalidId),
        ];
        for (topic, kind) in cases {
            let err = Topic::parse(topic).unwrap_err();
            assert_eq!(err.kind, *kind, "{topic}: {err}");
        }
    }

    fn topic_piece() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "wastewatch",
            "v1",
            "s",
            "site-1",
            "-x",
            "a b",
            "bin",
            "truck",
            "weighbridge",
            "storage",
            "drone",
            "d",
            "d:2",
            "telemetry",
            "event",
            "status",
            "json",
            "xml",
            "",
            "豫",
            "a.b_c",
            "0123456789012345678901234567890123456789012345678901234567890123",
            "01234567890123456789012345678901234567890123456789012345678901234",
        ])
        .prop_map(str::to_owned)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20000, ..ProptestConfig::default() })]

        #[test]
        fn the_one_pass_parse_agrees_with_the_checked_parse(
            site in topic_piece(), kind in topic_piece(), device in topic_piece(),
            channel in topic_piece(), tail in prop::collection::vec(topic_piece(), 0..3),
            good in prop::collection::vec(any::<bool>(), 5),
            prefix in prop::sample::select(vec!["wastewatch/v1/", "wastewatch/v1/", "", "wastewatch/v2/"]),
        ) {
            // Mostly well-formed topics with one or two pieces swapped for
            // arbitrary ones, so both the accepting and refusing paths run.
            let pick = |ok: bool, fallback: &str, piece: &str| if ok { fallback.to_owned() } else { piece.to_owned() };
            let mut segs = vec![
                pick(good[0], "site-1", &site),
                pick(good[1], "truck", &kind),
                pick(good[2], "d:2", &device),
                pick(good[3], "status", &channel),
            ];
            if !good[4] {
                segs.extend(tail);
            }
            let topic = format!("{prefix}{}", segs.join("/"));
            let checked = Topic::parse_checked(&topic);
            if let Some(fast) = Topic::parse_fast(&topic) {
                prop_assert_eq!(Ok(fast), checked.clone().map_err(|e| e.to_string()));
            }
            let parsed = Topic::parse(&topic).map_err(|e| e.to_string());
            prop_assert_eq!(parsed, checked.map_err(|e| e.to_string()));
        }
    }

    #[test]
    fn well_formed_topics_take_the_one_pass_path() {
        for t in [
            "wastewatch/v1/site-1/truck/truck-7/telemetry",
            "wastewatch/v1/s.1/bin/d:2/status/json",
            "wastewatch/v1/S/weighbridge/wb_1/event",
        ] {
            assert_eq!(
                Topic::parse_fast(t).ok_or(()),
                Topic::parse_checked(t).map_err(|_| ()),
                "{t}"
            );
        }
        assert!(Topic::parse_fast("wastewatch/v1/s/bin/d x/telemetry").is_none());
    }

    #[test]
    fn segments_split_exactly_like_str_split() {
        for s in [
            "",
            "/",
            "//",
            "a",
            "a/",
            "/a",
            "a/b",
            "a//b",
            "豫/a/",
            "x/y/z/w/v/u/t",
        ] {
            assert_eq!(
                Segments(Some(s)).collect::<Vec<_>>(),
                s.split('/').collect::<Vec<_>>(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn the_id_table_matches_the_id_grammar() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-');
            assert_eq!(ID_BYTES[usize::from(b)], want, "byte {b:#04x}");
        }
    }

    #[test]
    fn an_overlong_id_is_refused_naming_its_length() {
        let long = "a".repeat(65);
        let err = Topic::parse(&format!("wastewatch/v1/s/bin/{long}/telemetry")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidId);
        assert!(err.detail.contains("65 bytes"), "{err}");
    }
}
