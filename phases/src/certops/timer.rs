//! `certs timer install|remove|status`: run `bosun certs renew all --if-expiring-within 30d` every day.
//!
//! Where systemd is PID 1 (the host's service backend is systemd) it is a timer and a oneshot service:
//! `/etc/systemd/system/bosun-certs-renew.timer` (`OnCalendar=daily`, `RandomizedDelaySec=1h`, `Persistent=true`) and
//! `bosun-certs-renew.service`, enabled with `systemctl enable --now`. Elsewhere it is a cron entry,
//! `/etc/cron.d/bosun-certs-renew`, at a random minute and hour chosen once (kept on re-install) so that a fleet does
//! not renew all at once; its output goes to `/var/log/bosun/certs-renew.log`.
//!
//! `status` reports what is installed and the last `certs-renew` run recorded in the journal.
//!
//! Guarantees: install and remove are idempotent (an installed timer is reported unchanged); files are written
//! atomically. Assumptions: the bosun binary stays at the path the timer names. Caveat: a cron entry needs a running
//! cron daemon, which bosun does not install.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::journal::{self, JournalEntry};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError, PhaseStatus, Workflow};
use crate::host::{ensure_absent, run_checked, CommandSpec, Files, Host, Outcome};

pub const SERVICE_UNIT: &str = "/etc/systemd/system/bosun-certs-renew.service";
pub const TIMER_UNIT: &str = "/etc/systemd/system/bosun-certs-renew.timer";
pub const TIMER_NAME: &str = "bosun-certs-renew.timer";
pub const CRON_FILE: &str = "/etc/cron.d/bosun-certs-renew";
pub const LOG_DIR: &str = "/var/log/bosun";
pub const LOG_FILE: &str = "/var/log/bosun/certs-renew.log";
/// The renewal window the timer uses.
pub const WINDOW: &str = "30d";
/// Where the bosun binary is assumed to be when it is not on the node's PATH.
pub const DEFAULT_PROGRAM: &str = "/usr/local/bin/bosun";

/// How the renewal is scheduled on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Systemd,
    Cron,
}

impl Scheduler {
    /// systemd when the host's services are systemd's (systemd is PID 1), cron otherwise.
    pub fn of(host: &Host) -> Self {
        if host.services.backend() == "systemd" {
            Scheduler::Systemd
        } else {
            Scheduler::Cron
        }
    }
}

/// What `timer install` and `remove` read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerData {
    /// The bosun binary the timer runs.
    pub program: String,
}

/// The command the timer runs.
pub fn renew_command(program: &str) -> String {
    format!("{program} certs renew all --if-expiring-within {WINDOW}")
}

pub fn service_unit(program: &str) -> String {
    format!(
        "# Installed by `bosun certs timer install`; remove with `bosun certs timer remove`.\n\
         [Unit]\n\
         Description=Renew the Kubernetes control-plane certificates that expire within 30 days (bosun)\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={}\n",
        renew_command(program)
    )
}

pub fn timer_unit() -> String {
    "# Installed by `bosun certs timer install`; remove with `bosun certs timer remove`.\n\
     [Unit]\n\
     Description=Daily renewal of expiring Kubernetes control-plane certificates (bosun)\n\
     \n\
     [Timer]\n\
     OnCalendar=daily\n\
     RandomizedDelaySec=1h\n\
     Persistent=true\n\
     \n\
     [Install]\n\
     WantedBy=timers.target\n"
        .to_owned()
}

/// The cron file for a minute and hour.
pub fn cron_file(program: &str, minute: u8, hour: u8) -> String {
    format!(
        "# Installed by `bosun certs timer install`: renews the control-plane certificates that expire within 30 days.\n\
         # Remove with `bosun certs timer remove`.\n\
         SHELL=/bin/sh\n\
         PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
         {minute} {hour} * * * root {} >>{LOG_FILE} 2>&1\n",
        renew_command(program)
    )
}

/// The minute and hour of an installed cron file, and the command line it runs.
pub fn parse_cron(text: &str) -> Option<(u8, u8, String)> {
    text.lines().find_map(|line| {
        let line = line.trim();
        if line.starts_with('#') || !line.contains("certs renew") {
            return None;
        }
        let mut fields = line.split_whitespace();
        let minute = fields.next()?.parse().ok()?;
        let hour = fields.next()?.parse().ok()?;
        let rest: Vec<&str> = fields.skip(4).collect();
        Some((minute, hour, rest.join(" ")))
    })
}

fn random_minute_hour() -> Result<(u8, u8), PhaseError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 2];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PhaseError::failed("the system random number generator failed"))?;
    Ok((bytes[0] % 60, bytes[1] % 24))
}

fn declared() -> Vec<Artefact> {
    [SERVICE_UNIT, TIMER_UNIT, CRON_FILE]
        .into_iter()
        .map(|path| Artefact::File(PathBuf::from(path)))
        .collect()
}

fn write<C>(
    ctx: &mut PhaseCtx<'_, C>,
    path: &str,
    contents: &str,
    mode: u32,
) -> Result<Outcome, PhaseError> {
    ctx.ensure_file(Path::new(path), contents.as_bytes(), mode)
}

fn systemctl(arguments: &[&str]) -> CommandSpec {
    CommandSpec::new("systemctl").args(arguments.iter().copied())
}

/// Installs the timer (or the cron entry) for `program`. Generic over the workflow, so `init` can run it too.
pub fn install<C>(ctx: &mut PhaseCtx<'_, C>, program: &str) -> Result<(), PhaseError> {
    match Scheduler::of(ctx.host) {
        Scheduler::Systemd => {
            let service = write(ctx, SERVICE_UNIT, &service_unit(program), 0o644)?;
            let timer = write(ctx, TIMER_UNIT, &timer_unit(), 0o644)?;
            let commands = ctx.host.commands.as_ref();
            if service != Outcome::Unchanged || timer != Outcome::Unchanged {
                run_checked(commands, &systemctl(&["daemon-reload"]))?;
            }
            let enabled = commands.run(&systemctl(&["is-enabled", TIMER_NAME]).read_only())?;
            let active = commands.run(&systemctl(&["is-active", TIMER_NAME]).read_only())?;
            if enabled.success() && active.success() {
                ctx.record_with_detail(
                    TIMER_NAME,
                    Outcome::Unchanged,
                    Some("enabled and active".to_owned()),
                );
            } else {
                run_checked(commands, &systemctl(&["enable", "--now", TIMER_NAME]))?;
                ctx.record_with_detail(
                    TIMER_NAME,
                    Outcome::Updated,
                    Some("enabled and started".to_owned()),
                );
            }
        }
        Scheduler::Cron => {
            let existing = ctx.host.files.read(Path::new(CRON_FILE))?;
            let kept = existing
                .as_deref()
                .and_then(|bytes| parse_cron(&String::from_utf8_lossy(bytes)))
                .map(|(minute, hour, _)| (minute, hour));
            let (minute, hour) = match kept {
                Some(kept) => kept,
                None => random_minute_hour()?,
            };
            ctx.host.files.create_dir_all(Path::new(LOG_DIR), 0o755)?;
            write(ctx, CRON_FILE, &cron_file(program, minute, hour), 0o644)?;
            if ctx.host.commands.find_program("cron").is_none()
                && ctx.host.commands.find_program("crond").is_none()
            {
                ctx.warn("no cron daemon (cron or crond) is on this host's PATH; install one so that the entry runs");
            }
        }
    }
    Ok(())
}

/// Removes whatever is installed.
pub fn remove<C>(ctx: &mut PhaseCtx<'_, C>) -> Result<(), PhaseError> {
    let files = ctx.host.files.as_ref();
    let systemd = Scheduler::of(ctx.host) == Scheduler::Systemd;
    if systemd && files.exists(Path::new(TIMER_UNIT))? {
        run_checked(
            ctx.host.commands.as_ref(),
            &systemctl(&["disable", "--now", TIMER_NAME]),
        )?;
    }
    let mut removed_unit = false;
    for path in [TIMER_UNIT, SERVICE_UNIT, CRON_FILE] {
        let path = Path::new(path);
        ctx.check_declared(path)?;
        let outcome = ensure_absent(ctx.host.files.as_ref(), path)?;
        removed_unit |= outcome == Outcome::Removed && path != Path::new(CRON_FILE);
        ctx.record(path.display().to_string(), outcome);
    }
    if systemd && removed_unit {
        run_checked(ctx.host.commands.as_ref(), &systemctl(&["daemon-reload"]))?;
    }
    Ok(())
}

/// The `certs-timer-install` workflow.
pub fn install_workflow() -> Workflow<TimerData> {
    Workflow::new("certs-timer-install").phase(
        Phase::new(
            "timer",
            "Install the daily certificate renewal (systemd timer or cron entry)",
        )
        .makes(|_: &TimerData| declared())
        .run(|ctx| {
            let program = ctx.data.program.clone();
            install(ctx, &program)
        }),
    )
}

/// The `certs-timer-remove` workflow.
pub fn remove_workflow() -> Workflow<TimerData> {
    Workflow::new("certs-timer-remove").phase(
        Phase::new("timer", "Remove the daily certificate renewal")
            .makes(|_: &TimerData| declared())
            .run(remove),
    )
}

/// The `init` phase `certs-timer`: installs the daily renewal unless `opted_out` says why not (the lead wires it to
/// `bosun init --no-certs-timer`). The timer runs the `bosun` found on the node's PATH, else
/// [`DEFAULT_PROGRAM`].
pub fn init_phase<C: 'static>(opted_out: fn(&C) -> Option<String>) -> Phase<C> {
    Phase::new("certs-timer", "Install a daily timer that renews certificates expiring within 30 days")
        .long_about(
            "Install `bosun certs renew all --if-expiring-within 30d` as a daily systemd timer (or a cron entry where \
             systemd is not PID 1). See `bosun certs timer --help`.",
        )
        .skip_if(opted_out)
        .makes(|_: &C| declared())
        .run(|ctx| {
            let program = ctx
                .host
                .commands
                .find_program("bosun")
                .map_or_else(|| DEFAULT_PROGRAM.to_owned(), |path| path.display().to_string());
            install(ctx, &program)
        })
}

/// The last `certs-renew` run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastRun {
    pub started: String,
    pub finished: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The certificates it renewed.
    pub renewed: Vec<String>,
    /// The certificates it left as they were (not expiring, missing or external).
    pub unchanged: Vec<String>,
    /// The components it restarted.
    pub restarted: Vec<String>,
}

/// What `timer status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimerStatus {
    /// `systemd`, `cron`, or `null` when nothing is installed.
    pub installed: Option<Scheduler>,
    /// What this host would use.
    pub scheduler: Scheduler,
    pub files: Vec<String>,
    /// `daily (randomized by up to 1h)` or the cron time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `systemctl is-active` of the timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timer_state: Option<String>,
    pub last_run: Option<LastRun>,
}

/// Summarises a journal entry of `certs-renew`.
pub fn last_run(entry: &JournalEntry) -> LastRun {
    let mut renewed = Vec::new();
    let mut unchanged = Vec::new();
    let mut restarted = Vec::new();
    for phase in &entry.phases {
        if let Some(component) = phase.phase.strip_prefix("restart/") {
            if phase.status == PhaseStatus::Done
                && phase
                    .artefacts
                    .iter()
                    .any(|a| a.outcome != Outcome::Unchanged)
            {
                restarted.push(component.to_owned());
            }
            continue;
        }
        if phase.phase == "restart" {
            continue;
        }
        let changed = phase.status == PhaseStatus::Done
            && phase
                .artefacts
                .iter()
                .any(|a| a.outcome != Outcome::Unchanged);
        if changed {
            renewed.push(phase.phase.clone());
        } else {
            unchanged.push(phase.phase.clone());
        }
    }
    LastRun {
        started: entry.started.clone(),
        finished: entry.finished.clone(),
        ok: entry.ok,
        error: entry.error.clone(),
        renewed,
        unchanged,
        restarted,
    }
}

/// Reads what is installed and the last run. Read-only.
pub fn status(host: &Host) -> Result<TimerStatus, PhaseError> {
    let files: &dyn Files = host.files.as_ref();
    let scheduler = Scheduler::of(host);
    let mut status = TimerStatus {
        installed: None,
        scheduler,
        files: Vec::new(),
        schedule: None,
        command: None,
        timer_state: None,
        last_run: None,
    };
    if let Some(bytes) = files.read(Path::new(SERVICE_UNIT))? {
        status.installed = Some(Scheduler::Systemd);
        status
            .files
            .extend([SERVICE_UNIT.to_owned(), TIMER_UNIT.to_owned()]);
        status.schedule = Some("daily, delayed at random by up to 1h".to_owned());
        status.command = String::from_utf8_lossy(&bytes)
            .lines()
            .find_map(|line| line.strip_prefix("ExecStart=").map(str::to_owned));
        if scheduler == Scheduler::Systemd {
            let output = host
                .commands
                .run(&systemctl(&["is-active", TIMER_NAME]).read_only())?;
            status.timer_state = Some(String::from_utf8_lossy(&output.stdout).trim().to_owned());
        }
    }
    if let Some(bytes) = files.read(Path::new(CRON_FILE))? {
        status.files.push(CRON_FILE.to_owned());
        if status.installed.is_none() {
            status.installed = Some(Scheduler::Cron);
        }
        if let Some((minute, hour, command)) = parse_cron(&String::from_utf8_lossy(&bytes)) {
            status.schedule.get_or_insert(format!(
                "daily at {hour:02}:{minute:02} (cron, the host's local time)"
            ));
            status.command.get_or_insert(command);
        }
    }
    let journal = journal::read(files).map_err(|error| PhaseError::failed(error.to_string()))?;
    status.last_run = journal
        .runs
        .iter()
        .rev()
        .find(|entry| entry.workflow == super::renew::WORKFLOW)
        .map(last_run);
    Ok(status)
}

/// The text of `timer status`.
pub fn render_status(status: &TimerStatus) -> String {
    let mut text = String::new();
    match status.installed {
        None => text.push_str(&format!(
            "installed: no (this host would use {})\n",
            match status.scheduler {
                Scheduler::Systemd => "a systemd timer",
                Scheduler::Cron => "a cron entry",
            }
        )),
        Some(scheduler) => {
            text.push_str(&format!(
                "installed: yes ({})\n",
                match scheduler {
                    Scheduler::Systemd => "systemd timer",
                    Scheduler::Cron => "cron entry",
                }
            ));
            text.push_str(&format!("files:     {}\n", status.files.join(", ")));
            if let Some(schedule) = &status.schedule {
                text.push_str(&format!("schedule:  {schedule}\n"));
            }
            if let Some(command) = &status.command {
                text.push_str(&format!("command:   {command}\n"));
            }
            if let Some(state) = &status.timer_state {
                text.push_str(&format!("timer:     {state}\n"));
            }
        }
    }
    match &status.last_run {
        None => text.push_str("last run:  never (no `certs renew` run is in the journal)\n"),
        Some(run) => {
            text.push_str(&format!(
                "last run:  {} — {}\n",
                run.started,
                if run.ok { "succeeded" } else { "FAILED" }
            ));
            if let Some(error) = &run.error {
                text.push_str(&format!("error:     {error}\n"));
            }
            let list = |names: &[String]| {
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            };
            text.push_str(&format!("renewed:   {}\n", list(&run.renewed)));
            text.push_str(&format!("unchanged: {}\n", list(&run.unchanged)));
            text.push_str(&format!("restarted: {}\n", list(&run.restarted)));
        }
    }
    text
}
