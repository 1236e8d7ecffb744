//! An in-memory node for unit tests of phases and of the engine.
//!
//! Clones share state, so a test can keep a handle and inspect what a run left behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{
    CommandOutput, CommandSpec, Commands, FileMeta, Files, HostError, Outcome, ServiceSpec,
    ServiceState, Services,
};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    File {
        contents: Vec<u8>,
        mode: u32,
        modified: u64,
    },
    Directory {
        mode: u32,
    },
}

/// Files held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryFiles {
    entries: Arc<Mutex<BTreeMap<PathBuf, Entry>>>,
    writes: Arc<Mutex<u64>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryFiles {
    /// Every file and directory with its content and mode, for comparing states before and after a run.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (Option<Vec<u8>>, u32, u64)> {
        lock(&self.entries)
            .iter()
            .map(|(path, entry)| match entry {
                Entry::File {
                    contents,
                    mode,
                    modified,
                } => (path.clone(), (Some(contents.clone()), *mode, *modified)),
                Entry::Directory { mode } => (path.clone(), (None, *mode, 0)),
            })
            .collect()
    }

    /// How many writes (including mode changes) have been made.
    pub fn write_count(&self) -> u64 {
        *lock(&self.writes)
    }

    fn ensure_parents(entries: &mut BTreeMap<PathBuf, Entry>, path: &Path) {
        let mut parent = path.parent();
        while let Some(directory) = parent {
            entries
                .entry(directory.to_path_buf())
                .or_insert(Entry::Directory { mode: 0o755 });
            parent = directory.parent();
        }
    }
}

impl Files for MemoryFiles {
    fn read(&self, path: &Path) -> Result<Option<Vec<u8>>, HostError> {
        match lock(&self.entries).get(path) {
            Some(Entry::File { contents, .. }) => Ok(Some(contents.clone())),
            Some(Entry::Directory { .. }) => Err(HostError::File {
                action: "read",
                path: path.to_path_buf(),
                reason: "it is a directory".to_owned(),
            }),
            None => Ok(None),
        }
    }

    fn write_atomic(&self, path: &Path, contents: &[u8], mode: u32) -> Result<(), HostError> {
        let mut writes = lock(&self.writes);
        *writes += 1;
        let mut entries = lock(&self.entries);
        Self::ensure_parents(&mut entries, path);
        entries.insert(
            path.to_path_buf(),
            Entry::File {
                contents: contents.to_vec(),
                mode,
                modified: *writes,
            },
        );
        Ok(())
    }

    fn metadata(&self, path: &Path) -> Result<Option<FileMeta>, HostError> {
        Ok(lock(&self.entries).get(path).map(|entry| match entry {
            Entry::File { contents, mode, .. } => FileMeta {
                is_dir: false,
                len: contents.len() as u64,
                mode: *mode,
                modified: Some(SystemTime::UNIX_EPOCH),
            },
            Entry::Directory { mode } => FileMeta {
                is_dir: true,
                len: 0,
                mode: *mode,
                modified: None,
            },
        }))
    }

    fn set_mode(&self, path: &Path, new_mode: u32) -> Result<(), HostError> {
        *lock(&self.writes) += 1;
        match lock(&self.entries).get_mut(path) {
            Some(Entry::File { mode, .. } | Entry::Directory { mode }) => {
                *mode = new_mode;
                Ok(())
            }
            None => Err(HostError::File {
                action: "change the mode of",
                path: path.to_path_buf(),
                reason: "no such file or directory".to_owned(),
            }),
        }
    }

    fn remove_file(&self, path: &Path) -> Result<bool, HostError> {
        let mut entries = lock(&self.entries);
        match entries.get(path) {
            Some(Entry::File { .. }) => {
                entries.remove(path);
                Ok(true)
            }
            Some(Entry::Directory { .. }) => Err(HostError::File {
                action: "remove",
                path: path.to_path_buf(),
                reason: "it is a directory".to_owned(),
            }),
            None => Ok(false),
        }
    }

    fn create_dir_all(&self, path: &Path, mode: u32) -> Result<(), HostError> {
        let mut entries = lock(&self.entries);
        Self::ensure_parents(&mut entries, path);
        entries
            .entry(path.to_path_buf())
            .or_insert(Entry::Directory { mode });
        Ok(())
    }

    fn remove_all(&self, path: &Path) -> Result<bool, HostError> {
        let mut entries = lock(&self.entries);
        let existed = entries.contains_key(path);
        entries.retain(|candidate, _| !candidate.starts_with(path));
        Ok(existed)
    }

    fn list_dir(&self, path: &Path) -> Result<Vec<PathBuf>, HostError> {
        Ok(lock(&self.entries)
            .keys()
            .filter(|candidate| candidate.parent() == Some(path))
            .cloned()
            .collect())
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<(), HostError> {
        let mut entries = lock(&self.entries);
        let moved: Vec<(PathBuf, Entry)> = entries
            .iter()
            .filter(|(path, _)| path.starts_with(from))
            .map(|(path, entry)| (path.clone(), entry.clone()))
            .collect();
        if moved.is_empty() {
            return Err(HostError::File {
                action: "rename",
                path: from.to_path_buf(),
                reason: "no such file or directory".to_owned(),
            });
        }
        for (path, entry) in moved {
            entries.remove(&path);
            let suffix = path.strip_prefix(from).unwrap_or(Path::new(""));
            let target = if suffix.as_os_str().is_empty() {
                to.to_path_buf()
            } else {
                to.join(suffix)
            };
            entries.insert(target, entry);
        }
        Self::ensure_parents(&mut entries, to);
        Ok(())
    }
}

/// Commands that answer from a script of canned outputs and record what was run.
#[derive(Debug, Clone, Default)]
pub struct MemoryCommands {
    responses: Arc<Mutex<BTreeMap<String, CommandOutput>>>,
    programs: Arc<Mutex<BTreeMap<String, PathBuf>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl MemoryCommands {
    /// Answers `program` (matched on the program name) with the given exit code and stdout.
    pub fn respond(&self, program: &str, status: i32, stdout: &str) {
        lock(&self.responses).insert(
            program.to_owned(),
            CommandOutput {
                status: Some(status),
                stdout: stdout.as_bytes().to_vec(),
                stderr: Vec::new(),
            },
        );
        lock(&self.programs).insert(
            program.to_owned(),
            PathBuf::from(format!("/usr/bin/{program}")),
        );
    }

    /// Every command line run so far.
    pub fn log(&self) -> Vec<String> {
        lock(&self.log).clone()
    }
}

impl Commands for MemoryCommands {
    fn run(&self, command: &CommandSpec) -> Result<CommandOutput, HostError> {
        lock(&self.log).push(command.display());
        lock(&self.responses)
            .get(&command.program)
            .cloned()
            .ok_or_else(|| HostError::Command {
                command: command.display(),
                reason: "no such program".to_owned(),
            })
    }

    fn find_program(&self, name: &str) -> Option<PathBuf> {
        lock(&self.programs).get(name).cloned()
    }
}

/// Services whose state lives in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryServices {
    installed: Arc<Mutex<BTreeMap<String, ServiceSpec>>>,
    states: Arc<Mutex<BTreeMap<String, ServiceState>>>,
}

impl MemoryServices {
    fn set(&self, name: &str, state: ServiceState) -> Result<(), HostError> {
        if !lock(&self.installed).contains_key(name) {
            return Err(HostError::Service {
                service: name.to_owned(),
                reason: "it is not installed".to_owned(),
            });
        }
        lock(&self.states).insert(name.to_owned(), state);
        Ok(())
    }
}

impl Services for MemoryServices {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn install(&self, spec: &ServiceSpec) -> Result<Outcome, HostError> {
        let mut installed = lock(&self.installed);
        let outcome = match installed.get(&spec.name) {
            Some(existing) if existing == spec => Outcome::Unchanged,
            Some(_) => Outcome::Updated,
            None => Outcome::Created,
        };
        installed.insert(spec.name.clone(), spec.clone());
        Ok(outcome)
    }

    fn start(&self, name: &str) -> Result<(), HostError> {
        self.set(name, ServiceState::Active)
    }

    fn stop(&self, name: &str) -> Result<(), HostError> {
        self.set(name, ServiceState::Inactive)
    }

    fn restart(&self, name: &str) -> Result<(), HostError> {
        self.set(name, ServiceState::Active)
    }

    fn state(&self, name: &str) -> Result<ServiceState, HostError> {
        Ok(lock(&self.states)
            .get(name)
            .copied()
            .unwrap_or(ServiceState::Unknown))
    }

    fn uninstall(&self, name: &str) -> Result<Outcome, HostError> {
        lock(&self.states).remove(name);
        Ok(match lock(&self.installed).remove(name) {
            Some(_) => Outcome::Removed,
            None => Outcome::Unchanged,
        })
    }
}
