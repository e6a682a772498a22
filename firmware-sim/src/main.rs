//! `firmware-sim`: the command line over the `firmware_sim` library. Parses flags,
//! loads the zone, runs the fleet against an MQTT broker (or dry, without
//! one), prints a progress line on stderr every second and the summary as
//! JSON on stdout. `gen-zone` writes a zone with synthetic devices for load
//! tests; `capture` writes the fleet's messages to a file without a broker
//! and `replay` publishes such a file at a fixed rate (`capture.rs`,
//! `replay.rs`; used by scripts/bench-e2e.sh); `sparkplug` plays the devices
//! of one Sparkplug B edge node (`sparkplug_cmd.rs`). See README.md and
//! SCENARIOS.md next to this crate.

mod capture;
mod replay;
mod sparkplug_cmd;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use firmware_sim::{self as sim, genzone, Fleet, Progress, Scenario, SimConfig, Summary};
use tokio::sync::watch;
use wastewatch_contract::registry::{parse_hhmm, Registry};

#[derive(Parser)]
#[command(
    name = "firmware-sim",
    version,
    about = "Simulated waste-facility devices publishing wastewatch telemetry over MQTT 5"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish the simulated fleet (the default command).
    Run(RunArgs),
    /// Write a copy of a zone with N synthetic devices for load tests.
    GenZone(GenZoneArgs),
    /// List the scenarios.
    Scenarios,
    /// Write N messages of the simulated fleet to a file, without a broker.
    Capture(capture::CaptureArgs),
    /// Publish a capture file at a fixed rate (QoS 1) and count the PUBACKs.
    Replay(replay::ReplayArgs),
    /// Play the devices sparkplug.json maps to one edge node as that
    /// Sparkplug B edge node (births, data by alias, faults).
    Sparkplug(sparkplug_cmd::SparkplugArgs),
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Zone directory (sites.json, devices.json, permits.json).
    #[arg(long, default_value = "zone")]
    zone: PathBuf,
    /// MQTT broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// MQTT broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Client id (of the first shared connection; `{id}-{k}` for the others).
    #[arg(long, default_value = "firmware-sim")]
    client_id: String,
    /// Scenarios, comma-separated (see `firmware-sim scenarios`).
    #[arg(long, value_delimiter = ',', default_value = "normal")]
    scenario: Vec<Scenario>,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of devices speaking legacy JSON (0..1).
    #[arg(long, default_value_t = 0.1)]
    json_share: f64,
    /// GNSS error per axis, metres (gps_jitter raises it to at least 20).
    #[arg(long, default_value_t = 3.0)]
    gps_sigma_m: f64,
    /// Cap on messages per second over the whole fleet.
    #[arg(long)]
    rate: Option<f64>,
    /// Stop after this many messages.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many wall-clock seconds (simulated seconds with --dry-run).
    #[arg(long)]
    duration: Option<f64>,
    /// Simulated seconds per wall-clock second.
    #[arg(long, default_value_t = 1.0)]
    speedup: f64,
    /// Simulated start, Unix ms (default: now).
    #[arg(long, conflicts_with = "start_local")]
    start_unix_ms: Option<i64>,
    /// Simulated start at the last HH:MM China Standard Time, e.g. 20:45 to
    /// see trucks start their night shift.
    #[arg(long)]
    start_local: Option<String>,
    /// Never let simulated time run ahead of the wall clock.
    #[arg(long)]
    clamp_to_wall_clock: bool,
    /// Shared MQTT connections to spread the devices over.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// One connection per device with its LAST_WILL as MQTT will (small fleets only).
    #[arg(long)]
    per_device_connections: bool,
    /// MQTT user name of the shared connections (a gateway identity the
    /// broker lets write for every simulated device).
    #[arg(long, requires = "password_file")]
    username: Option<String>,
    /// File holding the password of --username (first line).
    #[arg(long, requires = "username")]
    password_file: Option<PathBuf>,
    /// Per-device passwords (`device-secrets.txt` of `wastewatch devices
    /// credentials`): with --per-device-connections each device logs in as
    /// itself.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Put this before every client id (`ww:` for the shipped broker config).
    #[arg(long, default_value = "")]
    client_id_prefix: String,
    /// MQTT keep-alive, seconds.
    #[arg(long, default_value_t = 30)]
    keep_alive_s: u64,
    /// MQTT 5 session expiry, seconds.
    #[arg(long, default_value_t = 3600)]
    session_expiry_s: u32,
    /// Also write the summary JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Run without a broker, as fast as possible; --duration is simulated time.
    #[arg(long)]
    dry_run: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct GenZoneArgs {
    /// Zone to copy.
    #[arg(long, default_value = "zone")]
    zone: PathBuf,
    /// Directory to write.
    #[arg(long)]
    out: PathBuf,
    /// Synthetic devices to add.
    #[arg(long)]
    devices: usize,
    /// Relative weights of the synthetic kinds.
    #[arg(long, default_value = "bin=6,storage=1,truck=3")]
    mix: String,
}

fn sim_config(a: &RunArgs) -> anyhow::Result<SimConfig> {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let start = match (&a.start_unix_ms, &a.start_local) {
        (Some(ms), _) => *ms,
        (None, Some(hhmm)) => {
            let m = parse_hhmm(hhmm)
                .with_context(|| format!("--start-local {hhmm:?} must be HH:MM (24-hour)"))?;
            sim::last_local_time_before(wall, m)
        }
        (None, None) => wall,
    };
    let auth = sim::MqttAuth {
        shared: match (&a.username, &a.password_file) {
            (Some(u), Some(f)) => Some((u.clone(), sim::read_password_file(f)?)),
            _ => None,
        },
        devices: match &a.credentials {
            Some(f) => sim::read_device_secrets(f)?,
            None => Default::default(),
        },
        client_id_prefix: a.client_id_prefix.clone(),
    };
    Ok(SimConfig {
        seed: a.seed,
        scenarios: a.scenario.clone(),
        json_share: a.json_share,
        gps_sigma_m: a.gps_sigma_m,
        rate_per_s: a.rate,
        count: a.count,
        duration: match a.duration {
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => anyhow::bail!("--duration {s} must be a positive number of seconds"),
            None => None,
        },
        speedup: a.speedup,
        start_unix_ms: start,
        clamp_to_wall_clock: a.clamp_to_wall_clock,
        connections: a.connections,
        per_device_connections: a.per_device_connections,
        keep_alive: Duration::from_secs(a.keep_alive_s.max(1)),
        session_expiry_s: a.session_expiry_s,
        auth,
    })
}

fn progress_line(p: &Progress) {
    eprintln!(
        "[{:>6.1}s] sent {} acked {} rate {:.0}/s sim {} backlog {} connections {}/{}",
        p.elapsed.as_secs_f64(),
        p.sent,
        p.acked,
        p.rate_per_s,
        sim::format_local(p.sim_now_ms),
        p.backlog,
        p.connections_up,
        p.connections
    );
}

fn emit_summary(s: &Summary, path: Option<&PathBuf>) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(s)?;
    if let Some(p) = path {
        std::fs::write(p, &json)
            .with_context(|| format!("cannot write the summary to {}", p.display()))?;
    }
    println!("{json}");
    Ok(())
}

async fn run(a: RunArgs) -> anyhow::Result<()> {
    let cfg = sim_config(&a)?;
    let registry = Registry::load_dir(&a.zone)
        .map_err(|e| anyhow::anyhow!("zone {}: {e}", a.zone.display()))?;
    let fleet = Fleet::new(&registry, &cfg)?;
    eprintln!(
        "firmware-sim: {} devices from {}, seed {}, scenarios {}, start {}",
        fleet.device_count(),
        a.zone.display(),
        cfg.seed,
        cfg.normalised_scenarios()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(","),
        sim::format_local(cfg.start_unix_ms)
    );
    for asg in fleet.assignments() {
        eprintln!(
            "  {:<22} {:<26} {}",
            asg.scenario.as_str(),
            if asg.device_id.is_empty() {
                "(fleet)"
            } else {
                &asg.device_id
            },
            asg.detail
        );
    }
    for w in fleet.warnings() {
        eprintln!("  warning: {w}");
    }
    if a.dry_run {
        return emit_summary(&sim::dry_run(fleet, &cfg), a.summary_json.as_ref());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping: waiting for the broker's acks");
            let _ = stop_tx.send(true);
        }
    });
    let quiet = a.quiet;
    let summary = sim::publish(
        fleet,
        &a.host,
        a.port,
        &a.client_id,
        &cfg,
        stop_rx,
        move |p| {
            if !quiet {
                progress_line(p);
            }
        },
    )
    .await?;
    emit_summary(&summary, a.summary_json.as_ref())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,firmware_sim=info".into()),
        )
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        None => run(cli.run).await,
        Some(Cmd::Run(a)) => run(a).await,
        Some(Cmd::Capture(c)) => capture::capture(c),
        Some(Cmd::Replay(r)) => replay::replay(r).await,
        Some(Cmd::Sparkplug(a)) => sparkplug_cmd::run(a).await,
        Some(Cmd::Scenarios) => {
            for s in Scenario::ALL {
                println!("{:<22} {}", s.as_str(), s.summary());
            }
            Ok(())
        }
        Some(Cmd::GenZone(g)) => {
            let mix = genzone::Mix::parse(&g.mix).map_err(anyhow::Error::msg)?;
            let r = genzone::generate_zone(&g.zone, &g.out, g.devices, mix)?;
            println!(
                "wrote {}: {} devices ({} bins, {} storage points, {} trucks added); point both wastewatch (decode.registry_dir) and firmware-sim (--zone) at it",
                g.out.display(),
                r.devices_total,
                r.bins,
                r.storage,
                r.trucks
            );
            Ok(())
        }
    }
}
