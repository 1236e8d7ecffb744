//! `bosun certs`: check, renew and prepare the control-plane certificates (kubeadm's `certs` commands), and the
//! daily renewal timer.

use std::path::PathBuf;
use std::sync::Arc;

use bosun_phases::certops::expiration;
use bosun_phases::certops::renew::{self, RenewData, RestartSettings};
use bosun_phases::certops::timer::{self, TimerData};
use bosun_phases::certops::{self, csr, CertopsError, Locations};
use bosun_phases::engine::RunOptions;
use clap::{Args, Subcommand};

use crate::cli::workflow;
use crate::error::CliError;
use crate::exit;
use crate::output::{print_data, OutputFormat};
use crate::settings::Settings;

/// Check, renew and prepare the control-plane certificates
///
/// Examples:
///   bosun certs check-expiration
///   bosun certs check-expiration --fail-within 30d -o json
///   bosun certs renew all --if-expiring-within 30d
///   bosun certs renew apiserver admin.conf --no-restart
///   bosun certs generate-csr --cert-dir /srv/pki
///   bosun certs certificate-key
///   bosun certs timer install
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct CertsArgs {
    #[command(subcommand)]
    pub command: CertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Show when each certificate and CA expires (kubeadm's two tables; -o json|yaml for scripts).
    CheckExpiration(CheckArgs),
    /// Renew leaf certificates and kubeconfig client certificates, then restart the control-plane static pods.
    Renew(RenewArgs),
    /// Generate keys and CSRs for every certificate and kubeconfig, for signing by an external CA.
    GenerateCsr(CsrArgs),
    /// Print a new random key for `init --upload-certs` (32 bytes, hex).
    CertificateKey,
    /// Install, remove or inspect the daily renewal (a systemd timer, or a cron entry without systemd).
    Timer(TimerArgs),
}

/// Where to look, and which configuration to use.
#[derive(Debug, Args)]
pub struct Location {
    /// A kubeadm configuration file; its certificatesDir, encryptionAlgorithm and certificateValidityPeriod are
    /// used. Without it, bosun's defaults (the same as kubeadm's).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The certificate directory on the node (default: certificatesDir, /etc/kubernetes/pki).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// The directory of admin.conf, controller-manager.conf, … on the node.
    #[arg(long, value_name = "DIR")]
    pub kubeconfig_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub location: Location,
    /// Exit with code 7 (check-failed) when a certificate or CA expires within this time (30d, 720h, 1h30m).
    #[arg(long, value_name = "DURATION")]
    pub fail_within: Option<String>,
}

/// Renew certificates: `all`, or names among apiserver, apiserver-kubelet-client, front-proxy-client, etcd-server,
/// etcd-peer, etcd-healthcheck-client, apiserver-etcd-client, admin.conf, super-admin.conf, controller-manager.conf,
/// scheduler.conf.
///
/// Each certificate gets a new key (the configured encryptionAlgorithm), the same subject, SANs and usages, a new
/// serial and a new validity period, signed by its CA on this node. CAs and kubelet.conf are never renewed; a
/// certificate whose CA is external (ca.crt without ca.key) is refused. Afterwards the control-plane components that
/// use the renewed certificates are restarted one at a time through their static-pod manifests, each waited for
/// until healthy.
#[derive(Debug, Args)]
pub struct RenewArgs {
    /// `all`, or the certificates to renew.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    #[command(flatten)]
    pub location: Location,
    /// Renew only certificates that expire within this time (30d, 720h); report the others unchanged.
    #[arg(long, value_name = "DURATION")]
    pub if_expiring_within: Option<String>,
    /// Do not restart the control-plane static pods; restart them yourself to load the new certificates.
    #[arg(long)]
    pub no_restart: bool,
    /// How long each restarted component may take to be healthy again.
    #[arg(long, default_value = "4m", value_name = "DURATION")]
    pub restart_timeout: String,
    /// Change nothing; show what would be renewed and the manifest changes.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct CsrArgs {
    #[command(flatten)]
    pub location: Location,
    /// Change nothing; show the files that would be written (keys redacted).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct TimerArgs {
    #[command(subcommand)]
    pub command: TimerCommand,
}

#[derive(Debug, Subcommand)]
pub enum TimerCommand {
    /// Install the daily `bosun certs renew all --if-expiring-within 30d` (idempotent).
    Install {
        /// Change nothing; show the unit or cron files that would be written.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove the timer or cron entry.
    Remove {
        /// Change nothing; show what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what is installed and the last renewal run (from the journal).
    Status,
}

fn cli_error(error: CertopsError, code: i32) -> CliError {
    let hint = error.hint().map(str::to_owned);
    let mut cli = CliError::new(code, error.to_string());
    cli.hint = hint;
    cli
}

fn duration(flag: &str, text: &str) -> Result<std::time::Duration, CliError> {
    certops::parse_duration(text)
        .map_err(|error| CliError::new(exit::USAGE, format!("--{flag}: {error}")))
}

pub fn run(settings: &Settings, arguments: &CertsArgs) -> Result<(), CliError> {
    match &arguments.command {
        CertsCommand::CheckExpiration(check) => check_expiration(settings, check),
        CertsCommand::Renew(renew) => run_renew(settings, renew),
        CertsCommand::GenerateCsr(csr) => generate_csr(settings, csr),
        CertsCommand::CertificateKey => {
            let key =
                certops::certificate_key().map_err(|error| cli_error(error, exit::UNEXPECTED))?;
            print_data(&format!("{key}\n"));
            Ok(())
        }
        CertsCommand::Timer(timer) => run_timer(settings, &timer.command),
    }
}

fn print_value<T: serde::Serialize>(format: OutputFormat, value: &T) -> Result<(), CliError> {
    let text = match format {
        OutputFormat::Yaml => bosun_config::yaml::to_string(value)
            .map_err(|error| CliError::unexpected(error.to_string()))?,
        _ => {
            let mut text = serde_json::to_string_pretty(value)
                .map_err(|error| CliError::unexpected(error.to_string()))?;
            text.push('\n');
            text
        }
    };
    print_data(&text);
    Ok(())
}

/// Prints an output-API document as kubeadm does: JSON indented by four spaces, YAML with sorted keys.
fn print_kubeadm_document<T: serde::Serialize>(
    format: OutputFormat,
    value: &T,
) -> Result<(), CliError> {
    let unexpected = |error: String| CliError::unexpected(error);
    let text = match format {
        OutputFormat::Yaml => bosun_config::yaml::to_string_sorted(value)
            .map_err(|error| unexpected(error.to_string()))?,
        _ => {
            let mut bytes = Vec::new();
            let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            let mut serializer = serde_json::Serializer::with_formatter(&mut bytes, formatter);
            value
                .serialize(&mut serializer)
                .map_err(|error| unexpected(error.to_string()))?;
            let mut text =
                String::from_utf8(bytes).map_err(|error| unexpected(error.to_string()))?;
            text.push('\n');
            text
        }
    };
    print_data(&text);
    Ok(())
}

fn check_expiration(settings: &Settings, arguments: &CheckArgs) -> Result<(), CliError> {
    let window = arguments
        .fail_within
        .as_deref()
        .map(|text| duration("fail-within", text))
        .transpose()?;
    let config = settings.load_config(arguments.location.config.as_deref())?;
    let locations = Locations::new(
        &config,
        arguments.location.cert_dir.as_deref(),
        arguments.location.kubeconfig_dir.as_deref(),
    );
    let host = settings.read_only_host();
    let now = host.clock.now();
    let table = expiration::check(
        host.files.as_ref(),
        &locations,
        config.external_etcd().is_some(),
        now,
    )
    .map_err(|error| cli_error(error, exit::UNEXPECTED))?;
    match settings.output {
        OutputFormat::Text => print_data(&expiration::render_table(&table)),
        format => print_kubeadm_document(format, &expiration::output_document(&table))?,
    }
    if let (Some(window), Some(text)) = (window, arguments.fail_within.as_deref()) {
        let expiring = table.expiring_within(window);
        if !expiring.is_empty() {
            let names: Vec<String> = expiring
                .iter()
                .map(|row| {
                    format!(
                        "{} ({})",
                        row.name,
                        bosun_pki::expiry::short_human_duration(row.residual_seconds)
                    )
                })
                .collect();
            return Err(CliError::new(
                exit::CHECK_FAILED,
                format!("{} expire within {text}: {}", names.len(), names.join(", ")),
            )
            .with_hint("renew them with `bosun certs renew all --if-expiring-within <DURATION>` (CAs need a new PKI)"));
        }
    }
    Ok(())
}

fn run_renew(settings: &Settings, arguments: &RenewArgs) -> Result<(), CliError> {
    let window = arguments
        .if_expiring_within
        .as_deref()
        .map(|text| duration("if-expiring-within", text))
        .transpose()?;
    let restart_timeout = duration("restart-timeout", &arguments.restart_timeout)?;
    let config = settings.load_config(arguments.location.config.as_deref())?;
    let (key_algorithm, validity) =
        renew::key_settings(&config).map_err(|error| cli_error(error, exit::INVALID_CONFIG))?;
    let external_etcd = config.external_etcd().is_some();
    let (targets, explicit) = renew::resolve(&arguments.names, external_etcd)
        .map_err(|error| cli_error(error, exit::USAGE))?;
    let locations = Locations::new(
        &config,
        arguments.location.cert_dir.as_deref(),
        arguments.location.kubeconfig_dir.as_deref(),
    );
    let planning_host = settings.read_only_host();
    let plan = renew::plan(
        planning_host.files.as_ref(),
        &locations,
        &targets,
        explicit,
        window,
        planning_host.clock.now(),
    )
    .map_err(|error| cli_error(error, exit::PREFLIGHT_FAILED))?;
    let data = RenewData {
        locations,
        key_algorithm,
        validity,
        restart: RestartSettings {
            enabled: !arguments.no_restart,
            timeout: restart_timeout,
            connector: Some(Arc::new(crate::host::kube::KubeConnector)),
            ..RestartSettings::default()
        },
        if_expiring_within: window,
        plan,
    };
    let workflow = renew::workflow(&data.plan);
    workflow::execute(
        settings,
        &workflow,
        &data,
        &RunOptions::default(),
        arguments.dry_run,
    )?;
    if arguments.no_restart
        && !data.plan.restarts.is_empty()
        && settings.output == OutputFormat::Text
    {
        let components: Vec<&str> = data
            .plan
            .restarts
            .iter()
            .map(|(component, _)| *component)
            .collect();
        eprintln!(
            "Restart {} so that they use the new certificates (or run `bosun certs renew` again without --no-restart).",
            components.join(", ")
        );
    }
    Ok(())
}

fn generate_csr(settings: &Settings, arguments: &CsrArgs) -> Result<(), CliError> {
    let config = settings.load_config(arguments.location.config.as_deref())?;
    let locations = Locations::new(
        &config,
        arguments.location.cert_dir.as_deref(),
        arguments.location.kubeconfig_dir.as_deref(),
    );
    let data = csr::CsrData { config, locations };
    let workflow = csr::workflow(&data);
    workflow::execute(
        settings,
        &workflow,
        &data,
        &RunOptions::default(),
        arguments.dry_run,
    )?;
    Ok(())
}

fn run_timer(settings: &Settings, command: &TimerCommand) -> Result<(), CliError> {
    let program = || {
        std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| timer::DEFAULT_PROGRAM.to_owned())
    };
    match command {
        TimerCommand::Install { dry_run } => {
            let data = TimerData { program: program() };
            workflow::execute(
                settings,
                &timer::install_workflow(),
                &data,
                &RunOptions::default(),
                *dry_run,
            )?;
            Ok(())
        }
        TimerCommand::Remove { dry_run } => {
            let data = TimerData { program: program() };
            workflow::execute(
                settings,
                &timer::remove_workflow(),
                &data,
                &RunOptions::default(),
                *dry_run,
            )?;
            Ok(())
        }
        TimerCommand::Status => {
            let host = settings.read_only_host();
            let status =
                timer::status(&host).map_err(|error| CliError::unexpected(error.to_string()))?;
            match settings.output {
                OutputFormat::Text => print_data(&timer::render_status(&status)),
                format => print_value(format, &status)?,
            }
            Ok(())
        }
    }
}
