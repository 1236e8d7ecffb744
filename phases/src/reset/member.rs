//! `remove-etcd-member`: remove this node's etcd member from its cluster.
//!
//! Steps: read the member's name, peer URLs, endpoints and client certificate from the etcd manifest (before the
//! run, [`super::survey`]); connect to the local member; find this member in the member list by peer URL (or name);
//! if it is the only voting member, remove nothing (the cluster ends with this node, and its data goes with the
//! etcd data directory in `cleanup-node/files`); otherwise check that the remaining members keep quorum and remove
//! it.
//!
//! Guarantees: a dry run reads the member list but removes nothing. A member that is no longer listed (a re-run
//! after the removal) is reported unchanged. Caveats: when the local member does not answer, nothing is removed and
//! the phase says so and how to remove the member from another control-plane node; the reset goes on.

use super::{EtcdConnection, LocalMember, ResetData};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::etcd::members::{check_removal, survey};
use crate::etcd::{member_id_hex, Member};
use crate::host::Outcome;

/// Whether a listed member is the one the manifest describes: same peer URL, else same name.
fn is_this_member(member: &Member, local: &LocalMember) -> bool {
    if member
        .peer_urls
        .iter()
        .any(|url| local.peer_urls.iter().any(|own| own == url))
    {
        return true;
    }
    local.peer_urls.is_empty() && !local.name.is_empty() && member.name == local.name
}

/// The informative part of a gRPC transport error ("connection refused", "timed out connecting"), without the
/// nested debug output of the transport's error chain.
pub(crate) fn short_reason(message: &str) -> String {
    let lower = message.to_lowercase();
    for (needle, reason) in [
        ("connection refused", "connection refused"),
        ("no route to host", "no route to host"),
        ("timed out", "timed out"),
        ("certificate", "the TLS handshake failed"),
        ("handshake", "the TLS handshake failed"),
    ] {
        if lower.contains(needle) {
            return reason.to_owned();
        }
    }
    message
        .split([',', '('])
        .next()
        .unwrap_or(message)
        .trim()
        .to_owned()
}

fn how_to_remove_later(local: &LocalMember) -> String {
    let name = if local.name.is_empty() {
        "<member>"
    } else {
        &local.name
    };
    format!("from a healthy control-plane node: bosun etcd member remove {name}")
}

pub(crate) fn phase() -> Phase<ResetData> {
    Phase::new(
        "remove-etcd-member",
        "Remove this node's etcd member from the etcd cluster",
    )
    .long_about(
        "On a control-plane node with a stacked etcd member, remove that member from the cluster through the etcd \
         API, so that the remaining members keep quorum without it. The only member of a cluster is not removed: \
         the cluster's data goes with this node. When the local member does not answer, nothing is removed and \
         the reset goes on.",
    )
    .skip_if(|data: &ResetData| {
        data.survey.etcd_member.is_none().then(|| {
            "no local etcd member on this node (no /etc/kubernetes/manifests/etcd.yaml)".to_owned()
        })
    })
    .makes(|_| vec![Artefact::State("etcd-member-removed".to_owned())])
    .run(run)
}

fn run(context: &mut PhaseCtx<'_, ResetData>) -> Result<(), PhaseError> {
    let data = context.data;
    let Some(local) = data.survey.etcd_member.as_ref() else {
        return Ok(());
    };
    let Some(connector) = data.etcd.as_ref() else {
        return Err(PhaseError::failed(
            "no etcd client is available to this run",
        ));
    };
    let files = context.host.files.as_ref();
    let read = |path: &std::path::Path| files.read(path).ok().flatten();
    let connection = EtcdConnection {
        endpoints: local.endpoints.clone(),
        ca: read(&local.ca_file),
        cert: read(&local.cert_file),
        key: read(&local.key_file),
        timeout: data.etcd_timeout,
    };
    let endpoints = local.endpoints.join(", ");
    if connection.endpoints.is_empty() {
        context.warn(format!(
            "the etcd manifest names no client URL, so the member cannot be reached; remove it {}",
            how_to_remove_later(local)
        ));
        return Ok(());
    }
    if connection.ca.is_none() || connection.cert.is_none() || connection.key.is_none() {
        context.warn(format!(
            "the etcd client certificate ({}, {}, {}) is missing, so the member at {endpoints} cannot be reached; \
             remove it {}",
            local.ca_file.display(),
            local.cert_file.display(),
            local.key_file.display(),
            how_to_remove_later(local)
        ));
        return Ok(());
    }
    let members = match connector
        .connect(&connection)
        .and_then(|client| Ok((client.members()?, client)))
    {
        Ok(found) => found,
        Err(error) => {
            context.warn(format!(
                "etcd is not reachable at {} ({}); this node's member, if it is still in the cluster, stays there: \
                 remove it {}",
                error.endpoint,
                short_reason(&error.message),
                how_to_remove_later(local)
            ));
            context.record_with_detail(
                format!("etcd member {}", local.name),
                Outcome::Unchanged,
                Some("etcd not reachable; skipped".to_owned()),
            );
            return Ok(());
        }
    };
    let (members, client) = members;
    let Some(this) = members
        .iter()
        .find(|member| is_this_member(member, local))
        .cloned()
    else {
        context.record_with_detail(
            format!("etcd member {}", local.name),
            Outcome::Unchanged,
            Some("not a member of the cluster (already removed)".to_owned()),
        );
        return Ok(());
    };
    let label = format!("etcd member {} ({})", this.name, member_id_hex(this.id));
    let voters = members.iter().filter(|member| !member.is_learner).count();
    if !this.is_learner && voters == 1 {
        context.warn(format!(
            "{} is the only voting member of its etcd cluster: it is not removed, and the cluster's data in {} goes \
             with this reset",
            this.name,
            data.survey.etcd_data_dir.display()
        ));
        context.record_with_detail(
            label,
            Outcome::Unchanged,
            Some("the only member; the cluster ends with this node".to_owned()),
        );
        return Ok(());
    }
    let reports = survey(client.as_ref()).map_err(|error| {
        PhaseError::failed(format!("cannot check the etcd members' health: {error}"))
    })?;
    if let Some(target) = reports.iter().find(|report| report.raw_id == this.id) {
        check_removal(&reports, target).map_err(|refusal| {
            PhaseError::failed(format!("refusing to remove this node's etcd member: {refusal}"))
                .with_hint(
                    "bring the other members back first, or reset anyway with --skip-phases remove-etcd-member and \
                     remove the member later",
                )
        })?;
    }
    let remaining: Vec<String> = members
        .iter()
        .filter(|member| member.id != this.id)
        .map(|member| member.name.clone())
        .collect();
    if context.host.dry_run {
        context.info(format!(
            "would remove {label} through {endpoints}; {} would remain",
            remaining.join(", ")
        ));
        context.record_with_detail(label, Outcome::Removed, Some("dry run".to_owned()));
        return Ok(());
    }
    // etcd refuses a removal with "unhealthy cluster" until every started member has been connected for a few
    // seconds (its strict reconfiguration check), as happens right after a member joined or restarted.
    let deadline = std::time::Instant::now() + data.etcd_timeout;
    let removed = loop {
        match client.remove_member(this.id) {
            Err(error)
                if error.message.contains("unhealthy cluster")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(500));
            }
            result => break result,
        }
    };
    removed.map_err(|error| {
        PhaseError::failed(format!("cannot remove {label}: {error}")).with_hint(format!(
            "run the reset again, or remove the member {}",
            how_to_remove_later(local)
        ))
    })?;
    context.record_with_detail(
        label,
        Outcome::Removed,
        Some(format!("remaining: {}", remaining.join(", "))),
    );
    Ok(())
}
