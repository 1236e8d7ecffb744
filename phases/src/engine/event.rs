//! Events the engine emits while it runs a workflow. Only the binary's printer turns them into output.

use serde::Serialize;

use crate::host::dry_run::PlannedChange;
use crate::host::Outcome;

/// How important a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
}

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    /// A workflow is about to run these phases, in this order.
    WorkflowStarted {
        workflow: String,
        phases: Vec<String>,
        dry_run: bool,
    },
    PhaseStarted {
        phase: String,
        summary: String,
    },
    /// A phase was not run, and why.
    PhaseSkipped {
        phase: String,
        reason: String,
    },
    /// One artefact was checked, made or changed.
    Artefact {
        phase: String,
        artefact: String,
        outcome: Outcome,
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    Message {
        phase: String,
        level: Level,
        text: String,
    },
    /// A result the user asked for (a join command): printed on stdout, the only place data goes.
    Data {
        phase: String,
        text: String,
    },
    /// In a dry run, a change that would have been made.
    Planned {
        phase: String,
        change: PlannedChange,
    },
    /// Long work inside a phase: `done` of `total` steps.
    Progress {
        phase: String,
        done: u64,
        total: u64,
        text: String,
    },
    PhaseFinished {
        phase: String,
        ok: bool,
        elapsed_ms: u64,
    },
    WorkflowFinished {
        workflow: String,
        ok: bool,
        changed: bool,
    },
}

/// Where events go.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// A sink that keeps every event, for tests.
#[derive(Debug, Default)]
pub struct RecordingSink {
    events: std::sync::Mutex<Vec<Event>>,
}

impl RecordingSink {
    pub fn events(&self) -> Vec<Event> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl EventSink for RecordingSink {
    fn emit(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }
}
