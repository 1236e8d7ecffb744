//! Scheduled backups: a systemd timer and service where systemd is PID 1, a cron entry elsewhere. Both run
//! `bosun etcd backup --output-file DIR --keep N`, so retention happens after each successful backup.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::{
    ensure_absent, ensure_file, run_checked, CommandSpec, Commands, Files, HostError, Outcome,
};

pub const UNIT_NAME: &str = "bosun-etcd-backup";
pub const SERVICE_FILE: &str = "/etc/systemd/system/bosun-etcd-backup.service";
pub const TIMER_FILE: &str = "/etc/systemd/system/bosun-etcd-backup.timer";
pub const CRON_FILE: &str = "/etc/cron.d/bosun-etcd-backup";

/// How often backups run, as a divisor of an hour or a day so that the times are the same every day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Every {
    Minutes(u32),
    Hours(u32),
    Day,
}

impl Every {
    /// Parses `30m`, `6h`, `1d` (or `24h`).
    pub fn parse(text: &str) -> Result<Every, String> {
        let text = text.trim();
        let (number, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let value: u32 = number
            .parse()
            .map_err(|_| format!("--every {text:?} is not a duration like 30m, 6h or 1d"))?;
        let every = match unit {
            "m" | "min" if value > 0 && 60 % value == 0 && value < 60 => Every::Minutes(value),
            "m" | "min" if value == 60 => Every::Hours(1),
            "h" if value > 0 && 24 % value == 0 && value < 24 => Every::Hours(value),
            "h" if value == 24 => Every::Day,
            "d" if value == 1 => Every::Day,
            "m" | "min" | "h" | "d" => {
                return Err(format!(
                    "--every {text:?} does not divide an hour or a day evenly; use minutes dividing 60 (5m, 15m, 30m), \
                     hours dividing 24 (1h, 2h, 3h, 4h, 6h, 8h, 12h) or 1d"
                ))
            }
            _ => return Err(format!("--every {text:?} has no unit; write it like 30m, 6h or 1d")),
        };
        Ok(every)
    }

    /// The five time fields of a cron line.
    pub fn cron_fields(&self) -> String {
        match self {
            Every::Minutes(minutes) => format!("*/{minutes} * * * *"),
            Every::Hours(1) => "0 * * * *".to_owned(),
            Every::Hours(hours) => format!("0 */{hours} * * *"),
            Every::Day => "0 0 * * *".to_owned(),
        }
    }

    /// systemd's `OnCalendar=` expression for the same times.
    pub fn on_calendar(&self) -> String {
        match self {
            Every::Minutes(minutes) => format!("*-*-* *:00/{minutes}:00"),
            Every::Hours(hours) => format!("*-*-* 00/{hours}:00:00"),
            Every::Day => "*-*-* 00:00:00".to_owned(),
        }
    }

    pub fn text(&self) -> String {
        match self {
            Every::Minutes(minutes) => format!("{minutes}m"),
            Every::Hours(hours) => format!("{hours}h"),
            Every::Day => "1d".to_owned(),
        }
    }
}

/// A schedule to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub every: Every,
    pub keep: usize,
    pub directory: PathBuf,
    /// The bosun program the timer runs (its real path on the node).
    pub program: PathBuf,
    /// Extra arguments passed to every backup (`--key-file`, `--no-encrypt`, `--root`).
    pub extra_arguments: Vec<String>,
}

impl Schedule {
    fn command_line(&self) -> String {
        let mut parts = vec![
            self.program.display().to_string(),
            "etcd".to_owned(),
            "backup".to_owned(),
            "--output-file".to_owned(),
            self.directory.display().to_string(),
            "--keep".to_owned(),
            self.keep.to_string(),
        ];
        parts.extend(self.extra_arguments.iter().cloned());
        parts.join(" ")
    }

    pub fn service_unit(&self) -> String {
        format!(
            "# Written by `bosun etcd backup schedule install`; remove with `bosun etcd backup schedule remove`.\n\
             [Unit]\nDescription=bosun etcd backup\nAfter=network-online.target\n\n\
             [Service]\nType=oneshot\nExecStart={}\n",
            self.command_line()
        )
    }

    pub fn timer_unit(&self) -> String {
        format!(
            "# Written by `bosun etcd backup schedule install`; remove with `bosun etcd backup schedule remove`.\n\
             [Unit]\nDescription=bosun etcd backup every {}\n\n\
             [Timer]\nOnCalendar={}\nPersistent=true\nRandomizedDelaySec=60\n\n\
             [Install]\nWantedBy=timers.target\n",
            self.every.text(),
            self.every.on_calendar()
        )
    }

    pub fn cron_entry(&self) -> String {
        format!(
            "# Written by `bosun etcd backup schedule install`; remove with `bosun etcd backup schedule remove`.\n\
             # bosun etcd backup every {}, keeping {}.\n\
             SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n\
             {} root {} >>/var/log/bosun-etcd-backup.log 2>&1\n",
            self.every.text(),
            self.keep,
            self.every.cron_fields(),
            self.command_line()
        )
    }
}

/// Which scheduler a node uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Systemd,
    Cron,
}

/// One file the schedule touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: PathBuf,
    pub outcome: Outcome,
}

fn systemctl(commands: &dyn Commands, arguments: &[&str]) -> Result<(), HostError> {
    run_checked(
        commands,
        &CommandSpec::new("systemctl").args(arguments.iter().copied()),
    )
    .map(|_| ())
}

/// Installs (or updates) the schedule; idempotent.
pub fn install(
    files: &dyn Files,
    commands: &dyn Commands,
    scheduler: Scheduler,
    schedule: &Schedule,
) -> Result<Vec<Change>, HostError> {
    let mut changes = Vec::new();
    match scheduler {
        Scheduler::Systemd => {
            for (path, contents) in [
                (SERVICE_FILE, schedule.service_unit()),
                (TIMER_FILE, schedule.timer_unit()),
            ] {
                let outcome = ensure_file(files, Path::new(path), contents.as_bytes(), 0o644)?;
                changes.push(Change {
                    path: PathBuf::from(path),
                    outcome,
                });
            }
            if changes
                .iter()
                .any(|change| change.outcome != Outcome::Unchanged)
            {
                systemctl(commands, &["daemon-reload"])?;
            }
            systemctl(
                commands,
                &["enable", "--now", &format!("{UNIT_NAME}.timer")],
            )?;
            // A timer that was already running keeps its old schedule until restarted.
            systemctl(commands, &["restart", &format!("{UNIT_NAME}.timer")])?;
            // The other scheduler's entry would run backups twice.
            let outcome = ensure_absent(files, Path::new(CRON_FILE))?;
            if outcome != Outcome::Unchanged {
                changes.push(Change {
                    path: PathBuf::from(CRON_FILE),
                    outcome,
                });
            }
        }
        Scheduler::Cron => {
            let outcome = ensure_file(
                files,
                Path::new(CRON_FILE),
                schedule.cron_entry().as_bytes(),
                0o644,
            )?;
            changes.push(Change {
                path: PathBuf::from(CRON_FILE),
                outcome,
            });
        }
    }
    files.create_dir_all(&schedule.directory, 0o700)?;
    Ok(changes)
}

/// Removes the schedule; idempotent. Backups already taken are kept.
pub fn remove(
    files: &dyn Files,
    commands: &dyn Commands,
    scheduler: Scheduler,
) -> Result<Vec<Change>, HostError> {
    let mut changes = Vec::new();
    if scheduler == Scheduler::Systemd && files.exists(Path::new(TIMER_FILE))? {
        systemctl(
            commands,
            &["disable", "--now", &format!("{UNIT_NAME}.timer")],
        )?;
    }
    for path in [TIMER_FILE, SERVICE_FILE, CRON_FILE] {
        let outcome = ensure_absent(files, Path::new(path))?;
        changes.push(Change {
            path: PathBuf::from(path),
            outcome,
        });
    }
    if scheduler == Scheduler::Systemd
        && changes
            .iter()
            .any(|change| change.outcome == Outcome::Removed)
    {
        systemctl(commands, &["daemon-reload"])?;
    }
    Ok(changes)
}

/// What is installed, read back from the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleStatus {
    pub installed: bool,
    pub scheduler: Option<Scheduler>,
    pub files: Vec<PathBuf>,
    /// The backup command the schedule runs.
    pub command: Option<String>,
    /// When, as cron fields or a systemd calendar expression.
    pub when: Option<String>,
}

pub fn status(files: &dyn Files) -> Result<ScheduleStatus, HostError> {
    if let Some(timer) = files.read(Path::new(TIMER_FILE))? {
        let service = files.read(Path::new(SERVICE_FILE))?.unwrap_or_default();
        let when = line_value(&timer, "OnCalendar=");
        let command = line_value(&service, "ExecStart=");
        return Ok(ScheduleStatus {
            installed: true,
            scheduler: Some(Scheduler::Systemd),
            files: vec![PathBuf::from(SERVICE_FILE), PathBuf::from(TIMER_FILE)],
            command,
            when,
        });
    }
    if let Some(cron) = files.read(Path::new(CRON_FILE))? {
        let text = String::from_utf8_lossy(&cron);
        let entry = text
            .lines()
            .find(|line| line.contains(" root ") && !line.starts_with('#'));
        return Ok(ScheduleStatus {
            installed: true,
            scheduler: Some(Scheduler::Cron),
            files: vec![PathBuf::from(CRON_FILE)],
            command: entry
                .and_then(|line| line.split_once(" root "))
                .map(|(_, command)| command.split(" >>").next().unwrap_or(command).to_owned()),
            when: entry.map(|line| {
                line.split_whitespace()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        });
    }
    Ok(ScheduleStatus {
        installed: false,
        scheduler: None,
        files: Vec::new(),
        command: None,
        when: None,
    })
}

/// Scheduled backups asked of `bosun init` (`--etcd-backup-every 6h --etcd-backup-keep 14 --etcd-backup-dir D`).
/// kubeadm's configuration has no field for this and must load unchanged, so it is a flag, like `--no-certs-timer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitSchedule {
    pub every: Every,
    pub keep: usize,
    pub directory: PathBuf,
}

/// The `init` phase `etcd-backup-schedule`: installs scheduled, encrypted backups of the local member (the same
/// timer or cron entry as `bosun etcd backup schedule install`) and creates the backup key now, so that the first
/// scheduled run does not make a key nobody has copied. `wanted` gives the schedule, or why there is none (not
/// asked for, external etcd). The backups run the `bosun` found on the node's PATH, else
/// [`crate::certops::timer::DEFAULT_PROGRAM`].
pub fn init_phase<C: 'static>(wanted: fn(&C) -> Result<&InitSchedule, String>) -> Phase<C> {
    Phase::new(
        "etcd-backup-schedule",
        "Install scheduled, encrypted backups of the local etcd member (--etcd-backup-every)",
    )
    .long_about(
        "Install `bosun etcd backup --output-file DIR --keep N` as a systemd timer (or a cron entry where systemd \
         is not PID 1) and create the backup key. Only with `bosun init --etcd-backup-every`; see \
         `bosun etcd backup schedule --help`.",
    )
    .skip_if(move |data: &C| wanted(data).err())
    .makes(|_: &C| {
        [super::DEFAULT_KEY_FILE, CRON_FILE, SERVICE_FILE, TIMER_FILE]
            .into_iter()
            .map(|path| Artefact::File(PathBuf::from(path)))
            .collect()
    })
    .run(move |ctx| {
        let schedule = wanted(ctx.data).map_err(PhaseError::failed)?.clone();
        install_for_init(ctx, &schedule)
    })
}

/// The schedule `bosun init` was asked for (`InitData::etcd_backup_schedule`), or why there is none.
pub fn wanted_by_init(data: &crate::init::InitData) -> Result<&InitSchedule, String> {
    if data.config.external_etcd().is_some() {
        return Err("etcd is external: back it up where it runs".to_owned());
    }
    data.etcd_backup_schedule
        .as_ref()
        .ok_or_else(|| "not asked for (bosun init --etcd-backup-every 6h turns it on)".to_owned())
}

fn install_for_init<C>(
    ctx: &mut PhaseCtx<'_, C>,
    schedule: &InitSchedule,
) -> Result<(), PhaseError> {
    let key_path = Path::new(super::DEFAULT_KEY_FILE);
    let (_, created) = super::backup::load_or_create_key(ctx.host.files.as_ref(), key_path, true)
        .map_err(|error| PhaseError::failed(error.to_string()))?;
    let key_outcome = if created {
        Outcome::Created
    } else {
        Outcome::Unchanged
    };
    ctx.record_with_detail(
        key_path.display().to_string(),
        key_outcome,
        Some(
            if created {
                "generated"
            } else {
                "using existing"
            }
            .to_owned(),
        ),
    );
    let program = ctx
        .host
        .commands
        .find_program("bosun")
        .unwrap_or_else(|| PathBuf::from(crate::certops::timer::DEFAULT_PROGRAM));
    let plan = Schedule {
        every: schedule.every,
        keep: schedule.keep.max(1),
        directory: schedule.directory.clone(),
        program,
        extra_arguments: Vec::new(),
    };
    let scheduler = if ctx.host.services.backend() == "systemd" {
        Scheduler::Systemd
    } else {
        Scheduler::Cron
    };
    let changes = install(
        ctx.host.files.as_ref(),
        ctx.host.commands.as_ref(),
        scheduler,
        &plan,
    )?;
    for change in changes {
        ctx.record(change.path.display().to_string(), change.outcome);
    }
    ctx.info(format!(
        "backups every {} into {}, keeping {} ({})",
        plan.every.text(),
        plan.directory.display(),
        plan.keep,
        match scheduler {
            Scheduler::Systemd => "systemd timer",
            Scheduler::Cron => "cron entry",
        }
    ));
    Ok(())
}

fn line_value(contents: &[u8], prefix: &str) -> Option<String> {
    String::from_utf8_lossy(contents)
        .lines()
        .find_map(|line| line.strip_prefix(prefix).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::memory::{MemoryCommands, MemoryFiles};

    fn schedule() -> Schedule {
        Schedule {
            every: Every::parse("6h").expect("6h"),
            keep: 14,
            directory: PathBuf::from("/var/lib/bosun/etcd-backups"),
            program: PathBuf::from("/usr/local/bin/bosun"),
            extra_arguments: vec![],
        }
    }

    #[test]
    fn intervals_must_divide_an_hour_or_a_day() {
        assert_eq!(Every::parse("6h"), Ok(Every::Hours(6)));
        assert_eq!(Every::parse("15m"), Ok(Every::Minutes(15)));
        assert_eq!(Every::parse("24h"), Ok(Every::Day));
        assert_eq!(Every::parse("6h").expect("6h").cron_fields(), "0 */6 * * *");
        assert_eq!(
            Every::parse("6h").expect("6h").on_calendar(),
            "*-*-* 00/6:00:00"
        );
        assert!(Every::parse("7h").expect_err("7h").contains("divide"));
        assert!(Every::parse("6").expect_err("no unit").contains("unit"));
        assert!(Every::parse("soon").is_err());
    }

    #[test]
    fn cron_schedules_install_idempotently_and_read_back() {
        let files = MemoryFiles::default();
        let commands = MemoryCommands::default();
        let first = install(&files, &commands, Scheduler::Cron, &schedule()).expect("install");
        assert_eq!(
            first,
            [Change {
                path: PathBuf::from(CRON_FILE),
                outcome: Outcome::Created
            }]
        );
        let second = install(&files, &commands, Scheduler::Cron, &schedule()).expect("again");
        assert_eq!(second[0].outcome, Outcome::Unchanged);
        let status = status(&files).expect("status");
        assert_eq!(status.when.as_deref(), Some("0 */6 * * *"));
        assert_eq!(
            status.command.as_deref(),
            Some("/usr/local/bin/bosun etcd backup --output-file /var/lib/bosun/etcd-backups --keep 14")
        );
        assert!(
            commands.log().is_empty(),
            "cron needs no command: {:?}",
            commands.log()
        );
        let removed = remove(&files, &commands, Scheduler::Cron).expect("remove");
        assert!(removed
            .iter()
            .any(|change| change.outcome == Outcome::Removed));
        assert!(!status_installed(&files));
    }

    fn status_installed(files: &MemoryFiles) -> bool {
        status(files).expect("status").installed
    }

    #[test]
    fn systemd_schedules_write_a_timer_and_enable_it() {
        let files = MemoryFiles::default();
        let commands = MemoryCommands::default();
        commands.respond("systemctl", 0, "");
        install(&files, &commands, Scheduler::Systemd, &schedule()).expect("install");
        let timer = String::from_utf8(
            files
                .read(Path::new(TIMER_FILE))
                .expect("read")
                .expect("timer"),
        )
        .expect("utf-8");
        assert!(timer.contains("OnCalendar=*-*-* 00/6:00:00"), "{timer}");
        assert!(
            commands
                .log()
                .iter()
                .any(|line| line.contains("enable --now bosun-etcd-backup.timer")),
            "{:?}",
            commands.log()
        );
        assert_eq!(
            status(&files).expect("status").scheduler,
            Some(Scheduler::Systemd)
        );
    }
}
