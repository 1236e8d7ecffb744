//! Running `init` phases inside a `join` phase. The certificates, kubeconfigs, manifests, kubelet start and node
//! marking of a joining node are exactly init's, run with the cluster's configuration ([`InitData`] built by
//! discovery); running them through the engine keeps their needs checks, `makes` enforcement and reports.
//!
//! The inner run's events are collected and replayed into the outer phase: artefacts are reported by the join phase
//! (so the run's report and `changed` are right), messages keep the inner phase's name, and in a dry run the inner
//! phases' planned changes are reported as the outer phase's, so they print (and serialise) like any other.

use crate::engine::event::{Event, Level, RecordingSink};
use crate::engine::{self, Phase, PhaseCtx, PhaseError, RunError, RunOptions, Workflow};
use crate::init::InitData;

use super::JoinData;

/// Runs `phases` (init's) as one inner workflow with `init`, reporting into `ctx`. `skip` names inner phases to
/// leave out (`kubeconfig/super-admin`).
pub(crate) fn run_init_phases(
    ctx: &mut PhaseCtx<'_, JoinData>,
    init: &InitData,
    phases: Vec<Phase<InitData>>,
    skip: &[&str],
) -> Result<(), PhaseError> {
    let mut workflow = Workflow::new(format!("join {}", ctx.phase()));
    for phase in phases {
        workflow = workflow.phase(phase);
    }
    let sink = RecordingSink::default();
    let options = RunOptions {
        target: None,
        skip: skip.iter().map(|name| (*name).to_owned()).collect(),
    };
    let result = engine::run(&workflow, init, ctx.host, &sink, &options);
    for event in sink.events() {
        match event {
            Event::Artefact {
                artefact,
                outcome,
                detail,
                ..
            } => ctx.record_with_detail(artefact, outcome, detail),
            Event::Message { phase, level, text } => {
                let text = format!("[{phase}] {text}");
                match level {
                    Level::Info => ctx.info(text),
                    Level::Warning => ctx.warn(text),
                }
            }
            Event::Progress {
                done, total, text, ..
            } => ctx.progress(done, total, text),
            Event::Data { text, .. } => ctx.output(text),
            Event::Planned { change, .. } => ctx.planned(change),
            Event::PhaseSkipped { phase, reason } => {
                ctx.info(format!("[{phase}] skipped: {reason}"))
            }
            _ => {}
        }
    }
    match result {
        Ok(_) => Ok(()),
        Err(RunError::Phase { phase, source, .. }) => Err(match source {
            PhaseError::Failed { message, hint } | PhaseError::Preflight { message, hint } => {
                PhaseError::Failed {
                    message: format!("{phase}: {message}"),
                    hint,
                }
            }
            other => other,
        }),
        Err(RunError::UnmetNeeds(needs)) => Err(PhaseError::failed(
            needs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(other) => Err(PhaseError::failed(other.to_string())),
    }
}
