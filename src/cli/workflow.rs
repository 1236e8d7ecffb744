//! The binder between workflows and the command line: it generates `<command> phase …` subcommands from a
//! workflow's phase tree, reads back which phase was chosen, and runs a workflow with the lock, the printer and the
//! journal.

use bosun_phases::engine::journal::{self, JournalEntry};
use bosun_phases::engine::{self, RunError, RunOptions, RunReport, Workflow};
use clap::{ArgMatches, Command};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::CliError;
use crate::settings::Settings;

/// The `phase` subcommand for a workflow: one subcommand per visible phase, nested like the phase tree. A phase with
/// children runs its whole subtree; `all` is accepted as a synonym, as kubeadm users type it.
pub fn phase_command<C>(workflow: &Workflow<C>) -> Command {
    fn build<C>(phase: &engine::Phase<C>) -> Command {
        let mut command = Command::new(phase.name().to_owned()).about(phase.summary().to_owned());
        if let Some(long) = phase.long_help() {
            command = command.long_about(long.to_owned());
        }
        let visible: Vec<&engine::Phase<C>> = phase
            .child_phases()
            .iter()
            .filter(|child| !child.is_hidden())
            .collect();
        if !visible.is_empty() {
            command = command.subcommand(
                Command::new("all")
                    .about(format!("Run every {} phase", phase.name()))
                    .hide(true),
            );
            for child in visible {
                command = command.subcommand(build(child));
            }
        }
        command
    }
    let mut command = Command::new("phase")
        .about(format!(
            "Run one phase of `{}` (and its sub-phases)",
            workflow.name()
        ))
        .subcommand_required(true)
        .arg_required_else_help(true);
    for phase in workflow
        .top_phases()
        .iter()
        .filter(|phase| !phase.is_hidden())
    {
        command = command.subcommand(build(phase));
    }
    command
}

/// The full name of the phase chosen under `phase`, if any (`init phase certs apiserver` → `certs/apiserver`).
pub fn chosen_phase(matches: &ArgMatches) -> Option<String> {
    let (name, mut current) = matches.subcommand().filter(|(name, _)| *name == "phase")?;
    let _ = name;
    let mut parts: Vec<String> = Vec::new();
    while let Some((part, next)) = current.subcommand() {
        if part != "all" {
            parts.push(part.to_owned());
        }
        current = next;
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Runs a workflow on the host described by `settings`, holding the host lock, printing events and recording the
/// run in the journal (not for dry runs).
pub fn execute<C>(
    settings: &Settings,
    workflow: &Workflow<C>,
    data: &C,
    options: &RunOptions,
    dry_run: bool,
) -> Result<RunReport, CliError> {
    let _lock = settings.lock(dry_run)?;
    let host = settings.host(dry_run);
    let printer = settings.printer();
    let started = now();
    let result = engine::run(workflow, data, &host, &printer, options);
    printer.finish();
    if !dry_run {
        let entry = match &result {
            Ok(report) => Some(JournalEntry::from_report(report, started, now(), None)),
            Err(RunError::Phase { report, source, .. }) => Some(JournalEntry::from_report(
                report,
                started,
                now(),
                Some(source.to_string()),
            )),
            Err(_) => None,
        };
        if let Some(entry) = entry {
            if let Err(error) = journal::append(host.files.as_ref(), entry) {
                eprintln!("warning: cannot record this run in the journal: {error}");
            }
        }
    }
    result.map_err(CliError::from)
}
