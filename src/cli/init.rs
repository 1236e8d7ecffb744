//! `bosun init`: build the first control-plane node, phase by phase.

use std::path::PathBuf;

use bosun_phases::engine::RunOptions;
use bosun_phases::init::{self, InitData};
use clap::{ArgMatches, Args};

use crate::cli::workflow;
use crate::error::CliError;
use crate::settings::Settings;

/// Build a Kubernetes control plane on this host, phase by phase.
///
/// Every phase compares the host with what it should be and changes only the difference, so a failed run is fixed
/// by running the same command again. Without `--config` the embedded defaults are used (see
/// `bosun config print init-defaults`).
///
/// Examples:
///   bosun init --config cluster.yaml
///   bosun init --config cluster.yaml --dry-run
///   bosun init phase certs all --config cluster.yaml
///   bosun init --root /tmp/bosun-demo --offline
#[derive(Debug, Args)]
pub struct InitArgs {
    /// A kubeadm configuration file (kubeadm.k8s.io/v1beta3 or v1beta4, several documents).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Change nothing; print a diff of every file that would be written (keys redacted) and every command.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Phases to leave out, with their sub-phases (comma-separated, e.g. `preflight,addon/kube-proxy`).
    #[arg(long, global = true, value_delimiter = ',', value_name = "PHASES")]
    pub skip_phases: Vec<String>,
    /// Preflight checks whose errors become warnings (comma-separated check names, or `all`).
    #[arg(long, global = true, value_delimiter = ',', value_name = "CHECKS")]
    pub ignore_preflight_errors: Vec<String>,
    /// A directory of templates that replace the embedded ones (same file names as `templates/`).
    #[arg(long, global = true, value_name = "DIR")]
    pub templates_dir: Option<PathBuf>,
    /// Write files only; skip every phase that needs a live node (preflight, kubelet, runtime, API server). For
    /// building node images, or for looking at what init makes under a scratch `--root`.
    #[arg(long, global = true)]
    pub offline: bool,
    /// Do not install the daily timer (or cron entry) that renews certificates expiring within 30 days.
    #[arg(long, global = true)]
    pub no_certs_timer: bool,
    /// Install scheduled, encrypted backups of this node's etcd member this often (minutes dividing an hour, hours
    /// dividing a day, or 1d), as `bosun etcd backup schedule install` does. Off unless given.
    #[arg(long, global = true, value_name = "INTERVAL")]
    pub etcd_backup_every: Option<String>,
    /// With --etcd-backup-every: how many backups to keep.
    #[arg(long, global = true, default_value_t = 14, value_name = "N")]
    pub etcd_backup_keep: usize,
    /// With --etcd-backup-every: where the backups go.
    #[arg(long, global = true, default_value = bosun_phases::etcd::DEFAULT_BACKUP_DIR, value_name = "DIR")]
    pub etcd_backup_dir: PathBuf,
    /// Upload the control-plane certificates, encrypted with the certificate key, to the kubeadm-certs Secret so that
    /// `bosun join --control-plane --certificate-key K` can fetch them (they expire after 2 hours).
    #[arg(long, global = true)]
    pub upload_certs: bool,
    /// kube-proxy DaemonSet rollout: how many nodes (or what percentage) may be without kube-proxy during an update.
    #[arg(long, global = true, default_value = "1", value_name = "N|P%")]
    pub kube_proxy_max_unavailable: String,
    /// kube-proxy DaemonSet rollout: how many extra pods (or what percentage) may run during an update.
    #[arg(long, global = true, default_value = "0", value_name = "N|P%")]
    pub kube_proxy_max_surge: String,
    /// How long the kube-proxy phase follows a rollout it started before it fails naming the nodes not updated
    /// (Go duration; 0s: do not follow).
    #[arg(long, global = true, default_value = "5m", value_name = "DURATION")]
    pub kube_proxy_rollout_timeout: String,
}

/// The generated `init phase …` subcommands.
pub fn phase_command() -> clap::Command {
    workflow::phase_command(&init::workflow())
}

pub fn run(
    settings: &Settings,
    arguments: &InitArgs,
    matches: &ArgMatches,
) -> Result<(), CliError> {
    let config = settings.load_config(arguments.config.as_deref())?;
    let mut skip = arguments.skip_phases.clone();
    if skip.is_empty() {
        skip = config.init.skip_phases.clone();
    }
    let mut data = InitData::new(config);
    data.ignore_preflight_errors = arguments
        .ignore_preflight_errors
        .iter()
        .chain(
            data.config
                .init
                .node_registration
                .ignore_preflight_errors
                .iter(),
        )
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    data.templates_dir = arguments.templates_dir.clone();
    data.offline = arguments.offline;
    data.no_certs_timer = arguments.no_certs_timer;
    data.etcd_backup_schedule = arguments
        .etcd_backup_every
        .as_deref()
        .map(|every| {
            bosun_phases::etcd::schedule::Every::parse(every)
                .map(|every| bosun_phases::etcd::schedule::InitSchedule {
                    every,
                    keep: arguments.etcd_backup_keep,
                    directory: arguments.etcd_backup_dir.clone(),
                })
                .map_err(|message| {
                    CliError::new(
                        crate::exit::USAGE,
                        message.replace("--every", "--etcd-backup-every"),
                    )
                })
        })
        .transpose()?;
    let request = bosun_phases::node::fact_request(&data.config);
    data.node =
        bosun_phases::node::LazyFacts::new(move || crate::host::facts::node_facts(&request));
    data.cluster.connector = Some(std::sync::Arc::new(crate::host::kube::KubeConnector));
    data.cluster.upload_certs = arguments.upload_certs;
    data.cluster.kube_proxy_rollout = bosun_phases::cluster::Rollout {
        max_unavailable: arguments.kube_proxy_max_unavailable.clone(),
        max_surge: arguments.kube_proxy_max_surge.clone(),
    };
    data.cluster.kube_proxy_rollout_timeout =
        bosun_config::Duration::parse(&arguments.kube_proxy_rollout_timeout)
            .map(|duration| duration.as_std())
            .map_err(|reason| {
                CliError::new(
                    crate::exit::USAGE,
                    format!(
                        "--kube-proxy-rollout-timeout {:?}: {reason}",
                        arguments.kube_proxy_rollout_timeout
                    ),
                )
            })?;
    let workflow = init::workflow();
    let options = RunOptions {
        target: workflow::chosen_phase(matches),
        skip,
    };
    workflow::execute(settings, &workflow, &data, &options, arguments.dry_run)?;
    Ok(())
}
