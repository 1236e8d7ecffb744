//! The narrow traits through which phases touch a node.
//!
//! Every path handed to these traits is an absolute path *on the node* (`/etc/kubernetes/pki/ca.crt`); the
//! implementation decides where that lives (under `--root DIR` locally, over SSH, in memory for tests). Phases never
//! see the root.
//!
//! - [`Files`]: read, atomic write with an explicit mode, remove, list, rename.
//! - [`Commands`]: run a program and collect its output.
//! - [`Services`]: install, start, stop, restart and query long-running services (systemd or a process supervisor).
//! - [`Clock`]: the current time, so that certificate validity and journal stamps are testable.
//! - [`cluster::ClusterApi`]: the Kubernetes API (server-side apply, get, list, delete, health GETs), made by a
//!   [`cluster::ClusterConnector`] from a kubeconfig.
//!
//! [`ensure_file`] is the idempotent primitive every phase uses: it compares what is on the node with what should be
//! there and changes only the difference. [`dry_run::DryRunFiles`] records what would change instead of changing it.

pub mod cluster;
pub mod dry_run;
pub mod memory;
pub mod redact;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

/// What happened to one artefact during a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The artefact was already as it should be; nothing was touched.
    Unchanged,
    /// The artefact did not exist and was made.
    Created,
    /// The artefact existed and was changed.
    Updated,
    /// The artefact existed and was removed.
    Removed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Removed => "removed",
        })
    }
}

/// An error from a host effect. It always names the path, command or service at fault.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot {action} {path}: {reason}")]
    File {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot run `{command}`: {reason}")]
    Command { command: String, reason: String },
    #[error("`{command}` failed with {status}: {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("service {service}: {reason}")]
    Service { service: String, reason: String },
    #[error("{0}")]
    Other(String),
}

impl HostError {
    /// Builds a [`HostError::File`] from an I/O error, keeping only its human-readable part (never `Os { code: 2 }`).
    pub fn file(action: &'static str, path: &Path, error: &std::io::Error) -> Self {
        HostError::File {
            action,
            path: path.to_path_buf(),
            reason: describe_io_error(error),
        }
    }
}

/// A human-readable description of an I/O error, without the `(os error N)` suffix.
pub fn describe_io_error(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => "no such file or directory".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::AlreadyExists => "it already exists".to_owned(),
        _ => {
            let text = error.to_string();
            match text.find(" (os error") {
                Some(index) => text[..index].to_lowercase(),
                None => text,
            }
        }
    }
}

/// Metadata of a path on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub is_dir: bool,
    pub len: u64,
    /// Permission bits (`0o600`).
    pub mode: u32,
    pub modified: Option<SystemTime>,
}

/// Files on a node.
pub trait Files: Send + Sync {
    /// Reads a whole file; `Ok(None)` when it does not exist.
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, HostError>;
    /// Writes a file atomically: a temporary file in the same directory, synced, given `mode` and its owner (root on a
    /// real node), renamed over `path`.
    /// Missing parent directories are created with mode 0755.
    fn write_atomic(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), HostError>;
    /// Metadata of a path; `Ok(None)` when it does not exist.
    fn metadata(&self, path: &Path) -> Result<Option<FileMeta>, HostError>;
    /// Changes the permission bits of an existing path.
    fn set_mode(&self, path: &Path, mode: u32) -> Result<(), HostError>;
    /// Removes a file; `Ok(false)` when it did not exist.
    fn remove_file(&self, path: &Path) -> Result<bool, HostError>;
    /// Creates a directory and its parents; the last component gets `mode`.
    fn create_dir_all(&self, path: &Path, mode: u32) -> Result<(), HostError>;
    /// Lists the entries of a directory (full paths, sorted); empty when it does not exist.
    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, HostError>;
    /// Renames a path atomically.
    fn rename(&self, from: &Path, to: &Path) -> Result<(), HostError>;

    /// Whether a path exists.
    fn exists(&self, path: &Path) -> Result<bool, HostError> {
        Ok(self.metadata(path)?.is_some())
    }

    /// Removes a path and everything under it, never following symbolic links and never descending into another
    /// mounted filesystem (that is an error naming the mount point); `Ok(false)` when it did not exist.
    fn remove_all(&self, path: &Path) -> Result<bool, HostError> {
        Err(HostError::File {
            action: "remove",
            path: path.to_path_buf(),
            reason: "this host cannot remove directory trees".to_owned(),
        })
    }

    /// Mount points strictly below `path` (node paths), deepest first. A host without mounts reports none.
    fn mounts_below(&self, path: &Path) -> Result<Vec<PathBuf>, HostError> {
        let _ = path;
        Ok(Vec::new())
    }

    /// Unmounts the filesystem mounted at `path`.
    fn unmount(&self, path: &Path, flags: UnmountFlags) -> Result<(), HostError> {
        let _ = flags;
        Err(HostError::File {
            action: "unmount",
            path: path.to_path_buf(),
            reason: "this host cannot unmount filesystems".to_owned(),
        })
    }

    /// Changes recorded instead of made (dry run); empty for a real host.
    fn drain_planned(&self) -> Vec<dry_run::PlannedChange> {
        Vec::new()
    }
}

/// How [`Files::unmount`] unmounts, as `umount2(2)` flags (kubeadm's ResetConfiguration `unmountFlags`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UnmountFlags {
    /// `MNT_FORCE`: abort pending requests (NFS).
    pub force: bool,
    /// `MNT_DETACH`: detach now, clean up when no longer busy.
    pub detach: bool,
    /// `MNT_EXPIRE`: mark as expired (needs a second call to unmount).
    pub expire: bool,
    /// `UMOUNT_NOFOLLOW`: do not follow a symbolic link at the mount point.
    pub no_follow: bool,
}

/// A program to run on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A query that changes nothing on the node; a dry run executes it for real.
    #[serde(default)]
    pub read_only: bool,
}

impl CommandSpec {
    pub fn new(program: impl Into<String>) -> Self {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            read_only: false,
        }
    }

    /// Marks the command as a query that changes nothing, so a dry run may execute it.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    pub fn arg(mut self, argument: impl Into<String>) -> Self {
        self.args.push(argument.into());
        self
    }

    pub fn args<I, S>(mut self, arguments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(arguments.into_iter().map(Into::into));
        self
    }

    /// The command line as a user would type it, for logs and dry-run output.
    pub fn display(&self) -> String {
        let mut text = self.program.clone();
        for argument in &self.args {
            text.push(' ');
            if argument.is_empty() || argument.contains(|c: char| c.is_whitespace() || c == '"') {
                text.push_str(&format!("{argument:?}"));
            } else {
                text.push_str(argument);
            }
        }
        text
    }
}

/// What a finished command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
}

/// Programs on a node.
pub trait Commands: Send + Sync {
    /// Runs a program to completion. A non-zero exit is not an error here; see [`run_checked`].
    fn run(&self, command: &CommandSpec) -> Result<CommandOutput, HostError>;
    /// Whether a program is on the node's `PATH`.
    fn find_program(&self, name: &str) -> Option<PathBuf>;

    /// Commands recorded instead of run (dry run); empty for a real host.
    fn drain_planned(&self) -> Vec<dry_run::PlannedChange> {
        Vec::new()
    }
}

/// Runs a command and turns a non-zero exit into an error carrying its stderr.
pub fn run_checked(
    commands: &dyn Commands,
    command: &CommandSpec,
) -> Result<CommandOutput, HostError> {
    let output = commands.run(command)?;
    if output.success() {
        Ok(output)
    } else {
        Err(HostError::CommandFailed {
            command: command.display(),
            status: match output.status {
                Some(code) => format!("exit code {code}"),
                None => "a signal".to_owned(),
            },
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// A long-running service as bosun defines it. Backends turn this into a systemd unit or a supervised process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ServiceSpec {
    /// Unit name without suffix, e.g. `kubelet`.
    pub name: String,
    pub description: String,
    pub command: CommandSpec,
    /// Files whose `KEY=value` lines become the environment (systemd `EnvironmentFile=-path`).
    pub environment_files: Vec<PathBuf>,
    /// Restart the process when it exits, after this many seconds.
    pub restart_after_seconds: u32,
}

/// Whether a service is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Active,
    Inactive,
    Failed,
    /// The backend does not know the service.
    Unknown,
}

/// Services on a node.
pub trait Services: Send + Sync {
    /// The backend's name (`systemd`, `process`), for messages.
    fn backend(&self) -> &'static str;
    /// Installs or updates a service definition; returns whether anything changed.
    fn install(&self, spec: &ServiceSpec) -> Result<Outcome, HostError>;
    fn start(&self, name: &str) -> Result<(), HostError>;
    fn stop(&self, name: &str) -> Result<(), HostError>;
    fn restart(&self, name: &str) -> Result<(), HostError>;
    fn state(&self, name: &str) -> Result<ServiceState, HostError>;
    /// Stops a service and removes its definition; `Outcome::Removed` when one was installed, `Unchanged` when none.
    fn uninstall(&self, name: &str) -> Result<Outcome, HostError> {
        Err(HostError::Service {
            service: name.to_owned(),
            reason: format!("the {} backend cannot remove services", self.backend()),
        })
    }

    /// Service changes recorded instead of made (dry run); empty for a real host.
    fn drain_planned(&self) -> Vec<dry_run::PlannedChange> {
        Vec::new()
    }
}

/// The current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that always says the same time, for tests and reproducible output.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub SystemTime);

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// Everything a phase may touch on one node.
pub struct Host {
    pub files: Box<dyn Files>,
    pub commands: Box<dyn Commands>,
    pub services: Box<dyn Services>,
    pub clock: Box<dyn Clock>,
    /// A name for the node in messages (`local`, `root /tmp/x`, `ssh node-2`).
    pub description: String,
    /// Whether this host only records what it would change.
    pub dry_run: bool,
}

impl Host {
    /// Every change recorded instead of made since the last call (dry run only).
    pub fn drain_planned(&self) -> Vec<dry_run::PlannedChange> {
        let mut planned = self.files.drain_planned();
        planned.extend(self.commands.drain_planned());
        planned.extend(self.services.drain_planned());
        planned
    }
}

/// Makes a file hold exactly `contents` with `mode`, touching it only if it differs.
///
/// Guarantees: when the bytes and mode already match, nothing is written and the mtime is kept; otherwise the file is
/// replaced atomically, so a crash leaves either the old or the new file. Returns what changed.
pub fn ensure_file(
    files: &dyn Files,
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> Result<Outcome, HostError> {
    match files.read(path)? {
        Some(existing) if existing == contents => {
            let current_mode = files.metadata(path)?.map(|meta| meta.mode & 0o7777);
            if current_mode == Some(mode) {
                Ok(Outcome::Unchanged)
            } else {
                files.set_mode(path, mode)?;
                Ok(Outcome::Updated)
            }
        }
        Some(_) => {
            files.write_atomic(path, contents, mode)?;
            Ok(Outcome::Updated)
        }
        None => {
            files.write_atomic(path, contents, mode)?;
            Ok(Outcome::Created)
        }
    }
}

/// Removes a file if it exists.
pub fn ensure_absent(files: &dyn Files, path: &Path) -> Result<Outcome, HostError> {
    if files.remove_file(path)? {
        Ok(Outcome::Removed)
    } else {
        Ok(Outcome::Unchanged)
    }
}
