//! Notification dispatch: the stage after the alert store. It owns the
//! receivers and their outboxes, delivers each outbox with one POST in
//! flight per receiver, and retries a failing receiver with the service's
//! backoff — so a slow or dead receiver never holds up the alert store, the
//! rules or another receiver.
//!
//! Durability: the outboxes are saved to `notify-outbox.json` (write, fsync,
//! rename) when the alert stage asks (`Flush`, before it writes a rules
//! snapshot) and every few seconds when they changed. A notification is
//! therefore delivered, in the saved outbox, or after the last rules
//! snapshot — and then the replay of the log regenerates it.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::alertmanager::Alertmanager;
use super::webhook::{Webhook, WebhookSettings};
use super::{Notifier, Outboxes};
use crate::alert::stage::ToDispatch as NotifyIn;
use crate::alert::Alert;
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::metrics::Metrics;

/// Most notifications in one POST.
const BATCH: usize = 500;

/// File of the saved outboxes, in the log directory.
pub const OUTBOX_FILE: &str = "notify-outbox.json";

/// The receivers to build.
#[derive(Clone, Debug, Default)]
pub struct Receivers {
    /// Alertmanager base URL, if any.
    pub alertmanager: Option<url::Url>,
    /// Webhooks and chat robots.
    pub webhooks: Vec<WebhookSettings>,
}

/// The receivers configured (a receiver that cannot be built is logged and
/// left out).
fn build(r: &Receivers) -> Vec<Notifier> {
    let timeout = Duration::from_secs(5);
    let mut out = Vec::new();
    if let Some(u) = &r.alertmanager {
        match Alertmanager::new(u, timeout) {
            Ok(a) => out.push(Notifier::Alertmanager(a)),
            Err(e) => {
                error!(error = %e, "alertmanager client not created; notifications to it off")
            }
        }
    }
    for w in &r.webhooks {
        match Webhook::new(w.clone(), timeout) {
            Ok(h) => out.push(Notifier::Webhook(h)),
            Err(e) => error!(error = %e, "webhook client not created; notifications to it off"),
        }
    }
    out
}

/// Loads the saved outboxes (none saved: empty).
pub fn load(dir: &Path) -> Result<Option<Outboxes>, crate::fsutil::StateFileError> {
    const WHAT: &str = "notification outbox";
    let path = dir.join(OUTBOX_FILE);
    let Some(b) = crate::fsutil::read_state(WHAT, &path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&b)
        .map(Some)
        .map_err(|e| crate::fsutil::StateFileError::Invalid {
            what: WHAT,
            path,
            source: Box::new(e),
            remedy: "move it away to start without the pending notifications",
        })
}

fn save(dir: &Path, o: &Outboxes) -> std::io::Result<()> {
    crate::fsutil::write_atomic(
        &dir.join(OUTBOX_FILE),
        &serde_json::to_vec(o).map_err(std::io::Error::other)?,
    )
}

type Inflight = (
    Vec<Alert>,
    tokio::task::JoinHandle<Result<(), super::NotifyError>>,
);

/// One receiver's delivery state.
struct Receiver {
    n: Notifier,
    inflight: Option<Inflight>,
    next_attempt: tokio::time::Instant,
    backoff: Backoff,
}

/// Runs the dispatch stage until cancelled (then saves the outboxes).
pub async fn run(
    receivers: Receivers,
    mut outboxes: Outboxes,
    dir: PathBuf,
    mut rx: mpsc::Receiver<NotifyIn>,
    metrics: Arc<Metrics>,
    clock: Clock,
    cancel: CancellationToken,
) {
    let start = tokio::time::Instant::now();
    let mut rs: Vec<Receiver> = build(&receivers)
        .into_iter()
        .map(|n| Receiver {
            n,
            inflight: None,
            next_attempt: start,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        })
        .collect();
    outboxes.0.retain(|name, q| {
        let keep = rs.iter().any(|r| r.n.name() == name);
        if !keep {
            warn!(receiver = %name, dropped = q.len(), "undelivered notifications of a receiver no longer configured dropped");
        }
        keep
    });
    let mut dirty = false;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_save = tokio::time::Instant::now();
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(NotifyIn::Queue(a)) => {
                    dirty |= queue(&rs, &mut outboxes, &metrics, &a);
                }
                Some(NotifyIn::Resend(all)) => {
                    for r in rs.iter().filter(|r| r.n.resends()) {
                        for a in &all {
                            outboxes.push(r.n.name(), a);
                        }
                    }
                    dirty = true;
                }
                Some(NotifyIn::Flush(reply)) => {
                    let r = persist(&dir, &outboxes, &mut dirty).await;
                    last_save = tokio::time::Instant::now();
                    let _ = reply.send(r);
                }
                None => break,
            },
            _ = tick.tick() => {}
            _ = cancel.cancelled() => break,
        }
        dirty |= deliver(&mut rs, &mut outboxes, &metrics, &clock).await;
        if dirty && last_save.elapsed() >= Duration::from_secs(2) {
            if let Err(e) = persist(&dir, &outboxes, &mut dirty).await {
                error!(error = %e, "notification outbox not saved; will retry");
            }
            last_save = tokio::time::Instant::now();
        }
    }
    // Deliveries in flight are left to finish or be retried next start.
    if let Err(e) = persist(&dir, &outboxes, &mut true).await {
        error!(error = %e, "notification outbox not saved at shutdown; the replay regenerates what the last snapshot does not cover");
    }
    info!("notification dispatch stopped");
}

async fn persist(dir: &Path, o: &Outboxes, dirty: &mut bool) -> std::io::Result<()> {
    if !*dirty {
        return Ok(());
    }
    let (d, snapshot) = (dir.to_owned(), o.clone());
    tokio::task::spawn_blocking(move || save(&d, &snapshot))
        .await
        .map_err(std::io::Error::other)??;
    *dirty = false;
    Ok(())
}

/// Queues `a` for every receiver that wants it; true when one did. A full
/// outbox drops its oldest, said loudly and counted.
fn queue(rs: &[Receiver], outboxes: &mut Outboxes, metrics: &Metrics, a: &Alert) -> bool {
    let mut queued = false;
    for r in rs.iter().filter(|r| r.n.wants(a)) {
        queued = true;
        let dropped = outboxes.push(r.n.name(), a);
        if dropped > 0 {
            metrics.notify_dropped.fetch_add(dropped as u64, Relaxed);
            error!(
                receiver = r.n.name(),
                dropped, "outbox full: oldest notifications dropped"
            );
        }
    }
    queued
}

/// Collects finished deliveries and starts new ones. True when an outbox
/// changed.
async fn deliver(
    rs: &mut [Receiver],
    outboxes: &mut Outboxes,
    metrics: &Metrics,
    clock: &Clock,
) -> bool {
    let mut changed = false;
    let now = tokio::time::Instant::now();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_os_rng();
    for r in rs.iter_mut() {
        let name = r.n.name().to_owned();
        if r.inflight.as_ref().is_some_and(|(_, h)| h.is_finished()) {
            if let Some((batch, h)) = r.inflight.take() {
                match h.await {
                    Ok(Ok(())) => {
                        outboxes.delivered(&name, &batch);
                        metrics
                            .notify_delivered
                            .fetch_add(batch.len() as u64, Relaxed);
                        r.backoff.reset();
                        changed = true;
                    }
                    Ok(Err(e)) => {
                        let wait = r.backoff.next_delay(&mut rng);
                        r.next_attempt = now + wait;
                        metrics.notify_failures.fetch_add(1, Relaxed);
                        warn!(receiver = %name, error = %e, waiting = batch.len(), retry_in_ms = wait.as_millis() as u64, "notification not delivered; will retry");
                    }
                    Err(e) => {
                        r.next_attempt = now + r.backoff.next_delay(&mut rng);
                        error!(receiver = %name, error = %e, "notification task failed");
                    }
                }
            }
        }
        if r.inflight.is_none() && now >= r.next_attempt {
            let q = outboxes.queue(&name);
            if !q.is_empty() {
                let batch: Vec<Alert> = q[..q.len().min(BATCH)].to_vec();
                let (n, b, at) = (r.n.clone(), batch.clone(), clock.now_ms());
                let h = tokio::spawn(async move { n.post(&b, at).await });
                r.inflight = Some((batch, h));
            }
        }
    }
    metrics.notify_outbox.store(outboxes.len() as u64, Relaxed);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_that_is_not_valid_names_its_path_and_the_remedy() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let path = dir.path().join(OUTBOX_FILE);
        std::fs::write(&path, b"{not json").unwrap();
        let err = load(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, crate::fsutil::StateFileError::Invalid { path: p, .. } if *p == path),
            "{err:?}"
        );
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("move it away"), "{msg}");
        assert!(std::error::Error::source(&err).is_some(), "{err:?}");
    }
}
