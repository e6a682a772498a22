//! Raw configuration as written in TOML: plain serde types, defaults here.
//! See `config/wastewatch.example.toml` for every key with its meaning.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::typed::{empty_as_none, Lenient};
use crate::alert::Severity;
use crate::decode::ClockAction;
use crate::notify::webhook::Format;
use crate::secret::Secret;

/// `tsdb.kind`: where points go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsdbKind {
    /// InfluxDB 1.x, v1 write API.
    InfluxdbV1,
    /// InfluxDB 2.x (or anything speaking `/api/v2/write`).
    InfluxdbV2,
    /// A line-protocol file.
    File,
    /// Nowhere.
    None,
}

/// Secrets are read as plain strings and held as [`Secret`] from the first
/// moment, so not even the raw config prints them.
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// MQTT session.
    pub mqtt: RawMqtt,
    /// Decoding and validation.
    pub decode: RawDecode,
    /// Durable local log.
    pub log: RawLog,
    /// Time-series database writer.
    pub tsdb: RawTsdb,
    /// HTTP API.
    pub http: RawHttp,
    /// Shutdown.
    pub shutdown: RawShutdown,
    /// Rule thresholds (defaults and sources in docs/RULES.md), per-scope
    /// overrides, engine timing.
    pub rules: crate::rules::RuleConfig,
    /// Alert lifecycle: pending periods, repeat interval, flapping.
    pub alerts: crate::alert::AlertPolicy,
    /// Notification receivers.
    pub notify: RawNotify,
    /// The async runtime.
    pub runtime: RawRuntime,
    /// The KPI stage (docs/KPIS.md).
    pub kpi: crate::kpi::KpiConfig,
    /// The JT/T 808 gateway for truck terminals (docs/PROTOCOLS.md).
    pub jt808: RawJt808,
    /// The Sparkplug B host application (docs/PROTOCOLS.md).
    pub sparkplug: RawSparkplug,
}

/// `[runtime]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRuntime {
    /// Threads running the stages. 1 (the default): every stage on one
    /// thread, next to the log writer's own thread — measured cheaper per
    /// message than two workers handing tasks to each other
    /// (docs/BENCHMARKS.md), and enough for well over the ingest rates of
    /// docs/BENCHMARKS.md. More: a multi-threaded runtime.
    pub worker_threads: usize,
}

impl Default for RawRuntime {
    fn default() -> Self {
        RawRuntime { worker_threads: 1 }
    }
}

/// `[notify]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    /// Alertmanager base URL, e.g. `http://127.0.0.1:9093`; empty = off.
    #[serde(deserialize_with = "empty_as_none")]
    pub alertmanager_url: Option<String>,
    /// Re-post active alerts this often, ms (Alertmanager resolves alerts it
    /// has not heard of for its `resolve_timeout`, 5 min by default).
    pub resend_interval_ms: u64,
    /// Snapshot rule and alert state this often, ms.
    pub snapshot_interval_ms: u64,
    /// Webhooks and chat robots (`[[notify.webhooks]]`).
    pub webhooks: Vec<RawWebhook>,
}

impl Default for RawNotify {
    fn default() -> Self {
        RawNotify {
            alertmanager_url: None,
            resend_interval_ms: 60_000,
            snapshot_interval_ms: 2_000,
            webhooks: Vec::new(),
        }
    }
}

/// One `[[notify.webhooks]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// Name (logs, outbox key); unique, not `alertmanager`.
    pub name: String,
    /// URL, with the robot's access token if any (secret, never logged).
    pub url: String,
    /// `json` (default), `dingtalk` or `wecom`.
    #[serde(default = "default_webhook_format")]
    pub format: Lenient<Format>,
    /// Lowest severity sent: `info`, `warn`, `major` (default), `critical`.
    #[serde(default = "default_min_severity")]
    pub min_severity: Lenient<Severity>,
    /// Signing secret (never logged); empty = unsigned. `json`: HMAC-SHA256
    /// of timestamp and body in the `X-Wastewatch-Signature` header;
    /// `dingtalk`: the robot's own signature (加签). `wecom` has none.
    #[serde(default)]
    pub sign_secret: Secret,
}

fn default_webhook_format() -> Lenient<Format> {
    Lenient::Valid(Format::Json)
}

fn default_min_severity() -> Lenient<Severity> {
    Lenient::Valid(Severity::Major)
}

/// `[mqtt]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMqtt {
    /// Broker host name or IP.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Fixed client id: the persistent session is keyed by it.
    pub client_id: String,
    /// Topic filters; `$share/{group}/wastewatch/v1/#` to share load.
    pub subscribe: Vec<String>,
    /// Username, empty for none.
    pub username: String,
    /// Password (secret, never logged); prefer `password_file`.
    pub password: Secret,
    /// File holding the password (first line), e.g. written by
    /// `wastewatch devices credentials`; empty for none.
    #[serde(deserialize_with = "empty_as_none")]
    pub password_file: Option<PathBuf>,
    /// Use TLS (rustls).
    pub tls: bool,
    /// PEM CA bundle for TLS; empty = system roots.
    #[serde(deserialize_with = "empty_as_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for TLS client authentication; its
    /// Common Name is the identity on the broker's certificate listener.
    #[serde(deserialize_with = "empty_as_none")]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (secret file).
    #[serde(deserialize_with = "empty_as_none")]
    pub client_key_file: Option<PathBuf>,
    /// Keep-alive, seconds.
    pub keep_alive_s: u64,
    /// Session expiry, seconds; non-zero so the broker keeps the session.
    pub session_expiry_s: u32,
    /// MQTT 5 Receive Maximum: unacked QoS 1 messages the broker may send.
    pub receive_maximum: u16,
    /// Largest packet accepted, bytes.
    pub max_packet_bytes: u32,
    /// First reconnect delay, ms.
    pub reconnect_min_ms: u64,
    /// Largest reconnect delay, ms.
    pub reconnect_max_ms: u64,
    /// While messages flow, wait at most this long for more before the
    /// socket is read again (0: read on every arrival).
    pub read_linger_ms: u64,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "wastewatch-ingest-1".into(),
            subscribe: vec!["wastewatch/v1/#".into()],
            username: String::new(),
            password: Secret::default(),
            password_file: None,
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive_s: 30,
            session_expiry_s: 7 * 24 * 3600,
            receive_maximum: 10_000,
            max_packet_bytes: 256 * 1024,
            reconnect_min_ms: 200,
            reconnect_max_ms: 30_000,
            read_linger_ms: 1,
        }
    }
}

/// `[decode]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDecode {
    /// Directory with sites.json, devices.json, permits.json.
    pub registry_dir: PathBuf,
    /// Largest payload accepted, bytes.
    pub max_payload_bytes: usize,
    /// Device clock may be this far ahead, ms.
    pub max_future_ms: i64,
    /// Device time may be this far behind, ms.
    pub max_past_ms: i64,
    /// `restamp` or `reject`.
    pub clock_action: Lenient<ClockAction>,
    /// Allowed |net − (gross − tare)|, kg.
    pub net_tolerance_kg: f64,
}

impl Default for RawDecode {
    fn default() -> Self {
        RawDecode {
            registry_dir: PathBuf::from("zone"),
            max_payload_bytes: crate::decode::DEFAULT_MAX_PAYLOAD_BYTES,
            max_future_ms: 5 * 60 * 1000,
            max_past_ms: 7 * 24 * 3600 * 1000,
            clock_action: Lenient::Valid(ClockAction::Restamp),
            net_tolerance_kg: 20.0,
        }
    }
}

/// Default bound of the log: a day of the shipped zone at its nominal rate,
/// with a wide margin (the arithmetic is in docs/LOG.md).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 2 << 30;

/// `[log]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// Directory of the durable log.
    pub dir: PathBuf,
    /// Bound on bytes held (unconsumed records + quarantine); when
    /// reached, ingest stops acking.
    pub max_bytes: u64,
    /// Size after which a segment file is closed and a new one started;
    /// unset: an eighth of `max_bytes`, at most 64 MiB.
    pub segment_bytes: Option<u64>,
    /// Most records in one group commit.
    pub commit_max_records: usize,
    /// How long a group commit waits for more messages once the first has
    /// arrived, ms (0: commit at once). Fewer, larger commits: less fsync
    /// and wake-up work per message at moderate load, for at most this much
    /// more ack latency.
    pub commit_linger_ms: u64,
    /// Bytes after which a group commit takes no further message; unset:
    /// 4 MiB, or less for a small `max_bytes`.
    pub commit_max_bytes: Option<u64>,
    /// The TSDB writer's cursor is saved at most this often (its writes
    /// are idempotent, so a crash rewrites at most this much).
    pub cursor_sync_ms: u64,
    /// Disk reserve kept in the log directory for the stages' snapshots
    /// when the disk fills (docs/LOG.md "A full disk"); 0 = none.
    pub disk_reserve_bytes: u64,
    /// Records of the newest ingest commits kept decoded in memory, so the
    /// consumers that keep up neither read nor decode them again (0 =
    /// none; about 1.2 KB of memory each).
    pub decoded_tail_records: usize,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            dir: PathBuf::from("data"),
            max_bytes: DEFAULT_LOG_MAX_BYTES,
            segment_bytes: None,
            commit_max_records: 4096,
            commit_linger_ms: 2,
            commit_max_bytes: None,
            cursor_sync_ms: 1000,
            disk_reserve_bytes: crate::log::DEFAULT_DISK_RESERVE_BYTES,
            decoded_tail_records: crate::log::DEFAULT_DECODED_TAIL_RECORDS,
        }
    }
}

/// `[tsdb]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTsdb {
    /// `influxdb_v1`, `influxdb_v2`, `file` or `none`.
    pub kind: Lenient<TsdbKind>,
    /// Base URL of the server.
    pub url: String,
    /// v1: database.
    pub database: String,
    /// v1: retention policy, empty for the default.
    pub retention_policy: String,
    /// v1: username, empty for none.
    pub username: String,
    /// v1: password (secret).
    pub password: Secret,
    /// v2: organisation.
    pub org: String,
    /// v2: bucket.
    pub bucket: String,
    /// v2: API token (secret).
    pub token: Secret,
    /// `file`: path of the line-protocol file.
    #[serde(deserialize_with = "empty_as_none")]
    pub file_path: Option<PathBuf>,
    /// Most lines in one write.
    pub batch_max_lines: usize,
    /// Oldest a partial batch may get before it is written, ms.
    pub batch_max_age_ms: u64,
    /// Gzip request bodies; unset: on unless the TSDB is on this host
    /// (on loopback compressing costs both sides CPU and saves nothing).
    pub gzip: Option<bool>,
    /// First retry delay, ms.
    pub retry_min_ms: u64,
    /// Largest retry delay, ms.
    pub retry_max_ms: u64,
    /// Per-request timeout, ms.
    pub request_timeout_ms: u64,
    /// How often the pipeline counters are written, ms (0 = never).
    pub stats_interval_ms: u64,
}

impl Default for RawTsdb {
    fn default() -> Self {
        RawTsdb {
            kind: Lenient::Valid(TsdbKind::InfluxdbV1),
            url: "http://127.0.0.1:8086".into(),
            database: "wastewatch".into(),
            retention_policy: String::new(),
            username: String::new(),
            password: Secret::default(),
            org: "wastewatch".into(),
            bucket: "wastewatch".into(),
            token: Secret::default(),
            file_path: Some(PathBuf::from("wastewatch-points.lp")),
            batch_max_lines: 5000,
            batch_max_age_ms: 1000,
            gzip: None,
            retry_min_ms: 200,
            retry_max_ms: 30_000,
            request_timeout_ms: 10_000,
            stats_interval_ms: 10_000,
        }
    }
}

/// `[http]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHttp {
    /// Listen address; empty disables the HTTP server.
    #[serde(deserialize_with = "empty_as_none")]
    pub listen: Option<Lenient<SocketAddr>>,
    /// File of API bearer tokens, `name:token` per line (the name is
    /// recorded as who acknowledged); never the tokens themselves here.
    #[serde(deserialize_with = "empty_as_none")]
    pub tokens_file: Option<PathBuf>,
    /// Require a token for reads too (`/metrics`, `/api/v1/...`); the
    /// health probes stay open.
    pub protect_reads: bool,
    /// Tokens from the environment (`WASTEWATCH_HTTP_TOKENS`, same format,
    /// comma- or newline-separated); set by [`super::load`], never read
    /// from the file.
    #[serde(skip)]
    pub tokens_env: Option<Secret>,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: Some(Lenient::Valid(SocketAddr::from(([127, 0, 0, 1], 9464)))),
            tokens_file: None,
            protect_reads: false,
            tokens_env: None,
        }
    }
}

/// `[shutdown]`
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShutdown {
    /// Whole graceful shutdown must finish within this, ms.
    pub deadline_ms: u64,
}

impl Default for RawShutdown {
    fn default() -> Self {
        RawShutdown {
            deadline_ms: 10_000,
        }
    }
}

/// `[jt808]`: the JT/T 808 gateway (docs/PROTOCOLS.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawJt808 {
    /// Listen for terminals (off by default).
    pub enabled: bool,
    /// TCP listen address, e.g. `0.0.0.0:6808` for terminals on the network.
    pub listen: Lenient<SocketAddr>,
    /// File holding the key the authentication codes are derived from
    /// (first line, at least 16 characters; keep it: changing it makes every
    /// terminal register again).
    #[serde(deserialize_with = "empty_as_none")]
    pub auth_key_file: Option<PathBuf>,
    /// The key itself (secret); prefer `auth_key_file`.
    pub auth_key: Secret,
    /// Most terminals connected at once; further connections are closed.
    pub max_connections: usize,
    /// Longest frame, escaped bytes with delimiters.
    pub max_frame_bytes: usize,
    /// Longest reassembled (sub-packaged) message, bytes.
    pub max_message_bytes: usize,
    /// Sub-packaged messages in progress per connection.
    pub max_pending_messages: usize,
    /// A sub-packaged message must complete within this, seconds.
    pub subpackage_timeout_s: u64,
    /// Frames handled per second per connection (reading pauses beyond).
    pub max_messages_per_s: u32,
    /// A terminal must authenticate within this after connecting, seconds.
    pub auth_timeout_s: u64,
    /// A connection without a frame for this long is closed, seconds.
    pub idle_timeout_s: u64,
    /// A reply that cannot be written within this closes the connection,
    /// seconds.
    pub write_timeout_s: u64,
}

impl Default for RawJt808 {
    fn default() -> Self {
        RawJt808 {
            enabled: false,
            listen: Lenient::Valid(SocketAddr::from(([127, 0, 0, 1], 6808))),
            auth_key_file: None,
            auth_key: Secret::default(),
            max_connections: 1000,
            max_frame_bytes: 4096,
            max_message_bytes: 128 * 1024,
            max_pending_messages: 2,
            subpackage_timeout_s: 60,
            max_messages_per_s: 50,
            auth_timeout_s: 60,
            idle_timeout_s: 180,
            write_timeout_s: 10,
        }
    }
}

/// `[sparkplug]`: the Sparkplug B host application (docs/PROTOCOLS.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSparkplug {
    /// Subscribe to the Sparkplug namespace and map edge nodes (off by
    /// default).
    pub enabled: bool,
    /// Host application id: STATE is published on `spBv1.0/STATE/{host_id}`.
    pub host_id: String,
    /// Groups handled (subscribes `spBv1.0/{group}/#` for each); empty:
    /// every group (`spBv1.0/#`).
    pub groups: Vec<String>,
    /// Least time between two rebirth requests to one edge node, ms.
    pub rebirth_min_interval_ms: u64,
}

impl Default for RawSparkplug {
    fn default() -> Self {
        RawSparkplug {
            enabled: false,
            host_id: "wastewatch".into(),
            groups: Vec::new(),
            rebirth_min_interval_ms: 5_000,
        }
    }
}
