//! `bosun token`: manage the bootstrap tokens joining nodes authenticate with.

use std::path::PathBuf;

use bosun_phases::cluster::join_command::endpoint_and_pins;
use bosun_phases::host::cluster::{ClusterApi, ClusterConnector, ClusterError};
use bosun_phases::host::Outcome;
use bosun_phases::token::list::{table, TokenRow};
use bosun_phases::token::ops::{self, TokenOpError};
use bosun_phases::token::{JoinCommand, Token, TokenError, TokenSpec};
use clap::{Args, Subcommand};

use crate::error::CliError;
use crate::exit;
use crate::host::kube::KubeConnector;
use crate::output::{print_data, print_document, OutputFormat};
use crate::settings::Settings;

/// Manage bootstrap tokens: create, list, delete, or generate one locally
///
/// Tokens are `[a-z0-9]{6}.[a-z0-9]{16}`; each lives in the Secret kube-system/bootstrap-token-<id>. Joining nodes
/// authenticate with them, and kube-controller-manager signs kube-public/cluster-info with every token that has the
/// usage `signing`.
///
/// Examples:
///   bosun token create --print-join-command
///   bosun token create --ttl 2h --description "rack 4"
///   bosun token list -o json
///   bosun token delete abcdef
///   bosun token generate
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct TokenArgs {
    /// The kubeconfig to reach the cluster with (a node path, under --root).
    #[arg(
        long,
        global = true,
        default_value = "/etc/kubernetes/admin.conf",
        value_name = "FILE"
    )]
    pub kubeconfig: PathBuf,
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token in the cluster and print it (or the join command that uses it).
    Create(CreateArgs),
    /// List the bootstrap tokens in the cluster (TOKEN, TTL, EXPIRES, USAGES, DESCRIPTION, EXTRA GROUPS).
    List,
    /// Delete bootstrap tokens, given by id (`abcdef`) or whole token.
    Delete(DeleteArgs),
    /// Print a new random token without touching the cluster (for `bootstrapTokens` or `token create TOKEN`).
    Generate,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The token to create; generated when omitted.
    pub token: Option<String>,
    /// How long the token is valid (Go duration: 24h, 90m); 0 means it never expires.
    #[arg(long, default_value = "24h0m0s", value_name = "DURATION")]
    pub ttl: String,
    /// What the token may be used for.
    #[arg(long, value_delimiter = ',', default_values_t = ["signing".to_owned(), "authentication".to_owned()])]
    pub usages: Vec<String>,
    /// Extra groups the token authenticates as (each `system:bootstrappers:…`).
    #[arg(long, value_delimiter = ',', default_values_t = ["system:bootstrappers:kubeadm:default-node-token".to_owned()])]
    pub groups: Vec<String>,
    /// A human-readable note stored with the token.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Print the whole `bosun join` command instead of the token.
    #[arg(long)]
    pub print_join_command: bool,
    /// With --print-join-command: print the control-plane join command with this certificate key (from
    /// `bosun init phase upload-certs --upload-certs`).
    #[arg(long, value_name = "KEY", requires = "print_join_command")]
    pub certificate_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Token ids or whole tokens.
    #[arg(required = true)]
    pub tokens: Vec<String>,
}

fn usage_error(error: TokenError) -> CliError {
    CliError::new(exit::USAGE, error.to_string())
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

fn op_error(kubeconfig: &str, error: TokenOpError) -> CliError {
    match error {
        TokenOpError::Cluster(error) => cluster_error(kubeconfig, error),
        TokenOpError::Token(error) => usage_error(error),
        TokenOpError::Exists { .. } => CliError::unexpected(error.to_string()).with_hint(
            "pick another token (`bosun token generate`), or delete the existing one first",
        ),
        TokenOpError::NotFound { .. } => CliError::unexpected(error.to_string())
            .with_hint("`bosun token list` shows the tokens that exist"),
    }
}

fn read_kubeconfig(settings: &Settings, arguments: &TokenArgs) -> Result<Vec<u8>, CliError> {
    let host = settings.read_only_host();
    let shown = arguments.kubeconfig.display().to_string();
    host.files
        .read(&arguments.kubeconfig)
        .map_err(|error| CliError::unexpected(error.to_string()))?
        .ok_or_else(|| {
            CliError::unexpected(format!("the kubeconfig {shown} does not exist")).with_hint(
                "run this on a control-plane node after `bosun init`, or pass --kubeconfig",
            )
        })
}

fn connect(arguments: &TokenArgs, kubeconfig: &[u8]) -> Result<Box<dyn ClusterApi>, CliError> {
    let shown = arguments.kubeconfig.display().to_string();
    KubeConnector
        .connect(kubeconfig, &shown)
        .map_err(|error| cluster_error(&shown, error))
}

pub fn run(settings: &Settings, arguments: &TokenArgs) -> Result<(), CliError> {
    let shown = arguments.kubeconfig.display().to_string();
    match &arguments.command {
        TokenCommand::Generate => {
            let token =
                Token::generate().map_err(|error| CliError::unexpected(error.to_string()))?;
            print_line(settings.output, "token", &token.expose())
        }
        TokenCommand::Create(create) => {
            let token = match &create.token {
                Some(text) => Token::parse(text).map_err(usage_error)?,
                None => {
                    Token::generate().map_err(|error| CliError::unexpected(error.to_string()))?
                }
            };
            let ttl = bosun_config::Duration::parse(&create.ttl).map_err(|reason| {
                CliError::new(exit::USAGE, format!("--ttl {:?}: {reason}", create.ttl))
            })?;
            let host = settings.read_only_host();
            let spec = TokenSpec::new(
                token,
                &create.description,
                Some(ttl.as_std()),
                None,
                &create.usages,
                &create.groups,
                host.clock.now(),
            )
            .map_err(usage_error)?;
            if let Some(key) = &create.certificate_key {
                let valid = key.len() == 64 && key.bytes().all(|byte| byte.is_ascii_hexdigit());
                if !valid {
                    return Err(CliError::new(
                        exit::USAGE,
                        "--certificate-key must be 64 hex digits (the key `bosun init phase upload-certs --upload-certs` printed)",
                    ));
                }
            }
            let kubeconfig = read_kubeconfig(settings, arguments)?;
            // Build the join command before changing the cluster, so a bad kubeconfig changes nothing.
            let join = if create.print_join_command {
                let (endpoint, pins) = endpoint_and_pins(&kubeconfig)
                    .map_err(|error| CliError::unexpected(error.to_string()))?;
                Some(JoinCommand {
                    endpoint,
                    token: spec.token.expose(),
                    ca_pins: pins,
                    control_plane: create.certificate_key.clone().map(Some),
                })
            } else {
                None
            };
            let api = connect(arguments, &kubeconfig)?;
            let outcome =
                ops::create(api.as_ref(), &spec).map_err(|error| op_error(&shown, error))?;
            if outcome == Outcome::Unchanged {
                eprintln!(
                    "bootstrap token {} already exists with these settings",
                    spec.token.id()
                );
            }
            match join {
                Some(join) => print_line(settings.output, "joinCommand", &join.one_line()),
                None => print_line(settings.output, "token", &spec.token.expose()),
            }
        }
        TokenCommand::List => {
            let kubeconfig = read_kubeconfig(settings, arguments)?;
            let api = connect(arguments, &kubeconfig)?;
            let (tokens, problems) =
                ops::list(api.as_ref()).map_err(|error| op_error(&shown, error))?;
            for problem in problems {
                eprintln!("warning: {problem}");
            }
            let now = settings.read_only_host().clock.now();
            let rows: Vec<TokenRow> = tokens.iter().map(|spec| TokenRow::new(spec, now)).collect();
            if settings.output != OutputFormat::Text {
                return print_document(settings.output, &rows).map_err(CliError::unexpected);
            }
            print_data(&table(&rows));
            Ok(())
        }
        TokenCommand::Delete(delete) => {
            let ids = delete
                .tokens
                .iter()
                .map(|text| ops::id_of(text))
                .collect::<Result<Vec<_>, _>>()
                .map_err(usage_error)?;
            let kubeconfig = read_kubeconfig(settings, arguments)?;
            let api = connect(arguments, &kubeconfig)?;
            for id in ids {
                ops::delete(api.as_ref(), &id).map_err(|error| op_error(&shown, error))?;
                print_line(settings.output, "deleted", &id)?;
                if settings.output == OutputFormat::Text {
                    // kubeadm's wording, on stderr so stdout stays the id.
                    eprintln!("bootstrap token {id:?} deleted");
                }
            }
            Ok(())
        }
    }
}

/// One value on stdout: the bare text, or `{"<key>": "<text>"}` with -o json/yaml.
fn print_line(format: OutputFormat, key: &str, text: &str) -> Result<(), CliError> {
    if format == OutputFormat::Text {
        print_data(&format!("{text}\n"));
        Ok(())
    } else {
        let document = serde_json::json!({ key: text });
        print_document(format, &document).map_err(CliError::unexpected)
    }
}
