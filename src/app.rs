//! Wiring of `wastewatch run`: opens the registry and the log, starts the
//! stage tasks, and shuts them down in the documented order:
//!
//! 1. **stop intake** — the committer takes no new message;
//! 2. **commit** — what it holds is appended to the log (fsync);
//! 3. **final acks** — those messages are acked, and we wait until the acks
//!    are on the wire;
//! 4. **flush writes** — the TSDB writer drains the log once more; what it
//!    cannot write stays in the log for the next start;
//! 5. **disconnect** — MQTT DISCONNECT, then the HTTP server stops.
//!
//! All of it under `shutdown.deadline_ms`; past the deadline the process
//! exits anyway, and nothing acked is lost because it is in the log.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Settings, TsdbTarget};
use crate::decode::Decoder;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::rules::task::{AlertTask, AlertsHandle};
use crate::sink::writer::Writer;

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
    stop_rules: watch::Sender<bool>,
    rules: tokio::task::JoinHandle<()>,
    stop_intake: watch::Sender<bool>,
    stop_sink: watch::Sender<bool>,
    stop_poll: watch::Sender<bool>,
    stop_http: watch::Sender<bool>,
    ingest: crate::ingest::Ingest,
    sink: tokio::task::JoinHandle<()>,
    stats: Option<tokio::task::JoinHandle<()>>,
    http: Option<tokio::task::JoinHandle<()>>,
    deadline: Duration,
}

/// Loads the registry named in the settings.
pub fn load_registry(settings: &Settings) -> anyhow::Result<Registry> {
    Registry::load_dir(&settings.registry_dir).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Selects the process-wide rustls crypto provider. Two providers are
/// compiled in (rumqttc brings aws-lc-rs, reqwest brings ring), and rustls
/// refuses to guess; without this a TLS connect panics. Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts every stage.
pub async fn start(settings: Settings, registry: Registry) -> anyhow::Result<Running> {
    install_crypto_provider();
    let metrics = Arc::new(Metrics::default());
    let log = Arc::new(Log::open_with(
        &settings.log.dir,
        settings.log.options(),
        &crate::log::CONSUMERS,
    )?);
    let registry = Arc::new(registry);
    let decoder = Arc::new(Decoder::new(registry.clone(), settings.decode.clone()));
    let restored = crate::rules::task::restore(
        &settings.log.dir,
        registry.clone(),
        &settings.alerting,
        &log,
    )?;
    let (acks, acks_rx) = tokio::sync::mpsc::unbounded_channel();
    let (broadcast, _) = tokio::sync::broadcast::channel(1024);
    let alerts = AlertsHandle {
        store: Arc::new(std::sync::Mutex::new(restored.store)),
        acks,
        broadcast,
    };
    let (stop_rules, rules_rx) = watch::channel(false);
    let writer = Arc::new(Writer::new(&settings.tsdb)?);
    let (stop_intake, intake_rx) = watch::channel(false);
    let (stop_sink, sink_rx) = watch::channel(false);
    let (stop_poll, poll_rx) = watch::channel(false);
    let (stop_http, mut http_rx) = watch::channel(false);

    let (http, http_addr) = match settings.http_listen {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on http.listen {addr}"))?;
            let bound = listener.local_addr().ok();
            let state = crate::api::ApiState {
                metrics: metrics.clone(),
                log: log.clone(),
                alerts: Some(alerts.clone()),
                tsdb_required: !matches!(
                    settings.tsdb.target,
                    TsdbTarget::None | TsdbTarget::File { .. }
                ),
            };
            let app = crate::api::router(state);
            let h = tokio::spawn(async move {
                let shutdown = async move {
                    let _ = http_rx.wait_for(|s| *s).await;
                };
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(shutdown)
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

    let rules = tokio::spawn(crate::rules::task::run(
        AlertTask {
            engine: restored.engine,
            offset: restored.offset,
            dir: settings.log.dir.clone(),
            settings: settings.alerting.clone(),
            outboxes: restored.outboxes,
            pending_points: restored.pending_points,
        },
        log.clone(),
        alerts.clone(),
        acks_rx,
        writer.clone(),
        metrics.clone(),
        rules_rx,
    ));
    let sink = tokio::spawn(crate::sink::task::run(
        log.clone(),
        writer.clone(),
        metrics.clone(),
        settings.tsdb.clone(),
        sink_rx.clone(),
    ));
    let stats = settings.tsdb.stats_interval.map(|every| {
        tokio::spawn(crate::sink::task::run_stats(
            writer.clone(),
            metrics.clone(),
            log.clone(),
            settings.mqtt.client_id.clone(),
            every,
            sink_rx,
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
        },
        intake_rx,
        poll_rx,
    )?;
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
        stop_rules,
        rules,
        stop_intake,
        stop_sink,
        stop_poll,
        stop_http,
        ingest,
        sink,
        stats,
        http,
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
        }
    }

    /// Graceful shutdown in the documented order, under the deadline.
    pub async fn shutdown(self) {
        let deadline = self.deadline;
        let Running {
            metrics: _,
            stop_intake,
            stop_sink,
            stop_poll,
            stop_http,
            ingest,
            sink,
            stats,
            http,
            stop_rules,
            rules,
            ..
        } = self;
        let ordered = async {
            info!("shutdown: stop intake, commit, final acks");
            let _ = stop_intake.send(true);
            // The committer hands its final acks to the connection before
            // it ends; the connection writes them in order, before the
            // DISCONNECT queued behind them below.
            let _ = ingest.committer.await;
            info!("shutdown: rules catch up and snapshot; flush tsdb writes");
            let _ = stop_rules.send(true);
            let _ = stop_sink.send(true);
            let _ = rules.await;
            let _ = sink.await;
            if let Some(s) = stats {
                let _ = s.await;
            }
            info!("shutdown: disconnect");
            // Queued behind the final acks, so they are written first.
            let _ = ingest
                .control
                .send(crate::ingest::connection::ToConnection::Disconnect);
            let mut connection = ingest.connection;
            if tokio::time::timeout(Duration::from_secs(2), &mut connection)
                .await
                .is_err()
            {
                let _ = stop_poll.send(true);
                let _ = connection.await;
            }
            let _ = stop_http.send(true);
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
