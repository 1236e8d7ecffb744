//! `bosun kubeconfig`: kubeconfig files for users (kubeadm's `kubeconfig user`).

use std::path::PathBuf;

use bosun_phases::certops::user::{user_kubeconfig, UserRequest};
use bosun_phases::certops::{self, Locations};
use clap::{Args, Subcommand};

use crate::error::CliError;
use crate::exit;
use crate::output::{print_data, OutputFormat};
use crate::settings::Settings;

/// Make kubeconfig files for users of the cluster
///
/// Examples:
///   bosun kubeconfig user --client-name alice --org developers > alice.conf
///   bosun kubeconfig user --client-name ci --validity 24h --config cluster.yaml
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct KubeconfigArgs {
    #[command(subcommand)]
    pub command: KubeconfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum KubeconfigCommand {
    /// Print a kubeconfig for a user, with a client certificate signed by the cluster CA (the CA key must be on this
    /// node). The API server sees the user as --client-name, in the groups given by --org.
    User(UserArgs),
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The user name (the certificate's common name).
    #[arg(long, value_name = "NAME")]
    pub client_name: String,
    /// A group the user belongs to (the certificate's organisation); repeat for several.
    #[arg(long = "org", value_name = "ORG")]
    pub orgs: Vec<String>,
    /// How long the client certificate is valid (e.g. 24h, 30d); default: certificateValidityPeriod (8760h).
    #[arg(long, alias = "validity-period", value_name = "DURATION")]
    pub validity: Option<String>,
    /// A kubeadm configuration file: its clusterName, controlPlaneEndpoint (or advertise address), certificatesDir and
    /// encryptionAlgorithm are used.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The certificate directory on the node (default: certificatesDir).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

pub fn run(settings: &Settings, arguments: &KubeconfigArgs) -> Result<(), CliError> {
    match &arguments.command {
        KubeconfigCommand::User(user) => run_user(settings, user),
    }
}

fn run_user(settings: &Settings, arguments: &UserArgs) -> Result<(), CliError> {
    let validity = arguments
        .validity
        .as_deref()
        .map(|text| {
            certops::parse_duration(text)
                .map_err(|error| CliError::new(exit::USAGE, format!("--validity: {error}")))
        })
        .transpose()?;
    let config = settings.load_config(arguments.config.as_deref())?;
    let locations = Locations::new(&config, arguments.cert_dir.as_deref(), None);
    let host = settings.read_only_host();
    let request = UserRequest {
        client_name: arguments.client_name.clone(),
        organizations: arguments.orgs.clone(),
        validity,
    };
    let text = user_kubeconfig(
        host.files.as_ref(),
        &config,
        &locations,
        &request,
        host.clock.now(),
    )
    .map_err(|error| {
        let hint = error.hint().map(str::to_owned);
        let mut cli = CliError::new(exit::UNEXPECTED, error.to_string());
        cli.hint = hint;
        cli
    })?;
    match settings.output {
        OutputFormat::Json => {
            let value = bosun_config::yaml::value_from_str(&text)
                .map_err(|error| CliError::unexpected(error.to_string()))?;
            let mut json = serde_json::to_string_pretty(&value)
                .map_err(|error| CliError::unexpected(error.to_string()))?;
            json.push('\n');
            print_data(&json);
        }
        _ => print_data(&text),
    }
    Ok(())
}
