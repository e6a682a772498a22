//! The rules snapshot: engine state and alert store, with the log offset
//! the engine state covers, in one file (`rules-snapshot.json`, written,
//! fsynced and renamed into place). Written by the alert stage; the rules
//! cursor moves only after it is on disk. After a crash the engine restarts
//! from it and replays the log from its offset; the store is at least as
//! new as the engine (it is saved later than the engine state it is paired
//! with) and ignores transitions it has already applied, so alerts are
//! neither lost nor duplicated.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::log::Position;

/// The file in the log directory.
pub const FILE: &str = "rules-snapshot.json";

/// What the file holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Next log offset the engine state does not yet cover.
    pub offset: u64,
    /// Engine state (its own JSON).
    pub engine: String,
    /// Alert store (its own JSON).
    pub alerts: String,
    /// Outboxes saved by a version that kept them here (kept as JSON: the
    /// notification stage reads them once, then keeps its own file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outboxes: Option<serde_json::Value>,
    /// Unwritten alert points (line protocol) of a version that kept them
    /// here; read once and written out as they are.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pending_points: String,
}

/// An engine state with the log position it covers, as the rules shell
/// hands it to the alert stage.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// Engine state (JSON).
    pub engine: Vec<u8>,
    /// Next offset it does not cover.
    pub offset: u64,
    /// Where that offset is in the log (for the cursor).
    pub position: Position,
}

/// Path of the snapshot in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads the snapshot, if there is one.
pub fn read(dir: &Path) -> Result<Option<Snapshot>, crate::fsutil::StateFileError> {
    let p = path(dir);
    let Some(bytes) = crate::fsutil::read_state(WHAT, &p)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| invalid(p, Box::new(e)))
}

/// What the snapshot is, in errors.
pub const WHAT: &str = "rules and alerts snapshot";

/// The error for a snapshot file whose content cannot be used.
pub fn invalid(
    path: std::path::PathBuf,
    source: Box<dyn std::error::Error + Send + Sync>,
) -> crate::fsutil::StateFileError {
    crate::fsutil::StateFileError::Invalid {
        what: WHAT,
        path,
        source,
        remedy: "move it away to rebuild the rule state from the log",
    }
}

/// The fields [`write`] puts in the file, borrowed from where they are.
#[derive(Serialize)]
struct Parts<'a> {
    offset: u64,
    engine: std::borrow::Cow<'a, str>,
    alerts: std::borrow::Cow<'a, str>,
}

/// Writes a snapshot of `engine` and `alerts` (their own JSON) covering the
/// log up to `offset`: streamed into a temporary file (no copy of either in
/// memory), fsynced, renamed into place, the directory fsynced. Blocking.
pub fn write(dir: &Path, offset: u64, engine: &[u8], alerts: &[u8]) -> std::io::Result<()> {
    let parts = Parts {
        offset,
        engine: String::from_utf8_lossy(engine),
        alerts: String::from_utf8_lossy(alerts),
    };
    let mut f = crate::fsutil::AtomicFile::create(&path(dir))?;
    serde_json::to_writer(f.writer(), &parts).map_err(std::io::Error::other)?;
    f.commit()
}
