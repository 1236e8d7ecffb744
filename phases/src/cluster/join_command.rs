//! `show-join-command`: the `bosun join` commands for workers and control-plane nodes, built from admin.conf's server
//! and CA (the pins) and the token `bootstrap-token` created (kubeadm's cmd/phases/init/showjoincommand.go).
//!
//! The token is the first configured one; when the configuration leaves it empty, the one this run created, or, when
//! the phase runs alone, a still valid token with the default description found in the cluster.

use base64::Engine as _;

use super::{
    admin_conf, api_timeout, bootstrap_token::existing_tokens, connect, read_required,
    DEFAULT_TOKEN_DESCRIPTION,
};
use crate::engine::{Phase, PhaseCtx, PhaseError};
use crate::init::{live, InitData};
use crate::paths;
use crate::token::{pin, JoinCommand, Token};

/// The endpoint and CA pins of admin.conf's current cluster.
pub fn endpoint_and_pins(
    admin_conf: &[u8],
) -> Result<(String, Vec<crate::token::Pin>), PhaseError> {
    let unusable =
        |reason: String| PhaseError::failed(format!("{} is unusable: {reason}", paths::ADMIN_CONF));
    let kubeconfig = super::parse_kubeconfig(admin_conf, paths::ADMIN_CONF)?;
    let cluster = kubeconfig
        .current_cluster()
        .ok_or_else(|| unusable("its current context names no cluster".to_owned()))?;
    let ca = cluster
        .certificate_authority_data
        .as_deref()
        .ok_or_else(|| unusable("its cluster has no certificate-authority-data".to_owned()))?;
    let ca_pem = base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .map_err(|_| unusable("its certificate-authority-data is not base64".to_owned()))?;
    let pins = pin::pins_of_bundle(paths::ADMIN_CONF, &ca_pem)
        .map_err(|error| PhaseError::failed(error.to_string()))?;
    Ok((JoinCommand::endpoint_of(&cluster.server), pins))
}

fn token(ctx: &PhaseCtx<'_, InitData>) -> Result<Token, PhaseError> {
    let configured = ctx
        .data
        .config
        .init
        .bootstrap_tokens
        .first()
        .map(|entry| entry.token.as_str())
        .unwrap_or("");
    if !configured.is_empty() {
        return Token::parse(configured).map_err(|error| {
            PhaseError::failed(format!(
                "InitConfiguration bootstrapTokens[0].token: {error}"
            ))
        });
    }
    if let Some(token) = ctx.data.cluster.remembered_token() {
        return Ok(token);
    }
    let not_found = || {
        PhaseError::failed(
            "no bootstrap token to print: the configuration names none and this run created none",
        )
        .with_hint("create one with `bosun token create --print-join-command`")
    };
    let api = connect(ctx)?.ok_or_else(not_found)?;
    let now = ctx.host.clock.now();
    existing_tokens(api.as_ref(), api_timeout(ctx.data))?
        .into_iter()
        .filter(|spec| spec.description == DEFAULT_TOKEN_DESCRIPTION && !spec.expired(now))
        .filter(|spec| spec.usages.iter().any(|usage| usage == "authentication"))
        .max_by_key(|spec| spec.expiration)
        .map(|spec| spec.token)
        .ok_or_else(not_found)
}

fn run(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let admin = read_required(ctx, paths::ADMIN_CONF)?;
    let (endpoint, pins) = endpoint_and_pins(&admin)?;
    let token = token(ctx)?;
    let worker = JoinCommand {
        endpoint: endpoint.clone(),
        token: token.expose(),
        ca_pins: pins.clone(),
        control_plane: None,
    };
    let control_plane_key = if ctx.data.cluster.upload_certs {
        Some(
            ctx.data
                .cluster
                .certificate_key(&ctx.data.config.init.certificate_key)?,
        )
    } else {
        None
    };
    let control_plane = JoinCommand {
        control_plane: Some(control_plane_key.clone()),
        ..worker.clone()
    };
    let mut text = String::from("Your Kubernetes control-plane has initialized successfully!\n\n");
    text.push_str(&format!(
        "To use the cluster as root:\n\n  export KUBECONFIG={}\n\n",
        paths::ADMIN_CONF
    ));
    if control_plane_key.is_some() {
        text.push_str("To add a control-plane node, run this on it as root:\n\n  ");
        text.push_str(&control_plane.multi_line().replace('\n', "\n  "));
        text.push_str(
            "\n\nThe certificate key gives access to the cluster's CA keys: keep it secret. The uploaded certificates \
             are deleted in two hours; `bosun init phase upload-certs --upload-certs` uploads them again.\n\n",
        );
    } else {
        text.push_str(
            "To add a control-plane node, copy the CAs and the service-account keys to it, then run this on it as \
             root:\n\n  ",
        );
        text.push_str(&control_plane.multi_line().replace('\n', "\n  "));
        text.push_str("\n\n");
    }
    text.push_str("To add a worker node, run this on it as root:\n\n  ");
    text.push_str(&worker.multi_line().replace('\n', "\n  "));
    ctx.output(text);
    Ok(())
}

pub fn phase() -> Phase<InitData> {
    live(
        Phase::new(
            "show-join-command",
            "Show the join commands for control-plane and worker nodes",
        )
        .needs(|_| vec![admin_conf()])
        .run(run),
    )
}
