//! `wastewatch demo`: the whole pipeline on one machine with nothing to
//! install — an embedded MQTT 5 broker, the service itself, and a simulated
//! fleet of the shipped zone publishing through the broker.
//!
//! It sits outside the data flow and drives all of it: the simulator
//! (`firmware_sim`) publishes, `ingest/` receives, `decode/` checks, `log/`
//! makes durable, `sink/` writes line protocol to a file (or InfluxDB 1.x
//! when a URL is given). A status line every second shows the message rate
//! in, decoded and quarantined counts, log depth and points written; at the
//! end (Ctrl-C or the duration) the fleet stops, the service shuts down in
//! its documented order, and a summary compares what the simulator sent and
//! expected to be quarantined with what the service did.
//!
//! The broker is rumqttd 0.20 with one MQTT 5 listener on 127.0.0.1. Its
//! v5 listener handles what the pipeline needs — QoS 1 both ways, the
//! subscriber's manual PUBACKs, clean start off, the MQTT 5 content type
//! passed through to subscribers (JSON devices) and wills — which the test
//! `embedded_broker_speaks_mqtt5_to_rumqttc_v5_clients` checks. rumqttd
//! cannot report the port it bound, so port 0 is resolved by binding an
//! ephemeral port first and handing it over (a small race with other
//! processes, acceptable for a demo). rumqttd has no shutdown: its threads
//! end with the process.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;

use firmware_sim::{self as sim, Fleet, Progress, Scenario, SimConfig};
use wastewatch::config::{self, TsdbTarget};
use wastewatch::decode::ErrorKind;
use wastewatch::registry::Registry;

/// Options of the demo.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoOptions {
    /// InfluxDB 1.x base URL (e.g. `http://127.0.0.1:8086`); `None` writes
    /// line protocol to `out_file` instead.
    pub influx_v1_url: Option<String>,
    /// InfluxDB 1.x database (with `influx_v1_url`).
    pub database: String,
    /// Line-protocol file (without `influx_v1_url`); truncated at the start.
    /// The durable log lives in a temporary directory next to it.
    pub out_file: PathBuf,
    /// Port of the embedded broker on 127.0.0.1; 0 picks a free one.
    pub mqtt_port: u16,
    /// Scenario names (each may be a comma-separated list); empty = normal.
    pub scenarios: Vec<String>,
    /// Simulator seed.
    pub seed: u64,
    /// Cap on simulator messages per second; 0 or less = no cap.
    pub rate_per_s: f64,
    /// Stop after this long; `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    /// Simulated seconds per second. The simulation starts at the last
    /// 20:55 China Standard Time (trucks drive loaded in their permits'
    /// 21:00-06:00 window) and never runs ahead of the wall clock.
    pub speedup: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            influx_v1_url: None,
            database: "wastewatch".to_owned(),
            out_file: PathBuf::from("demo-out/points.lp"),
            mqtt_port: 0,
            scenarios: Vec::new(),
            seed: 1,
            rate_per_s: 3000.0,
            duration: None,
            speedup: 300.0,
        }
    }
}

/// Runs the demo until Ctrl-C or `opts.duration`.
pub async fn run(opts: DemoOptions) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let result = run_until(opts, stop_rx).await;
    ctrl_c.abort();
    result
}

/// The zone shipped with the sources, else `./zone`.
fn zone_dir() -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("zone");
    if shipped.join("devices.json").exists() {
        shipped
    } else {
        PathBuf::from("zone")
    }
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot find a free port on 127.0.0.1")?;
    Ok(l.local_addr()?.port())
}

/// Starts rumqttd with one MQTT 5 listener on 127.0.0.1:`port` (0 = free
/// port) and waits until it accepts connections; returns the port.
pub fn start_broker(port: u16) -> anyhow::Result<u16> {
    let port = if port == 0 { free_port()? } else { port };
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 256 * 1024,
        max_inflight_count: 1000,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let mut v5 = HashMap::new();
    v5.insert(
        "v5-demo".to_owned(),
        rumqttd::ServerSettings {
            name: "v5-demo".to_owned(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections,
        },
    );
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..rumqttd::RouterConfig::default()
        },
        v5: Some(v5),
        ..rumqttd::Config::default()
    };
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("demo-broker".to_owned())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded broker stopped");
            }
        })
        .context("cannot start the embedded broker thread")?;
    let t0 = Instant::now();
    while TcpStream::connect(listen).is_err() {
        if t0.elapsed() > Duration::from_secs(5) {
            anyhow::bail!("embedded broker did not listen on {listen} within 5 s; is the port taken? pick another with --mqtt-port");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(port)
}

/// What the demo runs when no scenario is named: the headline alerts of the
/// product among normal traffic, all within the first simulated hour.
pub const DEFAULT_SCENARIOS: &str =
    "normal,storage_overfill,storage_overdue,route_deviation,illegal_dump,time_window,bin_fire,malformed";

fn parse_scenarios(names: &[String]) -> anyhow::Result<Vec<Scenario>> {
    let mut out = Vec::new();
    for n in names {
        out.extend(Scenario::parse_list(n).map_err(anyhow::Error::msg)?);
    }
    if out.is_empty() {
        out = Scenario::parse_list(DEFAULT_SCENARIOS).map_err(anyhow::Error::msg)?;
    }
    Ok(out)
}

/// Where the demo starts simulating: the last 20:45 China Standard Time at
/// least 14 h before `now_ms`, so the fast-forward covers a night of truck
/// trips (permit windows 21:00-06:00) and the next morning's collections
/// and deliveries before it reaches the wall clock.
pub fn demo_start_ms(now_ms: i64) -> i64 {
    sim::last_local_time_before(now_ms - 14 * 3_600_000, 20 * 60 + 45)
}

/// A local HTTP receiver for the demo's webhook notifier: counts and prints
/// what the service delivers. Returns its URL and the delivery count.
async fn webhook_sink() -> anyhow::Result<(String, Arc<std::sync::atomic::AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(move |body: String| {
            let c = c.clone();
            async move {
                let n = c.fetch_add(1, Relaxed) + 1;
                let alerts = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["alerts"].as_array().map(Vec::len))
                    .unwrap_or(1);
                println!("NOTIFIED webhook delivery #{n}: {alerts} alert(s)");
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}/notify"), count))
}

/// Tells a new user where to look while the demo runs.
fn print_where_to_look(opts: &DemoOptions, http: &str) {
    println!("where to look next:");
    println!("  alerts firing now:  curl -s 'http://{http}/api/v1/alerts?state=firing'");
    println!("  acknowledge one:    curl -s -XPOST http://{http}/api/v1/alerts/ID/ack -d '{{\"by\":\"you\"}}' -H 'content-type: application/json'");
    println!("  zone map (GeoJSON): http://{http}/api/v1/zone.geojson");
    println!("  metrics:            http://{http}/metrics");
    match &opts.influx_v1_url {
        Some(u) => {
            println!(
                "  points:             InfluxDB 1.x at {u}, database {}",
                opts.database
            );
            println!("  dashboards:         provision dashboards/provisioning/ into Grafana (docs/DASHBOARDS.md); the datasource points at {u}");
            println!("  KPI report:         wastewatch report --influx-url {u} --database {} --period YYYY-MM", opts.database);
        }
        None => {
            println!(
                "  points:             line protocol in {}",
                opts.out_file.display()
            );
            println!("  with InfluxDB:      cargo run --release -- demo --influx-url http://127.0.0.1:8086, then Grafana with dashboards/provisioning/ (docs/DASHBOARDS.md) and wastewatch report");
        }
    }
}

/// Counts of the service, sampled.
#[derive(Clone, Copy, Default)]
struct Sample {
    received: u64,
    decoded: u64,
    quarantined: u64,
    points: u64,
    depth: u64,
}

fn sample(running: &wastewatch::app::Running) -> Sample {
    let m = &running.metrics;
    Sample {
        received: m.received.load(Relaxed),
        decoded: m.decoded.load(Relaxed),
        quarantined: m.quarantined_total(),
        points: m.tsdb_points.load(Relaxed),
        depth: running.log.stats().depth,
    }
}

/// Runs the demo until `stop` turns true or `opts.duration` passes.
/// `CREATE DATABASE` on an InfluxDB 1.x (a no-op when it exists), so the
/// demo works against a fresh server; a server that refuses says why.
/// The KPIs no sensor measures (spot checks, audits, buildings, publicity):
/// operators enter them with `wastewatch kpi import`. The demo enters these
/// made-up values for its month, each noted "demo sample", so that its
/// report covers every target of the plan: (kpi, numerator, denominator).
const OPERATOR_SAMPLE: &[(&str, u32, u32)] = &[
    ("hazardous_spot_check_pass", 47, 48),
    ("clean_production_audit", 18, 19),
    ("green_building_share", 182_000, 190_000),
    ("prefabricated_share", 41_000, 100_000),
    ("publicity_reach", 9_150, 10_000),
    ("public_participation", 7_400, 10_000),
    ("public_satisfaction", 9_320, 10_000),
];

/// [`OPERATOR_SAMPLE`] for `month` (`YYYY-MM`) as a `kpi import` CSV file.
fn operator_sample_csv(month: &str) -> String {
    let mut csv = String::from("kpi,period,site,numerator,denominator,note\n");
    for (kpi, num, den) in OPERATOR_SAMPLE {
        csv.push_str(&format!("{kpi},{month},,{num},{den},demo sample\n"));
    }
    csv
}

/// Imports [`OPERATOR_SAMPLE`] for `month` through the same parser and
/// point encoding as `wastewatch kpi import`; returns how many values.
async fn import_operator_sample(
    tsdb: &wastewatch::config::TsdbSettings,
    kpi: &wastewatch::kpi::config::KpiConfig,
    month: &str,
) -> anyhow::Result<usize> {
    use wastewatch::sink::writer::{WriteOutcome, Writer};
    let records = wastewatch::kpi::import::parse(&operator_sample_csv(month), kpi)
        .map_err(|errs| anyhow::anyhow!("{}", errs.join("; ")))?;
    let body = wastewatch::kpi::import::lines(&records).map_err(anyhow::Error::msg)?;
    let writer = Writer::new(tsdb).map_err(|e| anyhow::anyhow!("{e}"))?;
    match writer.write(&body).await {
        WriteOutcome::Ok => Ok(records.len()),
        WriteOutcome::Rejected { reason } | WriteOutcome::Retry { reason, .. } => {
            anyhow::bail!("InfluxDB did not take them: {reason}")
        }
        WriteOutcome::TooLarge => anyhow::bail!("InfluxDB refused them as too large"),
    }
}

async fn create_database(url: &url::Url, database: &str) -> anyhow::Result<()> {
    let q = url
        .join("query")
        .with_context(|| format!("influx v1 url {url} cannot take /query"))?;
    let quoted = database.replace('\\', "\\\\").replace('"', "\\\"");
    let resp = reqwest::Client::new()
        .post(q)
        .form(&[("q", format!("CREATE DATABASE \"{quoted}\""))])
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| {
            format!("cannot reach InfluxDB at {url} to create database {database:?}")
        })?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() || body.contains("\"error\"") {
        anyhow::bail!(
            "InfluxDB at {url} refused to create database {database:?}: HTTP {status}: {body}"
        );
    }
    Ok(())
}

pub async fn run_until(opts: DemoOptions, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let scenarios = parse_scenarios(&opts.scenarios)?;
    let zone = zone_dir();
    let registry =
        Registry::load_dir(&zone).map_err(|e| anyhow::anyhow!("zone {}: {e}", zone.display()))?;
    let port = start_broker(opts.mqtt_port)?;
    println!("broker: rumqttd MQTT 5 on 127.0.0.1:{port}");

    let out_dir = opts
        .out_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let log_dir = out_dir.join(format!(
        "wastewatch-log-{}-{}",
        std::process::id(),
        sim::format_local(wastewatch::ingest::now_ms()).replace([':', '+'], "")
    ));
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("cannot create {}", log_dir.display()))?;

    let mut settings = config::load(None, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.mqtt.host = "127.0.0.1".to_owned();
    settings.mqtt.port = port;
    settings.mqtt.client_id = "wastewatch-demo".to_owned();
    // The simulated zone replays the evening from 20:55 China Standard Time
    // at the chosen speed-up, so its readings arrive hours after their
    // device time by design; don't let the staleness check (15 min in
    // production) turn every demo alert into "cannot verify".
    settings.alerting.rules.thresholds.quality.stale_after_ms = 2 * 86_400_000;
    settings.registry_dir = zone.clone();
    settings.log.dir = log_dir.clone();
    // The port the provisioned dashboards fetch the zone map from, if free.
    let http_port = if TcpListener::bind((Ipv4Addr::LOCALHOST, 9464)).is_ok() {
        9464
    } else {
        0
    };
    settings.http_listen = Some(SocketAddr::from((Ipv4Addr::LOCALHOST, http_port)));
    // KPI points every few seconds of the fast-forward.
    settings.kpi.flush_interval_ms = 2_000;
    // Notifications go to a local webhook receiver that prints them.
    let (hook_url, delivered) = webhook_sink().await?;
    settings
        .alerting
        .webhooks
        .push(wastewatch::notify::webhook::WebhookSettings {
            name: "demo-webhook".to_owned(),
            url: wastewatch::config::Secret::new(hook_url),
            format: wastewatch::notify::webhook::Format::Json,
            min_severity: wastewatch::alert::Severity::Info,
            sign_secret: wastewatch::config::Secret::new(String::new()),
        });
    settings.tsdb.stats_interval = None;
    settings.tsdb.target = match &opts.influx_v1_url {
        Some(u) => {
            let url =
                url::Url::parse(u).with_context(|| format!("influx v1 url {u:?} is not a URL"))?;
            create_database(&url, &opts.database).await?;
            TsdbTarget::InfluxV1 {
                url,
                database: opts.database.clone(),
                retention_policy: String::new(),
                credentials: None,
            }
        }
        None => {
            std::fs::write(&opts.out_file, b"")
                .with_context(|| format!("cannot create {}", opts.out_file.display()))?;
            TsdbTarget::File {
                path: opts.out_file.clone(),
            }
        }
    };
    let (tsdb_settings, kpi_settings) = (settings.tsdb.clone(), settings.kpi.clone());
    let running = wastewatch::app::start(settings, registry.clone()).await?;
    if let Some(addr) = running.http_addr {
        println!("service: http on http://{addr} (/metrics, /healthz, /readyz)");
        print_where_to_look(&opts, &addr.to_string());
    }
    let t0 = Instant::now();
    while running.metrics.mqtt_connected.load(Relaxed) == 0 {
        if t0.elapsed() > Duration::from_secs(10) {
            running.shutdown().await;
            anyhow::bail!(
                "the service did not connect to the embedded broker on port {port} within 10 s"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The subscription follows the CONNACK; give the SUBACK a moment so the
    // first births are not published to nobody.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let now = wastewatch::ingest::now_ms();
    let cfg = SimConfig {
        seed: opts.seed,
        scenarios,
        rate_per_s: (opts.rate_per_s > 0.0).then_some(opts.rate_per_s),
        speedup: if opts.speedup > 0.0 {
            opts.speedup
        } else {
            1.0
        },
        start_unix_ms: demo_start_ms(now),
        clamp_to_wall_clock: true,
        ..SimConfig::default()
    };
    let fleet = Fleet::new(&registry, &cfg)?;
    if opts.influx_v1_url.is_some() {
        let month = crate::cmd::kpi::this_month(cfg.start_unix_ms, 480);
        match import_operator_sample(&tsdb_settings, &kpi_settings, &month).await {
            Ok(n) => println!(
                "operator KPIs: {n} made-up sample values for {month} imported (source=import, note \"demo sample\"); real ones come from `wastewatch kpi import`"
            ),
            Err(e) => println!("operator KPIs: the demo sample was not imported: {e:#}"),
        }
    }
    // Print every alert notification as it happens.
    let mut alert_rx = running.alerts.broadcast.subscribe();
    let alert_printer = tokio::spawn(async move {
        loop {
            match alert_rx.recv().await {
                Ok(ev) if ev.notify() => println!(
                    "ALERT {:<12} {:<8} {:<26} {:<28} {}",
                    ev.to_state.as_str(),
                    ev.alert.severity.as_str(),
                    ev.alert.key.rule.as_str(),
                    ev.alert.key.entity,
                    ev.alert.message
                ),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    println!("({n} alert events not shown)")
                }
                Err(_) => break,
            }
        }
    });
    let alert_store = running.alerts.store.clone();
    let active_alerts = move || {
        alert_store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .list(&wastewatch::alert::AlertFilter {
                active: Some(true),
                ..Default::default()
            })
            .len()
    };
    println!(
        "fleet: {} devices, seed {}, scenarios {}, speed-up {}x from {}",
        fleet.device_count(),
        cfg.seed,
        cfg.normalised_scenarios()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        cfg.speedup,
        sim::format_local(cfg.start_unix_ms)
    );
    for a in fleet.assignments() {
        let who = if a.device_id.is_empty() {
            "(fleet)"
        } else {
            a.device_id.as_str()
        };
        println!("  {:<22} {:<26} {}", a.scenario.as_str(), who, a.detail);
    }
    for w in fleet.warnings() {
        println!("  warning: {w}");
    }

    let latest: Arc<Mutex<Option<Progress>>> = Arc::new(Mutex::new(None));
    let (fleet_stop_tx, fleet_stop_rx) = watch::channel(false);
    let publisher = {
        let latest = latest.clone();
        let cfg = cfg.clone();
        tokio::spawn(async move {
            sim::publish(
                fleet,
                "127.0.0.1",
                port,
                "firmware-sim-demo",
                &cfg,
                fleet_stop_rx,
                move |p| {
                    *latest.lock().unwrap_or_else(PoisonError::into_inner) = Some(p.clone());
                },
            )
            .await
        })
    };

    let started = Instant::now();
    let mut last = sample(&running);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = async {
                // A dropped sender means nobody can ask to stop: wait on.
                if stop.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            } => {
                println!("stopping (Ctrl-C)");
                break;
            }
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        let s = sample(&running);
        let p = latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let (sent, sim_now) = p.map_or((0, cfg.start_unix_ms), |p| (p.sent, p.sim_now_ms));
        println!(
            "[{:>4}s] sim {} | sent {} | in {}/s | decoded {} | quarantined {} | log depth {} | points {} | alerts active {} | notified {}",
            started.elapsed().as_secs(),
            sim::format_local(sim_now),
            sent,
            s.received.saturating_sub(last.received),
            s.decoded,
            s.quarantined,
            s.depth,
            s.points,
            active_alerts(),
            delivered.load(Relaxed)
        );
        last = s;
    }

    let _ = fleet_stop_tx.send(true);
    let summary = publisher.await.context("simulator task failed")??;
    // Let the service take in what the broker acked before stopping it.
    let t0 = Instant::now();
    while running.metrics.received.load(Relaxed) < summary.acked
        && t0.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = running.metrics.clone();
    let log = running.log.clone();
    let all_alerts = running.alerts.store.clone();
    running.shutdown().await;
    alert_printer.abort();
    let end = Sample {
        received: metrics.received.load(Relaxed),
        decoded: metrics.decoded.load(Relaxed),
        quarantined: metrics.quarantined_total(),
        points: metrics.tsdb_points.load(Relaxed),
        depth: log.stats().depth,
    };
    drop(log);

    println!("---- demo summary ----");
    println!(
        "simulator: sent {} (duplicates {}), broker acked {}, expected quarantined {}",
        summary.sent, summary.duplicates_sent, summary.acked, summary.expected_quarantined
    );
    for (reason, n) in &summary.expected_quarantined_by_reason {
        println!("  expected quarantine {reason}: {n}");
    }
    println!(
        "service: received {}, decoded {}, quarantined {}, points stored {}, log depth {}",
        end.received, end.decoded, end.quarantined, end.points, end.depth
    );
    for (i, kind) in ErrorKind::ALL.iter().enumerate() {
        let n = metrics.quarantined[i].load(Relaxed);
        if n > 0 {
            println!("  quarantined {}: {n}", kind.as_str());
        }
    }
    let alerts = all_alerts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .list(&wastewatch::alert::AlertFilter::default());
    println!("alerts: {} raised", alerts.len());
    for a in &alerts {
        println!(
            "  #{:<4} {:<12} {:<8} {:<26} {}",
            a.id,
            a.state.as_str(),
            a.severity.as_str(),
            a.key.rule.as_str(),
            a.key.entity
        );
    }
    match &opts.influx_v1_url {
        Some(u) => println!("points: InfluxDB 1.x at {u}, database {}", opts.database),
        None => println!("points: line protocol in {}", opts.out_file.display()),
    }
    println!(
        "notifications delivered to the demo webhook: {}",
        delivered.load(Relaxed)
    );
    let month = crate::cmd::kpi::this_month(cfg.start_unix_ms, 480);
    match &opts.influx_v1_url {
        Some(u) => println!(
            "KPI report of the simulated month: wastewatch report --period {month} --influx-url {u} --database {}",
            opts.database
        ),
        None => println!(
            "KPI report: run the demo with --influx-url, then wastewatch report --period {month} --influx-url <url>"
        ),
    }
    if let Err(e) = std::fs::remove_dir_all(&log_dir) {
        println!(
            "note: could not remove the demo log {}: {e}",
            log_dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    const MEASUREMENTS: [&str; 7] = [
        "weighbridge_ticket",
        "bin_reading",
        "storage_reading",
        "truck_fix",
        "device_status",
        "alert",
        "kpi",
    ];

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_runs_for_three_seconds_and_writes_only_known_measurements() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("points.lp");
        let opts = DemoOptions {
            out_file: out.clone(),
            duration: Some(Duration::from_secs(3)),
            scenarios: vec!["normal,malformed".to_owned()],
            ..DemoOptions::default()
        };
        run(opts).await.unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        assert!(!lines.is_empty(), "no points written");
        for l in &lines {
            assert!(
                MEASUREMENTS
                    .iter()
                    .any(|m| l.starts_with(&format!("{m},")) || l.starts_with(&format!("{m} "))),
                "unexpected line {l}"
            );
        }
    }

    /// Against the test InfluxDB 1.x (scripts/services.sh): a database that
    /// does not exist yet is created, and the points land in it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_creates_its_influxdb_database_and_writes_there() {
        let influx = std::env::var("WW_TEST_INFLUXDB")
            .expect("WW_TEST_INFLUXDB is not set: run the tests with scripts/test.sh");
        let db = format!("demo_create_{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let opts = DemoOptions {
            influx_v1_url: Some(influx.clone()),
            database: db.clone(),
            out_file: dir.path().join("unused.lp"),
            duration: Some(Duration::from_secs(4)),
            scenarios: vec!["normal".to_owned()],
            ..DemoOptions::default()
        };
        run(opts).await.unwrap();
        let count = |q: String| {
            let influx = influx.clone();
            let db = db.clone();
            async move {
                reqwest::Client::new()
                    .get(format!("{influx}/query"))
                    .query(&[("db", db.as_str()), ("q", q.as_str())])
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            }
        };
        let body = count("SHOW MEASUREMENTS".to_owned()).await;
        assert!(
            body.contains("device_status") || body.contains("truck_fix"),
            "no device measurement in the new database {db}: {body}"
        );
        // The operator sample: one imported value per imported KPI.
        let body = count(
            "SELECT count(numerator) FROM kpi WHERE source = 'import' GROUP BY kpi".to_owned(),
        )
        .await;
        for (kpi, _, _) in OPERATOR_SAMPLE {
            assert!(
                body.contains(&format!("\"kpi\":\"{kpi}\"")),
                "no imported {kpi} in {db}: {body}"
            );
        }
        let _ = count(format!("DROP DATABASE \"{db}\"")).await;
    }

    /// The first day and a half of the default demo, simulated offline and
    /// decoded into the KPI engine, gives every computed KPI of the
    /// catalogue a zone value with a denominator: the simulated fleet makes
    /// the tickets, manifests, lots, readings and trips the formulas need.
    #[test]
    fn the_default_demo_fleet_feeds_every_computed_kpi() {
        let registry = Arc::new(Registry::load_dir(&zone_dir()).unwrap());
        // 2026-11-15 12:00 UTC; the demo starts the evening before.
        let start = demo_start_ms(1_794_744_000_000);
        let cfg = SimConfig {
            seed: 1,
            scenarios: parse_scenarios(&[]).unwrap(),
            start_unix_ms: start,
            ..SimConfig::default()
        };
        let mut fleet = Fleet::new(&registry, &cfg).unwrap();
        let decoder = wastewatch::decode::Decoder::new(registry.clone(), Default::default());
        let mut engine =
            wastewatch::kpi::engine::KpiEngine::new(registry.clone(), Default::default());
        let mut latest: HashMap<String, wastewatch::pb::KpiRecord> = HashMap::new();
        let mut decoded = 0u64;
        let end = start + 36 * 3_600_000;
        let mut now = start;
        while now < end {
            now += 60_000;
            for m in fleet.next_batch(now) {
                let ct = m.json.then_some("application/json");
                if let Ok(rec) = decoder.decode(&m.topic, &m.payload, ct, now) {
                    decoded += 1;
                    engine.on_record(&rec);
                }
            }
            for k in engine.flush() {
                if k.scope == "zone" && k.period == "year" {
                    latest.insert(k.kpi.clone(), k);
                }
            }
        }
        assert!(decoded > 10_000, "only {decoded} records decoded");
        let mut missing = Vec::new();
        for spec in wastewatch::kpi::CATALOGUE
            .iter()
            .filter(|s| s.source == wastewatch::kpi::Source::Computed)
        {
            match latest.get(spec.id.as_str()) {
                Some(k) if k.denominator > 0.0 && k.value.is_some() => {}
                other => missing.push(format!("{}: {other:?}", spec.id.as_str())),
            }
        }
        assert!(
            missing.is_empty(),
            "KPIs without a value:\n{}",
            missing.join("\n")
        );
        // The manifests of the collections match: closure and the match
        // rate are not left at 0 by tickets that lost their manifest.
        for id in [
            "hazardous_closure",
            "manifest_match_rate",
            "medical_disposal",
        ] {
            let k = &latest[id];
            assert!(k.numerator > 0.0, "{id}: {k:?}");
        }
    }

    #[test]
    fn the_operator_sample_covers_every_imported_kpi_of_the_catalogue() {
        let recs = wastewatch::kpi::import::parse(
            &operator_sample_csv("2026-11"),
            &wastewatch::kpi::config::KpiConfig::default(),
        )
        .unwrap();
        let mut sampled: Vec<&str> = recs.iter().map(|r| r.kpi.as_str()).collect();
        sampled.sort_unstable();
        let mut imported: Vec<&str> = wastewatch::kpi::CATALOGUE
            .iter()
            .filter(|s| s.source == wastewatch::kpi::Source::Imported)
            .map(|s| s.id.as_str())
            .collect();
        imported.sort_unstable();
        assert_eq!(sampled, imported);
        assert!(recs
            .iter()
            .all(|r| r.note == "demo sample" && r.period == "month"));
    }

    /// Collects every publish on `wastewatch/v1/#` until `stop`.
    async fn collect(port: u16, mut stop: watch::Receiver<bool>) -> Vec<(String, Vec<u8>)> {
        let mut o = MqttOptions::new("probe-collector", "127.0.0.1", port);
        o.set_clean_start(true);
        let (c, mut el) = AsyncClient::new(o, 1000);
        let mut got = Vec::new();
        loop {
            tokio::select! {
                ev = el.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => c.subscribe("wastewatch/v1/#", QoS::AtLeastOnce).await.unwrap(),
                    Ok(Event::Incoming(Packet::Publish(p))) => got.push((String::from_utf8_lossy(&p.topic).into_owned(), p.payload.to_vec())),
                    Ok(_) => {}
                    Err(e) => panic!("collector: {e}"),
                },
                _ = async { let _ = stop.wait_for(|s| *s).await; } => return got,
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn per_device_connections_fire_the_registered_will_through_the_broker() {
        let port = start_broker(0).unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let collector = tokio::spawn(collect(port, stop_rx));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let registry = Registry::load_dir(&zone_dir()).unwrap();
        let cfg = SimConfig {
            scenarios: vec![Scenario::DeviceOffline],
            per_device_connections: true,
            speedup: 600.0,
            duration: Some(Duration::from_secs(3)),
            start_unix_ms: wastewatch::ingest::now_ms() - 3_600_000,
            ..SimConfig::default()
        };
        let fleet = Fleet::new(&registry, &cfg).unwrap();
        let offline: Vec<String> = fleet
            .assignments()
            .iter()
            .map(|a| a.device_id.clone())
            .collect();
        let (_never, no_stop) = watch::channel(false);
        let summary = sim::publish(fleet, "127.0.0.1", port, "probe-sim", &cfg, no_stop, |_| {})
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop_tx.send(true).unwrap();
        let got = collector.await.unwrap();
        assert_eq!(summary.acked, summary.sent, "{summary:?}");
        assert_eq!(got.len() as u64, summary.sent + summary.wills_triggered);
        assert!(summary.wills_triggered >= 1, "no will fired");
        let storage = offline.iter().find(|id| id.starts_with("st-")).unwrap();
        let will_topic = format!("/storage/{storage}/status");
        let wills: Vec<_> = got
            .iter()
            .filter(|(t, _)| t.ends_with(&will_topic))
            .collect();
        let last = wills.last().unwrap();
        let env = wastewatch::pb::Envelope::decode(last.1.as_slice()).unwrap();
        assert!(
            matches!(env.body, Some(wastewatch::pb::envelope::Body::DeviceStatus(s)) if s.kind == wastewatch::pb::StatusKind::LastWill as i32)
        );
        // Devices still online at the end disconnected cleanly: their wills
        // were not published, and the summary names the unused seq.
        assert!(
            summary
                .devices
                .values()
                .filter(|d| d.unused_will_seq.is_some())
                .count()
                >= 28
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_broker_keeps_a_persistent_session_across_reconnects() {
        let port = start_broker(0).unwrap();
        let sub_opts = || {
            let mut o = MqttOptions::new("probe-persistent", "127.0.0.1", port);
            o.set_clean_start(false);
            o.set_session_expiry_interval(Some(600));
            o.set_manual_acks(true);
            o
        };
        // First session: subscribe, then vanish without DISCONNECT.
        {
            let (sub, mut el) = AsyncClient::new(sub_opts(), 10);
            loop {
                match tokio::time::timeout(Duration::from_secs(5), el.poll())
                    .await
                    .unwrap()
                    .unwrap()
                {
                    Event::Incoming(Packet::ConnAck(_)) => sub
                        .subscribe("wastewatch/v1/#", QoS::AtLeastOnce)
                        .await
                        .unwrap(),
                    Event::Incoming(Packet::SubAck(_)) => break,
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (publ, mut pub_el) = AsyncClient::new(
            MqttOptions::new("probe-persistent-pub", "127.0.0.1", port),
            10,
        );
        for i in 0..3u8 {
            publ.publish(
                "wastewatch/v1/s/bin/d/telemetry",
                QoS::AtLeastOnce,
                false,
                vec![i],
            )
            .await
            .unwrap();
        }
        let mut acks = 0;
        while acks < 3 {
            if let Event::Incoming(Packet::PubAck(_)) =
                tokio::time::timeout(Duration::from_secs(5), pub_el.poll())
                    .await
                    .unwrap()
                    .unwrap()
            {
                acks += 1;
            }
        }
        // Second session: the messages published meanwhile arrive.
        let (sub, mut el) = AsyncClient::new(sub_opts(), 10);
        let mut present = None;
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 3 && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), el.poll())
                .await
                .unwrap()
                .unwrap()
            {
                Event::Incoming(Packet::ConnAck(a)) => present = Some(a.session_present),
                Event::Incoming(Packet::Publish(p)) => {
                    sub.ack(&p).await.unwrap();
                    got.push(p.payload.to_vec());
                }
                _ => {}
            }
        }
        assert_eq!(present, Some(true));
        assert_eq!(got, vec![vec![0u8], vec![1], vec![2]]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn embedded_broker_speaks_mqtt5_to_rumqttc_v5_clients() {
        let port = start_broker(0).unwrap();
        // Subscriber like ingest: persistent session, manual acks.
        let mut so = MqttOptions::new("probe-sub", "127.0.0.1", port);
        so.set_clean_start(false);
        so.set_session_expiry_interval(Some(600));
        so.set_manual_acks(true);
        let (sub, mut sub_el) = AsyncClient::new(so, 100);
        let mut po = MqttOptions::new("probe-pub", "127.0.0.1", port);
        po.set_clean_start(false);
        po.set_session_expiry_interval(Some(600));
        let (publ, mut pub_el) = AsyncClient::new(po, 100);
        let pub_task = tokio::spawn(async move {
            let mut acks = 0;
            while acks < 2 {
                if let Ok(Event::Incoming(Packet::PubAck(_))) = pub_el.poll().await {
                    acks += 1;
                }
            }
            acks
        });
        let mut subscribed = false;
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while got.len() < 2 && Instant::now() < deadline {
            let ev = tokio::time::timeout(Duration::from_secs(5), sub_el.poll())
                .await
                .unwrap()
                .unwrap();
            match ev {
                Event::Incoming(Packet::ConnAck(_)) => sub
                    .subscribe("wastewatch/v1/#", QoS::AtLeastOnce)
                    .await
                    .unwrap(),
                Event::Incoming(Packet::SubAck(_)) if !subscribed => {
                    subscribed = true;
                    let props = PublishProperties {
                        content_type: Some("application/json".to_owned()),
                        ..Default::default()
                    };
                    publ.publish_with_properties(
                        "wastewatch/v1/s/bin/d/telemetry",
                        QoS::AtLeastOnce,
                        false,
                        b"{}".to_vec(),
                        props,
                    )
                    .await
                    .unwrap();
                    publ.publish(
                        "wastewatch/v1/s/bin/d/telemetry",
                        QoS::AtLeastOnce,
                        false,
                        vec![1u8, 2, 3],
                    )
                    .await
                    .unwrap();
                }
                Event::Incoming(Packet::Publish(p)) => {
                    sub.ack(&p).await.unwrap();
                    got.push((
                        p.payload.to_vec(),
                        p.properties.and_then(|pr| pr.content_type),
                    ));
                }
                _ => {}
            }
        }
        assert_eq!(got.len(), 2, "subscriber received {got:?}");
        assert_eq!(
            got[0],
            (b"{}".to_vec(), Some("application/json".to_owned())),
            "content type must pass through"
        );
        assert_eq!(got[1].0, vec![1u8, 2, 3]);
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(5), pub_task)
                .await
                .unwrap()
                .unwrap(),
            2
        );
    }
}
