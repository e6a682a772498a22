//! Validated settings: typed durations, non-zero sizes, parsed URLs, and
//! secrets that never print.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawConfig;
use super::ConfigErrors;
use crate::decode::{ClockAction, ClockPolicy, DecodePolicy, ValidationLimits};

pub use crate::secret::Secret;

/// True when the TSDB is on this host (a loopback address or `localhost`).
fn target_is_loopback(t: &TsdbTarget) -> bool {
    let url = match t {
        TsdbTarget::InfluxV1 { url, .. } | TsdbTarget::InfluxV2 { url, .. } => url,
        _ => return true,
    };
    match url.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Rules, alert lifecycle and notification settings.
#[derive(Clone, Debug)]
pub struct AlertingSettings {
    /// Rule thresholds, overrides, engine settings.
    pub rules: crate::rules::RuleConfig,
    /// Alert lifecycle policy.
    pub policy: crate::alert::AlertPolicy,
    /// Alertmanager base URL, if any.
    pub alertmanager: Option<url::Url>,
    /// Webhooks and chat robots.
    pub webhooks: Vec<crate::notify::webhook::WebhookSettings>,
    /// How often active alerts are re-posted to Alertmanager.
    pub resend_interval: Duration,
    /// How often rule and alert state is snapshotted.
    pub snapshot_interval: Duration,
}

/// MQTT session settings.
#[derive(Clone, Debug)]
pub struct MqttSettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Fixed client id (keys the persistent session).
    pub client_id: String,
    /// Topic filters.
    pub subscribe: Vec<String>,
    /// Username and password, if any.
    pub credentials: Option<(String, Secret)>,
    /// TLS on, with this CA file.
    pub tls: Option<PathBuf>,
    /// TLS client certificate and key files, if the broker asks for one.
    pub client_auth: Option<(PathBuf, PathBuf)>,
    /// Keep-alive.
    pub keep_alive: Duration,
    /// Session expiry, seconds (non-zero).
    pub session_expiry_s: u32,
    /// Receive Maximum sent in CONNECT.
    pub receive_maximum: u16,
    /// Largest packet accepted.
    pub max_packet_bytes: u32,
    /// Reconnect backoff bounds.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// While messages flow, the socket is read at most this long after the
    /// previous read, or when 32 KiB are queued (zero: on every arrival).
    pub read_linger: Duration,
    /// The Sparkplug B host application, when enabled (its filters are in
    /// `subscribe` already).
    pub sparkplug: Option<SparkplugSettings>,
}

/// `[sparkplug]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SparkplugSettings {
    /// Host application id.
    pub host_id: String,
    /// Groups handled; empty: all.
    pub groups: Vec<String>,
    /// Least time between two rebirth requests to one edge node.
    pub rebirth_min_interval: Duration,
}

impl SparkplugSettings {
    /// The topic filters the host subscribes to.
    pub fn filters(&self) -> Vec<String> {
        if self.groups.is_empty() {
            vec!["spBv1.0/#".to_owned()]
        } else {
            self.groups
                .iter()
                .map(|g| format!("spBv1.0/{g}/#"))
                .collect()
        }
    }
}

/// Validates `[sparkplug]`. `None` when disabled.
fn sparkplug(e: &mut Vec<String>, s: &super::raw::RawSparkplug) -> Option<SparkplugSettings> {
    use wastewatch_contract::sparkplug::valid_id;
    if !s.enabled {
        return None;
    }
    if !valid_id(&s.host_id) {
        e.push(format!(
            "sparkplug.host_id {:?} is empty or contains '/', '+', '#' or NUL; give the host application id, e.g. \"wastewatch\"",
            s.host_id
        ));
    }
    for g in &s.groups {
        if !valid_id(g) {
            e.push(format!(
                "sparkplug.groups: {g:?} is empty or contains '/', '+', '#' or NUL"
            ));
        }
    }
    if s.rebirth_min_interval_ms > 3_600_000 {
        e.push(format!(
            "sparkplug.rebirth_min_interval_ms is {}; use 0 to 3600000",
            s.rebirth_min_interval_ms
        ));
    }
    Some(SparkplugSettings {
        host_id: s.host_id.clone(),
        groups: s.groups.clone(),
        rebirth_min_interval: Duration::from_millis(s.rebirth_min_interval_ms),
    })
}

/// Durable-log settings.
#[derive(Clone, Debug)]
pub struct LogSettings {
    /// Directory holding the log database.
    pub dir: PathBuf,
    /// Bound on bytes held (unconsumed records + quarantine).
    pub max_bytes: u64,
    /// Segment size target.
    pub segment_bytes: u64,
    /// Most records per group commit.
    pub commit_max_records: NonZeroUsize,
    /// How long a group commit waits for more messages.
    pub commit_linger: Duration,
    /// Bytes after which a group commit takes no further message.
    pub commit_max_bytes: u64,
    /// How often the lazily saved TSDB cursor is saved.
    pub cursor_sync: Duration,
    /// Disk reserve for a full disk, bytes (0 = none).
    pub disk_reserve_bytes: u64,
    /// Records kept decoded for the consumers (0 = none).
    pub decoded_tail_records: usize,
}

impl LogSettings {
    /// The log's options.
    pub fn options(&self) -> crate::log::LogOptions {
        let mut o = crate::log::LogOptions::with_max_bytes(self.max_bytes);
        o.segment_bytes = self.segment_bytes;
        o.cursor_sync = self.cursor_sync;
        o.disk_reserve_bytes = self.disk_reserve_bytes;
        o.decoded_tail_records = self.decoded_tail_records;
        o
    }
}

/// Which TSDB to write to.
#[derive(Clone, Debug)]
pub enum TsdbTarget {
    /// InfluxDB 1.x `/write` (also VictoriaMetrics' v1 endpoint).
    InfluxV1 {
        /// Base URL.
        url: url::Url,
        /// Database.
        database: String,
        /// Retention policy, empty = default.
        retention_policy: String,
        /// Basic credentials.
        credentials: Option<(String, Secret)>,
    },
    /// InfluxDB v2 API through the `influxdb2` crate.
    InfluxV2 {
        /// Base URL.
        url: url::Url,
        /// Organisation.
        org: String,
        /// Bucket.
        bucket: String,
        /// API token.
        token: Secret,
    },
    /// Append line protocol to a local file (demo, no server).
    File {
        /// Path of the file.
        path: PathBuf,
    },
    /// Keep records in the log only.
    None,
}

/// TSDB writer settings.
#[derive(Clone, Debug)]
pub struct TsdbSettings {
    /// Target.
    pub target: TsdbTarget,
    /// Most lines per request.
    pub batch_max_lines: NonZeroUsize,
    /// Oldest a partial batch may get.
    pub batch_max_age: Duration,
    /// Gzip bodies.
    pub gzip: bool,
    /// Retry backoff bounds.
    pub retry_min: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Pipeline counters interval (None = never).
    pub stats_interval: Option<Duration>,
}

/// Everything, validated.
#[derive(Clone, Debug)]
pub struct Settings {
    /// MQTT.
    pub mqtt: MqttSettings,
    /// Registry directory.
    pub registry_dir: PathBuf,
    /// Decoder policy.
    pub decode: DecodePolicy,
    /// Durable log.
    pub log: LogSettings,
    /// TSDB writer.
    pub tsdb: TsdbSettings,
    /// HTTP listen address, if enabled.
    pub http_listen: Option<SocketAddr>,
    /// Who may use the HTTP API (tokens, protected reads).
    pub http_auth: crate::api::auth::ApiAuth,
    /// Graceful shutdown deadline.
    pub shutdown_deadline: Duration,
    /// Rules, alert policy and notification.
    pub alerting: AlertingSettings,
    /// Threads of the async runtime (1: a current-thread runtime).
    pub worker_threads: usize,
    /// The KPI stage.
    pub kpi: crate::kpi::KpiConfig,
    /// The JT/T 808 gateway, when enabled.
    pub jt808: Option<Jt808Settings>,
}

/// `[jt808]`, validated (see `RawJt808` for the meaning of each).
#[derive(Clone, Debug)]
pub struct Jt808Settings {
    /// TCP listen address.
    pub listen: SocketAddr,
    /// Authentication code key.
    pub auth_key: Secret,
    /// Most terminals at once.
    pub max_connections: usize,
    /// Longest escaped frame.
    pub max_frame_bytes: usize,
    /// Longest reassembled message.
    pub max_message_bytes: usize,
    /// Sub-packaged messages in progress per connection.
    pub max_pending_messages: usize,
    /// Sub-package completion timeout.
    pub subpackage_timeout: Duration,
    /// Frames per second per connection.
    pub max_messages_per_s: u32,
    /// Time to authenticate.
    pub auth_timeout: Duration,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Write timeout.
    pub write_timeout: Duration,
}

/// Validates `[jt808]`: the limits always, the listener and key when
/// enabled. `None` when disabled.
fn jt808(e: &mut Vec<String>, j: &super::raw::RawJt808) -> Option<Jt808Settings> {
    // A whole body of 1023 bytes, escaped (×2), with the 2019 header of a
    // package, the check code and the delimiters.
    const LONGEST_FRAME: usize = (1023 + 21 + 1) * 2 + 2;
    if j.max_connections == 0 || j.max_connections > 100_000 {
        e.push(format!(
            "jt808.max_connections is {}; use 1 to 100000",
            j.max_connections
        ));
    }
    if !(LONGEST_FRAME..=1 << 20).contains(&j.max_frame_bytes) {
        e.push(format!(
            "jt808.max_frame_bytes is {}; use {LONGEST_FRAME} (the longest frame the standard allows) to 1048576",
            j.max_frame_bytes
        ));
    }
    if !(1023..=4 << 20).contains(&j.max_message_bytes) {
        e.push(format!(
            "jt808.max_message_bytes is {}; use 1023 (one package) to 4194304",
            j.max_message_bytes
        ));
    }
    if j.max_pending_messages == 0 || j.max_pending_messages > 64 {
        e.push(format!(
            "jt808.max_pending_messages is {}; use 1 to 64",
            j.max_pending_messages
        ));
    }
    if j.max_messages_per_s == 0 {
        e.push("jt808.max_messages_per_s is 0; use at least 1".into());
    }
    for (k, v) in [
        ("jt808.subpackage_timeout_s", j.subpackage_timeout_s),
        ("jt808.auth_timeout_s", j.auth_timeout_s),
        ("jt808.idle_timeout_s", j.idle_timeout_s),
        ("jt808.write_timeout_s", j.write_timeout_s),
    ] {
        if v == 0 || v > 86_400 {
            e.push(format!("{k} is {v} s; use 1 to 86400"));
        }
    }
    // A listen address that does not parse is a typo even while disabled.
    let listen =
        j.listen
            .clone()
            .or_report(e, "jt808.listen", SocketAddr::from(([127, 0, 0, 1], 0)));
    if !j.enabled {
        return None;
    }
    if !j.auth_key.is_empty() && j.auth_key_file.is_some() {
        e.push(
            "jt808.auth_key and jt808.auth_key_file are both set; keep only jt808.auth_key_file"
                .into(),
        );
    }
    let auth_key = match &j.auth_key_file {
        None => j.auth_key.clone(),
        Some(f) => secret_file(e, "jt808.auth_key_file", f),
    };
    if auth_key.expose().chars().count() < 16 {
        e.push("jt808.auth_key_file (or jt808.auth_key) must hold a key of at least 16 characters when jt808.enabled is true; authentication codes are derived from it".into());
    }
    Some(Jt808Settings {
        listen,
        auth_key,
        max_connections: j.max_connections,
        max_frame_bytes: j.max_frame_bytes,
        max_message_bytes: j.max_message_bytes,
        max_pending_messages: j.max_pending_messages,
        subpackage_timeout: Duration::from_secs(j.subpackage_timeout_s),
        max_messages_per_s: j.max_messages_per_s,
        auth_timeout: Duration::from_secs(j.auth_timeout_s),
        idle_timeout: Duration::from_secs(j.idle_timeout_s),
        write_timeout: Duration::from_secs(j.write_timeout_s),
    })
}

fn nz(errors: &mut Vec<String>, key: &str, v: usize) -> NonZeroUsize {
    NonZeroUsize::new(v).unwrap_or_else(|| {
        errors.push(format!("{key} is 0; it must be at least 1"));
        NonZeroUsize::MIN
    })
}

/// Validates `[[notify.webhooks]]`; errors name the entry, never its URL or
/// secret.
fn webhooks(
    errors: &mut Vec<String>,
    raw: &[super::raw::RawWebhook],
) -> Vec<crate::notify::webhook::WebhookSettings> {
    use crate::notify::webhook::{Format, WebhookSettings};
    let mut out = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for (i, w) in raw.iter().enumerate() {
        let key = format!("notify.webhooks[{i}]");
        if w.name.is_empty() || w.name == "alertmanager" || !names.insert(w.name.as_str()) {
            errors.push(format!(
                "{key}.name {:?} must be non-empty, unique and not \"alertmanager\"",
                w.name
            ));
        }
        match url::Url::parse(&w.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            Ok(_) => errors.push(format!(
                "{key}.url must be an http:// or https:// URL with a host (value not shown: it may hold a token)"
            )),
            Err(err) => errors.push(format!(
                "{key}.url is not a URL: {err} (value not shown: it may hold a token)"
            )),
        }
        let format = w
            .format
            .clone()
            .or_report(errors, &format!("{key}.format"), Format::Json);
        let min_severity = w.min_severity.clone().or_report(
            errors,
            &format!("{key}.min_severity"),
            crate::alert::Severity::Major,
        );
        if !w.sign_secret.is_empty() && format == Format::Wecom {
            errors.push(format!(
                "{key}.sign_secret is used by format = \"json\" (HMAC header) and \"dingtalk\"; WeCom robots have no signing, remove it"
            ));
        }
        out.push(WebhookSettings {
            name: w.name.clone(),
            url: Secret::new(w.url.clone()),
            format,
            min_severity,
            sign_secret: w.sign_secret.clone(),
        });
    }
    out
}

/// `v` for an error message, with any user name and password replaced.
fn shown_url(v: &str) -> String {
    match url::Url::parse(v) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            format!("{:?} (credentials removed)", u.as_str())
        }
        Ok(u) => format!("{:?}", u.as_str()),
        Err(_) if v.contains('@') => "(value not shown: it may hold credentials)".into(),
        Err(_) => format!("{v:?}"),
    }
}

fn url(errors: &mut Vec<String>, key: &str, v: &str) -> url::Url {
    let shown = shown_url(v);
    match url::Url::parse(v) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            errors.push(format!(
                "{key} {shown} holds a user name or password; errors would print it, so give credentials in their own settings (tsdb.username / tsdb.password / tsdb.token)"
            ));
            fallback_url()
        }
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
        Ok(_) => {
            errors.push(format!(
                "{key} {shown} must be an http:// or https:// URL with a host"
            ));
            fallback_url()
        }
        Err(e) => {
            errors.push(format!("{key} {shown} is not a URL: {e}"));
            fallback_url()
        }
    }
}

fn fallback_url() -> url::Url {
    // A literal that always parses; only used to keep collecting errors.
    url::Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable!())
}

fn creds(user: &str, pass: &Secret) -> Option<(String, Secret)> {
    (!user.is_empty()).then(|| (user.to_owned(), pass.clone()))
}

/// The first line of a secret file (`key` names the setting in errors).
fn secret_file(errors: &mut Vec<String>, key: &str, path: &std::path::Path) -> Secret {
    let shown = path.display();
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let first = t.lines().next().unwrap_or("").trim();
            if first.is_empty() {
                errors.push(format!(
                    "{key} {shown} is empty; put the secret on its first line"
                ));
            }
            Secret::new(first)
        }
        Err(e) => {
            errors.push(format!("cannot read {key} {shown}: {e}"));
            Secret::default()
        }
    }
}

/// `[http]` access: tokens from `tokens_file` and the environment; a
/// listener other hosts can reach must have a token.
fn http_auth(
    errors: &mut Vec<String>,
    h: &super::raw::RawHttp,
    listen: Option<SocketAddr>,
) -> crate::api::auth::ApiAuth {
    let mut auth = crate::api::auth::ApiAuth::none();
    auth.protect_reads = h.protect_reads;
    if let Some(f) = &h.tokens_file {
        match std::fs::read_to_string(f) {
            Ok(t) => auth.add_tokens(&format!("http.tokens_file {}", f.display()), &t, errors),
            Err(e) => errors.push(format!("cannot read http.tokens_file {}: {e}", f.display())),
        }
    }
    if let Some(t) = &h.tokens_env {
        auth.add_tokens("WASTEWATCH_HTTP_TOKENS", t.expose(), errors);
    }
    if let Some(a) = listen {
        if !a.ip().is_loopback() && !auth.has_tokens() {
            errors.push(format!(
                "http.listen {a} is reachable from other hosts but no API token is configured; set http.tokens_file (or WASTEWATCH_HTTP_TOKENS), or listen on 127.0.0.1"
            ));
        }
    }
    if h.protect_reads && !auth.has_tokens() {
        errors.push("http.protect_reads is on but no API token is configured; set http.tokens_file (or WASTEWATCH_HTTP_TOKENS)".into());
    }
    auth
}

impl RawConfig {
    /// Converts to [`Settings`], collecting every error: one validation
    /// function per section, each adding what it finds to the same list.
    pub fn validate(self) -> Result<Settings, ConfigErrors> {
        let mut e = Vec::new();
        let mqtt = mqtt(&mut e, self.mqtt, &self.sparkplug);
        let (decode, registry_dir) = decode(&mut e, self.decode);
        let log = log(&mut e, self.log, mqtt.max_packet_bytes);
        let tsdb = tsdb(&mut e, self.tsdb);
        let http_listen = http_listen(&mut e, &self.http);
        for p in self.kpi.problems() {
            e.push(p);
        }
        for p in self.rules.problems() {
            e.push(format!("rules: {p}"));
        }
        let http_auth = http_auth(&mut e, &self.http, http_listen);
        let alerting = alerting(&mut e, self.notify, self.rules, self.alerts);
        runtime(&mut e, &self.runtime);
        shutdown(&mut e, &self.shutdown);
        let jt808 = jt808(&mut e, &self.jt808);
        if !e.is_empty() {
            return Err(ConfigErrors(e));
        }
        Ok(Settings {
            mqtt,
            registry_dir,
            decode,
            log,
            tsdb,
            http_listen,
            http_auth,
            shutdown_deadline: Duration::from_millis(self.shutdown.deadline_ms),
            alerting,
            worker_threads: self.runtime.worker_threads,
            kpi: self.kpi,
            jt808,
        })
    }
}

/// Validates `[mqtt]` (with `[sparkplug]`, whose filters it subscribes to).
fn mqtt(
    e: &mut Vec<String>,
    m: super::raw::RawMqtt,
    sparkplug_raw: &super::raw::RawSparkplug,
) -> MqttSettings {
    if m.host.is_empty() {
        e.push("mqtt.host is empty; set the broker host name or IP".into());
    }
    if m.port == 0 {
        e.push("mqtt.port is 0; set the broker port (1883, or 8883 for TLS)".into());
    }
    if m.client_id.is_empty() || m.client_id.len() > 128 {
        e.push(format!(
            "mqtt.client_id {:?} must be 1-128 characters; it keys the persistent session",
            m.client_id
        ));
    }
    if m.subscribe.is_empty() {
        e.push("mqtt.subscribe is empty; subscribe at least to wastewatch/v1/#".into());
    }
    for f in &m.subscribe {
        if f.is_empty() || f.contains('\0') {
            e.push(format!(
                "mqtt.subscribe filter {f:?} is empty or contains NUL"
            ));
        }
    }
    if m.session_expiry_s == 0 {
        e.push("mqtt.session_expiry_s is 0; a persistent session needs a non-zero expiry or messages are lost while disconnected".into());
    }
    if m.receive_maximum == 0 {
        e.push("mqtt.receive_maximum is 0; MQTT 5 requires 1-65535".into());
    }
    if m.keep_alive_s < 5 || m.keep_alive_s > 3600 {
        e.push(format!(
            "mqtt.keep_alive_s is {} s; use 5-3600 s",
            m.keep_alive_s
        ));
    }
    if m.reconnect_min_ms == 0 || m.reconnect_min_ms > m.reconnect_max_ms {
        e.push(format!(
            "mqtt.reconnect_min_ms ({}) must be > 0 and <= mqtt.reconnect_max_ms ({})",
            m.reconnect_min_ms, m.reconnect_max_ms
        ));
    }
    if m.read_linger_ms > 100 {
        e.push(format!(
            "mqtt.read_linger_ms is {} ms; use 0 (read on every arrival) to 100: every message waits up to this long before it is read",
            m.read_linger_ms
        ));
    }
    if !m.password.is_empty() && m.password_file.is_some() {
        e.push(
            "mqtt.password and mqtt.password_file are both set; keep only mqtt.password_file"
                .into(),
        );
    }
    let password = match &m.password_file {
        None => m.password.clone(),
        Some(f) => secret_file(e, "mqtt.password_file", f),
    };
    if !password.is_empty() && m.username.is_empty() {
        e.push("mqtt.password is set but mqtt.username is empty".into());
    }
    let client_auth = match (&m.client_cert_file, &m.client_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            if !m.tls {
                e.push("mqtt.client_cert_file is set but mqtt.tls is off; turn mqtt.tls on".into());
            }
            for (k, f) in [
                ("mqtt.client_cert_file", cert),
                ("mqtt.client_key_file", key),
            ] {
                if !f.exists() {
                    e.push(format!("{k} {} does not exist", f.display()));
                }
            }
            Some((cert.clone(), key.clone()))
        }
        _ => {
            e.push(
                "mqtt.client_cert_file and mqtt.client_key_file go together; set both or neither"
                    .into(),
            );
            None
        }
    };
    if m.tls && m.ca_file.is_none() {
        e.push("mqtt.tls is on but mqtt.ca_file is empty; give the PEM CA bundle that signed the broker certificate".into());
    }
    if let Some(ca) = m.ca_file.as_ref().filter(|f| !f.exists()) {
        e.push(format!("mqtt.ca_file {} does not exist", ca.display()));
    }
    let mut mqtt = MqttSettings {
        credentials: creds(&m.username, &password),
        tls: if m.tls { m.ca_file } else { None },
        client_auth,
        host: m.host,
        port: m.port,
        client_id: m.client_id,
        subscribe: m.subscribe,
        keep_alive: Duration::from_secs(m.keep_alive_s),
        session_expiry_s: m.session_expiry_s,
        receive_maximum: m.receive_maximum,
        max_packet_bytes: m.max_packet_bytes,
        reconnect_min: Duration::from_millis(m.reconnect_min_ms),
        reconnect_max: Duration::from_millis(m.reconnect_max_ms),
        read_linger: Duration::from_millis(m.read_linger_ms),
        sparkplug: sparkplug(e, sparkplug_raw),
    };
    if let Some(sp) = &mqtt.sparkplug {
        for f in sp.filters() {
            if !mqtt.subscribe.contains(&f) {
                mqtt.subscribe.push(f);
            }
        }
    }
    mqtt
}

/// Validates `[decode]`; also returns the registry directory.
fn decode(e: &mut Vec<String>, d: super::raw::RawDecode) -> (DecodePolicy, PathBuf) {
    let action = d
        .clock_action
        .or_report(e, "decode.clock_action", ClockAction::Restamp);
    if d.max_future_ms < 0 || d.max_past_ms < 0 {
        e.push(format!(
            "decode.max_future_ms ({}) and decode.max_past_ms ({}) must be >= 0",
            d.max_future_ms, d.max_past_ms
        ));
    }
    if !(d.net_tolerance_kg.is_finite() && d.net_tolerance_kg >= 0.0) {
        e.push(format!(
            "decode.net_tolerance_kg is {} kg; it must be a number >= 0",
            d.net_tolerance_kg
        ));
    }
    if d.max_payload_bytes == 0 {
        e.push("decode.max_payload_bytes is 0; it must be at least 1".into());
    }
    if d.registry_dir.as_os_str().is_empty() {
        e.push("decode.registry_dir is empty; point it at the zone directory".into());
    }
    let policy = DecodePolicy {
        max_payload_bytes: d.max_payload_bytes,
        clock: ClockPolicy {
            max_future_ms: d.max_future_ms,
            max_past_ms: d.max_past_ms,
            action,
        },
        limits: ValidationLimits {
            net_tolerance_kg: d.net_tolerance_kg,
        },
    };
    (policy, d.registry_dir)
}

/// Validates `[log]`, cross-checked with the largest MQTT packet.
fn log(e: &mut Vec<String>, l: super::raw::RawLog, max_packet_bytes: u32) -> LogSettings {
    if l.dir.as_os_str().is_empty() {
        e.push("log.dir is empty; set a directory for the durable log".into());
    }
    if l.max_bytes < 1 << 20 {
        e.push(format!(
            "log.max_bytes is {} bytes; use at least 1048576 (1 MiB)",
            l.max_bytes
        ));
    }
    let derived = crate::log::LogOptions::with_max_bytes(l.max_bytes);
    let reserve = derived.reserve_bytes;
    let room = l.max_bytes.saturating_sub(reserve);
    let segment_bytes = l.segment_bytes.unwrap_or(derived.segment_bytes);
    // Derived: 4 MiB, but small enough that the largest commit (this
    // plus one more message) fits twice in what ingest may fill.
    let commit_max_bytes = l.commit_max_bytes.unwrap_or_else(|| {
        (4u64 << 20).min(
            (room / 2)
                .saturating_sub(u64::from(max_packet_bytes) + 4096)
                .max(64 << 10),
        )
    });
    // Cross-checks only make sense against a usable bound.
    let bound_ok = l.max_bytes >= 1 << 20;
    if !(64 << 10..=1 << 30).contains(&segment_bytes) {
        e.push(format!(
            "log.segment_bytes is {segment_bytes} bytes; use 65536 (64 KiB) to 1073741824 (1 GiB)"
        ));
    } else if bound_ok && segment_bytes > l.max_bytes / 4 {
        e.push(format!(
            "log.segment_bytes ({segment_bytes} bytes) is more than a quarter of log.max_bytes ({} bytes); space is freed a segment at a time, so use at most {} bytes",
            l.max_bytes,
            l.max_bytes / 4
        ));
    }
    if commit_max_bytes < 64 << 10 {
        e.push(format!(
            "log.commit_max_bytes is {commit_max_bytes} bytes; use at least 65536 (64 KiB)"
        ));
    } else if bound_ok {
        // The largest commit: the limit plus one more message (its
        // quarantine entry carries the whole packet). It must fit twice
        // in what ingest may fill, so a commit can never be too large to
        // ever go in (no deadlock) and the log is not one commit wide.
        let largest = commit_max_bytes + u64::from(max_packet_bytes) + 4096;
        if largest > room / 2 {
            e.push(format!(
                "log.commit_max_bytes ({commit_max_bytes} bytes) + mqtt.max_packet_bytes ({max_packet_bytes} bytes) is more than half of log.max_bytes less its reserve ({room} bytes); lower them or raise log.max_bytes"
            ));
        }
    }
    if l.cursor_sync_ms == 0 || l.cursor_sync_ms > 60_000 {
        e.push(format!(
            "log.cursor_sync_ms is {}; use 1 to 60000",
            l.cursor_sync_ms
        ));
    }
    if l.disk_reserve_bytes > 1 << 30 {
        e.push(format!(
            "log.disk_reserve_bytes is {} bytes; use 0 (none) to 1073741824 (1 GiB)",
            l.disk_reserve_bytes
        ));
    }
    if l.commit_linger_ms > 1000 {
        e.push(format!(
            "log.commit_linger_ms is {} ms; use 0 (commit at once) to 1000: every ack waits this long",
            l.commit_linger_ms
        ));
    }
    if l.decoded_tail_records > 1_000_000 {
        e.push(format!(
            "log.decoded_tail_records is {}; use 0 (none) to 1000000: each record held takes about 1.2 KB of memory",
            l.decoded_tail_records
        ));
    }
    LogSettings {
        dir: l.dir,
        max_bytes: l.max_bytes,
        segment_bytes,
        commit_max_records: nz(e, "log.commit_max_records", l.commit_max_records),
        commit_linger: Duration::from_millis(l.commit_linger_ms),
        commit_max_bytes,
        cursor_sync: Duration::from_millis(l.cursor_sync_ms),
        disk_reserve_bytes: l.disk_reserve_bytes,
        decoded_tail_records: l.decoded_tail_records,
    }
}

/// Validates `[tsdb]`.
fn tsdb(e: &mut Vec<String>, t: super::raw::RawTsdb) -> TsdbSettings {
    use super::raw::TsdbKind;
    let kind = t.kind.or_report(e, "tsdb.kind", TsdbKind::None);
    let target = match kind {
        TsdbKind::InfluxdbV1 => {
            if t.database.is_empty() {
                e.push("tsdb.database is empty; InfluxDB 1.x needs a database".into());
            }
            TsdbTarget::InfluxV1 {
                url: url(e, "tsdb.url", &t.url),
                database: t.database,
                retention_policy: t.retention_policy,
                credentials: creds(&t.username, &t.password),
            }
        }
        TsdbKind::InfluxdbV2 => {
            if t.org.is_empty() || t.bucket.is_empty() {
                e.push("tsdb.org and tsdb.bucket must be set for influxdb_v2".into());
            }
            TsdbTarget::InfluxV2 {
                url: url(e, "tsdb.url", &t.url),
                org: t.org,
                bucket: t.bucket,
                token: t.token,
            }
        }
        TsdbKind::File => match t.file_path {
            Some(path) => TsdbTarget::File { path },
            None => {
                e.push("tsdb.file_path is empty; set where line protocol is written".into());
                TsdbTarget::None
            }
        },
        TsdbKind::None => TsdbTarget::None,
    };
    if t.retry_min_ms == 0 || t.retry_min_ms > t.retry_max_ms {
        e.push(format!(
            "tsdb.retry_min_ms ({}) must be > 0 and <= tsdb.retry_max_ms ({})",
            t.retry_min_ms, t.retry_max_ms
        ));
    }
    if t.request_timeout_ms == 0 {
        e.push("tsdb.request_timeout_ms is 0; use e.g. 10000".into());
    }
    let gzip = t.gzip.unwrap_or_else(|| !target_is_loopback(&target));
    TsdbSettings {
        target,
        batch_max_lines: nz(e, "tsdb.batch_max_lines", t.batch_max_lines),
        batch_max_age: Duration::from_millis(t.batch_max_age_ms),
        gzip,
        retry_min: Duration::from_millis(t.retry_min_ms),
        retry_max: Duration::from_millis(t.retry_max_ms),
        request_timeout: Duration::from_millis(t.request_timeout_ms),
        stats_interval: (t.stats_interval_ms > 0)
            .then(|| Duration::from_millis(t.stats_interval_ms)),
    }
}

/// `http.listen`: `None` when switched off.
fn http_listen(e: &mut Vec<String>, h: &super::raw::RawHttp) -> Option<SocketAddr> {
    match h.listen.clone()? {
        super::typed::Lenient::Valid(a) => Some(a),
        bad => {
            bad.or_report(e, "http.listen", SocketAddr::from(([127, 0, 0, 1], 0)));
            None
        }
    }
}

/// Validates `[notify]` and joins it with `[rules]` and `[alerts]`.
fn alerting(
    e: &mut Vec<String>,
    n: super::raw::RawNotify,
    rules: crate::rules::RuleConfig,
    policy: crate::alert::AlertPolicy,
) -> AlertingSettings {
    let alertmanager = n
        .alertmanager_url
        .as_deref()
        .map(|u| url(e, "notify.alertmanager_url", u));
    if n.resend_interval_ms < 1000 || n.snapshot_interval_ms < 100 {
        e.push(format!(
            "notify.resend_interval_ms ({}) must be >= 1000 and notify.snapshot_interval_ms ({}) >= 100",
            n.resend_interval_ms, n.snapshot_interval_ms
        ));
    }
    AlertingSettings {
        rules,
        policy,
        alertmanager,
        webhooks: webhooks(e, &n.webhooks),
        resend_interval: Duration::from_millis(n.resend_interval_ms),
        snapshot_interval: Duration::from_millis(n.snapshot_interval_ms),
    }
}

/// Validates `[runtime]`.
fn runtime(e: &mut Vec<String>, r: &super::raw::RawRuntime) {
    if r.worker_threads == 0 || r.worker_threads > 64 {
        e.push(format!(
            "runtime.worker_threads is {}; use 1 (one thread) to 64",
            r.worker_threads
        ));
    }
}

/// Validates `[shutdown]`.
fn shutdown(e: &mut Vec<String>, s: &super::raw::RawShutdown) {
    if s.deadline_ms == 0 {
        e.push("shutdown.deadline_ms is 0; use e.g. 10000".into());
    }
}
