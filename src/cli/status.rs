//! `bosun status`: what bosun last did on this host, from its journal.

use bosun_phases::engine::journal;
use bosun_phases::engine::PhaseStatus;
use bosun_phases::host::Outcome;
use clap::Args;

use crate::error::CliError;
use crate::output::{print_data, print_document, OutputFormat};
use crate::settings::Settings;

/// Show what bosun did on this host: each recent run, its phases and what changed.
///
/// Example: `bosun status` lists the newest runs; `bosun status --all -o json` prints the whole journal.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show every remembered run, not only the newest.
    #[arg(long)]
    pub all: bool,
}

pub fn run(settings: &Settings, arguments: &StatusArgs) -> Result<(), CliError> {
    let host = settings.read_only_host();
    let mut journal = journal::read(host.files.as_ref())
        .map_err(|error| CliError::unexpected(error.to_string()))?;
    if !arguments.all {
        let keep = journal.runs.len().saturating_sub(1);
        journal.runs.drain(..keep);
    }
    if settings.output != OutputFormat::Text {
        return print_document(settings.output, &journal).map_err(CliError::unexpected);
    }
    if journal.runs.is_empty() {
        print_data("bosun has not run on this host yet.\n");
        return Ok(());
    }
    let mut text = String::new();
    for entry in &journal.runs {
        let result = if entry.ok { "succeeded" } else { "failed" };
        text.push_str(&format!(
            "{} run {result} (started {}, finished {})\n",
            entry.workflow, entry.started, entry.finished
        ));
        if let Some(error) = &entry.error {
            text.push_str(&format!("  error: {error}\n"));
        }
        for phase in &entry.phases {
            let count = |wanted: Outcome| {
                phase
                    .artefacts
                    .iter()
                    .filter(|artefact| artefact.outcome == wanted)
                    .count()
            };
            let status = match &phase.status {
                PhaseStatus::Done => format!(
                    "done: {} created, {} updated, {} removed, {} unchanged",
                    count(Outcome::Created),
                    count(Outcome::Updated),
                    count(Outcome::Removed),
                    count(Outcome::Unchanged)
                ),
                PhaseStatus::Skipped { reason } => format!("skipped: {reason}"),
                PhaseStatus::Failed { error } => format!("FAILED: {error}"),
            };
            text.push_str(&format!("  {:<40} {status}\n", phase.phase));
        }
    }
    print_data(&text);
    Ok(())
}
