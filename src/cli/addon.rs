//! `bosun addon`: the rollout state, history and rollback of the addons bosun owns.

use std::path::PathBuf;
use std::time::Duration;

use bosun_phases::addon::{self, Addon, AddonData, AddonError};
use bosun_phases::cluster::rollout::WorkloadRollout;
use bosun_phases::engine::RunOptions;
use bosun_phases::host::cluster::{ClusterApi, ClusterConnector, ClusterError};
use clap::{Args, Subcommand, ValueEnum};

use crate::cli::workflow;
use crate::error::CliError;
use crate::exit;
use crate::host::kube::KubeConnector;
use crate::output::{print_data, print_document, OutputFormat};
use crate::settings::Settings;

/// Follow, inspect and roll back the addons bosun owns (kube-proxy, coredns)
///
/// kube-proxy is a DaemonSet (its revisions are ControllerRevisions), CoreDNS a Deployment
/// (its revisions are ReplicaSets). A rollback restores a revision as `kubectl rollout undo`
/// does, then follows the rollout.
///
/// Examples:
///   bosun addon status kube-proxy
///   bosun addon history kube-proxy -o json
///   bosun addon rollback kube-proxy
///   bosun addon rollback kube-proxy --to-revision 1 --dry-run
///   bosun addon rollback kube-proxy --to-revision 1 --timeout 10m
///   bosun addon rollback coredns
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct AddonArgs {
    /// The kubeconfig to reach the cluster with (a node path, under --root).
    #[arg(
        long,
        global = true,
        default_value = "/etc/kubernetes/admin.conf",
        value_name = "FILE"
    )]
    pub kubeconfig: PathBuf,
    #[command(subcommand)]
    pub command: AddonCommand,
}

#[derive(Debug, Subcommand)]
pub enum AddonCommand {
    /// Show the addon's rollout: counts, and each node's (or replica's) pod, revision and readiness.
    Status(TargetArgs),
    /// List the addon's revisions (REVISION, CHANGE-CAUSE, IMAGES, CURRENT), like `kubectl rollout history`.
    History(TargetArgs),
    /// Restore an earlier revision (the previous one by default) and follow the rollout.
    Rollback(RollbackArgs),
}

/// The addons bosun manages rollouts of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AddonName {
    /// The kube-proxy DaemonSet in kube-system.
    KubeProxy,
    /// The CoreDNS Deployment in kube-system.
    #[value(name = "coredns")]
    CoreDns,
}

impl AddonName {
    fn addon(self) -> Addon {
        match self {
            AddonName::KubeProxy => Addon::KubeProxy,
            AddonName::CoreDns => Addon::CoreDns,
        }
    }
}

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The addon.
    #[arg(value_enum)]
    pub addon: AddonName,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The addon.
    #[arg(value_enum)]
    pub addon: AddonName,
    /// The revision to restore (see `bosun addon history`); the previous one when omitted.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    pub to_revision: Option<i64>,
    /// How long to follow the rollout before reporting the nodes not updated (Go duration; 0s: do not follow).
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    pub timeout: String,
    /// Change nothing; show which revision would be restored and a diff of the pod template.
    #[arg(long)]
    pub dry_run: bool,
}

fn cluster_error(kubeconfig: &str, error: ClusterError) -> CliError {
    match &error {
        ClusterError::Unreachable { server, .. } => {
            CliError::new(exit::REMOTE_UNREACHABLE, error.to_string()).with_hint(format!(
                "check that the API server {server} named in {kubeconfig} is running and reachable"
            ))
        }
        ClusterError::Kubeconfig { .. } => CliError::unexpected(error.to_string()).with_hint(
            "pass a working kubeconfig with --kubeconfig (default /etc/kubernetes/admin.conf)",
        ),
        _ => CliError::unexpected(error.to_string()),
    }
}

fn addon_error(kubeconfig: &str, addon: Addon, error: AddonError) -> CliError {
    let hint = error.hint(addon);
    let mut cli = match error {
        AddonError::Cluster(error) => return cluster_error(kubeconfig, error),
        refusal if refusal.is_refusal() => CliError::new(exit::USAGE, refusal.to_string()),
        other => CliError::unexpected(other.to_string()),
    };
    cli.hint = hint;
    cli
}

fn connect(settings: &Settings, arguments: &AddonArgs) -> Result<Box<dyn ClusterApi>, CliError> {
    let shown = arguments.kubeconfig.display().to_string();
    let kubeconfig = settings
        .read_only_host()
        .files
        .read(&arguments.kubeconfig)
        .map_err(|error| CliError::unexpected(error.to_string()))?
        .ok_or_else(|| {
            CliError::unexpected(format!("the kubeconfig {shown} does not exist")).with_hint(
                "run this on a control-plane node after `bosun init`, or pass --kubeconfig",
            )
        })?;
    KubeConnector
        .connect(&kubeconfig, &shown)
        .map_err(|error| cluster_error(&shown, error))
}

fn status_table(state: &WorkloadRollout) -> String {
    let revision = state
        .revision
        .map(|revision| format!("revision {revision}"))
        .unwrap_or_else(|| "revision not recorded yet".to_owned());
    let mut text = format!(
        "{}: {revision}, generation {} (observed {})\n\
         desired {}, updated {}, ready {}, available {}\n{}\n",
        state.object(),
        state.generation,
        state.observed_generation,
        state.desired,
        state.updated,
        state.ready,
        state.available,
        state.message
    );
    if state.nodes.is_empty() {
        return text;
    }
    let mut rows = vec![[
        "NODE".to_owned(),
        "POD".to_owned(),
        "REVISION".to_owned(),
        "UPDATED".to_owned(),
        "READY".to_owned(),
        "REASON".to_owned(),
    ]];
    let yes_no = |flag: bool| if flag { "yes" } else { "no" }.to_owned();
    for node in &state.nodes {
        rows.push([
            node.node.clone(),
            node.pod.clone().unwrap_or_else(|| "<none>".to_owned()),
            node.revision
                .map(|revision| revision.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            yes_no(node.updated),
            yes_no(node.ready),
            node.reason.clone().unwrap_or_default(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in &rows {
        let line = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("  ");
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn timeout_of(text: &str) -> Result<Duration, CliError> {
    bosun_config::Duration::parse(text)
        .map(|duration| duration.as_std())
        .map_err(|reason| CliError::new(exit::USAGE, format!("--timeout {text:?}: {reason}")))
}

pub fn run(settings: &Settings, arguments: &AddonArgs) -> Result<(), CliError> {
    let shown = arguments.kubeconfig.display().to_string();
    match &arguments.command {
        AddonCommand::Status(target) => {
            let addon = target.addon.addon();
            let api = connect(settings, arguments)?;
            let state = addon::status(api.as_ref(), addon)
                .map_err(|error| addon_error(&shown, addon, error))?;
            if settings.output != OutputFormat::Text {
                return print_document(settings.output, &state).map_err(CliError::unexpected);
            }
            print_data(&status_table(&state));
            Ok(())
        }
        AddonCommand::History(target) => {
            let addon = target.addon.addon();
            let api = connect(settings, arguments)?;
            let history = addon::history(api.as_ref(), addon)
                .map_err(|error| addon_error(&shown, addon, error))?;
            if settings.output != OutputFormat::Text {
                return print_document(settings.output, &history).map_err(CliError::unexpected);
            }
            print_data(&history.table());
            Ok(())
        }
        AddonCommand::Rollback(rollback) => {
            let addon = rollback.addon.addon();
            let timeout = timeout_of(&rollback.timeout)?;
            let api = connect(settings, arguments)?;
            // Decide before changing anything: a revision that does not exist is refused here.
            let plan = addon::plan_rollback(api.as_ref(), addon, rollback.to_revision)
                .map_err(|error| addon_error(&shown, addon, error))?;
            let data = AddonData {
                api,
                addon,
                plan,
                timeout,
            };
            workflow::execute(
                settings,
                &addon::rollback_workflow(),
                &data,
                &RunOptions::default(),
                rollback.dry_run,
            )?;
            Ok(())
        }
    }
}
