//! `kubelet-finalize/enable-client-cert-rotation`: once the kubelet has rotated its client certificate, make
//! `/etc/kubernetes/kubelet.conf` point at `/var/lib/kubelet/pki/kubelet-client-current.pem` instead of the
//! embedded certificate init wrote, so later rotations take effect; restart the kubelet when the file changed
//! (kubeadm's cmd/phases/init/kubeletfinalize.go).

use std::path::{Path, PathBuf};

use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::Outcome;
use crate::init::{live, InitData};
use crate::paths;

/// kubelet.conf with its current user reading the rotated certificate and key from `pem_path`.
pub fn rotated_kubeconfig(kubelet_conf: &[u8], pem_path: &str) -> Result<String, PhaseError> {
    let unusable = |reason: String| {
        PhaseError::failed(format!("{} is unusable: {reason}", paths::KUBELET_CONF))
    };
    let mut kubeconfig = super::parse_kubeconfig(kubelet_conf, paths::KUBELET_CONF)?;
    let user_name = kubeconfig
        .current_user()
        .map(|(name, _)| name.to_owned())
        .ok_or_else(|| unusable("its current context names no user".to_owned()))?;
    for named in &mut kubeconfig.users {
        if named.name == user_name {
            named.user.client_certificate = Some(pem_path.to_owned());
            named.user.client_key = Some(pem_path.to_owned());
            named.user.client_certificate_data = None;
            named.user.client_key_data = None;
        }
    }
    bosun_config::yaml::to_string(&kubeconfig).map_err(|error| unusable(error.to_string()))
}

fn run(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let pem = Path::new(paths::KUBELET_CLIENT_CURRENT);
    if !ctx.host.files.exists(pem)? {
        ctx.warn(format!(
            "{} does not exist yet; kubelet.conf keeps its embedded client certificate",
            paths::KUBELET_CLIENT_CURRENT
        ));
        ctx.record_with_detail(
            paths::KUBELET_CONF,
            Outcome::Unchanged,
            Some("no rotated certificate yet".to_owned()),
        );
        return Ok(());
    }
    let current = super::read_required(ctx, paths::KUBELET_CONF)?;
    let rewritten = rotated_kubeconfig(&current, paths::KUBELET_CLIENT_CURRENT)?;
    let outcome = ctx.ensure_file(Path::new(paths::KUBELET_CONF), rewritten.as_bytes(), 0o600)?;
    if outcome != Outcome::Unchanged {
        ctx.host.services.restart("kubelet")?;
        ctx.info("restarted the kubelet so it reads the rewritten kubelet.conf");
    }
    Ok(())
}

pub fn phase() -> Phase<InitData> {
    live(
        Phase::new(
            "kubelet-finalize",
            "Point the kubelet at its rotated client certificate after the TLS bootstrap",
        )
        .child(live(
            Phase::new(
                "enable-client-cert-rotation",
                "Point kubelet.conf at the kubelet's rotatable client certificate",
            )
            .needs(|_| vec![Artefact::File(PathBuf::from(paths::KUBELET_CONF))])
            .makes(|_| vec![Artefact::File(PathBuf::from(paths::KUBELET_CONF))])
            .run(run),
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_reads_the_rotated_pem_and_loses_embedded_data() {
        let kubelet_conf = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://10.0.0.1:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: system:node:cp-1\n  name: system:node:cp-1@kubernetes\ncurrent-context: system:node:cp-1@kubernetes\nkind: Config\npreferences: {}\nusers:\n- name: system:node:cp-1\n  user:\n    client-certificate-data: Q0VSVA==\n    client-key-data: S0VZ\n";
        let text = rotated_kubeconfig(kubelet_conf.as_bytes(), paths::KUBELET_CLIENT_CURRENT)
            .expect("rewrite");
        let parsed =
            crate::cluster::parse_kubeconfig(text.as_bytes(), "kubelet.conf").expect("parse");
        let user = &parsed.users[0].user;
        assert_eq!(
            user.client_certificate.as_deref(),
            Some(paths::KUBELET_CLIENT_CURRENT)
        );
        assert_eq!(
            user.client_key.as_deref(),
            Some(paths::KUBELET_CLIENT_CURRENT)
        );
        assert!(user.client_certificate_data.is_none() && user.client_key_data.is_none());
        assert_eq!(
            parsed.clusters,
            crate::cluster::parse_kubeconfig(kubelet_conf.as_bytes(), "original")
                .expect("original")
                .clusters
        );
        assert_eq!(
            rotated_kubeconfig(text.as_bytes(), paths::KUBELET_CLIENT_CURRENT).expect("again"),
            text
        );
    }
}
