//! `wastewatch` command line: parse arguments, load config, init tracing,
//! hand over to the library.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use prost::Message;
use wastewatch::config::{self, Settings};
use wastewatch::decode::Decoder;
use wastewatch::log::{Log, CONSUMERS};
use wastewatch::pb;

#[derive(Parser)]
#[command(
    name = "wastewatch",
    version,
    about = "Waste-facility telemetry: MQTT → durable log → InfluxDB, with alerts"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the service until SIGINT/SIGTERM.
    Run {
        /// TOML config file (defaults, then this file, then WASTEWATCH__SECTION__KEY env).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate the config and the registry it points at; print every error.
    CheckConfig {
        /// TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// The whole pipeline in one process: an embedded MQTT broker, the
    /// simulated fleet (firmware-sim) and wastewatch, writing line protocol to
    /// a local file (or to InfluxDB 1.x with --influx-url). Ctrl-C stops it.
    /// (Cargo feature `demo`, on by default.)
    #[cfg(feature = "demo")]
    Demo {
        /// Write to this InfluxDB 1.x instead of the file, e.g. http://127.0.0.1:8086.
        #[arg(long)]
        influx_url: Option<String>,
        /// InfluxDB database (with --influx-url).
        #[arg(long, default_value = "wastewatch")]
        database: String,
        /// Line-protocol output file (without --influx-url).
        #[arg(long, default_value = "demo-out/points.lp")]
        out: PathBuf,
        /// Port of the embedded broker on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = 0)]
        mqtt_port: u16,
        /// Scenarios, comma-separated (see firmware-sim/SCENARIOS.md); default:
        /// normal traffic with the headline alerts (storage over its limit and
        /// overdue, a truck off its route, illegal dumping, time window, bin
        /// fire, malformed messages).
        #[arg(long)]
        scenario: Vec<String>,
        /// Simulator seed (runs are deterministic by seed).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Cap on simulated messages per second.
        #[arg(long, default_value_t = 3000.0)]
        rate: f64,
        /// Stop after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        duration_s: Option<u64>,
        /// Simulated seconds per wall-clock second.
        #[arg(long, default_value_t = 300.0)]
        speedup: f64,
    },
    /// Device identities for the broker (see docs/SECURITY.md).
    Devices {
        #[command(subcommand)]
        cmd: DevicesCmd,
    },
    /// Inspect or replay quarantined messages (service must be stopped).
    Quarantine {
        #[command(subcommand)]
        cmd: QuarantineCmd,
    },
    /// The zero-waste KPI table of one month or year against the 2025
    /// targets, with numerators, denominators and what is missing, read from
    /// InfluxDB (docs/KPIS.md).
    Report {
        /// Month (2026-10) or year (2026); default: this month.
        #[arg(long)]
        period: Option<String>,
        /// markdown (default) or csv.
        #[arg(long, default_value = "markdown")]
        format: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// TOML config file: the InfluxDB of its [tsdb] section.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        target: KpiTarget,
    },
    /// KPI values that no sensor measures.
    Kpi {
        #[command(subcommand)]
        cmd: KpiCmd,
    },
}

/// Where the KPIs are, overriding the config's [tsdb].
#[derive(clap::Args)]
struct KpiTarget {
    /// InfluxDB base URL, e.g. http://127.0.0.1:8086.
    #[arg(long)]
    influx_url: Option<String>,
    /// InfluxDB 1.x database, or the DBRP database name of the 2.x bucket.
    #[arg(long)]
    database: Option<String>,
    /// InfluxDB 2.x API token (else tsdb.token of the config).
    #[arg(long)]
    token: Option<String>,
}

impl KpiTarget {
    fn target(self) -> cmd::kpi::Target {
        cmd::kpi::Target {
            influx_url: self.influx_url,
            database: self.database,
            token: self.token,
        }
    }
}

#[derive(Subcommand)]
enum KpiCmd {
    /// Import operator-entered KPI values (spot checks, audits, buildings,
    /// publicity) from a CSV file: kpi,period,site,numerator,denominator,note.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Check the file only; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// TOML config file: the InfluxDB of its [tsdb] section.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        target: KpiTarget,
    },
}

#[derive(Subcommand)]
enum DevicesCmd {
    /// Write the broker's password file (Mosquitto format) with a password
    /// for every registered device and each ingest identity, and the
    /// per-device secrets for provisioning. Passwords already issued are
    /// kept; reload the broker afterwards (SIGHUP).
    Credentials {
        /// TOML config file: the registry is its decode.registry_dir.
        #[arg(long, short, conflicts_with = "zone")]
        config: Option<PathBuf>,
        /// Zone directory (sites.json, devices.json, permits.json) instead of --config.
        #[arg(long)]
        zone: Option<PathBuf>,
        /// Output directory (mosquitto.passwd, device-secrets.txt, <ingest-user>.password).
        #[arg(long)]
        out: PathBuf,
        /// Ingest identity (repeatable); the shipped ACL names wastewatch-ingest.
        #[arg(long = "ingest-user", default_value = wastewatch::credentials::DEFAULT_INGEST_USER)]
        ingest_users: Vec<String>,
        /// Issue a new password for this device or ingest user (repeatable).
        #[arg(long)]
        rotate: Vec<String>,
    },
}

#[derive(Subcommand)]
enum QuarantineCmd {
    /// List quarantined messages with their reasons.
    List {
        /// TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Most entries to print.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Decode every quarantined message again (after a schema or registry
    /// fix); those that now pass move into the log, the rest stay.
    Replay {
        /// TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Delete quarantined messages (they count against log.max_bytes): all
    /// of one reason, or all. Copy what you need first (`list`, or the
    /// HTTP API).
    Purge {
        /// TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Only entries with this reason (e.g. `tsdb_rejected`).
        #[arg(long, conflicts_with = "all")]
        reason: Option<String>,
        /// Every entry.
        #[arg(long)]
        all: bool,
    },
}

/// The async runtime: one thread unless configured otherwise (see
/// `runtime.worker_threads` in the example config).
fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
}

fn env_vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn load(config: Option<&PathBuf>) -> Result<Settings, config::ConfigErrors> {
    config::load(config.map(|p| p.as_path()), &env_vars())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::CheckConfig { config } => check_config(config.as_ref()),
        Cmd::Run { config } => {
            init_tracing();
            let settings = match load(config.as_ref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let rt = match runtime(settings.worker_threads) {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(run(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        #[cfg(feature = "demo")]
        Cmd::Demo {
            influx_url,
            database,
            out,
            mqtt_port,
            scenario,
            seed,
            rate,
            duration_s,
            speedup,
        } => {
            let filter =
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,wastewatch=info,rumqttd=off")
                });
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_target(false)
                .with_writer(std::io::stderr)
                .init();
            let opts = cmd::demo::DemoOptions {
                influx_v1_url: influx_url,
                database,
                out_file: out,
                mqtt_port,
                scenarios: scenario,
                seed,
                rate_per_s: rate,
                duration: duration_s.map(std::time::Duration::from_secs),
                speedup,
            };
            let rt = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(cmd::demo::run(opts)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Devices { cmd } => match devices(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        Cmd::Report {
            period,
            format,
            output,
            config,
            target,
        } => kpi_command(config.as_ref(), |settings| async move {
            let text =
                cmd::kpi::report(&settings, &target.target(), period.as_deref(), &format).await?;
            match output {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display())),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }),
        Cmd::Kpi {
            cmd:
                KpiCmd::Import {
                    file,
                    dry_run,
                    config,
                    target,
                },
        } => kpi_command(config.as_ref(), |settings| async move {
            let done = cmd::kpi::import(&settings, &target.target(), &file, dry_run).await?;
            println!("{done}");
            Ok(())
        }),
        Cmd::Quarantine { cmd } => match quarantine(cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// Loads the config and runs a KPI command on a small runtime.
fn kpi_command<F, Fut>(config: Option<&PathBuf>, f: F) -> ExitCode
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings = match load(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime(1) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    wastewatch::app::install_crypto_provider();
    match rt.block_on(f(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let registry = wastewatch::app::load_registry(&settings)?;
    let mut running = wastewatch::app::start(settings, registry).await?;
    let failed = tokio::select! {
        _ = wastewatch::app::shutdown_signal() => None,
        msg = running.stage_failed() => Some(msg),
    };
    match failed {
        None => {
            running.shutdown().await;
            Ok(())
        }
        Some(msg) => {
            tracing::error!(reason = %msg, "stage failed; exiting so the supervisor restarts us (acked data is in the durable log)");
            Err(anyhow::anyhow!(msg))
        }
    }
}

fn check_config(config: Option<&PathBuf>) -> ExitCode {
    let mut errors = Vec::new();
    let settings = match load(config) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.extend(e.0);
            None
        }
    };
    if let Some(s) = &settings {
        if let Err(e) = wastewatch::app::load_registry(s) {
            errors.push(format!("registry {}: {e}", s.registry_dir.display()));
        }
    }
    if errors.is_empty() {
        println!("config OK");
        ExitCode::SUCCESS
    } else {
        eprintln!("{} error(s):", errors.len());
        for e in errors {
            eprintln!("  - {e}");
        }
        ExitCode::from(2)
    }
}

fn devices(cmd: DevicesCmd) -> anyhow::Result<()> {
    match cmd {
        DevicesCmd::Credentials {
            config,
            zone,
            out,
            ingest_users,
            rotate,
        } => {
            let dir = match zone {
                Some(z) => z,
                None => load(config.as_ref())?.registry_dir,
            };
            let registry = wastewatch::registry::Registry::load_dir(&dir)
                .map_err(|e| anyhow::anyhow!("registry {}: {e}", dir.display()))?;
            let req = wastewatch::credentials::Request {
                out: out.clone(),
                ingest_users,
                rotate,
            };
            let report = wastewatch::credentials::generate(&registry, &req)?;
            println!("wrote {}: {report}", out.display());
            for d in &report.removed {
                println!("  removed (no longer registered): {d}");
            }
            println!(
                "install {}/{} as the broker's password_file and reload it (SIGHUP); give each device its line of {}",
                out.display(),
                wastewatch::credentials::PASSWD_FILE,
                wastewatch::credentials::DEVICE_SECRETS_FILE
            );
            Ok(())
        }
    }
}

fn quarantine(cmd: QuarantineCmd) -> anyhow::Result<()> {
    match cmd {
        QuarantineCmd::List { config, limit } => {
            let s = load(config.as_ref())?;
            let log = Log::open_with(&s.log.dir, s.log.options(), &CONSUMERS)?;
            let list = log.quarantine_list(0, limit)?;
            println!(
                "{} quarantined message(s) shown (of {})",
                list.len(),
                log.stats().quarantined
            );
            for (id, bytes) in list {
                let e = wastewatch::api::entry(id, &bytes);
                println!(
                    "#{:<6} {:<26} {} bytes  topic={}  {}",
                    e.id, e.reason, e.payload_len, e.topic, e.detail
                );
            }
            Ok(())
        }
        QuarantineCmd::Replay { config } => {
            let s = load(config.as_ref())?;
            let registry = wastewatch::app::load_registry(&s)?;
            let decoder = Decoder::new(Arc::new(registry), s.decode.clone());
            let log = Log::open_with(&s.log.dir, s.log.options(), &CONSUMERS)?;
            let (mut from, mut accepted_total, mut still) = (0u64, 0usize, 0usize);
            loop {
                let chunk = log.quarantine_list(from, 1000)?;
                let Some(last) = chunk.last().map(|c| c.0) else {
                    break;
                };
                let mut accepted = Vec::new();
                for (id, bytes) in &chunk {
                    let Ok(q) = pb::QuarantineRecord::decode(bytes.as_slice()) else {
                        still += 1;
                        continue;
                    };
                    if q.topic.is_empty() {
                        // Lines the TSDB refused are not device messages.
                        still += 1;
                        continue;
                    }
                    let ct = (!q.content_type.is_empty()).then_some(q.content_type.as_str());
                    match decoder.decode(&q.topic, &q.payload, ct, q.received_at_unix_ms) {
                        Ok(rec) => accepted.push((*id, rec.encode_to_vec())),
                        Err(_) => still += 1,
                    }
                }
                accepted_total += accepted.len();
                log.release_from_quarantine(&accepted)?;
                from = last + 1;
            }
            println!("replayed: {accepted_total} message(s) now decode and moved to the log; {still} still quarantined");
            Ok(())
        }
        QuarantineCmd::Purge {
            config,
            reason,
            all,
        } => {
            if reason.is_none() && !all {
                anyhow::bail!("say what to purge: --reason <reason> or --all");
            }
            let s = load(config.as_ref())?;
            let log = Log::open_with(&s.log.dir, s.log.options(), &CONSUMERS)?;
            let (mut from, mut ids) = (0u64, Vec::new());
            loop {
                let chunk = log.quarantine_list(from, 1000)?;
                let Some(last) = chunk.last().map(|c| c.0) else {
                    break;
                };
                for (id, bytes) in &chunk {
                    let matches = match &reason {
                        None => true,
                        Some(r) => pb::QuarantineRecord::decode(bytes.as_slice())
                            .map(|q| &q.reason == r)
                            .unwrap_or(false),
                    };
                    if matches {
                        ids.push(*id);
                    }
                }
                from = last + 1;
            }
            let n = log.purge_quarantine(&ids)?;
            println!(
                "purged {n} quarantined message(s); {} left",
                log.stats().quarantined
            );
            Ok(())
        }
    }
}
