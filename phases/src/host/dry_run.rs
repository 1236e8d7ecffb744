//! Dry-run hosts: they read the real node but record changes instead of making them.
//!
//! Reads after a recorded write see the planned content, so later phases in the same run plan against the state the
//! earlier phases would have produced. Every recorded change is drained by the runner after each phase and printed as
//! a unified diff (secrets redacted) or a command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;

use super::redact::{is_secret_path, redact};
use super::{
    CommandOutput, CommandSpec, Commands, FileMeta, Files, HostError, Outcome, ServiceSpec,
    ServiceState, Services, UnmountFlags,
};

/// One change a dry run would have made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum PlannedChange {
    /// A file would be written; `diff` is a unified diff against the current content, secrets redacted.
    Write {
        path: PathBuf,
        mode: String,
        diff: String,
    },
    /// A file's permission bits would change.
    Mode { path: PathBuf, mode: String },
    /// A file would be removed.
    Remove { path: PathBuf },
    /// A directory would be made.
    Directory { path: PathBuf },
    /// A path would be renamed.
    Rename { from: PathBuf, to: PathBuf },
    /// A command would be run.
    Command { command: String },
    /// A service would be installed, started, stopped or restarted.
    Service { service: String, action: String },
}

#[derive(Debug, Clone)]
enum Overlay {
    File { contents: Vec<u8>, mode: u32 },
    Directory,
    Absent,
}

/// Files that read through to the node and record writes.
pub struct DryRunFiles {
    inner: Box<dyn Files>,
    overlay: Mutex<BTreeMap<PathBuf, Overlay>>,
    planned: Mutex<Vec<PlannedChange>>,
}

impl DryRunFiles {
    pub fn new(inner: Box<dyn Files>) -> Self {
        DryRunFiles {
            inner,
            overlay: Mutex::new(BTreeMap::new()),
            planned: Mutex::new(Vec::new()),
        }
    }

    fn overlay_entry(&self, path: &Path) -> Option<Overlay> {
        lock(&self.overlay).get(path).cloned()
    }

    fn plan(&self, change: PlannedChange) {
        lock(&self.planned).push(change);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A unified diff of two file contents, with secrets redacted; binary content is summarised.
pub fn unified_diff(path: &Path, old: Option<&[u8]>, new: &[u8]) -> String {
    let name = path.display().to_string();
    if is_secret_path(path) {
        return match old {
            Some(_) => format!("--- {name}\n+++ {name}\n<private key would be replaced>\n"),
            None => format!("--- /dev/null\n+++ {name}\n<private key would be created>\n"),
        };
    }
    let (Ok(old_text), Ok(new_text)) = (
        std::str::from_utf8(old.unwrap_or_default()),
        std::str::from_utf8(new),
    ) else {
        return format!("binary file {name} would change ({} bytes)\n", new.len());
    };
    let old_text = redact(old_text);
    let new_text = redact(new_text);
    let old_name = if old.is_some() {
        name.clone()
    } else {
        "/dev/null".to_owned()
    };
    similar::TextDiff::from_lines(&old_text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &name)
        .to_string()
}

impl Files for DryRunFiles {
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        match self.overlay_entry(path) {
            Some(Overlay::File { contents, .. }) => Ok(Some(contents)),
            Some(Overlay::Absent | Overlay::Directory) => Ok(None),
            None => self.inner.read(path),
        }
    }

    fn write_atomic(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), HostError> {
        let old = self.read(path)?;
        self.plan(PlannedChange::Write {
            path: path.to_path_buf(),
            mode: format!("{mode:04o}"),
            diff: unified_diff(path, old.as_deref(), contents),
        });
        lock(&self.overlay).insert(
            path.to_path_buf(),
            Overlay::File {
                contents: contents.to_vec(),
                mode,
            },
        );
        Ok(())
    }

    fn metadata(&self, path: &Path) -> Result<Option<FileMeta>, HostError> {
        match self.overlay_entry(path) {
            Some(Overlay::File { contents, mode }) => Ok(Some(FileMeta {
                is_dir: false,
                len: contents.len() as u64,
                mode,
                modified: None,
            })),
            Some(Overlay::Directory) => Ok(Some(FileMeta {
                is_dir: true,
                len: 0,
                mode: 0o755,
                modified: None,
            })),
            Some(Overlay::Absent) => Ok(None),
            None => self.inner.metadata(path),
        }
    }

    fn set_mode(&self, path: &Path, mode: u32) -> Result<(), HostError> {
        self.plan(PlannedChange::Mode {
            path: path.to_path_buf(),
            mode: format!("{mode:04o}"),
        });
        let contents = self.read(path)?.unwrap_or_default();
        lock(&self.overlay).insert(path.to_path_buf(), Overlay::File { contents, mode });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> Result<bool, HostError> {
        if !self.exists(path)? {
            return Ok(false);
        }
        self.plan(PlannedChange::Remove {
            path: path.to_path_buf(),
        });
        lock(&self.overlay).insert(path.to_path_buf(), Overlay::Absent);
        Ok(true)
    }

    fn create_dir_all(&self, path: &Path, _mode: u32) -> Result<(), HostError> {
        if !self.exists(path)? {
            self.plan(PlannedChange::Directory {
                path: path.to_path_buf(),
            });
            lock(&self.overlay).insert(path.to_path_buf(), Overlay::Directory);
        }
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, HostError> {
        let mut entries: std::collections::BTreeSet<PathBuf> =
            self.inner.list_dir(path)?.into_iter().collect();
        for (overlay_path, entry) in lock(&self.overlay).iter() {
            if overlay_path.parent() == Some(path) {
                match entry {
                    Overlay::Absent => {
                        entries.remove(overlay_path);
                    }
                    _ => {
                        entries.insert(overlay_path.clone());
                    }
                }
            }
        }
        Ok(entries.into_iter().collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), HostError> {
        self.plan(PlannedChange::Rename {
            from: from.to_path_buf(),
            to: to.to_path_buf(),
        });
        let moved = match self.overlay_entry(from) {
            Some(entry) => entry,
            None => match self.inner.metadata(from)? {
                Some(meta) if meta.is_dir => Overlay::Directory,
                Some(meta) => Overlay::File {
                    contents: self.inner.read(from)?.unwrap_or_default(),
                    mode: meta.mode,
                },
                None => {
                    return Err(HostError::File {
                        action: "rename",
                        path: from.to_path_buf(),
                        reason: "no such file or directory".to_owned(),
                    })
                }
            },
        };
        let mut overlay = lock(&self.overlay);
        overlay.insert(from.to_path_buf(), Overlay::Absent);
        overlay.insert(to.to_path_buf(), moved);
        Ok(())
    }

    fn remove_all(&self, path: &Path) -> Result<bool, HostError> {
        if !self.exists(path)? {
            return Ok(false);
        }
        self.plan(PlannedChange::Remove {
            path: path.to_path_buf(),
        });
        let mut overlay = lock(&self.overlay);
        overlay.retain(|planned, _| !planned.starts_with(path));
        overlay.insert(path.to_path_buf(), Overlay::Absent);
        Ok(true)
    }

    fn mounts_below(&self, path: &Path) -> Result<Vec<PathBuf>, HostError> {
        self.inner.mounts_below(path)
    }

    fn unmount(&self, path: &Path, _flags: UnmountFlags) -> Result<(), HostError> {
        self.plan(PlannedChange::Command {
            command: format!("umount {}", path.display()),
        });
        Ok(())
    }

    fn drain_planned(&self) -> Vec<PlannedChange> {
        std::mem::take(&mut *lock(&self.planned))
    }
}

/// Commands that run read-only queries for real and record everything else.
pub struct DryRunCommands {
    inner: Box<dyn Commands>,
    planned: Mutex<Vec<PlannedChange>>,
}

impl DryRunCommands {
    pub fn new(inner: Box<dyn Commands>) -> Self {
        DryRunCommands {
            inner,
            planned: Mutex::new(Vec::new()),
        }
    }
}

impl Commands for DryRunCommands {
    fn run(&self, command: &CommandSpec) -> Result<CommandOutput, HostError> {
        if command.read_only {
            return self.inner.run(command);
        }
        lock(&self.planned).push(PlannedChange::Command {
            command: command.display(),
        });
        Ok(CommandOutput {
            status: Some(0),
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }

    fn find_program(&self, name: &str) -> Option<PathBuf> {
        self.inner.find_program(name)
    }

    fn drain_planned(&self) -> Vec<PlannedChange> {
        std::mem::take(&mut *lock(&self.planned))
    }
}

/// Services that report their real state and record every change.
pub struct DryRunServices {
    inner: Box<dyn Services>,
    planned: Mutex<Vec<PlannedChange>>,
}

impl DryRunServices {
    pub fn new(inner: Box<dyn Services>) -> Self {
        DryRunServices {
            inner,
            planned: Mutex::new(Vec::new()),
        }
    }

    fn plan(&self, service: &str, action: &str) {
        lock(&self.planned).push(PlannedChange::Service {
            service: service.to_owned(),
            action: action.to_owned(),
        });
    }
}

impl Services for DryRunServices {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn install(&self, spec: &ServiceSpec) -> Result<Outcome, HostError> {
        self.plan(&spec.name, "install");
        Ok(Outcome::Updated)
    }

    fn start(&self, name: &str) -> Result<(), HostError> {
        self.plan(name, "start");
        Ok(())
    }

    fn stop(&self, name: &str) -> Result<(), HostError> {
        self.plan(name, "stop");
        Ok(())
    }

    fn restart(&self, name: &str) -> Result<(), HostError> {
        self.plan(name, "restart");
        Ok(())
    }

    fn state(&self, name: &str) -> Result<ServiceState, HostError> {
        self.inner.state(name)
    }

    fn uninstall(&self, name: &str) -> Result<Outcome, HostError> {
        if self.inner.state(name)? == ServiceState::Unknown {
            return Ok(Outcome::Unchanged);
        }
        self.plan(name, "stop and remove");
        Ok(Outcome::Removed)
    }

    fn drain_planned(&self) -> Vec<PlannedChange> {
        std::mem::take(&mut *lock(&self.planned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::ensure_file;
    use crate::host::memory::MemoryFiles;

    #[test]
    fn dry_run_writes_nothing_and_records_a_diff() {
        let memory = MemoryFiles::default();
        memory
            .write_atomic(Path::new("/etc/a.conf"), b"one\ntwo\n", 0o644)
            .expect("seed");
        let snapshot = memory.snapshot();
        let dry = DryRunFiles::new(Box::new(memory.clone()));
        let outcome =
            ensure_file(&dry, Path::new("/etc/a.conf"), b"one\nthree\n", 0o644).expect("plan");
        assert_eq!(outcome, Outcome::Updated);
        assert_eq!(
            memory.snapshot(),
            snapshot,
            "the real files changed in a dry run"
        );
        assert_eq!(
            dry.read(Path::new("/etc/a.conf")).expect("read"),
            Some(b"one\nthree\n".to_vec())
        );
        let planned = dry.drain_planned();
        let [PlannedChange::Write { diff, .. }] = planned.as_slice() else {
            panic!("expected one write, got {planned:?}");
        };
        assert!(
            diff.contains("-two\n") && diff.contains("+three\n"),
            "{diff}"
        );
    }

    #[test]
    fn key_files_never_show_content() {
        let diff = unified_diff(
            Path::new("/etc/kubernetes/pki/ca.key"),
            None,
            b"-----BEGIN RSA PRIVATE KEY-----\nAAA\n",
        );
        assert!(!diff.contains("AAA"), "{diff}");
    }

    #[test]
    fn embedded_keys_in_kubeconfigs_are_redacted_in_diffs() {
        let diff = unified_diff(
            Path::new("/etc/kubernetes/admin.conf"),
            None,
            b"users:\n- user:\n    client-key-data: U0VDUkVU\n",
        );
        assert!(!diff.contains("U0VDUkVU"), "{diff}");
    }
}
