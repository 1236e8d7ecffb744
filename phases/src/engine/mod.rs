//! The phase engine. It knows nothing about Kubernetes.
//!
//! A [`Workflow`] is a tree of [`Phase`]s. Each phase is data: a kebab-case name (the full name joins the path with
//! `/`, e.g. `certs/apiserver`), a one-line summary, an optional condition that skips it with a reason, the
//! [`Artefact`]s it `needs` and `makes`, and an optional run function. From one workflow definition the binary
//! generates `<command> phase …` subcommands, `--skip-phases` and the help tree.
//!
//! Running is done by [`run`]:
//! 1. [`Workflow::select`] picks the phases to run (a subtree for `phase <name>`, minus `--skip-phases`), in pre-order.
//! 2. Conditions are evaluated (they depend only on the typed workflow data).
//! 3. Before anything changes, every need of every selected phase must be made by an earlier selected phase or be
//!    present on the host; otherwise the run stops and names the phase that makes the missing artefact.
//! 4. Phases run in order. A phase writes only through its [`PhaseCtx`], which refuses files the phase does not
//!    declare in `makes` and reports each artefact as unchanged, created or updated.

pub mod event;
pub mod journal;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::host::dry_run::PlannedChange;
use crate::host::{ensure_file, Host, HostError, Outcome};
use event::{Event, EventSink, Level};

/// Something a phase needs or makes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "lowercase")]
pub enum Artefact {
    /// A file on the node.
    File(PathBuf),
    /// Anything else (a running service, an object in the cluster); its presence is judged by the workflow's probe.
    State(String),
}

impl std::fmt::Display for Artefact {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Artefact::File(path) => write!(formatter, "{}", path.display()),
            Artefact::State(name) => formatter.write_str(name),
        }
    }
}

/// Why a phase failed.
#[derive(Debug, thiserror::Error)]
pub enum PhaseError {
    #[error(transparent)]
    Host(#[from] HostError),
    /// The phase could not do its job; `hint` tells the user what to do.
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
    /// Preflight checks failed; nothing was changed.
    #[error("{message}")]
    Preflight {
        message: String,
        hint: Option<String>,
    },
    /// A phase wrote something it does not declare: a defect in bosun.
    #[error("phase {phase} wrote {path}, which it does not declare in `makes`")]
    Undeclared { phase: String, path: PathBuf },
}

impl PhaseError {
    pub fn failed(message: impl Into<String>) -> Self {
        PhaseError::Failed {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a hint to a `Failed` or `Preflight` error.
    pub fn with_hint(self, new_hint: impl Into<String>) -> Self {
        match self {
            PhaseError::Failed { message, .. } => PhaseError::Failed {
                message,
                hint: Some(new_hint.into()),
            },
            PhaseError::Preflight { message, .. } => PhaseError::Preflight {
                message,
                hint: Some(new_hint.into()),
            },
            other => other,
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            PhaseError::Failed { hint, .. } | PhaseError::Preflight { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }
}

type RunFn<C> = Arc<dyn Fn(&mut PhaseCtx<'_, C>) -> Result<(), PhaseError> + Send + Sync>;
type ArtefactsFn<C> = Arc<dyn Fn(&C) -> Vec<Artefact> + Send + Sync>;
type ConditionFn<C> = Arc<dyn Fn(&C) -> Option<String> + Send + Sync>;
type ProbeFn<C> = Arc<dyn Fn(&C, &Host, &str) -> bool + Send + Sync>;

/// One named unit of work.
pub struct Phase<C> {
    name: String,
    summary: String,
    long_about: Option<String>,
    children: Vec<Phase<C>>,
    skip_if: Option<ConditionFn<C>>,
    needs: Option<ArtefactsFn<C>>,
    makes: Option<ArtefactsFn<C>>,
    run: Option<RunFn<C>>,
    hidden: bool,
}

impl<C> Phase<C> {
    /// A phase with a kebab-case `name` and a one-line `summary`.
    pub fn new(name: impl Into<String>, summary: impl Into<String>) -> Self {
        Phase {
            name: name.into(),
            summary: summary.into(),
            long_about: None,
            children: Vec::new(),
            skip_if: None,
            needs: None,
            makes: None,
            run: None,
            hidden: false,
        }
    }

    /// Longer help text for the generated `phase` subcommand.
    pub fn long_about(mut self, text: impl Into<String>) -> Self {
        self.long_about = Some(text.into());
        self
    }

    pub fn child(mut self, phase: Phase<C>) -> Self {
        self.children.push(phase);
        self
    }

    pub fn children(mut self, phases: impl IntoIterator<Item = Phase<C>>) -> Self {
        self.children.extend(phases);
        self
    }

    /// Skips the phase (and its children) when the condition returns a reason. Conditions added later are checked
    /// after the earlier ones; the first reason wins.
    pub fn skip_if(
        mut self,
        condition: impl Fn(&C) -> Option<String> + Send + Sync + 'static,
    ) -> Self
    where
        C: 'static,
    {
        self.skip_if = Some(match self.skip_if.take() {
            None => Arc::new(condition),
            Some(earlier) => Arc::new(move |data: &C| earlier(data).or_else(|| condition(data))),
        });
        self
    }

    pub fn needs(mut self, needs: impl Fn(&C) -> Vec<Artefact> + Send + Sync + 'static) -> Self {
        self.needs = Some(Arc::new(needs));
        self
    }

    pub fn makes(mut self, makes: impl Fn(&C) -> Vec<Artefact> + Send + Sync + 'static) -> Self {
        self.makes = Some(Arc::new(makes));
        self
    }

    pub fn run(
        mut self,
        run: impl Fn(&mut PhaseCtx<'_, C>) -> Result<(), PhaseError> + Send + Sync + 'static,
    ) -> Self {
        self.run = Some(Arc::new(run));
        self
    }

    /// Hidden phases run but get no `phase` subcommand.
    pub fn hidden(mut self) -> Self {
        self.hidden = true;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn summary(&self) -> &str {
        &self.summary
    }

    pub fn long_help(&self) -> Option<&str> {
        self.long_about.as_deref()
    }

    pub fn child_phases(&self) -> &[Phase<C>] {
        &self.children
    }

    pub fn is_hidden(&self) -> bool {
        self.hidden
    }

    fn declared_needs(&self, data: &C) -> Vec<Artefact> {
        self.needs
            .as_ref()
            .map(|needs| needs(data))
            .unwrap_or_default()
    }

    fn declared_makes(&self, data: &C) -> Vec<Artefact> {
        self.makes
            .as_ref()
            .map(|makes| makes(data))
            .unwrap_or_default()
    }
}

/// A phase with its full name, as selected for a run.
pub struct Selected<'w, C> {
    pub full_name: String,
    pub phase: &'w Phase<C>,
}

/// A command's phases.
pub struct Workflow<C> {
    name: String,
    phases: Vec<Phase<C>>,
    probe: Option<ProbeFn<C>>,
}

/// A wrong phase name in `--skip-phases` or `phase <name>`.
#[derive(Debug, thiserror::Error)]
#[error("invalid phase name {name:?} for `{workflow}`; valid names are: {}", valid.join(", "))]
pub struct SelectError {
    pub workflow: String,
    pub name: String,
    pub valid: Vec<String>,
}

impl<C> Workflow<C> {
    pub fn new(name: impl Into<String>) -> Self {
        Workflow {
            name: name.into(),
            phases: Vec::new(),
            probe: None,
        }
    }

    pub fn phase(mut self, phase: Phase<C>) -> Self {
        self.phases.push(phase);
        self
    }

    /// How the presence of [`Artefact::State`] needs is judged on a host.
    pub fn probe(
        mut self,
        probe: impl Fn(&C, &Host, &str) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.probe = Some(Arc::new(probe));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn top_phases(&self) -> &[Phase<C>] {
        &self.phases
    }

    /// Every phase with its full name, in run order (pre-order).
    pub fn all(&self) -> Vec<Selected<'_, C>> {
        fn walk<'w, C>(prefix: &str, phases: &'w [Phase<C>], into: &mut Vec<Selected<'w, C>>) {
            for phase in phases {
                let full_name = if prefix.is_empty() {
                    phase.name.clone()
                } else {
                    format!("{prefix}/{}", phase.name)
                };
                into.push(Selected {
                    full_name: full_name.clone(),
                    phase,
                });
                walk(&full_name, &phase.children, into);
            }
        }
        let mut all = Vec::new();
        walk("", &self.phases, &mut all);
        all
    }

    /// Every full phase name, in run order.
    pub fn names(&self) -> Vec<String> {
        self.all()
            .into_iter()
            .map(|selected| selected.full_name)
            .collect()
    }

    fn check_name(&self, name: &str) -> Result<String, SelectError> {
        let normalised = name.trim().trim_matches('/').to_lowercase();
        let names = self.names();
        if names.contains(&normalised) {
            Ok(normalised)
        } else {
            Err(SelectError {
                workflow: self.name.clone(),
                name: name.to_owned(),
                valid: names,
            })
        }
    }

    /// The phases to run: the subtree at `target` (all when `None`), without the `skip` subtrees, in run order.
    pub fn select(
        &self,
        target: Option<&str>,
        skip: &[String],
    ) -> Result<Vec<Selected<'_, C>>, SelectError> {
        let target = target.map(|name| self.check_name(name)).transpose()?;
        let skip = skip
            .iter()
            .map(|name| self.check_name(name))
            .collect::<Result<Vec<_>, _>>()?;
        let within = |full_name: &str, root: &str| {
            full_name == root || full_name.starts_with(&format!("{root}/"))
        };
        Ok(self
            .all()
            .into_iter()
            .filter(|selected| {
                target
                    .as_deref()
                    .is_none_or(|root| within(&selected.full_name, root))
            })
            .filter(|selected| !skip.iter().any(|root| within(&selected.full_name, root)))
            .collect())
    }

    /// The full name of the phase that declares it makes `artefact`, if any.
    pub fn maker_of(&self, data: &C, artefact: &Artefact) -> Option<String> {
        self.all()
            .into_iter()
            .find(|selected| selected.phase.declared_makes(data).contains(artefact))
            .map(|selected| selected.full_name)
    }

    /// Checks, for the whole workflow, that every need is made by an earlier phase; returns the violations.
    ///
    /// Needs that no phase of the workflow makes are inputs from outside (a user's external CA, say) and are not
    /// violations.
    pub fn ordering_violations(&self, data: &C) -> Vec<String> {
        let all = self.all();
        let mut violations = Vec::new();
        for (index, selected) in all.iter().enumerate() {
            for need in selected.phase.declared_needs(data) {
                let made_earlier = all[..index]
                    .iter()
                    .any(|earlier| earlier.phase.declared_makes(data).contains(&need));
                if made_earlier {
                    continue;
                }
                if let Some(later) = all[index..]
                    .iter()
                    .find(|later| later.phase.declared_makes(data).contains(&need))
                {
                    violations.push(format!(
                        "{} needs {need}, which {} makes later",
                        selected.full_name, later.full_name
                    ));
                }
            }
        }
        violations
    }
}

/// A need that is neither made by an earlier selected phase nor present on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmetNeed {
    pub phase: String,
    pub artefact: Artefact,
    pub made_by: Option<String>,
}

impl std::fmt::Display for UnmetNeed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "phase {} needs {}, which is not on the host",
            self.phase, self.artefact
        )?;
        match &self.made_by {
            Some(maker) => write!(
                formatter,
                " and is made by phase {maker}, which is not selected"
            ),
            None => write!(formatter, " and no phase of this command makes it"),
        }
    }
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    UnmetNeeds(Vec<UnmetNeed>),
    #[error("error execution phase {phase}: {source}")]
    Phase {
        phase: String,
        #[source]
        source: PhaseError,
        /// Whether any phase of this run had changed the host before the failure.
        host_changed: bool,
        /// What the run did up to and including the failed phase.
        report: Box<RunReport>,
    },
    #[error("cannot check needs on the host: {0}")]
    Host(#[from] HostError),
}

/// What one phase did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PhaseRecord {
    pub phase: String,
    #[serde(flatten)]
    pub status: PhaseStatus,
    pub artefacts: Vec<ArtefactRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum PhaseStatus {
    Done,
    Skipped { reason: String },
    Failed { error: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ArtefactRecord {
    pub artefact: String,
    pub outcome: Outcome,
}

/// What a whole run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunReport {
    pub workflow: String,
    pub phases: Vec<PhaseRecord>,
}

impl RunReport {
    /// Whether any artefact was created, updated or removed.
    pub fn changed(&self) -> bool {
        self.phases
            .iter()
            .flat_map(|phase| &phase.artefacts)
            .any(|artefact| artefact.outcome != Outcome::Unchanged)
    }
}

/// The handle a running phase uses to touch the host and report.
pub struct PhaseCtx<'run, C> {
    /// The workflow's typed data (configuration and derived values).
    pub data: &'run C,
    /// The node.
    pub host: &'run Host,
    phase: &'run str,
    sink: &'run dyn EventSink,
    declared_files: BTreeSet<PathBuf>,
    artefacts: Vec<ArtefactRecord>,
}

impl<C> PhaseCtx<'_, C> {
    /// The full name of the running phase.
    pub fn phase(&self) -> &str {
        self.phase
    }

    /// Makes a declared file hold `contents` with `mode`, changing it only if it differs, and reports the outcome.
    pub fn ensure_file(
        &mut self,
        path: &Path,
        contents: &[u8],
        mode: u32,
    ) -> Result<Outcome, PhaseError> {
        self.ensure_file_with_detail(path, contents, mode, None)
    }

    /// [`PhaseCtx::ensure_file`], reporting the artefact with a short explanation ("generated").
    pub fn ensure_file_with_detail(
        &mut self,
        path: &Path,
        contents: &[u8],
        mode: u32,
        detail: Option<String>,
    ) -> Result<Outcome, PhaseError> {
        self.check_declared(path)?;
        let outcome = ensure_file(self.host.files.as_ref(), path, contents, mode)?;
        self.record_with_detail(path.display().to_string(), outcome, detail);
        Ok(outcome)
    }

    /// Fails unless the phase declares that it makes `path`.
    pub fn check_declared(&self, path: &Path) -> Result<(), PhaseError> {
        if self.declared_files.contains(path) {
            Ok(())
        } else {
            Err(PhaseError::Undeclared {
                phase: self.phase.to_owned(),
                path: path.to_path_buf(),
            })
        }
    }

    /// Reports what happened to an artefact the phase handled itself.
    pub fn record(&mut self, artefact: impl Into<String>, outcome: Outcome) {
        self.record_with_detail(artefact, outcome, None);
    }

    /// Reports an artefact with a short explanation ("using existing", "expires in 364d").
    pub fn record_with_detail(
        &mut self,
        artefact: impl Into<String>,
        outcome: Outcome,
        detail: Option<String>,
    ) {
        let artefact = artefact.into();
        self.sink.emit(Event::Artefact {
            phase: self.phase.to_owned(),
            artefact: artefact.clone(),
            outcome,
            detail,
        });
        self.artefacts.push(ArtefactRecord { artefact, outcome });
    }

    /// Hands the user a result (a join command, a table): the printer writes it to stdout, apart from the log.
    pub fn output(&self, text: impl Into<String>) {
        self.sink.emit(Event::Data {
            phase: self.phase.to_owned(),
            text: text.into(),
        });
    }

    pub fn info(&self, text: impl Into<String>) {
        self.message(Level::Info, text.into());
    }

    /// Reports a change a dry run would make, under this phase's name. The engine reports the host's own planned
    /// changes after each phase; a phase that runs another workflow inside itself (join runs init's phases) passes
    /// that workflow's on with this.
    pub fn planned(&self, change: PlannedChange) {
        self.sink.emit(Event::Planned {
            phase: self.phase.to_owned(),
            change,
        });
    }

    pub fn warn(&self, text: impl Into<String>) {
        self.message(Level::Warning, text.into());
    }

    /// Reports progress of long work inside the phase.
    pub fn progress(&self, done: u64, total: u64, text: impl Into<String>) {
        self.sink.emit(Event::Progress {
            phase: self.phase.to_owned(),
            done,
            total,
            text: text.into(),
        });
    }

    fn message(&self, level: Level, text: String) {
        self.sink.emit(Event::Message {
            phase: self.phase.to_owned(),
            level,
            text,
        });
    }
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run only this phase and its children (`phase <name>`).
    pub target: Option<String>,
    /// Leave out these phases and their children (`--skip-phases`).
    pub skip: Vec<String>,
}

/// Runs a workflow on a host: selection, conditions, the needs check, then each phase in order.
///
/// Guarantees: nothing on the host changes before every need is known to be met. Each phase reports every artefact
/// it handles. Assumptions: phases are idempotent, so a failed run is fixed by running it again.
pub fn run<C>(
    workflow: &Workflow<C>,
    data: &C,
    host: &Host,
    sink: &dyn EventSink,
    options: &RunOptions,
) -> Result<RunReport, RunError> {
    let selected = workflow.select(options.target.as_deref(), &options.skip)?;
    let skipped_reason = |selected_phase: &Selected<'_, C>| -> Option<String> {
        selected_phase
            .phase
            .skip_if
            .as_ref()
            .and_then(|condition| condition(data))
    };
    // Conditions first: a phase skipped by its condition makes nothing, and its children are skipped with it.
    let mut plan: Vec<(&Selected<'_, C>, Option<String>)> = Vec::new();
    // Phases skipped because an ancestor is: recorded in the report, but not announced one by one.
    let mut skipped_with_ancestor: BTreeSet<String> = BTreeSet::new();
    for candidate in &selected {
        let inherited = plan.iter().rev().find_map(|(earlier, reason)| {
            let is_ancestor = candidate
                .full_name
                .starts_with(&format!("{}/", earlier.full_name));
            match reason {
                Some(reason) if is_ancestor => Some(reason.clone()),
                _ => None,
            }
        });
        if inherited.is_some() {
            skipped_with_ancestor.insert(candidate.full_name.clone());
        }
        let reason = inherited.or_else(|| skipped_reason(candidate));
        plan.push((candidate, reason));
    }

    let mut unmet = Vec::new();
    let mut made: BTreeSet<Artefact> = BTreeSet::new();
    for (candidate, reason) in &plan {
        if reason.is_some() {
            continue;
        }
        for need in candidate.phase.declared_needs(data) {
            if made.contains(&need) || present(workflow, data, host, &need)? {
                continue;
            }
            unmet.push(UnmetNeed {
                phase: candidate.full_name.clone(),
                made_by: workflow.maker_of(data, &need),
                artefact: need,
            });
        }
        made.extend(candidate.phase.declared_makes(data));
    }
    if !unmet.is_empty() {
        return Err(RunError::UnmetNeeds(unmet));
    }

    sink.emit(Event::WorkflowStarted {
        workflow: workflow.name.clone(),
        phases: plan
            .iter()
            .filter(|(_, reason)| reason.is_none())
            .map(|(candidate, _)| candidate.full_name.clone())
            .collect(),
        dry_run: host.dry_run,
    });
    let mut report = RunReport {
        workflow: workflow.name.clone(),
        phases: Vec::new(),
    };
    for (candidate, reason) in plan {
        if let Some(reason) = reason {
            if !skipped_with_ancestor.contains(&candidate.full_name) {
                sink.emit(Event::PhaseSkipped {
                    phase: candidate.full_name.clone(),
                    reason: reason.clone(),
                });
            }
            report.phases.push(PhaseRecord {
                phase: candidate.full_name.clone(),
                status: PhaseStatus::Skipped { reason },
                artefacts: Vec::new(),
            });
            continue;
        }
        let Some(run_phase) = candidate.phase.run.as_ref() else {
            continue;
        };
        sink.emit(Event::PhaseStarted {
            phase: candidate.full_name.clone(),
            summary: candidate.phase.summary.clone(),
        });
        let started = Instant::now();
        let declared_files = candidate
            .phase
            .declared_makes(data)
            .into_iter()
            .filter_map(|artefact| match artefact {
                Artefact::File(path) => Some(path),
                Artefact::State(_) => None,
            })
            .collect();
        let mut context = PhaseCtx {
            data,
            host,
            phase: &candidate.full_name,
            sink,
            declared_files,
            artefacts: Vec::new(),
        };
        let result = run_phase(&mut context);
        let artefacts = std::mem::take(&mut context.artefacts);
        for change in host.drain_planned() {
            sink.emit(Event::Planned {
                phase: candidate.full_name.clone(),
                change,
            });
        }
        sink.emit(Event::PhaseFinished {
            phase: candidate.full_name.clone(),
            ok: result.is_ok(),
            elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        });
        match result {
            Ok(()) => report.phases.push(PhaseRecord {
                phase: candidate.full_name.clone(),
                status: PhaseStatus::Done,
                artefacts,
            }),
            Err(source) => {
                report.phases.push(PhaseRecord {
                    phase: candidate.full_name.clone(),
                    status: PhaseStatus::Failed {
                        error: source.to_string(),
                    },
                    artefacts,
                });
                let host_changed = report.changed();
                sink.emit(Event::WorkflowFinished {
                    workflow: workflow.name.clone(),
                    ok: false,
                    changed: host_changed,
                });
                return Err(RunError::Phase {
                    phase: candidate.full_name.clone(),
                    source,
                    host_changed,
                    report: Box::new(report),
                });
            }
        }
    }
    sink.emit(Event::WorkflowFinished {
        workflow: workflow.name.clone(),
        ok: true,
        changed: report.changed(),
    });
    Ok(report)
}

fn present<C>(
    workflow: &Workflow<C>,
    data: &C,
    host: &Host,
    artefact: &Artefact,
) -> Result<bool, HostError> {
    match artefact {
        Artefact::File(path) => host.files.exists(path),
        Artefact::State(name) => Ok(workflow
            .probe
            .as_ref()
            .is_some_and(|probe| probe(data, host, name))),
    }
}

#[cfg(test)]
mod tests;
