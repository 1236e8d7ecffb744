#![expect(
    clippy::disallowed_methods,
    reason = "src/host is where bosun touches the machine"
)]
//! The local machine: files under a root directory and programs run here.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use bosun_phases::host::{
    describe_io_error, CommandOutput, CommandSpec, Commands, FileMeta, Files, HostError,
    UnmountFlags,
};

/// Files of the local machine, with every node path placed under `root` (`/` on a real node).
#[derive(Debug, Clone)]
pub struct LocalFiles {
    root: PathBuf,
}

static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalFiles {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalFiles { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a node path lives on this machine. Only the normal components of `path` are kept, so `..` cannot
    /// leave the root.
    pub fn real_path(&self, path: &Path) -> PathBuf {
        let mut real = self.root.clone();
        for component in path.components() {
            if let Component::Normal(part) = component {
                real.push(part);
            }
        }
        real
    }

    fn write_temporary(
        &self,
        directory: &Path,
        name: &str,
        contents: &[u8],
        mode: u32,
    ) -> std::io::Result<PathBuf> {
        let counter = TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temporary = directory.join(format!(
            ".{name}.bosun-{}-{counter}.tmp",
            std::process::id()
        ));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)?;
        let result = (|| {
            // Node files belong to root:root, whatever the directory's set-group-ID bit would give; a run that is
            // not root (tests, a scratch --root) keeps its own user, which is the only owner it can give.
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::fchown(&file, Some(0), Some(0))?;
            }
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.write_all(contents)?;
            file.sync_all()
        })();
        if let Err(error) = result {
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
        Ok(temporary)
    }
}

fn sync_directory(directory: &Path) {
    // A failed directory sync loses only durability of the rename, never atomicity; it is not worth failing for.
    if let Ok(handle) = fs::File::open(directory) {
        let _ = handle.sync_all();
    }
}

impl Files for LocalFiles {
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        let real = self.real_path(path);
        match fs::read(&real) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(HostError::file("read", &real, &error)),
        }
    }

    fn write_atomic(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), HostError> {
        let real = self.real_path(path);
        let directory = real.parent().ok_or_else(|| HostError::File {
            action: "write",
            path: real.clone(),
            reason: "it has no parent directory".to_owned(),
        })?;
        fs::create_dir_all(directory)
            .map_err(|error| HostError::file("create the directory", directory, &error))?;
        let name = real
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temporary = self
            .write_temporary(directory, &name, contents, mode)
            .map_err(|error| HostError::file("write", &real, &error))?;
        if let Err(error) = fs::rename(&temporary, &real) {
            let _ = fs::remove_file(&temporary);
            return Err(HostError::file("replace", &real, &error));
        }
        sync_directory(directory);
        Ok(())
    }

    fn metadata(&self, path: &Path) -> Result<Option<FileMeta>, HostError> {
        let real = self.real_path(path);
        match fs::metadata(&real) {
            Ok(meta) => Ok(Some(FileMeta {
                is_dir: meta.is_dir(),
                len: meta.len(),
                mode: meta.permissions().mode() & 0o7777,
                modified: meta.modified().ok(),
            })),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(HostError::file("inspect", &real, &error)),
        }
    }

    fn set_mode(&self, path: &Path, mode: u32) -> Result<(), HostError> {
        let real = self.real_path(path);
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))
            .map_err(|error| HostError::file("change the mode of", &real, &error))
    }

    fn remove_file(&self, path: &Path) -> Result<bool, HostError> {
        let real = self.real_path(path);
        match fs::remove_file(&real) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(HostError::file("remove", &real, &error)),
        }
    }

    fn create_dir_all(&self, path: &Path, mode: u32) -> Result<(), HostError> {
        let real = self.real_path(path);
        if real.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&real)
            .map_err(|error| HostError::file("create the directory", &real, &error))?;
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))
            .map_err(|error| HostError::file("change the mode of", &real, &error))
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, HostError> {
        let real = self.real_path(path);
        let entries = match fs::read_dir(&real) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(HostError::file("list", &real, &error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| HostError::file("list", &real, &error))?;
            names.push(path.join(entry.file_name()));
        }
        names.sort();
        Ok(names)
    }

    fn remove_all(&self, path: &Path) -> Result<bool, HostError> {
        use std::os::unix::fs::MetadataExt;
        let real = self.real_path(path);
        let meta = match fs::symlink_metadata(&real) {
            Ok(meta) => meta,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(error) => return Err(HostError::file("inspect", &real, &error)),
        };
        if !meta.is_dir() {
            fs::remove_file(&real).map_err(|error| HostError::file("remove", &real, &error))?;
            return Ok(true);
        }
        remove_tree(&real, meta.dev())?;
        Ok(true)
    }

    fn mounts_below(&self, path: &Path) -> Result<Vec<PathBuf>, HostError> {
        let mountinfo = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(mountinfo)
            .map_err(|error| HostError::file("read", mountinfo, &error))?;
        let real = self.real_path(path);
        let mut below: Vec<PathBuf> = Vec::new();
        for line in text.lines() {
            // Field 5 is the mount point, with space, tab, newline and backslash written as octal escapes.
            let Some(mount_point) = line.split(' ').nth(4) else {
                continue;
            };
            let mount_point = PathBuf::from(unescape_mount_point(mount_point));
            let Ok(relative) = mount_point.strip_prefix(&real) else {
                continue;
            };
            if relative.as_os_str().is_empty() {
                continue;
            }
            let node_path = path.join(relative);
            if !below.contains(&node_path) {
                below.push(node_path);
            }
        }
        below.sort_by_key(|mount| std::cmp::Reverse(mount.components().count()));
        Ok(below)
    }

    fn unmount(&self, path: &Path, flags: UnmountFlags) -> Result<(), HostError> {
        use nix::mount::{umount2, MntFlags};
        let real = self.real_path(path);
        let mut bits = MntFlags::empty();
        for (set, flag) in [
            (flags.force, MntFlags::MNT_FORCE),
            (flags.detach, MntFlags::MNT_DETACH),
            (flags.expire, MntFlags::MNT_EXPIRE),
            (flags.no_follow, MntFlags::UMOUNT_NOFOLLOW),
        ] {
            if set {
                bits |= flag;
            }
        }
        umount2(&real, bits).map_err(|errno| HostError::File {
            action: "unmount",
            path: real.clone(),
            reason: errno.desc().to_lowercase(),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), HostError> {
        let real_from = self.real_path(from);
        let real_to = self.real_path(to);
        if let Some(parent) = real_to.parent() {
            fs::create_dir_all(parent)
                .map_err(|error| HostError::file("create the directory", parent, &error))?;
        }
        fs::rename(&real_from, &real_to)
            .map_err(|error| HostError::file("rename", &real_from, &error))
    }
}

/// Removes a directory and everything in it without following symbolic links; refuses to enter a directory on
/// another filesystem (a mount point left mounted), so a forgotten mount never loses its contents.
fn remove_tree(directory: &Path, device: u64) -> Result<(), HostError> {
    use std::os::unix::fs::MetadataExt;
    let entries =
        fs::read_dir(directory).map_err(|error| HostError::file("list", directory, &error))?;
    for entry in entries {
        let entry = entry.map_err(|error| HostError::file("list", directory, &error))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)
            .map_err(|error| HostError::file("inspect", &path, &error))?;
        if meta.is_dir() {
            if meta.dev() != device {
                return Err(HostError::File {
                    action: "remove",
                    path,
                    reason: "a filesystem is mounted there; unmount it first".to_owned(),
                });
            }
            remove_tree(&path, device)?;
        } else {
            fs::remove_file(&path).map_err(|error| HostError::file("remove", &path, &error))?;
        }
    }
    fs::remove_dir(directory).map_err(|error| HostError::file("remove", directory, &error))
}

/// A mount point as /proc/self/mountinfo writes it, with `\040`-style octal escapes decoded.
fn unescape_mount_point(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' && index + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[index + 1..index + 4]).unwrap_or_default();
            if let Ok(value) = u8::from_str_radix(digits, 8) {
                decoded.push(value);
                index += 4;
                continue;
            }
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Reads a file the user named on the command line (a configuration file, a backup), outside the node root.
///
/// Errors name the file and say what is wrong in words (never `Os { code: 2 }`).
pub fn read_user_file(path: &Path) -> Result<Vec<u8>, HostError> {
    fs::read(path).map_err(|error| HostError::file("read", path, &error))
}

/// Writes a file the user named on the command line, atomically (temporary file in the same directory, synced,
/// renamed), with `mode`.
pub fn write_user_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), HostError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|error| HostError::file("resolve", path, &error))?
            .join(path)
    };
    let files = LocalFiles::new("/");
    files.write_atomic(&absolute, contents, mode)
}

/// Programs run on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalCommands;

impl Commands for LocalCommands {
    fn run(&self, command: &CommandSpec) -> Result<CommandOutput, HostError> {
        let output = Command::new(&command.program)
            .args(&command.args)
            .envs(command.env.iter().map(|(key, value)| (key, value)))
            .output()
            .map_err(|error| HostError::Command {
                command: command.display(),
                reason: describe_io_error(&error),
            })?;
        Ok(CommandOutput {
            status: output.status.code(),
            stdout: output.stdout,
            stderr: output.stderr,
        })
    }

    fn find_program(&self, name: &str) -> Option<PathBuf> {
        which::which(name).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped_like_the_kernel_writes_them() {
        assert_eq!(
            unescape_mount_point("/var/lib/kubelet/pods/a\\040b"),
            "/var/lib/kubelet/pods/a b"
        );
        assert_eq!(unescape_mount_point("/plain"), "/plain");
    }

    #[test]
    fn remove_all_does_not_follow_symbolic_links() {
        let directory = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("outside");
        fs::write(outside.path().join("keep"), b"x").expect("write");
        let files = LocalFiles::new(directory.path());
        files
            .write_atomic(Path::new("/var/lib/kubelet/pki/a.crt"), b"a", 0o644)
            .expect("write");
        std::os::unix::fs::symlink(
            outside.path(),
            directory.path().join("var/lib/kubelet/link"),
        )
        .expect("symlink");
        assert!(files
            .remove_all(Path::new("/var/lib/kubelet"))
            .expect("remove"));
        assert!(!directory.path().join("var/lib/kubelet").exists());
        assert!(outside.path().join("keep").exists(), "followed a link");
        assert!(!files
            .remove_all(Path::new("/var/lib/kubelet"))
            .expect("again"));
    }

    #[test]
    fn node_paths_cannot_escape_the_root() {
        let files = LocalFiles::new("/tmp/root");
        assert_eq!(
            files.real_path(Path::new("/etc/../../x")),
            PathBuf::from("/tmp/root/etc/x")
        );
        assert_eq!(
            files.real_path(Path::new("/etc/kubernetes/pki/ca.crt")),
            PathBuf::from("/tmp/root/etc/kubernetes/pki/ca.crt")
        );
    }

    #[test]
    fn atomic_writes_set_the_mode_and_leave_no_temporary_files() {
        let directory = tempfile::tempdir().expect("tempdir");
        let files = LocalFiles::new(directory.path());
        files
            .write_atomic(Path::new("/etc/secret.key"), b"one", 0o600)
            .expect("write");
        files
            .write_atomic(Path::new("/etc/secret.key"), b"two", 0o600)
            .expect("rewrite");
        let meta = files
            .metadata(Path::new("/etc/secret.key"))
            .expect("meta")
            .expect("exists");
        assert_eq!(meta.mode, 0o600);
        assert_eq!(
            files.read(Path::new("/etc/secret.key")).expect("read"),
            Some(b"two".to_vec())
        );
        assert_eq!(
            files.list_dir(Path::new("/etc")).expect("list"),
            [PathBuf::from("/etc/secret.key")]
        );
    }

    #[test]
    fn files_written_as_root_belong_to_root_even_in_a_set_group_id_directory() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: ownership is only set when bosun runs as root");
            return;
        }
        let directory = tempfile::tempdir().expect("tempdir");
        let shared = directory.path().join("etc");
        fs::create_dir(&shared).expect("mkdir");
        std::os::unix::fs::chown(&shared, Some(0), Some(4242)).expect("chown");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o2775)).expect("setgid");
        let files = LocalFiles::new(directory.path());
        files
            .write_atomic(Path::new("/etc/owned.conf"), b"x", 0o600)
            .expect("write");
        let meta = fs::metadata(shared.join("owned.conf")).expect("meta");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "explicit owner root:root");
    }

    #[test]
    fn errors_name_the_path_without_os_codes() {
        let directory = tempfile::tempdir().expect("tempdir");
        let files = LocalFiles::new(directory.path());
        files
            .write_atomic(Path::new("/a"), b"file", 0o644)
            .expect("write");
        let error = files
            .write_atomic(Path::new("/a/b"), b"x", 0o644)
            .expect_err("a file is not a directory");
        let text = error.to_string();
        assert!(
            text.contains(&directory.path().join("a").display().to_string()),
            "{text}"
        );
        assert!(!text.contains("os error"), "{text}");
    }
}
