//! Typed values in the raw configuration that never stop the collection of
//! errors: a bad enum name or address is kept with its problem and reported
//! by the section's validation together with every other error, instead of
//! ending deserialization at the first one.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// A value of type `T`, or what was given instead and why it is not one.
#[derive(Clone, Debug, PartialEq)]
pub enum Lenient<T> {
    /// A valid value.
    Valid(T),
    /// Not a `T`: the value as given and the parser's reason.
    Invalid {
        /// The value as written (strings without quotes).
        given: String,
        /// Why it is not a `T`.
        reason: String,
    },
}

impl<T> Lenient<T> {
    /// The value; an invalid one adds `"{key} {given:?}: {reason}"` to
    /// `errors` and gives `fallback`, so validation goes on.
    pub fn or_report(self, errors: &mut Vec<String>, key: &str, fallback: T) -> T {
        match self {
            Lenient::Valid(v) => v,
            Lenient::Invalid { given, reason } => {
                errors.push(format!("{key} {given:?}: {reason}"));
                fallback
            }
        }
    }
}

impl<T: Default> Default for Lenient<T> {
    fn default() -> Self {
        Lenient::Valid(T::default())
    }
}

impl<T> From<T> for Lenient<T> {
    fn from(v: T) -> Self {
        Lenient::Valid(v)
    }
}

fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(match serde_json::from_value::<T>(v.clone()) {
            Ok(t) => Lenient::Valid(t),
            Err(e) => Lenient::Invalid {
                given: shown(&v),
                reason: e.to_string(),
            },
        })
    }
}

/// `Option<T>` where an empty string also means "not set": an environment
/// variable cannot be absent and present at once, so
/// `WASTEWATCH__HTTP__LISTEN=` switches a default off.
pub fn empty_as_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
        Some(v) => serde_json::from_value(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct T {
        #[serde(default = "restamp")]
        kind: Lenient<crate::decode::ClockAction>,
        #[serde(default, deserialize_with = "empty_as_none")]
        file: Option<std::path::PathBuf>,
        #[serde(default, deserialize_with = "empty_as_none")]
        listen: Option<Lenient<std::net::SocketAddr>>,
    }

    fn restamp() -> Lenient<crate::decode::ClockAction> {
        Lenient::Valid(crate::decode::ClockAction::Restamp)
    }

    /// Through the `config` crate, as the service reads its file.
    fn parse(toml: &str) -> T {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap()
    }

    #[test]
    fn a_bad_value_is_kept_with_its_reason_and_a_good_one_parsed() {
        let t: T = parse("kind = \"sometimes\"\nlisten = \"nowhere\"");
        let mut e = Vec::new();
        let k = t.kind.or_report(
            &mut e,
            "decode.clock_action",
            crate::decode::ClockAction::Reject,
        );
        assert_eq!(k, crate::decode::ClockAction::Reject);
        let l = t
            .listen
            .unwrap()
            .or_report(&mut e, "http.listen", ([0, 0, 0, 0], 1).into());
        assert_eq!(l.port(), 1);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("decode.clock_action \"sometimes\": unknown variant"),
            "{e:?}"
        );
        assert!(
            e[0].contains("`restamp`") && e[0].contains("`reject`"),
            "{e:?}"
        );
        assert!(e[1].starts_with("http.listen \"nowhere\": "), "{e:?}");

        let t: T = parse("kind = \"reject\"\nfile = \"/x\"\nlisten = \"127.0.0.1:9\"");
        assert_eq!(t.kind, Lenient::Valid(crate::decode::ClockAction::Reject));
        assert_eq!(t.file.as_deref(), Some(std::path::Path::new("/x")));
        assert!(matches!(t.listen, Some(Lenient::Valid(a)) if a.port() == 9));
    }

    #[test]
    fn an_empty_string_or_a_missing_key_is_none() {
        let t: T = parse("file = \"\"\nlisten = \"\"");
        assert_eq!(t.file, None);
        assert!(t.listen.is_none());
        let t: T = parse("");
        assert_eq!((t.file, t.listen.is_none()), (None, true));
    }
}
