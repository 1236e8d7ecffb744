//! `wait-control-plane`: wait until the kubelet and every control-plane component report healthy, as kubeadm does
//! after kubelet-start: the kubelet's `/healthz` first (`timeouts.kubeletHealthCheck`), then, within
//! `timeouts.controlPlaneComponentHealthCheck`, kube-apiserver `/livez` on the advertise address,
//! kube-controller-manager `/healthz` and kube-scheduler `/livez` on the address and port their manifests give.
//! Components serve self-signed certificates, so these GETs do not verify TLS; they read only health.
//!
//! On a timeout the error names the component that is not healthy, its last answer, and the end of its log.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::cluster::ClusterConnector;
use crate::init::{live, InitData};
use crate::paths::{self, NodePaths};

/// One health endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub component: &'static str,
    pub url: String,
}

/// The value of `--flag=value` in a static-pod manifest's command, if present.
pub fn manifest_flag(manifest: &str, flag: &str) -> Option<String> {
    let prefix = format!("--{flag}=");
    manifest.lines().find_map(|line| {
        let item = line
            .trim()
            .trim_start_matches("- ")
            .trim()
            .trim_matches('"')
            .trim_matches('\'');
        item.strip_prefix(&prefix).map(str::to_owned)
    })
}

fn host_for_url(address: &str) -> String {
    let address = match address {
        "" | "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        other => other,
    };
    if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    }
}

/// The component checks, reading the controller-manager's and scheduler's address and port from their manifests.
pub fn component_checks(
    data: &InitData,
    manifest: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Check>, PhaseError> {
    let advertise = data
        .config
        .advertise_address()
        .map_err(|error| PhaseError::failed(error.to_string()))?;
    let apiserver = format!(
        "https://{}:{}/livez",
        host_for_url(&advertise.to_string()),
        data.config.bind_port()
    );
    let mut checks = vec![Check {
        component: "kube-apiserver",
        url: apiserver,
    }];
    for (component, default_port, path) in [
        ("kube-controller-manager", "10257", "healthz"),
        ("kube-scheduler", "10259", "livez"),
    ] {
        let text = manifest(component).unwrap_or_default();
        let address = manifest_flag(&text, "bind-address").unwrap_or_default();
        let port = manifest_flag(&text, "secure-port").unwrap_or_else(|| default_port.to_owned());
        checks.push(Check {
            component,
            url: format!("https://{}:{port}/{path}", host_for_url(&address)),
        });
    }
    Ok(checks)
}

/// The kubelet's health URL.
pub fn kubelet_check(data: &InitData) -> Check {
    let kubelet = &data.config.kubelet;
    let address = if kubelet.healthz_bind_address.is_empty() {
        bosun_config::defaults::DEFAULT_KUBELET_HEALTHZ_ADDRESS.to_owned()
    } else {
        kubelet.healthz_bind_address.clone()
    };
    let port = kubelet
        .healthz_port
        .unwrap_or(bosun_config::defaults::DEFAULT_KUBELET_HEALTHZ_PORT);
    Check {
        component: "kubelet",
        url: format!("http://{}:{port}/healthz", host_for_url(&address)),
    }
}

/// The last lines of a component's container log (`/var/log/pods/kube-system_<component>-…/<component>/*.log`), or
/// of the kubelet's log under the process backend.
fn last_log_lines(ctx: &PhaseCtx<'_, InitData>, component: &str, lines: usize) -> Option<String> {
    let files = ctx.host.files.as_ref();
    let log_file: Option<PathBuf> = if component == "kubelet" {
        Some(PathBuf::from("/var/log/bosun/kubelet.log"))
    } else {
        let prefix = format!("kube-system_{component}-");
        files
            .list_dir(Path::new("/var/log/pods"))
            .ok()?
            .into_iter()
            .filter(|pod| {
                pod.file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with(&prefix))
            })
            .filter_map(|pod| files.list_dir(&pod.join(component)).ok())
            .flatten()
            .max()
    };
    let bytes = files.read(&log_file?).ok()??;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    let tail = all[all.len().saturating_sub(lines)..].join("\n");
    (!tail.is_empty()).then_some(tail)
}

fn healthy(connector: &dyn ClusterConnector, check: &Check) -> Result<(), String> {
    match connector.probe(&check.url, Duration::from_secs(5)) {
        Ok(answer) if answer.status == 200 => Ok(()),
        Ok(answer) => Err(format!("HTTP {}: {}", answer.status, answer.body.trim())),
        Err(error) => Err(error.to_string()),
    }
}

fn wait_for(
    ctx: &PhaseCtx<'_, InitData>,
    connector: &dyn ClusterConnector,
    checks: &[Check],
    timeout: Duration,
    setting: &str,
) -> Result<(), PhaseError> {
    let deadline = Instant::now() + timeout;
    let total = checks.len() as u64;
    let mut pending: Vec<&Check> = checks.iter().collect();
    let mut last_problem = String::new();
    loop {
        let mut still = Vec::new();
        for check in pending {
            match healthy(connector, check) {
                Ok(()) => ctx.info(format!("{} is healthy ({})", check.component, check.url)),
                Err(problem) => {
                    last_problem = problem;
                    still.push(check);
                }
            }
        }
        pending = still;
        let done = total - pending.len() as u64;
        ctx.progress(done, total, "components healthy");
        let Some(first) = pending.first() else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            let mut message = format!(
                "{} is not healthy after {}s: {} answered {last_problem}",
                first.component,
                timeout.as_secs(),
                first.url
            );
            if let Some(tail) = last_log_lines(ctx, first.component, 10) {
                message.push_str(&format!("\nlast lines of its log:\n{tail}"));
            }
            let others: Vec<&str> = pending[1..].iter().map(|check| check.component).collect();
            if !others.is_empty() {
                message.push_str(&format!("\nalso not healthy: {}", others.join(", ")));
            }
            return Err(PhaseError::failed(message).with_hint(format!(
                "check the component's static-pod manifest in {} and its container (`crictl ps -a`); \
                 a slower machine may need a longer {setting}",
                paths::MANIFESTS_DIR
            )));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn run(ctx: &mut PhaseCtx<'_, InitData>) -> Result<(), PhaseError> {
    let timeouts = ctx.data.config.init_timeouts();
    let kubelet_timeout = timeouts
        .kubelet_health_check
        .map(|value| value.as_std())
        .unwrap_or(Duration::from_secs(240));
    let component_timeout = timeouts
        .control_plane_component_health_check
        .map(|value| value.as_std())
        .unwrap_or(Duration::from_secs(240));
    let files = ctx.host.files.as_ref();
    let read_manifest = |component: &str| -> Option<String> {
        let bytes = files.read(&NodePaths::manifest(component)).ok()??;
        String::from_utf8(bytes).ok()
    };
    let checks = component_checks(ctx.data, &read_manifest)?;
    let kubelet = kubelet_check(ctx.data);
    if ctx.host.dry_run {
        ctx.info(format!(
            "would wait up to {}s for {}",
            kubelet_timeout.as_secs(),
            kubelet.url
        ));
        for check in &checks {
            ctx.info(format!(
                "would wait up to {}s for {}",
                component_timeout.as_secs(),
                check.url
            ));
        }
        return Ok(());
    }
    let connector = ctx.data.cluster.connector.clone().ok_or_else(|| {
        PhaseError::failed("wait-control-plane needs an HTTP client, but this run has none")
    })?;
    wait_for(
        ctx,
        connector.as_ref(),
        &[kubelet],
        kubelet_timeout,
        "timeouts.kubeletHealthCheck",
    )?;
    wait_for(
        ctx,
        connector.as_ref(),
        &checks,
        component_timeout,
        "timeouts.controlPlaneComponentHealthCheck",
    )
}

pub fn phase() -> Phase<InitData> {
    live(
        Phase::new(
            "wait-control-plane",
            "Wait for the kubelet and the control-plane components to be healthy",
        )
        .needs(|_| {
            [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
            ]
            .iter()
            .map(|component| Artefact::File(NodePaths::manifest(component)))
            .collect()
        })
        .run(run),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_read_from_manifest_commands() {
        let manifest = "spec:\n  containers:\n  - command:\n    - kube-scheduler\n    - --bind-address=127.0.0.1\n    - --secure-port=10300\n";
        assert_eq!(
            manifest_flag(manifest, "bind-address").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            manifest_flag(manifest, "secure-port").as_deref(),
            Some("10300")
        );
        assert_eq!(manifest_flag(manifest, "port"), None);
    }

    #[test]
    fn checks_use_manifest_ports_and_the_advertise_address() {
        let data = crate::cluster::test_data();
        let manifests = |component: &str| {
            (component == "kube-scheduler")
                .then(|| "    - --secure-port=10300\n    - --bind-address=0.0.0.0\n".to_owned())
        };
        let checks = component_checks(&data, &manifests).expect("checks");
        let urls: Vec<&str> = checks.iter().map(|check| check.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "https://10.0.0.5:6443/livez",
                "https://127.0.0.1:10257/healthz",
                "https://127.0.0.1:10300/livez",
            ]
        );
        assert_eq!(kubelet_check(&data).url, "http://127.0.0.1:10248/healthz");
    }
}
