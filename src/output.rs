//! The printer: the only place that turns engine events into output.
//!
//! - On a terminal: an indicatif spinner for the running phase, with finished lines printed above it (stderr).
//! - Elsewhere: plain tagged lines, `[certs/ca] created /etc/kubernetes/pki/ca.crt` (stderr).
//! - `-o json`: one JSON object per event on stdout, nothing else on stdout.
//!
//! stdout carries data only (tables, join commands, JSON); progress and logs go to stderr.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use bosun_phases::engine::event::{Event, EventSink, Level};
use bosun_phases::host::dry_run::PlannedChange;
use bosun_phases::host::Outcome;
use indicatif::{ProgressBar, ProgressStyle};

/// How a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON: one object per event for workflows, one document for read-only commands.
    Json,
    /// YAML, for read-only commands that print one document.
    Yaml,
}

/// Renders events.
pub struct Printer {
    format: OutputFormat,
    spinner: Option<ProgressBar>,
    quiet: bool,
    lock: Mutex<()>,
}

impl Printer {
    /// A printer for `format`; progress bars only when stderr is a terminal.
    pub fn new(format: OutputFormat, quiet: bool) -> Self {
        let spinner = (format == OutputFormat::Text && !quiet && std::io::stderr().is_terminal())
            .then(|| {
                let bar = ProgressBar::new_spinner();
                bar.set_style(
                    ProgressStyle::with_template("{spinner} [{prefix}] {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.enable_steady_tick(Duration::from_millis(100));
                bar
            });
        Printer {
            format,
            spinner,
            quiet,
            lock: Mutex::new(()),
        }
    }

    fn line(&self, text: &str) {
        match &self.spinner {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    /// Stops the spinner (at the end of a command).
    pub fn finish(&self) {
        if let Some(bar) = &self.spinner {
            bar.finish_and_clear();
        }
    }

    fn text(&self, event: &Event) {
        match event {
            Event::WorkflowStarted {
                workflow, dry_run, ..
            } => {
                if *dry_run {
                    self.line(&format!(
                        "[{workflow}] dry run: nothing on the host will change"
                    ));
                }
            }
            Event::PhaseStarted { phase, summary } => {
                if let Some(bar) = &self.spinner {
                    bar.set_prefix(phase.clone());
                    bar.set_message(summary.clone());
                }
            }
            Event::PhaseSkipped { phase, reason } => {
                if !self.quiet {
                    self.line(&format!("[{phase}] skipped: {reason}"))
                }
            }
            Event::Artefact {
                phase,
                artefact,
                outcome,
                detail,
            } => {
                if self.quiet && *outcome == Outcome::Unchanged {
                    return;
                }
                let detail = detail
                    .as_ref()
                    .map(|text| format!(" ({text})"))
                    .unwrap_or_default();
                self.line(&format!("[{phase}] {outcome} {artefact}{detail}"));
            }
            Event::Message { phase, level, text } => match level {
                Level::Info => self.line(&format!("[{phase}] {text}")),
                Level::Warning => self.line(&format!("[{phase}] WARNING: {text}")),
            },
            Event::Data { text, .. } => {
                if let Some(bar) = &self.spinner {
                    bar.suspend(|| print_data(&with_newline(text)));
                } else {
                    print_data(&with_newline(text));
                }
            }
            Event::Planned { phase, change } => self.line(&planned_text(phase, change)),
            Event::Progress {
                phase,
                done,
                total,
                text,
            } => match &self.spinner {
                Some(bar) => bar.set_message(format!("{text} ({done}/{total})")),
                None => self.line(&format!("[{phase}] {text} ({done}/{total})")),
            },
            Event::PhaseFinished { .. } => {}
            Event::WorkflowFinished {
                workflow,
                ok,
                changed,
            } => {
                if let Some(bar) = &self.spinner {
                    bar.set_message(String::new());
                }
                let summary = match (ok, changed) {
                    (true, true) => "done",
                    (true, false) => "done; nothing needed to change",
                    (false, _) => "failed",
                };
                self.line(&format!("[{workflow}] {summary}"));
            }
        }
    }
}

fn planned_text(phase: &str, change: &PlannedChange) -> String {
    match change {
        PlannedChange::Write { path, mode, diff } => {
            let mut text = format!("[{phase}] would write {} (mode {mode})", path.display());
            for line in diff.lines() {
                text.push_str("\n    ");
                text.push_str(line);
            }
            text
        }
        PlannedChange::Mode { path, mode } => {
            format!("[{phase}] would set mode {mode} on {}", path.display())
        }
        PlannedChange::Remove { path } => format!("[{phase}] would remove {}", path.display()),
        PlannedChange::Directory { path } => {
            format!("[{phase}] would create directory {}", path.display())
        }
        PlannedChange::Rename { from, to } => {
            format!(
                "[{phase}] would move {} to {}",
                from.display(),
                to.display()
            )
        }
        PlannedChange::Command { command } => format!("[{phase}] would run: {command}"),
        PlannedChange::Service { service, action } => {
            format!("[{phase}] would {action} service {service}")
        }
    }
}

impl EventSink for Printer {
    fn emit(&self, event: Event) {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match self.format {
            OutputFormat::Json | OutputFormat::Yaml => {
                if let Ok(line) = serde_json::to_string(&event) {
                    let mut stdout = std::io::stdout().lock();
                    let _ = writeln!(stdout, "{line}");
                    let _ = stdout.flush();
                }
            }
            OutputFormat::Text => self.text(&event),
        }
    }
}

/// Writes a data document to stdout in the chosen format.
pub fn print_document<T: serde::Serialize>(format: OutputFormat, value: &T) -> Result<(), String> {
    let text = match format {
        OutputFormat::Yaml => {
            bosun_config::yaml::to_string(value).map_err(|error| error.to_string())?
        }
        _ => {
            let mut text =
                serde_json::to_string_pretty(value).map_err(|error| error.to_string())?;
            text.push('\n');
            text
        }
    };
    print_data(&text);
    Ok(())
}

fn with_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_owned()
    } else {
        format!("{text}\n")
    }
}

/// Writes data (tables, commands) to stdout.
pub fn print_data(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
