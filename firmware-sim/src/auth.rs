//! Broker credentials of the simulated devices.
//!
//! A broker configured like the shipped one (deploy/mosquitto/) refuses
//! anonymous clients and lets each device publish only under its own id.
//! Per-device connections log in as the device with its password from the
//! `device-secrets.txt` that `wastewatch devices credentials` writes (the
//! real per-device ACL); shared connections log in as one identity that the
//! broker must allow to write for every simulated device (a gateway). The
//! passwords never print: `Debug` shows names only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::config::SimError;

/// Who the simulator logs in as.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MqttAuth {
    /// User name and password of the shared connections (and, with
    /// per-device connections, of the one carrying the messages of devices
    /// outside the registry).
    pub shared: Option<(String, String)>,
    /// Device id → password, for per-device connections.
    pub devices: BTreeMap<String, String>,
    /// Put before every client id (the shipped broker config only lets in
    /// client ids starting with `ww:`).
    pub client_id_prefix: String,
}

impl fmt::Debug for MqttAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttAuth")
            .field("shared_user", &self.shared.as_ref().map(|(u, _)| u))
            .field("devices", &self.devices.len())
            .field("client_id_prefix", &self.client_id_prefix)
            .finish()
    }
}

impl MqttAuth {
    /// Credentials of device `id`'s own connection, if it has a password.
    pub fn device(&self, id: &str) -> Option<(&str, &str)> {
        self.devices
            .get_key_value(id)
            .map(|(k, p)| (k.as_str(), p.as_str()))
    }

    /// Credentials of the shared connections.
    pub fn shared(&self) -> Option<(&str, &str)> {
        self.shared.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads a password file: its first line.
pub fn read_password_file(path: &Path) -> Result<String, SimError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let pw = text.lines().next().unwrap_or("").trim().to_owned();
    if pw.is_empty() {
        return Err(SimError::Config(vec![format!(
            "password file {} is empty; put the password on its first line",
            path.display()
        )]));
    }
    Ok(pw)
}

/// Reads `device-secrets.txt`: `device_id password` per line, `#` comments.
pub fn read_device_secrets(path: &Path) -> Result<BTreeMap<String, String>, SimError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(id), Some(pw), None) => {
                out.insert(id.to_owned(), pw.to_owned());
            }
            _ => {
                return Err(SimError::Config(vec![format!(
                    "{} line {}: expected `device_id password` (as written by `wastewatch devices credentials`)",
                    path.display(),
                    i + 1
                )]))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_secrets_are_read_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.txt");
        std::fs::write(
            &p,
            "# comment\nbin-1 pw-one-secret\n\nbin-2 pw-two-secret\n",
        )
        .unwrap();
        let auth = MqttAuth {
            shared: Some(("gw".into(), "gw-secret".into())),
            devices: read_device_secrets(&p).unwrap(),
            client_id_prefix: String::new(),
        };
        assert_eq!(auth.device("bin-2"), Some(("bin-2", "pw-two-secret")));
        assert_eq!(auth.device("bin-3"), None);
        let d = format!("{auth:?}");
        assert!(!d.contains("secret"), "{d}");
        std::fs::write(&p, "bin-1\n").unwrap();
        assert!(read_device_secrets(&p).is_err());
    }

    #[test]
    fn several_shared_connections_under_one_user_name_are_refused() {
        let mut cfg = crate::SimConfig {
            connections: 2,
            ..crate::SimConfig::default()
        };
        assert!(cfg.validate().is_ok(), "anonymous: no user name to share");
        cfg.auth.shared = Some(("gw".into(), "pw".into()));
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("connections is 2 with one user name"), "{e}");
        cfg.connections = 1;
        assert!(cfg.validate().is_ok());
    }
}
