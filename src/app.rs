//! Wiring of `wastewatch run`: opens the registry and the log, restores the
//! rule and alert state, starts one task per stage joined by bounded
//! channels, and shuts them down in the documented order (each step its own
//! `CancellationToken`, each stage awaited before the next is told):
//!
//! 1. **stop intake** — the committer takes no new message, appends what it
//!    holds (fsync) and hands those acks to the connection;
//! 2. **rules catch up** — the rules shell reads to the head and sends its
//!    last checkpoint; the alert stage appends its last alert records,
//!    dispatch saves its outboxes, the snapshot is written;
//! 3. **flush writes** — the TSDB writer drains the log once more (alert
//!    records included); what it cannot write stays in the log;
//! 4. **notifications** — dispatch saves its outboxes and stops;
//! 5. **disconnect** — the final acks, then MQTT DISCONNECT, then the HTTP
//!    server stops.
//!
//! All of it under `shutdown.deadline_ms`; past the deadline the process
//! exits anyway, and nothing acked is lost because it is in the log.
//!
//! The stages and the channels between them: docs/ARCHITECTURE.md.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::alert::snapshot::{self, Checkpoint};
use crate::alert::stage::{AlertsHandle, Stage, StageSettings};
use crate::alert::AlertStore;
use crate::clock::Clock;
use crate::config::{Settings, TsdbTarget};
use crate::decode::Decoder;
use crate::log::{Log, CURSOR_RULES};
use crate::metrics::Metrics;
use crate::notify::dispatch::{self, Receivers};
use crate::registry::Registry;
use crate::rules::RuleEngine;
use crate::sink::writer::Writer;

/// Capacity of the rules → alert stage channel (batches of transitions).
/// Full: the rules shell waits (it only delays reading the log).
const RULES_QUEUE: usize = 64;
/// Capacity of the alert stage → dispatch channel. Full: the alert stage
/// waits; dispatch only queues, so it drains at once.
const NOTIFY_QUEUE: usize = 1024;
/// Acknowledgements waiting for the alert stage. Full: the API answers 503.
const ACK_QUEUE: usize = 256;

/// Handles of a running pipeline.
pub struct Running {
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// The durable log.
    pub log: Arc<Log>,
    /// Address the HTTP server bound (port 0 resolved).
    pub http_addr: Option<std::net::SocketAddr>,
    /// Alert store and event stream.
    pub alerts: AlertsHandle,
    /// Address the JT/T 808 gateway bound, when enabled.
    pub jt808_addr: Option<std::net::SocketAddr>,
    jt808: Option<JoinHandle<()>>,
    ingest: crate::ingest::Ingest,
    rules: JoinHandle<()>,
    stage: JoinHandle<()>,
    kpi: JoinHandle<()>,
    dispatch: JoinHandle<()>,
    sink: JoinHandle<()>,
    stats: Option<JoinHandle<()>>,
    http: Option<JoinHandle<()>>,
    stop: Stops,
    deadline: Duration,
}

/// One token per shutdown step.
#[derive(Default)]
struct Stops {
    intake: CancellationToken,
    rules: CancellationToken,
    kpi: CancellationToken,
    sink: CancellationToken,
    dispatch: CancellationToken,
    connection: CancellationToken,
    http: CancellationToken,
}

/// Why the service did not start: each cause with its source.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The zone registry did not load.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryErrors),
    /// The durable log did not open, or its reader did not.
    #[error("durable log: {0}")]
    Log(#[from] crate::log::LogError),
    /// A saved state file (rules and alerts snapshot, outboxes, KPI
    /// snapshot) cannot be read or is not valid.
    #[error(transparent)]
    State(#[from] crate::fsutil::StateFileError),
    /// The TSDB writer could not be built.
    #[error(transparent)]
    Writer(#[from] crate::sink::writer::WriterError),
    /// The MQTT session could not be set up.
    #[error("mqtt: {0}")]
    Session(#[from] crate::ingest::session::SessionError),
    /// A listener could not bind.
    #[error("cannot listen on {key} {addr}: {source}")]
    Listen {
        /// The config key (`http.listen`, `jt808.listen`).
        key: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
}

/// Loads the registry named in the settings.
pub fn load_registry(settings: &Settings) -> Result<Registry, StartError> {
    Ok(Registry::load_dir(&settings.registry_dir)?)
}

/// Selects the process-wide rustls crypto provider (ring; reqwest and the
/// ingest connection use it) so that no TLS client has to guess. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Rule and alert state at start: from the snapshot, or fresh.
struct Restored {
    engine: RuleEngine,
    store: AlertStore,
    checkpoint: Option<Checkpoint>,
    offset: u64,
    outboxes: crate::notify::Outboxes,
    legacy_points: String,
}

fn restore(
    settings: &Settings,
    registry: Arc<Registry>,
    log: &Log,
) -> Result<Restored, StartError> {
    let dir = &settings.log.dir;
    let mut engine = RuleEngine::new(registry, settings.alerting.rules.clone());
    let saved_outboxes = dispatch::load(dir)?;
    let Some(snap) = snapshot::read(dir)? else {
        return Ok(Restored {
            engine,
            store: AlertStore::new(settings.alerting.policy.clone()),
            checkpoint: None,
            offset: log.cursor(CURSOR_RULES),
            outboxes: saved_outboxes.unwrap_or_default(),
            legacy_points: String::new(),
        });
    };
    let p = snapshot::path(dir);
    engine
        .restore(snap.engine.as_bytes())
        .map_err(|e| snapshot::invalid(p.clone(), Box::new(e)))?;
    let mut store = AlertStore::restore(snap.alerts.as_bytes())
        .map_err(|e| snapshot::invalid(p.clone(), Box::new(e)))?;
    store.set_policy(settings.alerting.policy.clone());
    info!(offset = snap.offset, "rule state restored from snapshot");
    Ok(Restored {
        engine,
        store,
        checkpoint: None,
        offset: snap.offset,
        // Outboxes of a version that kept them in the snapshot.
        outboxes: saved_outboxes.unwrap_or_else(|| {
            snap.outboxes
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default()
        }),
        legacy_points: snap.pending_points,
    })
}

/// Starts every stage.
pub async fn start(settings: Settings, registry: Registry) -> Result<Running, StartError> {
    install_crypto_provider();
    let clock = Clock::system();
    let metrics = Arc::new(Metrics::default());
    let log = Arc::new(Log::open_with(
        &settings.log.dir,
        settings.log.options(),
        &crate::log::CONSUMERS,
    )?);
    let registry = Arc::new(registry);
    let decoder = Arc::new(Decoder::new(registry.clone(), settings.decode.clone()));
    let restored = restore(&settings, registry.clone(), &log)?;
    let writer = Arc::new(Writer::new(&settings.tsdb)?);
    if !restored.legacy_points.is_empty() {
        // Alert points an older version had not written yet.
        if writer.write(&restored.legacy_points).await != crate::sink::writer::WriteOutcome::Ok {
            warn!("alert points of the previous version's snapshot could not be written; dropped");
        }
    }
    let stop = Stops::default();

    let (acks, acks_rx) = tokio::sync::mpsc::channel(ACK_QUEUE);
    let (broadcast, _) = tokio::sync::broadcast::channel(1024);
    let alerts = AlertsHandle {
        store: Arc::new(std::sync::Mutex::new(restored.store)),
        acks,
        broadcast,
    };

    let (http, http_addr) = match settings.http_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen {
                    key: "http.listen",
                    addr,
                    source,
                })?;
            let bound = listener.local_addr().ok();
            let state = crate::api::ApiState {
                metrics: metrics.clone(),
                log: log.clone(),
                alerts: Some(alerts.clone()),
                tsdb_required: !matches!(
                    settings.tsdb.target,
                    TsdbTarget::None | TsdbTarget::File { .. }
                ),
                auth: settings.http_auth.clone(),
            };
            let app = crate::api::router(state).merge(crate::api::geo::router(registry.clone()));
            let token = stop.http.clone();
            let h = tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await
                {
                    warn!(error = %e, "http server stopped");
                }
            });
            info!(addr = ?bound, "http listening");
            (Some(h), bound)
        }
        None => (None, None),
    };

    // Notification dispatch.
    let (notify_tx, notify_rx) = tokio::sync::mpsc::channel(NOTIFY_QUEUE);
    let receivers = Receivers {
        alertmanager: settings.alerting.alertmanager.clone(),
        webhooks: settings.alerting.webhooks.clone(),
    };
    let resends = receivers.alertmanager.is_some();
    let dispatch = tokio::spawn(dispatch::run(
        receivers,
        restored.outboxes,
        settings.log.dir.clone(),
        notify_rx,
        metrics.clone(),
        clock.clone(),
        stop.dispatch.clone(),
    ));

    // Rules shell → alert stage.
    let reader = log.reader_at(restored.offset)?;
    if reader.offset() != restored.offset {
        warn!(
            snapshot = restored.offset,
            start = reader.offset(),
            "rules snapshot offset is outside the log; starting at the nearest record kept"
        );
    }
    let (rules_tx, rules_rx) = tokio::sync::mpsc::channel(RULES_QUEUE);
    let rules = tokio::spawn(crate::rules::shell::run(
        restored.engine,
        reader,
        log.subscribe_head(),
        rules_tx,
        settings.alerting.snapshot_interval,
        metrics.clone(),
        clock.clone(),
        stop.rules.clone(),
    ));
    let stage = tokio::spawn(crate::alert::stage::run(Stage {
        handle: alerts.clone(),
        acks: acks_rx,
        rules: rules_rx,
        notify: notify_tx,
        log: log.clone(),
        registry: registry.clone(),
        checkpoint: restored.checkpoint,
        resends,
        settings: StageSettings {
            dir: settings.log.dir.clone(),
            resend_interval: settings.alerting.resend_interval,
        },
        metrics: metrics.clone(),
        clock: clock.clone(),
    }));

    // KPI stage: its own cursor, its points through the log.
    let mut kpi_engine = crate::kpi::KpiEngine::new(registry.clone(), settings.kpi.clone());
    let kpi_offset = crate::kpi::shell::restore(&mut kpi_engine, &settings.log.dir, &log)?;
    let kpi = tokio::spawn(crate::kpi::shell::run(crate::kpi::shell::KpiStage {
        engine: kpi_engine,
        reader: log.reader_at(kpi_offset)?,
        head: log.subscribe_head(),
        log: log.clone(),
        dir: settings.log.dir.clone(),
        flush_interval: Duration::from_millis(settings.kpi.flush_interval_ms),
        snapshot_interval: Duration::from_millis(settings.kpi.snapshot_interval_ms),
        cancel: stop.kpi.clone(),
    }));

    let sink = tokio::spawn(crate::sink::task::run(
        log.clone(),
        writer.clone(),
        metrics.clone(),
        settings.tsdb.clone(),
        stop.sink.clone(),
    ));
    let stats = settings.tsdb.stats_interval.map(|every| {
        tokio::spawn(crate::sink::task::run_stats(
            writer.clone(),
            metrics.clone(),
            log.clone(),
            settings.mqtt.client_id.clone(),
            every,
            stop.sink.clone(),
        ))
    });
    let ingest = crate::ingest::start(
        &settings.mqtt,
        decoder,
        log.clone(),
        metrics.clone(),
        crate::ingest::CommitLimits {
            max_records: settings.log.commit_max_records.get(),
            max_bytes: settings.log.commit_max_bytes,
            linger: settings.log.commit_linger,
        },
        stop.intake.clone(),
        stop.connection.clone(),
    )?;
    // JT/T 808 gateway: stops with intake, like the committer.
    let (jt808, jt808_addr) = match &settings.jt808 {
        Some(j) => {
            let policy = crate::gateway::jt808::Policy {
                auth_key: j.auth_key.expose().as_bytes().to_vec(),
                clock: settings.decode.clock,
                max_pending_messages: j.max_pending_messages,
                max_message_bytes: j.max_message_bytes,
                subpackage_timeout_ms: j.subpackage_timeout.as_millis() as i64,
            };
            let restamper = Arc::new(std::sync::Mutex::new(crate::ingest::seed_restamper(&log)));
            let g = crate::gateway::jt808::server::start(
                j,
                policy,
                registry.clone(),
                log.clone(),
                metrics.clone(),
                restamper,
                stop.intake.clone(),
            )
            .await
            .map_err(|source| StartError::Listen {
                key: "jt808.listen",
                addr: j.listen,
                source,
            })?;
            (Some(g.task), Some(g.local_addr))
        }
        None => (None, None),
    };
    info!(
        broker = %format!("{}:{}", settings.mqtt.host, settings.mqtt.port),
        client_id = %settings.mqtt.client_id,
        tsdb = writer.name(),
        log_dir = %settings.log.dir.display(),
        "wastewatch running"
    );
    Ok(Running {
        metrics,
        log,
        http_addr,
        alerts,
        jt808_addr,
        jt808,
        ingest,
        rules,
        stage,
        kpi,
        dispatch,
        sink,
        stats,
        http,
        stop,
        deadline: settings.shutdown_deadline,
    })
}

impl Running {
    /// Resolves if a stage task ends on its own (a bug: they run until
    /// shutdown). The caller should exit non-zero so a supervisor restarts
    /// the service; nothing acked is lost, it is in the durable log. After
    /// this resolves, do not call [`Running::shutdown`].
    pub async fn stage_failed(&mut self) -> String {
        tokio::select! {
            r = &mut self.ingest.connection => format!("mqtt connection task stopped unexpectedly: {r:?}"),
            r = &mut self.ingest.committer => format!("ingest committer stopped unexpectedly: {r:?}"),
            r = &mut self.sink => format!("tsdb writer stopped unexpectedly: {r:?}"),
            r = &mut self.rules => format!("rule engine stopped unexpectedly: {r:?}"),
            r = &mut self.stage => format!("alert stage stopped unexpectedly: {r:?}"),
            r = &mut self.kpi => format!("KPI stage stopped unexpectedly: {r:?}"),
            r = &mut self.dispatch => format!("notification dispatch stopped unexpectedly: {r:?}"),
            r = async {
                match &mut self.jt808 {
                    Some(h) => h.await,
                    None => std::future::pending().await,
                }
            } => format!("jt808 gateway stopped unexpectedly: {r:?}"),
        }
    }

    /// Graceful shutdown in the documented order, under the deadline.
    pub async fn shutdown(self) {
        let deadline = self.deadline;
        let Running {
            jt808,
            ingest,
            rules,
            stage,
            kpi,
            dispatch,
            sink,
            stats,
            http,
            stop,
            ..
        } = self;
        let ordered = async {
            info!("shutdown: stop intake, commit, final acks");
            stop.intake.cancel();
            // The committer hands its final acks to the connection before it
            // ends; the connection writes them before the DISCONNECT queued
            // behind them below.
            let _ = ingest.committer.await;
            if let Some(g) = jt808 {
                // Each terminal's current message is appended and answered.
                let _ = g.await;
            }
            info!("shutdown: rules catch up and snapshot");
            stop.rules.cancel();
            let _ = rules.await;
            let _ = stage.await;
            info!("shutdown: KPIs catch up and snapshot");
            stop.kpi.cancel();
            let _ = kpi.await;
            info!("shutdown: flush tsdb writes");
            stop.sink.cancel();
            let _ = sink.await;
            if let Some(s) = stats {
                let _ = s.await;
            }
            stop.dispatch.cancel();
            let _ = dispatch.await;
            info!("shutdown: disconnect");
            let _ = ingest
                .control
                .send(crate::ingest::connection::ToConnection::Disconnect);
            let mut connection = ingest.connection;
            if tokio::time::timeout(Duration::from_secs(2), &mut connection)
                .await
                .is_err()
            {
                stop.connection.cancel();
                let _ = connection.await;
            }
            stop.http.cancel();
            if let Some(h) = http {
                let _ = h.await;
            }
        };
        if tokio::time::timeout(deadline, ordered).await.is_err() {
            warn!(
                deadline_ms = deadline.as_millis() as u64,
                "shutdown deadline passed; exiting; unwritten records stay in the durable log"
            );
        } else {
            info!("shutdown complete");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => info!(signal = "SIGINT", "shutdown requested"),
        _ = term => info!(signal = "SIGTERM", "shutdown requested"),
    }
}
