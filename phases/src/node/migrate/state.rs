//! The migration's progress on the node, `/var/lib/bosun/cgroup-driver-migration.json` (0644, no secrets): the
//! target driver, what the node used before, how far the steps got, and whether bosun cordoned the node.
//!
//! A run reads it before anything else. A migration that is not finished is continued from the step after the
//! last completed one, because the early steps are not safe to repeat once later ones ran (draining a node whose
//! kubelet is stopped leaves its pods terminating for ever). A finished migration is history: a new run starts
//! afresh.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host::Files;
use crate::node::cgroup::CgroupDriver;
use crate::node::NodeError;

/// Where the state lives on a node.
pub const STATE_PATH: &str = "/var/lib/bosun/cgroup-driver-migration.json";

/// One migration of one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MigrationState {
    /// The driver the node is being moved to.
    pub target: String,
    /// The kubelet's and the runtime's drivers when the migration started.
    pub kubelet_before: String,
    pub runtime_before: String,
    /// The Node object's name.
    pub node: String,
    /// RFC 3339 time the migration started.
    pub started: String,
    /// The steps completed, in order (by phase name).
    pub completed: Vec<String>,
    /// Steps that did not run, with the reason (no API server, `--skip-phases`).
    #[serde(default)]
    pub skipped: Vec<SkippedStep>,
    /// Whether bosun cordoned the node (so uncordon must undo it); false when the node was already unschedulable.
    #[serde(default)]
    pub cordoned_by_bosun: bool,
    /// Unix seconds when the kubelet was started with the new driver (the Ready wait wants a newer heartbeat).
    #[serde(default)]
    pub kubelet_started: Option<u64>,
    /// RFC 3339 time the migration finished; `None` while it is in progress.
    #[serde(default)]
    pub finished: Option<String>,
}

/// A step that did not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedStep {
    pub step: String,
    pub reason: String,
}

impl MigrationState {
    /// Whether this is an unfinished migration (to be continued).
    pub fn in_progress(&self) -> bool {
        self.finished.is_none()
    }

    pub fn target_driver(&self) -> Option<CgroupDriver> {
        CgroupDriver::parse(&self.target)
    }

    /// Whether the step at `index` of `steps` is behind the progress made (it, or a later step, completed).
    pub fn is_behind(&self, steps: &[&str], index: usize) -> bool {
        steps[index..]
            .iter()
            .any(|step| self.completed.iter().any(|done| done == step))
    }

    pub fn complete(&mut self, step: &str) {
        if !self.completed.iter().any(|done| done == step) {
            self.completed.push(step.to_owned());
        }
    }

    pub fn skip(&mut self, step: &str, reason: &str) {
        self.skipped.retain(|skipped| skipped.step != step);
        self.skipped.push(SkippedStep {
            step: step.to_owned(),
            reason: reason.to_owned(),
        });
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut text = serde_json::to_vec_pretty(self).unwrap_or_default();
        text.push(b'\n');
        text
    }
}

/// Reads the state; `Ok(None)` when no migration ever ran on the node.
pub fn read(files: &dyn Files) -> Result<Option<MigrationState>, NodeError> {
    let Some(bytes) = files.read(Path::new(STATE_PATH))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| NodeError::Invalid {
            what: STATE_PATH.to_owned(),
            reason: format!(
                "it is not a migration state bosun wrote ({error}); move it away to start the migration afresh"
            ),
        })
}
