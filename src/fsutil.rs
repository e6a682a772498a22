//! Files written whole: a crash leaves the old content or the new, never a
//! mix (the rules snapshot, the notification outboxes).

use std::io::Write as _;
use std::path::Path;

/// Replaces `path` with `bytes`: write a temporary file, fsync it, rename it
/// into place, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(d) = path.parent() {
        if let Ok(d) = std::fs::File::open(d) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
