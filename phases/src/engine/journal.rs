//! The journal: what each run did, kept on the node under `/var/lib/bosun/journal.json` for `bosun status`.
//!
//! Written through [`Files`] after every real (not dry) run, successful or not, atomically, mode 0600. It keeps the
//! newest [`KEPT_RUNS`] runs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{PhaseRecord, RunReport};
use crate::host::{Files, HostError};

/// Where the journal lives on a node.
pub const JOURNAL_PATH: &str = "/var/lib/bosun/journal.json";
/// How many runs the journal keeps.
pub const KEPT_RUNS: usize = 50;

/// One run of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// RFC 3339 time the run started.
    pub started: String,
    /// RFC 3339 time the run ended.
    pub finished: String,
    pub workflow: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub phases: Vec<PhaseRecord>,
}

impl JournalEntry {
    pub fn from_report(
        report: &RunReport,
        started: String,
        finished: String,
        error: Option<String>,
    ) -> Self {
        JournalEntry {
            started,
            finished,
            workflow: report.workflow.clone(),
            ok: error.is_none(),
            error,
            phases: report.phases.clone(),
        }
    }
}

/// Every run the node remembers, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub runs: Vec<JournalEntry>,
}

/// A journal that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("the journal {JOURNAL_PATH} is not valid JSON: {0}")]
    Corrupt(String),
}

/// Reads the journal; an absent journal is empty.
pub fn read(files: &dyn Files) -> Result<Journal, JournalError> {
    match files.read(Path::new(JOURNAL_PATH))? {
        None => Ok(Journal::default()),
        Some(bytes) => {
            serde_json::from_slice(&bytes).map_err(|error| JournalError::Corrupt(error.to_string()))
        }
    }
}

/// Appends a run, dropping the oldest beyond [`KEPT_RUNS`]. A corrupt journal is replaced rather than blocking work.
pub fn append(files: &dyn Files, entry: JournalEntry) -> Result<(), HostError> {
    let mut journal = read(files).unwrap_or_default();
    journal.runs.push(entry);
    let excess = journal.runs.len().saturating_sub(KEPT_RUNS);
    journal.runs.drain(..excess);
    let mut bytes =
        serde_json::to_vec_pretty(&journal).map_err(|error| HostError::Other(error.to_string()))?;
    bytes.push(b'\n');
    files.write_atomic(Path::new(JOURNAL_PATH), &bytes, 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::MemoryFiles;

    fn entry(workflow: &str) -> JournalEntry {
        JournalEntry {
            started: "2026-01-01T00:00:00Z".to_owned(),
            finished: "2026-01-01T00:00:01Z".to_owned(),
            workflow: workflow.to_owned(),
            ok: true,
            error: None,
            phases: Vec::new(),
        }
    }

    #[test]
    fn keeps_only_the_newest_runs() {
        let files = MemoryFiles::default();
        for index in 0..(KEPT_RUNS + 3) {
            append(&files, entry(&format!("run-{index}"))).expect("append");
        }
        let journal = read(&files).expect("read");
        assert_eq!(journal.runs.len(), KEPT_RUNS);
        assert_eq!(journal.runs[0].workflow, "run-3");
        assert_eq!(
            journal.runs[KEPT_RUNS - 1].workflow,
            format!("run-{}", KEPT_RUNS + 2)
        );
    }

    #[test]
    fn a_corrupt_journal_is_reported_by_read_and_replaced_by_append() {
        let files = MemoryFiles::default();
        files
            .write_atomic(Path::new(JOURNAL_PATH), b"{not json", 0o600)
            .expect("seed");
        assert!(matches!(read(&files), Err(JournalError::Corrupt(_))));
        append(&files, entry("init")).expect("append");
        assert_eq!(read(&files).expect("read").runs.len(), 1);
    }
}
