//! Broker credentials from the registry: `wastewatch devices credentials`.
//!
//! Every device logs in to the broker as its registry id with a password of
//! its own; the broker's ACL (`deploy/mosquitto/wastewatch.acl`) lets the
//! authenticated name (`%u`) publish only under that id, so a device (or a
//! stolen device password) can speak for one device only. The ingest service
//! has an identity of its own, the only one allowed to read
//! `wastewatch/v1/#`. This module writes what the broker and the devices
//! need:
//!
//! - `mosquitto.passwd` — the broker's password file, in Mosquitto 2's own
//!   format (`name:$7$iterations$salt$hash`, PBKDF2-HMAC-SHA512, the format
//!   `mosquitto_passwd` writes), every device and every ingest identity;
//! - `device-secrets.txt` — `device_id password` per line, for provisioning
//!   the devices (keep it like a private key: mode 0600); Sparkplug B edge
//!   nodes of the zone's `sparkplug.json` are identities too, under their
//!   `edge_node_id` (docs/PROTOCOLS.md);
//! - `<ingest-user>.password` — each ingest identity's password, for
//!   `mqtt.password_file`.
//!
//! Running it again keeps every password already issued (devices are not
//! re-flashed because a new device was registered), issues passwords for new
//! devices, drops devices no longer registered, and issues a new password for
//! each `--rotate`d name. Passwords are 192 random bits from the operating
//! system, so the hash's iteration count protects nothing a brute force could
//! reach; Mosquitto recomputes it at every login, so it stays low.
//!
//! Nothing here prints a password: the report counts.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::rand::SecureRandom as _;

use crate::registry::Registry;

/// PBKDF2 iterations of the hashes written (`mosquitto_passwd` writes 101).
pub const ITERATIONS: u32 = 1000;
/// Salt bytes: Mosquitto 2 refuses any other length.
const SALT_LEN: usize = 12;
/// Hash bytes: SHA-512.
const HASH_LEN: usize = 64;
/// Random bytes of a generated password (192 bits).
const PASSWORD_BYTES: usize = 24;

/// The broker's password file.
pub const PASSWD_FILE: &str = "mosquitto.passwd";
/// Device id → password, for provisioning.
pub const DEVICE_SECRETS_FILE: &str = "device-secrets.txt";
/// The ingest identity of the shipped ACL and example config.
pub const DEFAULT_INGEST_USER: &str = "wastewatch-ingest";

/// Why credentials could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A name the broker's files cannot hold, or that clashes.
    #[error("{0}")]
    BadName(String),
    /// An existing secrets file is malformed.
    #[error("{path} line {line}: {detail}; fix or delete the line (its device then gets a new password)")]
    BadSecretsFile {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// The system random generator failed.
    #[error("the system random generator failed; no credentials written")]
    Random,
}

/// What to generate.
#[derive(Clone, Debug)]
pub struct Request {
    /// Output directory (created, mode 0700).
    pub out: PathBuf,
    /// Ingest identities (read access to `wastewatch/v1/#` in the ACL).
    pub ingest_users: Vec<String>,
    /// Names (device ids or ingest users) to issue a new password for.
    pub rotate: Vec<String>,
}

/// What was done (no secrets).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Devices in the password file.
    pub devices: usize,
    /// Devices that got their first password now.
    pub issued: Vec<String>,
    /// Names whose password was replaced on request.
    pub rotated: Vec<String>,
    /// Devices in the old secrets file but no longer registered.
    pub removed: Vec<String>,
    /// Ingest identities in the password file.
    pub ingest_users: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} device(s) ({} new, {} rotated, {} removed), ingest user(s): {}",
            self.devices,
            self.issued.len(),
            self.rotated.len(),
            self.removed.len(),
            self.ingest_users.join(", ")
        )
    }
}

/// A name Mosquitto's password file and ACL patterns can hold: no `:` (the
/// password file's separator), no `+`, `#` or `/` (a `%u` holding them is
/// refused by the ACL check), no whitespace.
fn check_name(kind: &str, name: &str) -> Result<(), CredentialsError> {
    let bad = name.is_empty()
        || name.len() > 128
        || name.chars().any(|c| {
            c == ':' || c == '+' || c == '#' || c == '/' || c.is_whitespace() || c.is_control()
        });
    if bad {
        return Err(CredentialsError::BadName(format!(
            "{kind} {name:?} cannot be a broker user name: it must be 1-128 characters without ':', '+', '#', '/' or spaces; rename it in the registry or give another --ingest-user"
        )));
    }
    Ok(())
}

/// A new random password: 192 bits, URL-safe base64 (32 characters).
pub fn new_password() -> Result<String, CredentialsError> {
    let mut b = [0u8; PASSWORD_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CredentialsError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// The Mosquitto 2 hash of `password`: `$7$iterations$salt$hash`, PBKDF2-
/// HMAC-SHA512 over a 12-byte salt, both in standard base64.
pub fn mosquitto_hash(password: &str, salt: &[u8; SALT_LEN], iterations: NonZeroU32) -> String {
    let mut hash = [0u8; HASH_LEN];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        iterations,
        salt,
        password.as_bytes(),
        &mut hash,
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "$7${}${}${}",
        iterations,
        b64.encode(salt),
        b64.encode(hash)
    )
}

/// True when `password` matches a `$7$` hash of Mosquitto's password file.
pub fn mosquitto_verify(hash: &str, password: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut parts = hash.split('$');
    let (Some(""), Some("7"), Some(it), Some(salt), Some(want), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(it), Ok(salt), Ok(want)) = (
        it.parse::<u32>().ok().and_then(NonZeroU32::new),
        b64.decode(salt),
        b64.decode(want),
    ) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA512,
        it,
        &salt,
        password.as_bytes(),
        &want,
    )
    .is_ok()
}

/// Parses `device-secrets.txt`: `name password` per line, `#` comments.
pub fn parse_secrets(
    path: &Path,
    text: &str,
) -> Result<BTreeMap<String, String>, CredentialsError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |detail: &str| CredentialsError::BadSecretsFile {
            path: path.to_owned(),
            line: i + 1,
            detail: detail.to_owned(),
        };
        let mut it = line.split_whitespace();
        let (Some(name), Some(pw), None) = (it.next(), it.next(), it.next()) else {
            return Err(bad("expected `device_id password`"));
        };
        if out.insert(name.to_owned(), pw.to_owned()).is_some() {
            return Err(bad(&format!("device {name:?} is listed twice")));
        }
    }
    Ok(out)
}

fn read_optional(path: &Path) -> Result<Option<String>, CredentialsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CredentialsError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes a secret file: mode 0600 from its creation, then renamed into
/// place, so no reader sees it half-written or readable by others.
fn write_secret_file(path: &Path, text: &str) -> Result<(), CredentialsError> {
    let io = |source| CredentialsError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp).map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// The file holding an ingest identity's password.
pub fn ingest_password_file(out: &Path, user: &str) -> PathBuf {
    out.join(format!("{user}.password"))
}

/// Generates (or updates) the credentials of every registered device and
/// of the ingest identities in `req.out`.
pub fn generate(registry: &Registry, req: &Request) -> Result<Report, CredentialsError> {
    // Devices and Sparkplug edge nodes log in under their own names (an
    // edge node id that is also a device id is one identity).
    let mut devices: Vec<&str> = registry
        .devices
        .keys()
        .chain(registry.sparkplug.values().map(|n| &n.edge_node_id))
        .map(String::as_str)
        .collect();
    devices.sort_unstable();
    devices.dedup();
    let known: std::collections::BTreeSet<&str> = devices.iter().copied().collect();
    for d in &devices {
        check_name("device id", d)?;
    }
    for u in &req.ingest_users {
        check_name("ingest user", u)?;
        if known.contains(u.as_str()) {
            return Err(CredentialsError::BadName(format!(
                "ingest user {u:?} is also a device id (or a Sparkplug edge node id); a device logging in under it would read every device's messages. Pick another --ingest-user"
            )));
        }
    }
    for r in &req.rotate {
        if !known.contains(r.as_str()) && !req.ingest_users.contains(r) {
            return Err(CredentialsError::BadName(format!(
                "--rotate {r:?} is neither a registered device or edge node nor an --ingest-user"
            )));
        }
    }
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CredentialsError::Io { path, source }
    };
    std::fs::create_dir_all(&req.out).map_err(io(&req.out))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&req.out, std::fs::Permissions::from_mode(0o700))
            .map_err(io(&req.out))?;
    }

    let secrets_path = req.out.join(DEVICE_SECRETS_FILE);
    let old = match read_optional(&secrets_path)? {
        Some(t) => parse_secrets(&secrets_path, &t)?,
        None => BTreeMap::new(),
    };
    let mut report = Report {
        devices: devices.len(),
        removed: old
            .keys()
            .filter(|k| !known.contains(k.as_str()))
            .cloned()
            .collect(),
        ingest_users: req.ingest_users.clone(),
        ..Report::default()
    };
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    for d in &devices {
        let pw = match old.get(*d) {
            Some(pw) if !req.rotate.iter().any(|r| r == d) => pw.clone(),
            Some(_) => {
                report.rotated.push((*d).to_owned());
                new_password()?
            }
            None => {
                report.issued.push((*d).to_owned());
                new_password()?
            }
        };
        current.insert((*d).to_owned(), pw);
    }
    let mut ingest = Vec::new();
    for u in &req.ingest_users {
        let path = ingest_password_file(&req.out, u);
        let kept = read_optional(&path)?
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let pw = match kept {
            Some(pw) if !req.rotate.contains(u) => pw,
            kept => {
                if kept.is_some() {
                    report.rotated.push(u.clone());
                }
                let pw = new_password()?;
                write_secret_file(&path, &format!("{pw}\n"))?;
                pw
            }
        };
        ingest.push((u.clone(), pw));
    }

    let mut salt = [0u8; SALT_LEN];
    let rng = ring::rand::SystemRandom::new();
    let it = NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN);
    let mut passwd = String::new();
    let mut secrets = String::from(
        "# device_id password — written by `wastewatch devices credentials`; keep it secret\n",
    );
    for (name, pw) in current.iter().chain(ingest.iter().map(|(u, p)| (u, p))) {
        rng.fill(&mut salt).map_err(|_| CredentialsError::Random)?;
        passwd.push_str(&format!("{name}:{}\n", mosquitto_hash(pw, &salt, it)));
    }
    for (name, pw) in &current {
        secrets.push_str(&format!("{name} {pw}\n"));
    }
    write_secret_file(&secrets_path, &secrets)?;
    write_secret_file(&req.out.join(PASSWD_FILE), &passwd)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Written by `mosquitto_passwd -b` (Mosquitto 2.0.11) for password
    /// `Test-Passw0rd`.
    const MOSQUITTO_LINE: &str = "$7$101$X/vlUxtL6VaU8wfU$khR2mzMEqyCm2MqYaET4Ruan8yRcLI6hIAG0YqseN30Q7TF7g7LfOmhEcskqFR/TacigOaR0xMdDme+DoK2+lA==";

    fn registry(ids: &[&str]) -> Registry {
        let poly = r#"{"type":"Polygon","coordinates":[[[113.70,34.70],[113.71,34.70],[113.71,34.71],[113.70,34.71],[113.70,34.70]]]}"#;
        let sites =
            format!(r#"[{{"id":"s-1","name":"t","type":"recycling_plant","geofence":{poly}}}]"#);
        let devices: Vec<String> = ids
            .iter()
            .map(|id| {
                format!(
                    r#"{{"id":"{id}","kind":"bin","site_id":"s-1","expected_interval_s":60,"bin":{{"medical":false,"volume_l":240}}}}"#
                )
            })
            .collect();
        Registry::from_json_strs(&sites, &format!("[{}]", devices.join(",")), "[]").unwrap()
    }

    #[test]
    fn sparkplug_edge_nodes_get_an_identity_of_their_own() {
        let poly = r#"{"type":"Polygon","coordinates":[[[113.70,34.70],[113.71,34.70],[113.71,34.71],[113.70,34.71],[113.70,34.70]]]}"#;
        let sites =
            format!(r#"[{{"id":"s-1","name":"t","type":"recycling_plant","geofence":{poly}}}]"#);
        let devices = r#"[{"id":"st-1","kind":"storage","site_id":"s-1","expected_interval_s":60,"storage":{"capacity_kg":3000,"small_storage_point":true,"medical":false}}]"#;
        let sp = r#"[{"group_id":"g","edge_node_id":"edge-1","devices":[{"sparkplug_device_id":"S","device_id":"st-1","metrics":[{"name":"Stock","field":"stock_kg"}]}]}]"#;
        let reg = Registry::from_json_strs_with_sparkplug(&sites, devices, "[]", "[]", sp).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let req = Request {
            out: dir.path().join("c"),
            ingest_users: vec!["ingest-a".into()],
            rotate: vec![],
        };
        let r = generate(&reg, &req).unwrap();
        assert_eq!(r.issued, ["edge-1", "st-1"]);
        let secrets = parse_secrets(
            Path::new("x"),
            &std::fs::read_to_string(req.out.join(DEVICE_SECRETS_FILE)).unwrap(),
        )
        .unwrap();
        assert!(mosquitto_verify(
            &passwd(&req.out)["edge-1"],
            &secrets["edge-1"]
        ));
        let bad = Request {
            ingest_users: vec!["edge-1".into()],
            ..req
        };
        assert!(
            generate(&reg, &bad).is_err(),
            "an ingest user named like an edge node"
        );
    }

    #[test]
    fn a_hash_written_by_mosquitto_passwd_verifies() {
        assert!(mosquitto_verify(MOSQUITTO_LINE, "Test-Passw0rd"));
        assert!(!mosquitto_verify(MOSQUITTO_LINE, "Test-Passw0rd "));
        assert!(!mosquitto_verify("$6$abc$def", "Test-Passw0rd"));
    }

    #[test]
    fn our_hash_has_mosquittos_layout_and_verifies() {
        let it = NonZeroU32::new(101).unwrap();
        let h = mosquitto_hash("pw", &[7u8; 12], it);
        let parts: Vec<&str> = h.split('$').collect();
        assert_eq!(parts[..3], ["", "7", "101"]);
        let b64 = base64::engine::general_purpose::STANDARD;
        assert_eq!(b64.decode(parts[3]).unwrap().len(), 12);
        assert_eq!(b64.decode(parts[4]).unwrap().len(), 64);
        assert!(mosquitto_verify(&h, "pw"));
        assert!(!mosquitto_verify(&h, "pW"));
    }

    #[test]
    fn generated_passwords_are_long_and_distinct() {
        let a = new_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_password().unwrap());
    }

    fn passwd(dir: &Path) -> BTreeMap<String, String> {
        std::fs::read_to_string(dir.join(PASSWD_FILE))
            .unwrap()
            .lines()
            .map(|l| {
                let (u, h) = l.split_once(':').unwrap();
                (u.to_owned(), h.to_owned())
            })
            .collect()
    }

    #[test]
    fn every_device_and_ingest_user_gets_a_password_the_broker_file_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let req = Request {
            out: dir.path().join("c"),
            ingest_users: vec!["ingest-a".into()],
            rotate: vec![],
        };
        let r = generate(&registry(&["bin-1", "bin-2"]), &req).unwrap();
        assert_eq!(r.issued, ["bin-1", "bin-2"]);
        let secrets = parse_secrets(
            Path::new("x"),
            &std::fs::read_to_string(req.out.join(DEVICE_SECRETS_FILE)).unwrap(),
        )
        .unwrap();
        let hashes = passwd(&req.out);
        assert_eq!(hashes.len(), 3);
        for (d, pw) in &secrets {
            assert!(mosquitto_verify(&hashes[d], pw), "{d}");
        }
        let ingest = std::fs::read_to_string(ingest_password_file(&req.out, "ingest-a")).unwrap();
        assert!(mosquitto_verify(&hashes["ingest-a"], ingest.trim()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for f in [DEVICE_SECRETS_FILE, PASSWD_FILE, "ingest-a.password"] {
                let mode = std::fs::metadata(req.out.join(f))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o077, 0, "{f} is readable by others");
            }
        }
    }

    #[test]
    fn a_second_run_keeps_issued_passwords_adds_new_devices_drops_removed_ones_and_rotates_on_request(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut req = Request {
            out: dir.path().to_owned(),
            ingest_users: vec!["ingest-a".into()],
            rotate: vec![],
        };
        generate(&registry(&["bin-1", "bin-2", "bin-3"]), &req).unwrap();
        let read = || {
            parse_secrets(
                Path::new("x"),
                &std::fs::read_to_string(dir.path().join(DEVICE_SECRETS_FILE)).unwrap(),
            )
            .unwrap()
        };
        let first = read();
        let ingest_first =
            std::fs::read_to_string(ingest_password_file(dir.path(), "ingest-a")).unwrap();
        req.rotate = vec!["bin-2".into()];
        let r = generate(&registry(&["bin-1", "bin-2", "bin-4"]), &req).unwrap();
        assert_eq!(r.issued, ["bin-4"]);
        assert_eq!(r.rotated, ["bin-2"]);
        assert_eq!(r.removed, ["bin-3"]);
        let second = read();
        assert_eq!(second["bin-1"], first["bin-1"]);
        assert_ne!(second["bin-2"], first["bin-2"]);
        assert!(!second.contains_key("bin-3"));
        assert_eq!(
            std::fs::read_to_string(ingest_password_file(dir.path(), "ingest-a")).unwrap(),
            ingest_first
        );
        assert!(!passwd(dir.path()).contains_key("bin-3"));
    }

    #[test]
    fn names_the_broker_cannot_hold_or_that_clash_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let req = |users: &[&str]| Request {
            out: dir.path().to_owned(),
            ingest_users: users.iter().map(|u| (*u).to_owned()).collect(),
            rotate: vec![],
        };
        let e = generate(&registry(&["bin-1"]), &req(&["ingest:1"])).unwrap_err();
        assert!(e.to_string().contains("\"ingest:1\""), "{e}");
        let e = generate(&registry(&["bin-1"]), &req(&["bin-1"])).unwrap_err();
        assert!(e.to_string().contains("also a device id"), "{e}");
        let e = generate(&registry(&["bin-1"]), &req(&["in gest"])).unwrap_err();
        assert!(e.to_string().contains("\"in gest\""), "{e}");
    }

    #[test]
    fn report_and_debug_never_hold_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let req = Request {
            out: dir.path().to_owned(),
            ingest_users: vec!["ingest-a".into()],
            rotate: vec![],
        };
        let r = generate(&registry(&["bin-1"]), &req).unwrap();
        let secrets = std::fs::read_to_string(dir.path().join(DEVICE_SECRETS_FILE)).unwrap();
        let pw = secrets.lines().nth(1).unwrap().split(' ').nth(1).unwrap();
        assert!(!format!("{r} {r:?}").contains(pw));
    }
}
