//! `firmware-sim sparkplug`: the devices `sparkplug.json` maps to one edge
//! node, played as that Sparkplug B edge node against a broker
//! (`firmware_sim::sparkplug`), with the readings the fleet makes for them
//! and the faults asked for. Prints what it did as JSON on stdout.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use firmware_sim::sparkplug::{play, EdgeFaults, EdgeNodeSim, EdgeTarget};
use firmware_sim::{self as sim, Fleet, SimConfig};
use prost::Message as _;
use wastewatch_contract::pb::{self, envelope::Body};
use wastewatch_contract::registry::Registry;

/// Flags of `firmware-sim sparkplug`.
#[derive(clap::Args, Clone)]
pub struct SparkplugArgs {
    /// Zone directory (with sparkplug.json).
    #[arg(long, default_value = "zone")]
    zone: PathBuf,
    /// The edge node to play (its edge_node_id in sparkplug.json; also the
    /// broker user name).
    #[arg(long, default_value = "edge-hazard-east-01")]
    edge_node: String,
    /// MQTT broker host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// MQTT broker port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// File whose first line is the edge node's broker password.
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Client id prefix the broker wants (the shipped config: `ww:`).
    #[arg(long, default_value = "ww:")]
    client_id_prefix: String,
    /// Data messages to send.
    #[arg(long, default_value_t = 20)]
    readings: usize,
    /// Time between data messages, ms.
    #[arg(long, default_value_t = 1000)]
    pace_ms: u64,
    /// Fault: skip seq numbers before the reading with this index (the host
    /// must ask for a rebirth, which the node answers).
    #[arg(long)]
    seq_gap_before: Option<usize>,
    /// Fault: drop the connection without DISCONNECT before the reading with
    /// this index (the broker publishes the NDEATH will) and reconnect.
    #[arg(long)]
    reconnect_before: Option<usize>,
    /// Seed of the fleet the readings come from.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the subcommand.
pub async fn run(a: SparkplugArgs) -> anyhow::Result<()> {
    let registry = Registry::load_dir(&a.zone)
        .map_err(|e| anyhow::anyhow!("zone {}:\n{e}", a.zone.display()))?;
    let mut node = EdgeNodeSim::from_registry(&registry, &a.edge_node).with_context(|| {
        format!(
            "no edge node {:?} in {}/sparkplug.json",
            a.edge_node,
            a.zone.display()
        )
    })?;
    let ids = node.device_ids();
    // The fleet's own readings of the node's devices, from two days of
    // simulated time, re-dated to when they are sent.
    let start = now_ms() - 2 * 86_400_000;
    let cfg = SimConfig {
        seed: a.seed,
        start_unix_ms: start,
        json_share: 0.0,
        ..SimConfig::default()
    };
    let mut fleet = Fleet::new(&registry, &cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut readings: Vec<pb::Envelope> = Vec::new();
    let mut t = start;
    while readings.len() < a.readings && t < start + 7 * 86_400_000 {
        t += 60_000;
        for m in fleet.next_batch(t) {
            if !ids.contains(&m.device_id) || m.expect_quarantine || m.duplicate {
                continue;
            }
            if let Ok(env) = pb::Envelope::decode(m.payload.as_slice()) {
                if matches!(
                    env.body,
                    Some(
                        Body::StorageReading(_) | Body::WeighbridgeTicket(_) | Body::BinReading(_)
                    )
                ) && readings.len() < a.readings
                {
                    readings.push(env);
                }
            }
        }
    }
    let t0 = now_ms();
    for (i, e) in readings.iter_mut().enumerate() {
        e.recorded_at_unix_ms = t0 + i as i64 * a.pace_ms as i64;
    }
    let login = match &a.password_file {
        Some(f) => Some((a.edge_node.clone(), sim::read_password_file(f)?)),
        None => None,
    };
    let target = EdgeTarget {
        host: a.host.clone(),
        port: a.port,
        login,
        client_id_prefix: a.client_id_prefix.clone(),
    };
    let faults = EdgeFaults {
        seq_gap_before: a.seq_gap_before,
        reconnect_before: a.reconnect_before,
    };
    let s = play(
        &mut node,
        &target,
        &readings,
        &faults,
        Duration::from_millis(a.pace_ms),
        Duration::from_secs(2),
    )
    .await?;
    println!(
        "{}",
        serde_json::json!({
            "edge_node": a.edge_node,
            "group": node.group_id,
            "data": s.data,
            "rebirths_answered": s.rebirths,
            "sessions": s.sessions,
        })
    );
    Ok(())
}
