//! The init workflow's node phases: `preflight`, `etcd/local`, `control-plane/{apiserver,controller-manager,
//! scheduler}`, `kubelet-start` and `container-runtime`. Each is idempotent: it builds what the node should hold,
//! compares, and changes only the difference, reporting every artefact.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bosun_config::Config;

use super::cgroup::{self, CgroupDriver};
use super::facts::{FactRequest, NodeFacts};
use super::manifests::{
    self, EtcdMember, ManifestFacts, CA_CERT_DIRS, ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER,
    KUBE_SCHEDULER,
};
use super::patches::{self, PatchSet};
use super::preflight::{self, PreflightInput, Severity};
use super::runtime::{self, RuntimeKind};
use super::versions::images_for;
use super::{kubelet, NodeError};
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::host::{run_checked, CommandSpec, Host, Outcome, ServiceSpec, ServiceState};
use crate::init::InitData;
use crate::paths::{self, NodePaths};
use crate::render::{StaticPod, Templates};

/// The state artefact the container-runtime phase makes: the runtime configured, running and verified.
pub const RUNTIME_STATE: &str = "container-runtime";
/// The state artefact the kubelet-start phase makes: the kubelet (re)started with its files.
pub const KUBELET_STATE: &str = "kubelet";

fn file(path: impl Into<PathBuf>) -> Artefact {
    Artefact::File(path.into())
}

/// What the binary gathers for the run (src/host/facts.rs `node_facts`), when a phase first needs the facts.
pub fn fact_request(config: &Config) -> FactRequest {
    FactRequest {
        ports: preflight::ports(config),
        sysctls: preflight::SYSCTLS
            .iter()
            .map(|name| (*name).to_owned())
            .collect(),
        hostname: config.node_registration().name.clone(),
    }
}

fn templates(host: &Host, data: &InitData) -> Result<Templates, PhaseError> {
    match &data.templates_dir {
        Some(directory) => Templates::with_overrides(host.files.as_ref(), directory)
            .map_err(|error| PhaseError::from(NodeError::from(error))),
        None => Ok(Templates::embedded()),
    }
}

fn patch_set(host: &Host, config: &Config) -> Result<Option<PatchSet>, NodeError> {
    let directory = config
        .init
        .patches
        .as_ref()
        .map(|patches| patches.directory.clone())
        .filter(|directory| !directory.is_empty());
    match directory {
        Some(directory) => Ok(Some(patches::load(
            host.files.as_ref(),
            Path::new(&directory),
        )?)),
        None => Ok(None),
    }
}

/// The node facts the manifests depend on.
pub fn manifest_facts(
    host: &Host,
    config: &Config,
    node: &NodeFacts,
) -> Result<ManifestFacts, NodeError> {
    let mut existing_ca_dirs = Vec::new();
    for (_, path) in CA_CERT_DIRS {
        if host.files.exists(Path::new(path))? {
            existing_ca_dirs.push(path.to_owned());
        }
    }
    let pki = NodePaths::new(config.cluster.certificates_dir.clone(), "/var/lib/etcd");
    let external_ca =
        host.files.exists(&pki.pki("ca.crt"))? && !host.files.exists(&pki.pki("ca.key"))?;
    Ok(ManifestFacts {
        existing_ca_dirs,
        external_ca,
        proxy_env: node.proxy_env.clone(),
    })
}

/// Renders a static pod and applies the patches for it. The result is checked to parse as YAML.
pub fn render_manifest(
    templates: &Templates,
    pod: &StaticPod,
    patch_set: Option<&PatchSet>,
) -> Result<String, NodeError> {
    let text = templates.render(crate::render::Template::StaticPod, pod)?;
    let rendered = |reason: String| NodeError::Rendered {
        what: format!("manifest of {}", pod.name),
        format: "YAML",
        reason,
    };
    let value =
        bosun_config::yaml::value_from_str(&text).map_err(|error| rendered(error.to_string()))?;
    let Some(set) = patch_set.filter(|set| set.has_target(&pod.name)) else {
        return Ok(text);
    };
    let mut object = serde_json::to_value(&value).map_err(|error| rendered(error.to_string()))?;
    patches::apply(set, &pod.name, &mut object)?;
    Ok(crate::render::to_yaml(&object))
}

/// The restart stamp `bosun certs renew` put in an existing manifest, if any. It is kept when the manifest is
/// written again, so that re-running init does not restart the component a second time.
fn restart_stamp(
    context: &PhaseCtx<'_, InitData>,
    component: &str,
) -> Result<Option<String>, PhaseError> {
    let Some(bytes) = context.host.files.read(&NodePaths::manifest(component))? else {
        return Ok(None);
    };
    let Ok(value) = bosun_config::yaml::value_from_str(&String::from_utf8_lossy(&bytes)) else {
        return Ok(None);
    };
    Ok(value
        .get("metadata")
        .and_then(|metadata| metadata.get("annotations"))
        .and_then(|annotations| annotations.get(crate::certops::renew::RESTART_ANNOTATION))
        .and_then(|stamp| stamp.as_str())
        .map(str::to_owned))
}

fn write_manifest(context: &mut PhaseCtx<'_, InitData>, pod: &StaticPod) -> Result<(), PhaseError> {
    let templates = templates(context.host, context.data)?;
    let patch_set = patch_set(context.host, &context.data.config)?;
    let mut pod = pod.clone();
    if let Some(stamp) = restart_stamp(context, &pod.name)? {
        pod.annotations.push(crate::render::NameValue::new(
            crate::certops::renew::RESTART_ANNOTATION,
            stamp,
        ));
        pod.annotations.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let pod = &pod;
    let text = render_manifest(&templates, pod, patch_set.as_ref())?;
    context
        .host
        .files
        .create_dir_all(Path::new(paths::MANIFESTS_DIR), 0o700)?;
    context.ensure_file(&NodePaths::manifest(&pod.name), text.as_bytes(), 0o600)?;
    Ok(())
}

type PodBuilder = fn(&Config, &ManifestFacts) -> Result<StaticPod, NodeError>;

fn component_phase(
    name: &str,
    summary: &str,
    component: &'static str,
    build: PodBuilder,
    needs: fn(&InitData) -> Vec<Artefact>,
) -> Phase<InitData> {
    Phase::new(name, summary)
        .needs(needs)
        .makes(move |_| vec![file(NodePaths::manifest(component))])
        .run(move |context| {
            let facts =
                manifest_facts(context.host, &context.data.config, context.data.node.get())?;
            let pod = build(&context.data.config, &facts)?;
            write_manifest(context, &pod)
        })
}

fn pki_files(data: &InitData, names: &[&str]) -> Vec<Artefact> {
    names
        .iter()
        .map(|name| file(data.paths.pki(name)))
        .collect()
}

/// `control-plane`: the static pods of the API server, controller-manager and scheduler.
pub fn control_plane_phase() -> Phase<InitData> {
    Phase::new(
        "control-plane",
        "Write the static-pod manifests of kube-apiserver, kube-controller-manager and kube-scheduler",
    )
    .child(component_phase(
        "apiserver",
        "Write the kube-apiserver static-pod manifest",
        KUBE_APISERVER,
        manifests::kube_apiserver,
        |data| {
            let mut needs = pki_files(
                data,
                &[
                    "ca.crt",
                    "apiserver.crt",
                    "apiserver.key",
                    "apiserver-kubelet-client.crt",
                    "apiserver-kubelet-client.key",
                    "front-proxy-ca.crt",
                    "front-proxy-client.crt",
                    "front-proxy-client.key",
                    "sa.key",
                    "sa.pub",
                ],
            );
            if data.config.external_etcd().is_none() {
                needs.extend(pki_files(
                    data,
                    &[
                        "etcd/ca.crt",
                        "apiserver-etcd-client.crt",
                        "apiserver-etcd-client.key",
                    ],
                ));
            }
            needs
        },
    ))
    .child(component_phase(
        "controller-manager",
        "Write the kube-controller-manager static-pod manifest",
        KUBE_CONTROLLER_MANAGER,
        manifests::kube_controller_manager,
        |data| {
            let mut needs = pki_files(data, &["ca.crt", "front-proxy-ca.crt", "sa.key"]);
            needs.push(file(paths::CONTROLLER_MANAGER_CONF));
            needs
        },
    ))
    .child(component_phase(
        "scheduler",
        "Write the kube-scheduler static-pod manifest",
        KUBE_SCHEDULER,
        manifests::kube_scheduler,
        |_| vec![file(paths::SCHEDULER_CONF)],
    ))
}

/// `etcd` with child `local`: the local etcd static pod (skipped for external etcd).
pub fn etcd_phase() -> Phase<InitData> {
    Phase::new(
        "etcd",
        "Write the static-pod manifest of the local etcd member",
    )
    .child(
        Phase::new(
            "local",
            "Generate the static Pod manifest file for a local, single-node local etcd instance",
        )
        .skip_if(|data: &InitData| {
            data.config
                .external_etcd()
                .map(|_| "etcd is external (ClusterConfiguration etcd.external)".to_owned())
        })
        .needs(|data| {
            pki_files(
                data,
                &[
                    "etcd/ca.crt",
                    "etcd/server.crt",
                    "etcd/server.key",
                    "etcd/peer.crt",
                    "etcd/peer.key",
                ],
            )
        })
        .makes(|_| vec![file(NodePaths::manifest(ETCD))])
        .run(|context| {
            let facts =
                manifest_facts(context.host, &context.data.config, context.data.node.get())?;
            let members: &[EtcdMember] = &[];
            let pod = manifests::etcd(&context.data.config, &facts, members)?;
            // etcd refuses a data directory others can read; kubeadm creates it 0700.
            context
                .host
                .files
                .create_dir_all(&context.data.paths.etcd_data_dir, 0o700)?;
            write_manifest(context, &pod)
        }),
    )
}

/// `preflight`: kubeadm's checks, all reported together before anything changes.
pub fn preflight_phase() -> Phase<InitData> {
    Phase::<InitData>::new("preflight", "Check that this host can become a node, before anything changes")
        .long_about(
            "Runs kubeadm's preflight checks (root, CPUs, memory, swap, ports, manifests directory, required programs, \
             container runtime, kernel settings, cgroups, cgroup driver, kubelet version). Errors of the checks named in \
             --ignore-preflight-errors (or all) are reported as warnings.",
        )
        .run(|context: &mut PhaseCtx<'_, InitData>| {
            let data = context.data;
            if !data.node.get().gathered {
                return Err(PhaseError::failed(
                    "preflight has no facts about this host (a defect: the command did not gather them)",
                ));
            }
            let checks = preflight::init_checks(&data.config);
            let input = PreflightInput {
                config: &data.config,
                facts: data.node.get(),
                files: context.host.files.as_ref(),
                commands: context.host.commands.as_ref(),
            };
            let findings = preflight::run_checks(&checks, &input, |name| data.ignores_preflight_error(name))?;
            for finding in findings.iter().filter(|finding| finding.severity == Severity::Warning) {
                let mut text = format!("[WARNING {}]: {}", finding.check, finding.message);
                if let Some(hint) = &finding.hint {
                    text.push_str(&format!(" (hint: {hint})"));
                }
                context.warn(text);
            }
            let errors: Vec<_> = findings
                .iter()
                .filter(|finding| finding.severity == Severity::Error)
                .collect();
            if errors.is_empty() {
                return Ok(());
            }
            let mut hints: Vec<String> = errors
                .iter()
                .filter_map(|finding| finding.hint.as_ref().map(|hint| format!("{}: {hint}", finding.check)))
                .collect();
            hints.push(format!(
                "to go ahead anyway, pass --ignore-preflight-errors={}",
                errors.iter().map(|finding| finding.check.as_str()).collect::<Vec<_>>().join(",")
            ));
            Err(PhaseError::Preflight {
                message: format!(
                    "{} preflight check{} failed: {}",
                    errors.len(),
                    if errors.len() == 1 { "" } else { "s" },
                    errors
                        .iter()
                        .map(|finding| format!("[{}] {}", finding.check, finding.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                hint: Some(hints.join("\n")),
            })
        })
}

fn decided_driver(data: &InitData) -> Result<CgroupDriver, NodeError> {
    let kubelet = &data.config.kubelet;
    cgroup::decide(
        &kubelet.cgroup_driver,
        kubelet.cgroup_driver_set_by_user,
        data.node.get(),
    )
}

fn sandbox_image(config: &Config) -> Result<String, NodeError> {
    let version = config.kubernetes_version()?;
    Ok(format!(
        "{}/pause:{}",
        config.cluster.image_repository.trim_end_matches('/'),
        images_for(&version).pause
    ))
}

fn find_program(host: &Host, name: &str) -> Result<PathBuf, PhaseError> {
    host.commands.find_program(name).ok_or_else(|| {
        PhaseError::failed(format!("{name} is not installed on {}", host.description))
            .with_hint(format!("install {name} (it must be on PATH)"))
    })
}

/// `kubelet-start`: the kubelet's configuration and flags, the drop-in on systemd hosts, and a (re)start.
pub fn kubelet_start_phase() -> Phase<InitData> {
    Phase::new(
        "kubelet-start",
        "Write kubelet settings and (re)start the kubelet",
    )
    // No declared need on the runtime: like kubeadm's, `init phase kubelet-start` runs on its own against a runtime
    // the user set up; in the full workflow container-runtime comes first.
    .makes(|_| {
        vec![
            file(paths::KUBELET_CONFIG),
            file(paths::KUBELET_FLAGS_ENV),
            file(paths::KUBELET_DROP_IN),
            Artefact::State(KUBELET_STATE.to_owned()),
        ]
    })
    .run(|context: &mut PhaseCtx<'_, InitData>| {
        let data = context.data;
        let host = context.host;
        let templates = templates(host, data)?;
        let driver = decided_driver(data)?;
        let effective = kubelet::effective_configuration(&data.config, driver, data.node.get());
        let patch_set = patch_set(host, &data.config)?;
        let config_text = kubelet::config_file(&templates, &effective, patch_set.as_ref())?;
        let flags = kubelet::flags(
            &data.config,
            &data.config.node_registration().cri_socket,
            data.node.get(),
        );
        let flags_text = kubelet::flags_file(&templates, flags)?;
        let binary = find_program(host, "kubelet")?;
        let mut changed = false;
        changed |= context.ensure_file(
            Path::new(paths::KUBELET_CONFIG),
            config_text.as_bytes(),
            0o644,
        )? != Outcome::Unchanged;
        changed |= context.ensure_file(
            Path::new(paths::KUBELET_FLAGS_ENV),
            flags_text.as_bytes(),
            0o644,
        )? != Outcome::Unchanged;
        if host.services.backend() == "systemd" {
            let drop_in = kubelet::drop_in(&templates, &binary)?;
            let outcome = context.ensure_file(
                Path::new(paths::KUBELET_DROP_IN),
                drop_in.as_bytes(),
                0o644,
            )?;
            if outcome != Outcome::Unchanged {
                run_checked(
                    host.commands.as_ref(),
                    &CommandSpec::new("systemctl").arg("daemon-reload"),
                )?;
                changed = true;
            }
        }
        let spec = kubelet::service(&binary);
        let installed = host.services.install(&spec)?;
        changed |= installed != Outcome::Unchanged;
        let running = host.services.state(kubelet::KUBELET_SERVICE)? == ServiceState::Active;
        if changed || !running {
            context.info(format!(
                "(re)starting the kubelet through {}",
                host.services.backend()
            ));
            host.services.restart(kubelet::KUBELET_SERVICE)?;
            context.record_with_detail(
                "service kubelet",
                if running {
                    Outcome::Updated
                } else {
                    Outcome::Created
                },
                Some(format!("restarted ({} cgroup driver)", driver)),
            );
        } else {
            context.record_with_detail(
                "service kubelet",
                Outcome::Unchanged,
                Some("running with these settings".to_owned()),
            );
        }
        Ok(())
    })
}

/// The files the container-runtime phase writes for a configuration.
fn runtime_files(config: &Config) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match RuntimeKind::of_socket(&config.node_registration().cri_socket) {
        RuntimeKind::Containerd => files.push(PathBuf::from(runtime::CONTAINERD_CONFIG)),
        RuntimeKind::Crio => files.push(PathBuf::from(runtime::CRIO_DROP_IN)),
        RuntimeKind::CriDockerd | RuntimeKind::Other => {}
    }
    files.extend(
        [
            runtime::CRICTL_CONFIG,
            runtime::SYSCTL_FILE,
            runtime::MODULES_FILE,
        ]
        .map(PathBuf::from),
    );
    files
}

/// The service definition bosun installs for containerd where none exists (the process supervisor).
fn containerd_service(binary: &Path) -> ServiceSpec {
    ServiceSpec {
        name: "containerd".to_owned(),
        description: "containerd container runtime".to_owned(),
        command: CommandSpec::new(binary.display().to_string())
            .args(["--config", runtime::CONTAINERD_CONFIG]),
        environment_files: Vec::new(),
        restart_after_seconds: 5,
    }
}

/// Asks a running containerd over its socket whether the CRI plugin loaded, waiting up to `timeout` for it to
/// answer. Returns the plugin's status line.
pub fn verify_containerd(
    host: &Host,
    socket: &str,
    timeout: Duration,
) -> Result<String, NodeError> {
    let address = runtime::socket_path(socket);
    let deadline = Instant::now() + timeout;
    let plugins = loop {
        let output = host.commands.run(
            &CommandSpec::new("ctr")
                .args(["--address", &address, "plugins", "ls"])
                .read_only(),
        )?;
        if output.success() {
            break String::from_utf8_lossy(&output.stdout).into_owned();
        }
        if Instant::now() >= deadline {
            return Err(NodeError::Invalid {
                what: format!("containerd at {socket}"),
                reason: format!(
                    "it does not answer after {}s: {}",
                    timeout.as_secs(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let line = plugins
        .lines()
        .find(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words.get(1).is_some_and(|id| *id == "cri")
                && words
                    .first()
                    .is_some_and(|kind| kind.starts_with("io.containerd.grpc.v1"))
        })
        .ok_or_else(|| NodeError::Invalid {
            what: format!("containerd at {socket}"),
            reason: "it has no CRI plugin; the kubelet cannot use it".to_owned(),
        })?;
    if line.split_whitespace().last() != Some("ok") {
        return Err(NodeError::Invalid {
            what: format!("containerd at {socket}"),
            reason: format!(
                "its CRI plugin did not load ({}); see containerd's log",
                line.trim()
            ),
        });
    }
    Ok(line.trim().to_owned())
}

/// `container-runtime`: the runtime's configuration (cgroup driver, sandbox image, CNI directories), crictl's
/// configuration and the kernel settings; restarts the runtime when its configuration changed and confirms over its
/// socket that it loaded.
pub fn container_runtime_phase() -> Phase<InitData> {
    Phase::new("container-runtime", "Configure the container runtime and the kernel settings Kubernetes needs")
        .makes(|data: &InitData| {
            let mut makes: Vec<Artefact> = runtime_files(&data.config).into_iter().map(Artefact::File).collect();
            makes.push(Artefact::State(RUNTIME_STATE.to_owned()));
            makes
        })
        .run(|context: &mut PhaseCtx<'_, InitData>| {
            let data = context.data;
            let host = context.host;
            let config = &data.config;
            let templates = templates(host, data)?;
            let driver = decided_driver(data)?;
            let socket = config.node_registration().cri_socket.clone();
            let kind = RuntimeKind::of_socket(&socket);
            let sandbox = sandbox_image(config)?;
            // Render every file before writing any, so that a broken template override changes nothing.
            let crictl = runtime::crictl_config(&templates, &socket)?;
            let ipv6 = config
                .service_subnets()
                .map(|subnets| subnets.iter().any(|net| net.addr().is_ipv6()))
                .unwrap_or(false);
            let sysctl = runtime::sysctl_file(&templates, ipv6)?;
            let modules = runtime::modules_file(&templates)?;
            let mut runtime_changed = false;
            match kind {
                RuntimeKind::Containerd => {
                    let binary = find_program(host, "containerd")?;
                    let output = run_checked(
                        host.commands.as_ref(),
                        &CommandSpec::new("containerd").arg("--version").read_only(),
                    )?;
                    let version_text = String::from_utf8_lossy(&output.stdout).into_owned();
                    let (major, _) = runtime::parse_containerd_version(&version_text).ok_or_else(|| {
                        PhaseError::failed(format!("cannot read containerd's version from {:?}", version_text.trim()))
                    })?;
                    let existing = host
                        .files
                        .read(Path::new(runtime::CONTAINERD_CONFIG))?
                        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
                    let text = runtime::containerd_config_file(
                        &templates,
                        runtime::containerd_template(major),
                        &runtime::containerd_context(&socket, &sandbox, driver),
                        existing.as_deref(),
                    )?;
                    runtime_changed |= context.ensure_file(Path::new(runtime::CONTAINERD_CONFIG), text.as_bytes(), 0o644)?
                        != Outcome::Unchanged;
                    if host.services.state("containerd")? == ServiceState::Unknown {
                        runtime_changed |= host.services.install(&containerd_service(&binary))? != Outcome::Unchanged;
                    }
                }
                RuntimeKind::Crio => {
                    let text = runtime::crio_drop_in(&templates, &sandbox, driver)?;
                    runtime_changed |= context.ensure_file(Path::new(runtime::CRIO_DROP_IN), text.as_bytes(), 0o644)?
                        != Outcome::Unchanged;
                }
                RuntimeKind::CriDockerd | RuntimeKind::Other => context.warn(format!(
                    "bosun does not configure {} at {socket}; make sure it uses the {driver} cgroup driver and {sandbox}",
                    kind.name()
                )),
            }
            context.ensure_file(Path::new(runtime::CRICTL_CONFIG), crictl.as_bytes(), 0o644)?;
            context.ensure_file(Path::new(runtime::SYSCTL_FILE), sysctl.as_bytes(), 0o644)?;
            context.ensure_file(Path::new(runtime::MODULES_FILE), modules.as_bytes(), 0o644)?;

            let Some(service) = kind.service() else {
                return Ok(());
            };
            let running = host.services.state(service)? == ServiceState::Active;
            if runtime_changed || !running {
                context.info(format!("(re)starting {service} through {}", host.services.backend()));
                host.services.restart(service)?;
            }
            if host.dry_run {
                context.record_with_detail(format!("service {service}"), Outcome::Unchanged, Some("dry run: not verified".to_owned()));
                return Ok(());
            }
            let detail = match kind {
                RuntimeKind::Containerd => verify_containerd(host, &socket, Duration::from_secs(30))?,
                _ => format!("{service} restarted"),
            };
            context.record_with_detail(
                format!("service {service}"),
                if runtime_changed || !running { Outcome::Updated } else { Outcome::Unchanged },
                Some(detail),
            );
            Ok(())
        })
}

#[cfg(test)]
mod tests;
