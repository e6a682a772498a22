//! Files written whole: a crash leaves the old content or the new, never a
//! mix (the rules snapshot, the notification outboxes).

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes`: write a temporary file, fsync it, rename it
/// into place, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.writer().write_all(bytes)?;
    f.commit()
}

/// A state file written in place of `path` by streaming into a temporary
/// file next to it; [`AtomicFile::commit`] makes it durable and renames it
/// over `path` (as [`write_atomic`], without the whole content in memory).
/// Dropped without commit, the temporary file is left to the next attempt,
/// which truncates it.
pub struct AtomicFile {
    tmp: std::path::PathBuf,
    path: std::path::PathBuf,
    w: std::io::BufWriter<std::fs::File>,
}

impl AtomicFile {
    /// Creates (truncates) the temporary file of `path`.
    pub fn create(path: &Path) -> std::io::Result<AtomicFile> {
        let tmp = path.with_extension("tmp");
        let f = std::fs::File::create(&tmp)?;
        Ok(AtomicFile {
            tmp,
            path: path.to_owned(),
            w: std::io::BufWriter::with_capacity(256 << 10, f),
        })
    }

    /// Where the content goes.
    pub fn writer(&mut self) -> &mut impl Write {
        &mut self.w
    }

    /// Flushes, fsyncs, renames over the target and fsyncs the directory.
    /// Blocking: call it off the runtime's threads.
    pub fn commit(self) -> std::io::Result<()> {
        let f = self.w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&self.tmp, &self.path)?;
        if let Some(d) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(d) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// A saved state file (rules and alerts snapshot, notification outboxes,
/// KPI snapshot) that cannot be used at start.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// The file exists but cannot be read.
    #[error("cannot read {what} {}: {source}", .path.display())]
    Read {
        /// Which state.
        what: &'static str,
        /// Its file.
        path: std::path::PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but its content is not valid.
    #[error("{what} {} is not valid: {source}; {remedy}", .path.display())]
    Invalid {
        /// Which state.
        what: &'static str,
        /// Its file.
        path: std::path::PathBuf,
        /// What is wrong with the content.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        /// What the operator can do.
        remedy: &'static str,
    },
}

/// Reads a state file; `Ok(None)` when it does not exist.
pub fn read_state(what: &'static str, path: &Path) -> Result<Option<Vec<u8>>, StateFileError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateFileError::Read {
            what,
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_state_file_is_a_read_error_not_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: exists, cannot be read.
        let path = dir.path().join("state");
        std::fs::create_dir(&path).unwrap();
        let err = read_state("test state", &path).unwrap_err();
        assert!(matches!(err, StateFileError::Read { .. }), "{err:?}");
        assert!(read_state("test state", &dir.path().join("absent"))
            .unwrap()
            .is_none());
    }
}
