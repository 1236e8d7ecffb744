//! `bosun etcd`: encrypted backups, verified restores, members, defragmentation and health checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bosun_phases::engine::event::{Event, EventSink, Level};
use bosun_phases::etcd::backup::{self, BackupRequest};
use bosun_phases::etcd::format::BackupKey;
use bosun_phases::etcd::manifest::EtcdManifest;
use bosun_phases::etcd::members::{self, MemberReport};
use bosun_phases::etcd::restore::{self, RestoreHost, RestoreRequest, RestoreTool};
use bosun_phases::etcd::schedule::{self, Every, Schedule, Scheduler};
use bosun_phases::etcd::{self as etcd, human_bytes, EtcdClient, EtcdError};
use bosun_phases::host::{Files, Host};
use bosun_phases::paths::NodePaths;
use clap::{Args, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::CliError;
use crate::exit;
use crate::host::etcd::{LocalEtcd, RootStreams, TlsMaterial};
use crate::output::{print_data, print_document, OutputFormat, Printer};
use crate::settings::Settings;

/// Back up, restore and look after the local etcd of a control-plane node.
///
/// Endpoints and client certificates are read from /etc/kubernetes/manifests/etcd.yaml and the PKI next to it
/// (etcd/healthcheck-client or apiserver-etcd-client); --endpoints, --cacert, --cert and --key override them.
/// Example: `bosun etcd backup --output-file /var/backups/` then `bosun etcd restore /var/backups/etcd-….bosun-etcd`.
#[derive(Debug, Args)]
pub struct EtcdArgs {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(subcommand)]
    pub command: Box<EtcdCommand>,
}

/// How to reach etcd (defaults come from the etcd manifest).
#[derive(Debug, Args, Clone)]
pub struct ConnectionArgs {
    /// Client URLs, comma-separated (default: the local member's from the etcd manifest).
    #[arg(long, global = true, value_delimiter = ',', value_name = "URLS")]
    pub endpoints: Vec<String>,
    /// CA certificate that signed etcd's serving certificate (node path).
    #[arg(long, global = true, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Client certificate (node path).
    #[arg(long, global = true, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Client private key (node path).
    #[arg(long, global = true, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Seconds each etcd request may take.
    #[arg(long, global = true, default_value_t = 10, value_name = "SECONDS")]
    pub request_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    Backup(BackupArgs),
    Restore(RestoreArgs),
    Members(MembersArgs),
    Member(MemberArgs),
    Defrag(DefragArgs),
    Check(CheckArgs),
}

/// Stream an encrypted snapshot of the local member into a backup file.
///
/// The file is written atomically (0600) after etcd's own snapshot hash and its SHA-256 were checked and the file
/// was read back. It is encrypted with AES-256-GCM under --encryption-key (created, 0600, if missing).
/// Example: `bosun etcd backup --output-file /var/backups/ --keep 14` (`-o` is the output format, as everywhere).
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
    /// Backup file, or a directory for a file named etcd-<cluster>-<time>.bosun-etcd.
    #[arg(long = "output-file", visible_alias = "out", value_name = "FILE|DIR")]
    pub output_file: Option<PathBuf>,
    #[command(flatten)]
    pub encryption: EncryptionArgs,
    /// After the backup, keep only the newest N backups of this cluster in the output directory.
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// The cluster name recorded in the backup and its file name.
    #[arg(long, default_value = "kubernetes")]
    pub cluster_name: String,
}

/// Which key encrypts or decrypts backups.
#[derive(Debug, Args, Clone)]
pub struct EncryptionArgs {
    /// Key file (node path); created with a new random key when missing.
    #[arg(long, value_name = "FILE", default_value = etcd::DEFAULT_KEY_FILE)]
    pub encryption_key: PathBuf,
    /// Write the snapshot unencrypted (still checked against damage, not against tampering).
    #[arg(long)]
    pub no_encrypt: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    Status(BackupStatusArgs),
    Schedule(ScheduleArgs),
}

/// Check a backup (or an etcdctl snapshot) whole and print its hash, revision, total keys and size.
///
/// Example: `bosun etcd backup status /var/backups/etcd-kubernetes-20261201T120000Z.bosun-etcd -o json`.
#[derive(Debug, Args)]
pub struct BackupStatusArgs {
    /// The backup or snapshot file.
    pub file: PathBuf,
    /// Key file for an encrypted backup.
    #[arg(long, value_name = "FILE", default_value = etcd::DEFAULT_KEY_FILE)]
    pub encryption_key: PathBuf,
}

/// Run backups on a schedule: a systemd timer where systemd runs the node, a cron entry elsewhere.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Install or update the schedule. Example: `bosun etcd backup schedule install --every 6h --keep 14`.
    Install {
        /// How often: minutes dividing an hour (15m), hours dividing a day (6h), or 1d.
        #[arg(long, default_value = "6h")]
        every: String,
        /// How many backups to keep.
        #[arg(long, default_value_t = 14)]
        keep: usize,
        /// Where the backups go.
        #[arg(long, default_value = etcd::DEFAULT_BACKUP_DIR)]
        dir: PathBuf,
        #[command(flatten)]
        encryption: EncryptionArgs,
        /// Use this scheduler instead of choosing by whether systemd is PID 1.
        #[arg(long, value_enum)]
        scheduler: Option<SchedulerChoice>,
    },
    /// Remove the schedule (backups already taken are kept).
    Remove {
        #[arg(long, value_enum)]
        scheduler: Option<SchedulerChoice>,
    },
    /// Show the installed schedule and the newest backups.
    Status {
        /// The backup directory to list.
        #[arg(long, default_value = etcd::DEFAULT_BACKUP_DIR)]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchedulerChoice {
    Systemd,
    Cron,
}

/// Restore the local member from a backup, on a control-plane node.
///
/// The backup is checked whole and decrypted first; then kube-apiserver and etcd are stopped (their manifests moved
/// to /etc/kubernetes/tmp), the snapshot is restored into a new data dir with a fresh cluster token (by etcdutl when it
/// is on the PATH, else natively by bosun: no etcd program needed), etcd and then the API server are started again.
/// On failure everything is put back. Example: `bosun etcd restore FILE` or `bosun etcd restore FILE --restore-tool
/// native`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (or etcdctl snapshot) to restore.
    pub file: PathBuf,
    /// Key file of an encrypted backup.
    #[arg(long, value_name = "FILE", default_value = etcd::DEFAULT_KEY_FILE)]
    pub encryption_key: PathBuf,
    /// Seconds the kubelet may take to stop etcd after its manifest is moved away.
    #[arg(long, default_value_t = 120)]
    pub stop_timeout: u64,
    /// Seconds the restored etcd may take to become healthy.
    #[arg(long, default_value_t = 180)]
    pub health_timeout: u64,
    /// The other members of a multi-member cluster are stopped (needed when the cluster cannot tell).
    #[arg(long)]
    pub other_members_stopped: bool,
    /// What writes the new data dir: auto (etcdutl when on the PATH, else native), etcdutl, etcdctl (etcd 3.4), or
    /// native (bosun itself: the database with the new membership, the WAL and the v2 snapshot).
    #[arg(long, value_enum, default_value_t = RestoreToolChoice::Auto)]
    pub restore_tool: RestoreToolChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RestoreToolChoice {
    Auto,
    Etcdutl,
    Etcdctl,
    Native,
}

impl From<RestoreToolChoice> for RestoreTool {
    fn from(choice: RestoreToolChoice) -> Self {
        match choice {
            RestoreToolChoice::Auto => RestoreTool::Auto,
            RestoreToolChoice::Etcdutl => RestoreTool::Etcdutl,
            RestoreToolChoice::Etcdctl => RestoreTool::Etcdctl,
            RestoreToolChoice::Native => RestoreTool::Native,
        }
    }
}

/// List the members with health, leader, learner flag and database size.
#[derive(Debug, Args)]
pub struct MembersArgs {}

/// Change the membership.
#[derive(Debug, Args)]
pub struct MemberArgs {
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Remove a member by name or hex id; refused when the rest would lose quorum.
    Remove {
        /// Member name or hex id.
        member: String,
    },
    /// Add a member and print the flags to start it with (initial-cluster-state=existing).
    Add {
        /// The new member's name (its --name).
        name: String,
        /// The new member's peer URL.
        #[arg(long)]
        peer_url: String,
    },
    /// Replace a failed member: remove it, add the new one, print how to start it.
    Replace {
        /// The member to replace (name or hex id).
        old: String,
        /// The new member's name (usually its node name).
        #[arg(long = "on", value_name = "NEW-NODE")]
        on: String,
        /// The new member's peer URL (default https://<NEW-NODE>:2380).
        #[arg(long)]
        peer_url: Option<String>,
    },
}

/// Defragment members' databases to give freed space back to the file system.
#[derive(Debug, Args)]
pub struct DefragArgs {
    /// Every member, one after another, instead of only the local one.
    #[arg(long)]
    pub all: bool,
}

/// Check the cluster: every endpoint healthy, no alarm raised, database size well below the quota.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Warn when a database uses more than this percentage of the quota.
    #[arg(long, default_value_t = 80)]
    pub warn_percent: u64,
}

pub fn run(settings: &Settings, arguments: &EtcdArgs) -> Result<(), CliError> {
    let host = settings.read_only_host();
    match arguments.command.as_ref() {
        EtcdCommand::Backup(backup_arguments) => match &backup_arguments.command {
            Some(BackupCommand::Status(status_arguments)) => {
                backup_status(settings, &host, status_arguments)
            }
            Some(BackupCommand::Schedule(schedule_arguments)) => {
                run_schedule(settings, &arguments.connection, &schedule_arguments.command)
            }
            None => run_backup(settings, &host, &arguments.connection, backup_arguments),
        },
        EtcdCommand::Restore(restore_arguments) => {
            run_restore(settings, &arguments.connection, restore_arguments)
        }
        EtcdCommand::Members(_) => run_members(settings, &host, &arguments.connection),
        EtcdCommand::Member(member_arguments) => run_member(
            settings,
            &host,
            &arguments.connection,
            &member_arguments.command,
        ),
        EtcdCommand::Defrag(defrag_arguments) => {
            run_defrag(settings, &host, &arguments.connection, defrag_arguments)
        }
        EtcdCommand::Check(check_arguments) => {
            run_check(settings, &host, &arguments.connection, check_arguments)
        }
    }
}

fn unreachable(error: EtcdError) -> CliError {
    CliError::new(exit::REMOTE_UNREACHABLE, error.to_string()).with_hint(
        "check that etcd runs and that --endpoints, --cacert, --cert and --key are right",
    )
}

fn host_failure(error: impl std::fmt::Display) -> CliError {
    CliError::unexpected(error.to_string())
}

/// The local member's manifest, if this node has one.
fn read_manifest(files: &dyn Files) -> Result<Option<EtcdManifest>, CliError> {
    Ok(files
        .read(&NodePaths::manifest("etcd"))
        .map_err(host_failure)?
        .map(|bytes| EtcdManifest::new(String::from_utf8_lossy(&bytes).into_owned())))
}

/// Builds the client from flags, falling back to the manifest and the PKI.
fn connect(
    host: &Host,
    connection: &ConnectionArgs,
) -> Result<(LocalEtcd, Option<EtcdManifest>), CliError> {
    let files = host.files.as_ref();
    let manifest = read_manifest(files)?;
    let exists = |path: &Path| files.exists(path).unwrap_or(false);
    let defaults = manifest
        .as_ref()
        .and_then(|manifest| manifest.client_settings(&exists));
    let endpoints = if connection.endpoints.is_empty() {
        defaults
            .as_ref()
            .map(|defaults| defaults.endpoints.clone())
            .filter(|endpoints| !endpoints.is_empty())
            .ok_or_else(|| {
                CliError::new(
                    exit::INVALID_CONFIG,
                    format!(
                        "no etcd endpoint is known: {} is missing or names no client URL",
                        NodePaths::manifest("etcd").display()
                    ),
                )
                .with_hint("pass --endpoints (and --cacert, --cert, --key for https)")
            })?
    } else {
        connection.endpoints.clone()
    };
    let pick = |flag: &Option<PathBuf>, default: Option<PathBuf>| flag.clone().or(default);
    let ca = pick(
        &connection.cacert,
        defaults.as_ref().map(|d| d.ca_file.clone()),
    );
    let cert = pick(
        &connection.cert,
        defaults.as_ref().map(|d| d.cert_file.clone()),
    );
    let key = pick(
        &connection.key,
        defaults.as_ref().map(|d| d.key_file.clone()),
    );
    let needs_tls = endpoints
        .iter()
        .any(|endpoint| endpoint.starts_with("https://"));
    let tls = if needs_tls {
        let read = |name: &str, path: Option<PathBuf>| -> Result<Vec<u8>, CliError> {
            let path = path.ok_or_else(|| {
                CliError::new(
                    exit::INVALID_CONFIG,
                    format!("the etcd endpoints use https but no {name} is known"),
                )
                .with_hint(format!("pass --{name}"))
            })?;
            files.read(&path).map_err(host_failure)?.ok_or_else(|| {
                CliError::new(
                    exit::INVALID_CONFIG,
                    format!("the etcd {name} file {} does not exist", path.display()),
                )
                .with_hint(format!(
                    "pass --{name} with an existing file, or create the etcd certificates"
                ))
            })
        };
        Some(TlsMaterial {
            ca: read("cacert", ca)?,
            cert: read("cert", cert)?,
            key: read("key", key)?,
        })
    } else {
        None
    };
    let client = LocalEtcd::new(
        endpoints,
        tls,
        Duration::from_secs(connection.request_timeout.max(1)),
    )
    .map_err(unreachable)?;
    Ok((client, manifest))
}

/// Progress and messages go to stderr as text whatever `-o` says, so that with `-o json` stdout carries exactly one
/// document: the command's result.
fn progress_printer(settings: &Settings) -> Printer {
    Printer::new(OutputFormat::Text, settings.quiet)
}

fn emit(printer: &Printer, phase: &str, text: impl Into<String>) {
    printer.emit(Event::Message {
        phase: phase.to_owned(),
        level: Level::Info,
        text: text.into(),
    });
}

fn load_key(
    host: &Host,
    encryption: &EncryptionArgs,
    create: bool,
    printer: &Printer,
) -> Result<Option<BackupKey>, CliError> {
    if encryption.no_encrypt {
        return Ok(None);
    }
    let (key, created) =
        backup::load_or_create_key(host.files.as_ref(), &encryption.encryption_key, create)
            .map_err(|error| {
                CliError::new(exit::INVALID_CONFIG, error.to_string()).with_hint(
            "pass --encryption-key with the key file the backup was made with (or --no-encrypt)",
        )
            })?;
    if created {
        emit(
            printer,
            "etcd/backup",
            format!(
                "created the backup key {} (id {}); keep a copy off this node, backups cannot be read without it",
                encryption.encryption_key.display(),
                key.id_hex()
            ),
        );
    }
    Ok(Some(key))
}

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn run_backup(
    settings: &Settings,
    host: &Host,
    connection: &ConnectionArgs,
    arguments: &BackupArgs,
) -> Result<(), CliError> {
    let printer = progress_printer(settings);
    let (client, manifest) = connect(host, connection)?;
    let key = load_key(host, &arguments.encryption, true, &printer)?;
    let created = now_utc();
    let name = backup::file_name(&arguments.cluster_name, created);
    let output = arguments
        .output_file
        .clone()
        .unwrap_or_else(|| PathBuf::from(etcd::DEFAULT_BACKUP_DIR));
    let is_directory = output.to_string_lossy().ends_with('/')
        || host
            .files
            .metadata(&output)
            .map_err(host_failure)?
            .is_some_and(|meta| meta.is_dir)
        || arguments.output_file.is_none();
    let path = if is_directory {
        output.join(&name)
    } else {
        output.clone()
    };
    let member_name = manifest
        .as_ref()
        .and_then(EtcdManifest::member_name)
        .unwrap_or_default();
    let request = BackupRequest {
        output: path.to_path_buf(),
        key,
        cluster_name: arguments.cluster_name.clone(),
        member_name,
        created,
    };
    emit(
        &printer,
        "etcd/backup",
        format!("streaming a snapshot from {}", client.endpoints().join(",")),
    );
    let store = RootStreams::new(&settings.root);
    let mut next_report: u64 = 0;
    let summary = backup::run_backup(&client, &store, &request, &mut |done, total| {
        if done >= next_report {
            printer.emit(Event::Progress {
                phase: "etcd/backup".to_owned(),
                done: done >> 20,
                total: total >> 20,
                text: "MiB streamed".to_owned(),
            });
            next_report = done + (256 << 20);
        }
    })
    .map_err(|error| match error {
        backup::BackupError::Etcd(error) => unreachable(error),
        other => CliError::unexpected(other.to_string()),
    })?;
    emit(
        &printer,
        "etcd/backup",
        format!(
            "wrote {} ({}, revision {}, {} keys, {}; etcd's snapshot hash and SHA-256 checked, read back)",
            summary.path.display(),
            human_bytes(summary.file_bytes),
            summary.header.revision,
            summary.header.total_keys,
            if summary.header.encrypted { "AES-256-GCM" } else { "not encrypted" }
        ),
    );
    let mut pruned = Vec::new();
    if let Some(keep) = arguments.keep {
        let directory = summary
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        pruned = backup::prune(
            host.files.as_ref(),
            &directory,
            &arguments.cluster_name,
            keep.max(1),
        )
        .map_err(host_failure)?;
        for removed in &pruned {
            emit(
                &printer,
                "etcd/backup",
                format!("removed the old backup {}", removed.display()),
            );
        }
    }
    printer.finish();
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Output<'a> {
        #[serde(flatten)]
        summary: &'a backup::BackupSummary,
        pruned: &'a [PathBuf],
    }
    if settings.output == OutputFormat::Text {
        print_data(&format!("{}\n", summary.path.display()));
        Ok(())
    } else {
        print_document(
            settings.output,
            &Output {
                summary: &summary,
                pruned: &pruned,
            },
        )
        .map_err(CliError::unexpected)
    }
}

fn backup_status(
    settings: &Settings,
    host: &Host,
    arguments: &BackupStatusArgs,
) -> Result<(), CliError> {
    let store = RootStreams::new(&settings.root);
    let key = read_backup_key(host, &arguments.encryption_key)?;
    let status = backup::status(&store, &arguments.file, key.as_ref()).map_err(|error| {
        let hint = if error.to_string().contains("no key was given") {
            "pass --encryption-key with the key file the backup was made with"
        } else {
            "the file cannot be restored; use another backup"
        };
        CliError::new(exit::CHECK_FAILED, error.to_string()).with_hint(hint)
    })?;
    if settings.output != OutputFormat::Text {
        return print_document(settings.output, &status).map_err(CliError::unexpected);
    }
    let mut text = format!(
        "{:<10} {:>10} {:>12} {:>12}\n{:<10} {:>10} {:>12} {:>12}\n",
        "HASH",
        "REVISION",
        "TOTAL KEYS",
        "TOTAL SIZE",
        format!("{:08x}", status.hash),
        status.revision,
        status.total_key,
        human_bytes(status.total_size)
    );
    text.push_str(&format!("\nsha256:    {}\n", status.snapshot_sha256));
    text.push_str(&format!(
        "file size: {} ({} bytes)\n",
        human_bytes(status.file_bytes),
        status.file_bytes
    ));
    match &status.header {
        Some(header) => text.push_str(&format!(
            "format:    bosun etcd backup v1, {}\ncluster:   {}\nmember:    {} ({})\netcd:      {}\ncreated:   {}\nverified:  every frame, the final frame, SHA-256 and etcd's snapshot hash\n",
            if status.encrypted { "AES-256-GCM" } else { "not encrypted" },
            header.cluster_name,
            header.member_name,
            header.endpoint,
            header.etcd_version,
            header.created
        )),
        None => text.push_str("format:    plain etcd snapshot\nverified:  etcd's snapshot hash\n"),
    }
    print_data(&text);
    Ok(())
}

fn scheduler_for(choice: Option<SchedulerChoice>, settings: &Settings) -> Scheduler {
    match choice {
        Some(SchedulerChoice::Systemd) => Scheduler::Systemd,
        Some(SchedulerChoice::Cron) => Scheduler::Cron,
        None if crate::host::facts::systemd_is_init() && settings.root == Path::new("/") => {
            Scheduler::Systemd
        }
        None => Scheduler::Cron,
    }
}

fn run_schedule(
    settings: &Settings,
    connection: &ConnectionArgs,
    command: &ScheduleCommand,
) -> Result<(), CliError> {
    let host = settings.host(false);
    let printer = progress_printer(settings);
    let print_changes = |changes: &[schedule::Change]| {
        for change in changes {
            printer.emit(Event::Artefact {
                phase: "etcd/backup/schedule".to_owned(),
                artefact: change.path.display().to_string(),
                outcome: change.outcome,
                detail: None,
            });
        }
        if settings.output != OutputFormat::Text {
            let _ = print_document(settings.output, &changes);
        }
    };
    match command {
        ScheduleCommand::Install {
            every,
            keep,
            dir,
            encryption,
            scheduler,
        } => {
            let every =
                Every::parse(every).map_err(|message| CliError::new(exit::USAGE, message))?;
            let _lock = settings.lock(false)?;
            // Create the key now, so the first scheduled run does not make a key nobody has copied.
            load_key(&host, encryption, true, &printer)?;
            let mut extra = Vec::new();
            if settings.root != Path::new("/") {
                extra.extend(["--root".to_owned(), settings.root.display().to_string()]);
            }
            if encryption.no_encrypt {
                extra.push("--no-encrypt".to_owned());
            } else if encryption.encryption_key != Path::new(etcd::DEFAULT_KEY_FILE) {
                extra.extend([
                    "--encryption-key".to_owned(),
                    encryption.encryption_key.display().to_string(),
                ]);
            }
            if !connection.endpoints.is_empty() {
                extra.extend(["--endpoints".to_owned(), connection.endpoints.join(",")]);
            }
            for (flag, value) in [
                ("--cacert", &connection.cacert),
                ("--cert", &connection.cert),
                ("--key", &connection.key),
            ] {
                if let Some(value) = value {
                    extra.extend([flag.to_owned(), value.display().to_string()]);
                }
            }
            let plan = Schedule {
                every,
                keep: (*keep).max(1),
                directory: dir.clone(),
                program: crate::host::etcd::current_program(),
                extra_arguments: extra,
            };
            let scheduler = scheduler_for(*scheduler, settings);
            let changes = schedule::install(
                host.files.as_ref(),
                host.commands.as_ref(),
                scheduler,
                &plan,
            )
            .map_err(host_failure)?;
            print_changes(&changes);
            emit(
                &printer,
                "etcd/backup/schedule",
                format!(
                    "backups every {} into {}, keeping {} ({scheduler:?})",
                    every.text(),
                    dir.display(),
                    plan.keep
                ),
            );
            printer.finish();
            Ok(())
        }
        ScheduleCommand::Remove { scheduler } => {
            let _lock = settings.lock(false)?;
            let changes = schedule::remove(
                host.files.as_ref(),
                host.commands.as_ref(),
                scheduler_for(*scheduler, settings),
            )
            .map_err(host_failure)?;
            print_changes(&changes);
            printer.finish();
            Ok(())
        }
        ScheduleCommand::Status { dir } => {
            let status = schedule::status(host.files.as_ref()).map_err(host_failure)?;
            let backups: Vec<PathBuf> = host
                .files
                .list_dir(dir)
                .map_err(host_failure)?
                .into_iter()
                .filter(|path| {
                    path.extension()
                        .is_some_and(|extension| extension == "bosun-etcd")
                })
                .collect();
            #[derive(Serialize)]
            #[serde(rename_all = "camelCase")]
            struct Output<'a> {
                #[serde(flatten)]
                status: &'a schedule::ScheduleStatus,
                backups: &'a [PathBuf],
            }
            if settings.output != OutputFormat::Text {
                return print_document(
                    settings.output,
                    &Output {
                        status: &status,
                        backups: &backups,
                    },
                )
                .map_err(CliError::unexpected);
            }
            let mut text = if status.installed {
                format!(
                    "installed ({:?}): {} at {}\n",
                    status.scheduler.unwrap_or(Scheduler::Cron),
                    status.command.as_deref().unwrap_or("?"),
                    status.when.as_deref().unwrap_or("?")
                )
            } else {
                "not installed\n".to_owned()
            };
            text.push_str(&format!("{} backups in {}", backups.len(), dir.display()));
            if let Some(newest) = backups.last() {
                text.push_str(&format!(", newest {}", newest.display()));
            }
            text.push('\n');
            print_data(&text);
            Ok(())
        }
    }
}

fn run_restore(
    settings: &Settings,
    connection: &ConnectionArgs,
    arguments: &RestoreArgs,
) -> Result<(), CliError> {
    let _lock = settings.lock(false)?;
    let host = settings.host(false);
    let printer = progress_printer(settings);
    let (client, _) = connect(&host, connection)?;
    let key = read_backup_key(&host, &arguments.encryption_key)?;
    let stamp = {
        let name = backup::file_name("x", now_utc());
        name.trim_start_matches("etcd-x-")
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let request = RestoreRequest {
        tool: arguments.restore_tool.into(),
        backup: arguments.file.clone(),
        key,
        stamp,
        token: format!(
            "bosun-restore-{}",
            etcd::random_token().map_err(host_failure)?
        ),
        stop_timeout: Duration::from_secs(arguments.stop_timeout),
        health_timeout: Duration::from_secs(arguments.health_timeout),
        other_members_stopped: arguments.other_members_stopped,
    };
    let store = RootStreams::new(&settings.root);
    let report = |step: &str, text: &str| emit(&printer, &format!("etcd/restore/{step}"), text);
    let sleep = |duration: Duration| std::thread::sleep(duration);
    let restore_host = RestoreHost {
        files: host.files.as_ref(),
        commands: host.commands.as_ref(),
        store: &store,
        client: &client,
        report: &report,
        sleep: &sleep,
    };
    let outcome = restore::restore(&restore_host, &request).map_err(|error| {
        let code = if error.changed_host() {
            exit::FAILED_AFTER_CHANGE
        } else {
            exit::PREFLIGHT_FAILED
        };
        let mut cli = CliError::new(code, error.to_string());
        cli.hint = error.hint().map(str::to_owned);
        cli
    })?;
    emit(
        &printer,
        "etcd/restore",
        format!(
            "etcd member {} serves revision {} from {}; the old data directory {} is kept, remove it when satisfied",
            outcome.member_name,
            outcome.revision,
            outcome.data_dir.display(),
            outcome.old_data_dir.display()
        ),
    );
    printer.finish();
    if settings.output != OutputFormat::Text {
        return print_document(settings.output, &outcome).map_err(CliError::unexpected);
    }
    let mut text = format!(
        "restored {} into {} with {} (revision {}, member {}, cluster {}, cluster token {})\n",
        arguments.file.display(),
        outcome.data_dir.display(),
        outcome.tool,
        outcome.revision,
        outcome.member_id,
        outcome.cluster_id,
        outcome.initial_cluster_token
    );
    if !outcome.other_members.is_empty() {
        text.push_str(
            "\nThe cluster now has one member. Bring the other members back one at a time:\n",
        );
        for other in &outcome.other_members {
            text.push_str(&format!("\n{} ({}):\n", other.name, other.peer_url));
            for (index, step) in other.steps.iter().enumerate() {
                text.push_str(&format!("  {}. {step}\n", index + 1));
            }
        }
    }
    print_data(&text);
    Ok(())
}

fn survey(client: &LocalEtcd) -> Result<Vec<MemberReport>, CliError> {
    members::survey(client).map_err(unreachable)
}

fn members_table(reports: &[MemberReport]) -> String {
    let mut text = format!(
        "{:<18} {:<16} {:<8} {:<7} {:<8} {:<10} {:<9} {}\n",
        "ID", "NAME", "HEALTHY", "LEADER", "LEARNER", "DB SIZE", "VERSION", "PEER URLS"
    );
    for report in reports {
        text.push_str(&format!(
            "{:<18} {:<16} {:<8} {:<7} {:<8} {:<10} {:<9} {}\n",
            report.id,
            if report.name.is_empty() {
                "<unstarted>"
            } else {
                &report.name
            },
            if report.healthy { "yes" } else { "NO" },
            if report.is_leader { "yes" } else { "" },
            if report.is_learner { "yes" } else { "" },
            report
                .db_size
                .map(|size| human_bytes(size.max(0) as u64))
                .unwrap_or_else(|| "-".to_owned()),
            report.version.as_deref().unwrap_or("-"),
            report.peer_urls.join(",")
        ));
        if let Some(error) = &report.error {
            text.push_str(&format!("{:<18} {error}\n", ""));
        }
    }
    text
}

fn run_members(
    settings: &Settings,
    host: &Host,
    connection: &ConnectionArgs,
) -> Result<(), CliError> {
    let (client, _) = connect(host, connection)?;
    let reports = survey(&client)?;
    if settings.output != OutputFormat::Text {
        return print_document(settings.output, &reports).map_err(CliError::unexpected);
    }
    print_data(&members_table(&reports));
    Ok(())
}

fn add_and_instruct(
    settings: &Settings,
    client: &LocalEtcd,
    name: &str,
    peer_url: &str,
    printer: &Printer,
) -> Result<(), CliError> {
    let (added, members_after) = members::add_member(
        client,
        peer_url,
        Duration::from_secs(30),
        &std::thread::sleep,
    )
    .map_err(unreachable)?;
    let instructions = members::join_instructions(&added, &members_after, name, peer_url);
    emit(
        printer,
        "etcd/member",
        format!("added member {name} ({}) at {peer_url}", instructions.id),
    );
    printer.finish();
    if settings.output != OutputFormat::Text {
        return print_document(settings.output, &instructions).map_err(CliError::unexpected);
    }
    print_data(&format!(
        "Start etcd on {name} with an empty data directory and these flags (besides its certificates and listen URLs):\n  {}\n",
        instructions.flags.join(" \\\n  ")
    ));
    Ok(())
}

fn run_member(
    settings: &Settings,
    host: &Host,
    connection: &ConnectionArgs,
    command: &MemberCommand,
) -> Result<(), CliError> {
    let (client, _) = connect(host, connection)?;
    let printer = progress_printer(settings);
    let remove = |target: &str| -> Result<(), CliError> {
        let reports = survey(&client)?;
        let member = members::find(&reports, target)
            .map_err(|message| CliError::new(exit::USAGE, message))?;
        members::check_removal(&reports, member).map_err(|refusal| {
            CliError::new(
                exit::PREFLIGHT_FAILED,
                format!("{refusal}; nothing was changed"),
            )
            .with_hint("bring the unhealthy members back first, or replace them one at a time")
        })?;
        client.remove_member(member.raw_id).map_err(unreachable)?;
        emit(
            &printer,
            "etcd/member",
            format!("removed member {} ({})", member.name, member.id),
        );
        Ok(())
    };
    match command {
        MemberCommand::Remove { member } => {
            remove(member)?;
            printer.finish();
            Ok(())
        }
        MemberCommand::Add { name, peer_url } => {
            add_and_instruct(settings, &client, name, peer_url, &printer)
        }
        MemberCommand::Replace { old, on, peer_url } => {
            let peer_url = peer_url
                .clone()
                .unwrap_or_else(|| format!("https://{on}:2380"));
            remove(old)?;
            add_and_instruct(settings, &client, on, &peer_url, &printer)
        }
    }
}

fn run_defrag(
    settings: &Settings,
    host: &Host,
    connection: &ConnectionArgs,
    arguments: &DefragArgs,
) -> Result<(), CliError> {
    let (client, _) = connect(host, connection)?;
    let printer = progress_printer(settings);
    let endpoints: Vec<String> = if arguments.all {
        survey(&client)?
            .into_iter()
            .filter_map(|report| report.client_urls.first().cloned())
            .collect()
    } else {
        client.endpoints().into_iter().take(1).collect()
    };
    for endpoint in &endpoints {
        let before = client.status(endpoint).map_err(unreachable)?;
        client.defragment(endpoint).map_err(unreachable)?;
        let after = client.status(endpoint).map_err(unreachable)?;
        emit(
            &printer,
            "etcd/defrag",
            format!(
                "defragmented {endpoint}: {} -> {}",
                human_bytes(before.db_size.max(0) as u64),
                human_bytes(after.db_size.max(0) as u64)
            ),
        );
    }
    printer.finish();
    Ok(())
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CheckReport {
    ok: bool,
    members: Vec<MemberReport>,
    alarms: Vec<etcd::Alarm>,
    quota_bytes: u64,
    problems: Vec<String>,
    warnings: Vec<String>,
}

fn run_check(
    settings: &Settings,
    host: &Host,
    connection: &ConnectionArgs,
    arguments: &CheckArgs,
) -> Result<(), CliError> {
    let (client, manifest) = connect(host, connection)?;
    let reports = survey(&client)?;
    let alarms = client.alarms().map_err(unreachable)?;
    let quota = manifest
        .as_ref()
        .map(EtcdManifest::quota_bytes)
        .unwrap_or(2 << 30);
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for report in &reports {
        let name = if report.name.is_empty() {
            report.id.clone()
        } else {
            report.name.clone()
        };
        if !report.healthy {
            problems.push(format!(
                "member {name} is unhealthy: {}",
                report.error.as_deref().unwrap_or("no answer")
            ));
        }
        if let Some(size) = report.db_size {
            let percent = (size.max(0) as u64).saturating_mul(100) / quota.max(1);
            if percent >= 100 {
                problems.push(format!(
                    "member {name}'s database ({}) has reached the quota ({})",
                    human_bytes(size as u64),
                    human_bytes(quota)
                ));
            } else if percent >= arguments.warn_percent {
                warnings.push(format!(
                    "member {name}'s database uses {percent}% of the quota ({} of {}); run `bosun etcd defrag` or raise --quota-backend-bytes",
                    human_bytes(size as u64),
                    human_bytes(quota)
                ));
            }
        }
    }
    for alarm in &alarms {
        problems.push(format!(
            "alarm {} raised on member {}",
            alarm.alarm,
            etcd::member_id_hex(alarm.member_id)
        ));
    }
    if !reports.iter().any(|report| report.is_leader) {
        problems.push("no member reports itself as the leader".to_owned());
    }
    let check = CheckReport {
        ok: problems.is_empty(),
        members: reports,
        alarms,
        quota_bytes: quota,
        problems,
        warnings,
    };
    if settings.output != OutputFormat::Text {
        print_document(settings.output, &check).map_err(CliError::unexpected)?;
    } else {
        let mut text = members_table(&check.members);
        text.push_str(&format!("quota: {}\n", human_bytes(quota)));
        for warning in &check.warnings {
            text.push_str(&format!("WARNING: {warning}\n"));
        }
        for problem in &check.problems {
            text.push_str(&format!("PROBLEM: {problem}\n"));
        }
        if check.ok {
            text.push_str("etcd is healthy\n");
        }
        print_data(&text);
    }
    if check.ok {
        Ok(())
    } else {
        Err(CliError::new(
            exit::CHECK_FAILED,
            format!("etcd check found {} problem(s)", check.problems.len()),
        ))
    }
}

/// The backup key in `path`, if that file exists; a file that is not a key is an invalid-config error naming it.
fn read_backup_key(host: &Host, path: &std::path::Path) -> Result<Option<BackupKey>, CliError> {
    let Some(contents) = host.files.read(path).map_err(host_failure)? else {
        return Ok(None);
    };
    BackupKey::parse(&contents).map(Some).map_err(|error| {
        CliError::new(exit::INVALID_CONFIG, format!("{}: {error}", path.display()))
    })
}
