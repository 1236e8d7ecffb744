#![expect(
    clippy::disallowed_methods,
    reason = "src/host is where bosun touches the machine"
)]
//! The host lock: one bosun process changes a node at a time.
//!
//! The lock is an exclusive `flock` on `<root>/var/lib/bosun/lock`, held for the life of the returned guard and
//! released by the kernel if the process dies, so a killed run never leaves a stale lock behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use bosun_phases::host::describe_io_error;

/// Where the lock lives on a node.
pub const LOCK_PATH: &str = "var/lib/bosun/lock";

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct HostLock {
    _file: fs::File,
    pub path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another bosun process is working on this host (it holds {path}{holder})")]
    Held { path: PathBuf, holder: String },
    #[error("cannot take the lock {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// Takes the lock under `root`, failing at once if another process holds it.
pub fn acquire(root: &Path) -> Result<HostLock, LockError> {
    let path = root.join(LOCK_PATH);
    let io_error = |error: std::io::Error| LockError::Io {
        path: path.clone(),
        reason: describe_io_error(&error),
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error)?;
    }
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path)
                .ok()
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty())
                .map(|pid| format!(", pid {pid}"))
                .unwrap_or_default();
            return Err(LockError::Held {
                path: path.clone(),
                holder,
            });
        }
        Err(fs::TryLockError::Error(error)) => return Err(io_error(error)),
    }
    file.set_len(0).map_err(io_error)?;
    write!(file, "{}", std::process::id()).map_err(io_error)?;
    Ok(HostLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let root = tempfile::tempdir().expect("tempdir");
        let first = acquire(root.path()).expect("first");
        let error = acquire(root.path()).expect_err("second must fail");
        assert!(
            error
                .to_string()
                .starts_with("another bosun process is working on this host"),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        drop(first);
        acquire(root.path()).expect("free again");
    }
}
