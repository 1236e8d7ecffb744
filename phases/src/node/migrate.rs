//! `bosun node cgroup-driver systemd|cgroupfs`: moves an existing node's kubelet and container runtime to another
//! cgroup driver, in the order of Kubernetes' "Migrating to the systemd driver" task, one node per run.
//!
//! Steps (phases of the `cgroup-driver` workflow, in order):
//! 1. `drain` — cordon the Node and evict its pods (not DaemonSet or mirror pods), as `kubectl drain
//!    --ignore-daemonsets` does.
//! 2. `stop-kubelet`, 3. `stop-runtime` — through the service backend (systemd, or bosun's process supervisor).
//! 4. `switch-runtime` — containerd's `SystemdCgroup` in the default runtime's options (`/etc/containerd/config.toml`),
//!    or `cgroup_manager` in CRI-O's drop-in (`/etc/crio/crio.conf.d/10-bosun.conf`); nothing else in the file changes.
//! 5. `switch-kubelet` — `cgroupDriver` in `/var/lib/kubelet/config.yaml`.
//! 6. `kubelet-config-map` — `cgroupDriver` in ConfigMap `kube-system/kubelet-config`, so nodes joining later get it.
//! 7. `start-runtime` — and ask it over its socket that it serves the CRI again.
//! 8. `start-kubelet`, 9. `wait-ready` — the Node is Ready with a heartbeat from the restarted kubelet.
//! 10. `uncordon` — only if this migration cordoned the node.
//!
//! Steps 1, 6, 9 and 10 need the API server (the cluster's admin kubeconfig); with `--no-drain`, without a
//! kubeconfig, or when the API server does not answer, they are skipped and the run says so.
//!
//! Guarantees: nothing changes before the checks in [`prepare`] pass: the target driver fits the host (systemd only
//! where systemd is PID 1, cgroupfs only where it is not), bosun can switch the runtime, and the selected steps
//! switch the kubelet and the runtime together. Each completed step is recorded in
//! `/var/lib/bosun/cgroup-driver-migration.json` ([`state`]) before the next one starts.
//! Assumptions: safe to re-run after a failure or interruption — a re-run continues at the step that did not
//! complete and never repeats an earlier one; a node already on the target driver with no migration in progress is
//! left untouched (every phase skipped).
//! Caveats: pods that are not evicted (DaemonSet pods, static pods) are restarted by the kubelet with the new driver;
//! on a single control-plane node the API server is one of them and is briefly away while `wait-ready` polls.

pub mod drain;
pub mod edit;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::cgroup::{host_driver, CgroupDriver};
use super::facts::{CgroupVersion, NodeFacts};
use super::kubelet::KUBELET_SERVICE;
use super::runtime::{self, RuntimeKind};
use super::NodeError;
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError, Workflow};
use crate::host::cluster::{ClusterApi, ClusterConnector, ClusterError};
use crate::host::{Files, Outcome, ServiceState};
use crate::paths;
use state::{MigrationState, STATE_PATH};

/// The workflow's name (journal, events).
pub const WORKFLOW: &str = "cgroup-driver";

/// The steps, in order. A step is behind the progress once it or any later step completed.
pub const STEPS: [&str; 10] = [
    DRAIN,
    STOP_KUBELET,
    STOP_RUNTIME,
    SWITCH_RUNTIME,
    SWITCH_KUBELET,
    CONFIG_MAP,
    START_RUNTIME,
    START_KUBELET,
    WAIT_READY,
    UNCORDON,
];
pub const DRAIN: &str = "drain";
pub const STOP_KUBELET: &str = "stop-kubelet";
pub const STOP_RUNTIME: &str = "stop-runtime";
pub const SWITCH_RUNTIME: &str = "switch-runtime";
pub const SWITCH_KUBELET: &str = "switch-kubelet";
pub const CONFIG_MAP: &str = "kubelet-config-map";
pub const START_RUNTIME: &str = "start-runtime";
pub const START_KUBELET: &str = "start-kubelet";
pub const WAIT_READY: &str = "wait-ready";
pub const UNCORDON: &str = "uncordon";
/// The steps that need the API server.
pub const CLUSTER_STEPS: [&str; 4] = [DRAIN, CONFIG_MAP, WAIT_READY, UNCORDON];

/// The node's container runtime as far as its cgroup driver goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDriver {
    pub kind: RuntimeKind,
    /// The CRI socket the kubelet uses.
    pub socket: String,
    /// The driver its configuration selects; `None` for a runtime bosun does not configure.
    pub driver: Option<CgroupDriver>,
    /// The file(s) the driver was read from.
    pub source: String,
    /// Where containerd listens (its `[grpc] address`, which may differ from the kubelet's socket path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// What the node uses now: the host's init system, the kubelet's configuration, the runtime's configuration, and the
/// migration state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The driver the host calls for (systemd where systemd is PID 1).
    pub host: CgroupDriver,
    pub systemd_is_init: bool,
    pub cgroup_version: CgroupVersion,
    pub kubelet: CgroupDriver,
    pub kubelet_source: String,
    pub runtime: RuntimeDriver,
    /// Whether the kubelet and the runtime are configured alike.
    pub agree: bool,
    pub migration: Option<MigrationState>,
}

fn read_text(files: &dyn Files, path: &str) -> Result<Option<String>, NodeError> {
    Ok(files
        .read(Path::new(path))?
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
}

/// The value of `--name=value` in `kubeadm-flags.env`, if the file sets it.
pub fn kubelet_flag(flags_env: &str, name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    flags_env
        .split(|c: char| c.is_whitespace() || c == '"')
        .find_map(|word| word.strip_prefix(&prefix).map(str::to_owned))
}

/// Reads the drivers the node is configured with. `cri_socket` overrides the kubelet's
/// `--container-runtime-endpoint` (from `kubeadm-flags.env`), which overrides kubeadm's socket detection.
pub fn inspect(
    files: &dyn Files,
    facts: &NodeFacts,
    cri_socket: Option<&str>,
) -> Result<Inspection, NodeError> {
    let kubelet_text = read_text(files, paths::KUBELET_CONFIG)?.ok_or_else(|| NodeError::Invalid {
        what: paths::KUBELET_CONFIG.to_owned(),
        reason: "it does not exist, so this host is not a node bosun or kubeadm set up (run `bosun init` or `bosun join` first)".to_owned(),
    })?;
    let kubelet = edit::kubelet_driver(&kubelet_text, paths::KUBELET_CONFIG)?;
    let flags = read_text(files, paths::KUBELET_FLAGS_ENV)?.unwrap_or_default();
    let socket = match cri_socket
        .map(str::to_owned)
        .or_else(|| kubelet_flag(&flags, "container-runtime-endpoint"))
    {
        Some(socket) => socket,
        None => runtime::detect_socket(files)?,
    };
    let kind = RuntimeKind::of_socket(&socket);
    let runtime = match kind {
        RuntimeKind::Containerd => {
            let text = read_text(files, runtime::CONTAINERD_CONFIG)?.ok_or_else(|| {
                NodeError::Invalid {
                    what: runtime::CONTAINERD_CONFIG.to_owned(),
                    reason: "it does not exist; `bosun init phase container-runtime` writes it"
                        .to_owned(),
                }
            })?;
            let (driver, _) = runtime::containerd_settings(&text)?;
            let address = text
                .parse::<toml_edit::DocumentMut>()
                .ok()
                .and_then(|document| {
                    document
                        .get("grpc")?
                        .get("address")?
                        .as_str()
                        .map(str::to_owned)
                });
            RuntimeDriver {
                kind,
                socket: socket.clone(),
                driver: Some(driver),
                source: runtime::CONTAINERD_CONFIG.to_owned(),
                address: address.or_else(|| Some(runtime::socket_path(&socket))),
            }
        }
        RuntimeKind::Crio => {
            let mut texts = Vec::new();
            if let Some(text) = read_text(files, runtime::CRIO_CONFIG)? {
                texts.push((PathBuf::from(runtime::CRIO_CONFIG), text));
            }
            for path in files.list_dir(Path::new(runtime::CRIO_DROP_IN_DIR))? {
                if path
                    .extension()
                    .is_some_and(|extension| extension == "conf")
                {
                    if let Some(text) = read_text(files, &path.display().to_string())? {
                        texts.push((path, text));
                    }
                }
            }
            RuntimeDriver {
                kind,
                socket,
                driver: Some(runtime::crio_cgroup_driver(&texts)?),
                source: format!(
                    "{} and {}/*.conf",
                    runtime::CRIO_CONFIG,
                    runtime::CRIO_DROP_IN_DIR
                ),
                address: None,
            }
        }
        RuntimeKind::CriDockerd | RuntimeKind::Other => RuntimeDriver {
            kind,
            socket,
            driver: None,
            source: "not read (bosun does not configure this runtime)".to_owned(),
            address: None,
        },
    };
    Ok(Inspection {
        host: host_driver(facts),
        systemd_is_init: facts.systemd_is_init,
        cgroup_version: facts.cgroup_version,
        kubelet,
        kubelet_source: paths::KUBELET_CONFIG.to_owned(),
        agree: runtime.driver == Some(kubelet),
        runtime,
        migration: state::read(files)?,
    })
}

/// The Node object's name: the kubelet's `--hostname-override` in `kubeadm-flags.env`, else the hostname.
pub fn node_name(files: &dyn Files, hostname: &str) -> Result<String, NodeError> {
    let flags = read_text(files, paths::KUBELET_FLAGS_ENV)?.unwrap_or_default();
    Ok(kubelet_flag(&flags, "hostname-override").unwrap_or_else(|| hostname.to_owned()))
}

/// Connects to the API server for the cluster steps. The inner `Err` is why they are skipped (no kubeconfig, an API
/// server that does not answer); the outer error stops the run before anything changes (the cluster has no such
/// Node, so the migration would drain nothing and wait for nothing).
pub fn connect_cluster(
    connector: &dyn ClusterConnector,
    kubeconfig: Option<(Vec<u8>, String)>,
    node: &str,
) -> Result<Result<Box<dyn ClusterApi>, String>, NodeError> {
    let Some((bytes, origin)) = kubeconfig else {
        return Ok(Err(format!(
            "no admin kubeconfig ({} does not exist and --kubeconfig is not given)",
            paths::ADMIN_CONF
        )));
    };
    let api = match connector.connect(&bytes, &origin) {
        Ok(api) => api,
        Err(error) => return Ok(Err(error.to_string())),
    };
    match api.get_path("/version") {
        Ok(answer) if answer.status == 200 => {}
        Ok(answer) => {
            return Ok(Err(format!(
                "the API server {} answers /version with HTTP {}: {}",
                api.server(),
                answer.status,
                answer.body.trim()
            )))
        }
        Err(error) => return Ok(Err(error.to_string())),
    }
    match drain::get_node(api.as_ref(), node) {
        Ok(_) => Ok(Ok(api)),
        Err(ClusterError::Invalid { reason }) => Err(refuse(
            reason,
            "pass the node's name with --node-name (see `kubectl get nodes`)",
        )),
        Err(error) => Ok(Err(error.to_string())),
    }
}

/// What a run was asked to do besides the target.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Node object's name.
    pub node_name: String,
    /// `--skip-phases`, as given.
    pub skip: Vec<String>,
    pub drain: drain::DrainOptions,
    pub drain_timeout: Duration,
    pub ready_timeout: Duration,
    pub runtime_timeout: Duration,
}

/// Everything the migration's phases read.
pub struct MigrateData {
    pub target: CgroupDriver,
    pub inspection: Inspection,
    pub options: Options,
    /// The API server, connected with the cluster's admin kubeconfig; `None` with the reason in `cluster_skipped`.
    pub cluster: Option<Box<dyn ClusterApi>>,
    pub cluster_skipped: Option<String>,
    /// Why nothing is to be done (the node is on the target driver and no migration is in progress).
    pub noop: Option<String>,
    state: Mutex<MigrationState>,
}

fn refuse(message: String, hint: impl Into<String>) -> NodeError {
    NodeError::CgroupDriver {
        message,
        hint: hint.into(),
    }
}

fn stamp(time: SystemTime) -> String {
    OffsetDateTime::from(time)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Checks that the migration may run and builds its data; `cluster` connects to the API server (see
/// [`connect_cluster`]) unless there is nothing to do. Refuses, before anything changes: a target that does not fit
/// the host, a runtime bosun cannot switch, phases skipped so that the kubelet and the runtime would end up on
/// different drivers, and a different migration still in progress.
pub fn prepare(
    target: CgroupDriver,
    inspection: Inspection,
    options: Options,
    cluster: impl FnOnce() -> Result<Result<Box<dyn ClusterApi>, String>, NodeError>,
    hostname: &str,
    now: SystemTime,
) -> Result<MigrateData, NodeError> {
    let on = if hostname.is_empty() {
        "this host".to_owned()
    } else {
        format!("host {hostname}")
    };
    if target != inspection.host {
        let message = match target {
            CgroupDriver::Systemd => format!(
                "cannot switch to the systemd cgroup driver: systemd is not PID 1 on {on}, so there is no systemd for \
                 the kubelet and the container runtime to ask for pod cgroups"
            ),
            CgroupDriver::Cgroupfs => format!(
                "cannot switch to the cgroupfs cgroup driver: systemd is PID 1 on {on} and would manage the same \
                 cgroup tree as the kubelet, which makes nodes unstable under resource pressure"
            ),
        };
        return Err(refuse(
            message,
            format!(
                "this host calls for {}; nothing was changed",
                inspection.host
            ),
        ));
    }
    if inspection.runtime.driver.is_none() {
        return Err(refuse(
            format!(
                "bosun cannot switch the cgroup driver of {} at {}; switching only the kubelet would make it disagree with \
                 the runtime",
                inspection.runtime.kind.name(),
                inspection.runtime.socket
            ),
            format!("set the runtime's cgroup driver to {target} yourself, then set cgroupDriver in {}", paths::KUBELET_CONFIG),
        ));
    }
    let skipped = |name: &str| {
        options
            .skip
            .iter()
            .any(|skip| skip.trim().trim_matches('/').eq_ignore_ascii_case(name))
    };
    if skipped(SWITCH_RUNTIME) != skipped(SWITCH_KUBELET) {
        let (kept, left) = if skipped(SWITCH_RUNTIME) {
            (SWITCH_KUBELET, SWITCH_RUNTIME)
        } else {
            (SWITCH_RUNTIME, SWITCH_KUBELET)
        };
        return Err(refuse(
            format!(
                "--skip-phases leaves out {left} but not {kept}: the kubelet and the container runtime would use \
                 different cgroup drivers and pods would fail to start"
            ),
            format!("skip both {SWITCH_RUNTIME} and {SWITCH_KUBELET}, or neither"),
        ));
    }
    let active = inspection
        .migration
        .clone()
        .filter(MigrationState::in_progress);
    if let Some(active) = &active {
        if active.target_driver() != Some(target) {
            return Err(refuse(
                format!(
                    "a migration of this node to {} is in progress ({} records it, last completed step: {})",
                    active.target,
                    STATE_PATH,
                    active.completed.last().map(String::as_str).unwrap_or("none")
                ),
                format!("finish it first with `bosun node cgroup-driver {}`", active.target),
            ));
        }
    }
    let noop = (active.is_none()
        && inspection.kubelet == target
        && inspection.runtime.driver == Some(target))
    .then(|| {
        format!(
            "the kubelet and {} already use the {target} cgroup driver",
            inspection.runtime.kind.name()
        )
    });
    let state = active.unwrap_or_else(|| MigrationState {
        target: target.as_str().to_owned(),
        kubelet_before: inspection.kubelet.as_str().to_owned(),
        runtime_before: inspection
            .runtime
            .driver
            .map(CgroupDriver::as_str)
            .unwrap_or_default()
            .to_owned(),
        node: options.node_name.clone(),
        started: stamp(now),
        completed: Vec::new(),
        skipped: Vec::new(),
        cordoned_by_bosun: false,
        kubelet_started: None,
        finished: None,
    });
    // A run with nothing to do does not ask the API server anything.
    let connection = match &noop {
        Some(reason) => Err(reason.clone()),
        None => cluster()?,
    };
    let (cluster, cluster_skipped) = match connection {
        Ok(api) => (Some(api), None),
        Err(reason) => (None, Some(reason)),
    };
    Ok(MigrateData {
        target,
        inspection,
        options,
        cluster,
        cluster_skipped,
        noop,
        state: Mutex::new(state),
    })
}

impl MigrateData {
    fn state(&self) -> MutexGuard<'_, MigrationState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The migration state as the run leaves it (for reports).
    pub fn current_state(&self) -> MigrationState {
        self.state().clone()
    }

    fn runtime_service(&self) -> Result<&'static str, PhaseError> {
        self.inspection.runtime.kind.service().ok_or_else(|| {
            PhaseError::failed(format!(
                "{} has no service bosun knows",
                self.inspection.runtime.kind.name()
            ))
        })
    }

    /// The runtime's configuration file this migration edits.
    pub fn runtime_file(&self) -> Option<&'static str> {
        match self.inspection.runtime.kind {
            RuntimeKind::Containerd => Some(runtime::CONTAINERD_CONFIG),
            RuntimeKind::Crio => Some(runtime::CRIO_DROP_IN),
            RuntimeKind::CriDockerd | RuntimeKind::Other => None,
        }
    }

    fn api(&self) -> Result<&dyn ClusterApi, PhaseError> {
        self.cluster.as_deref().ok_or_else(|| {
            PhaseError::failed("this step needs the API server, but the run has no connection (a defect: it should have been skipped)")
        })
    }
}

type StepFn = fn(&mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError>;

/// Records the progress; reported only when it changed. A dry run records nothing (its steps change nothing).
fn save(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    if ctx.host.dry_run {
        return Ok(());
    }
    let bytes = ctx.data.state().to_json();
    let path = Path::new(STATE_PATH);
    ctx.check_declared(path)?;
    let outcome = crate::host::ensure_file(ctx.host.files.as_ref(), path, &bytes, 0o644)?;
    if outcome != Outcome::Unchanged {
        ctx.record_with_detail(STATE_PATH, outcome, Some("migration progress".to_owned()));
    }
    Ok(())
}

fn no_api(data: &MigrateData) -> Option<String> {
    data.cluster_skipped.clone()
}

/// One step: skipped for a no-op run, passed over when an earlier run got beyond it, recorded when it completes.
fn step(
    name: &'static str,
    summary: &'static str,
    extra_makes: fn(&MigrateData) -> Vec<Artefact>,
    run: StepFn,
) -> Phase<MigrateData> {
    let index = STEPS.iter().position(|step| *step == name).unwrap_or(0);
    let mut phase = Phase::new(name, summary)
        .skip_if(|data: &MigrateData| data.noop.clone())
        .makes(move |data| {
            let mut makes = vec![Artefact::File(PathBuf::from(STATE_PATH))];
            makes.extend(extra_makes(data));
            makes
        })
        .run(move |ctx| {
            if ctx.data.state().is_behind(&STEPS, index) {
                ctx.record_with_detail(
                    format!("step {name}"),
                    Outcome::Unchanged,
                    Some("done in an earlier run".to_owned()),
                );
                return Ok(());
            }
            save(ctx)?;
            run(ctx)?;
            ctx.data.state().complete(name);
            save(ctx)
        });
    if CLUSTER_STEPS.contains(&name) {
        phase = phase.skip_if(no_api);
    }
    phase
}

fn nothing(_: &MigrateData) -> Vec<Artefact> {
    Vec::new()
}

fn run_drain(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let data = ctx.data;
    let api = data.api()?;
    let node = &data.options.node_name;
    let pods = drain::pods_on(api, node).map_err(crate::cluster::api_error)?;
    let mut evict = Vec::new();
    let mut refusals = Vec::new();
    for pod in pods {
        match drain::decide(&pod, data.options.drain) {
            drain::PodDecision::Evict => evict.push(pod),
            drain::PodDecision::Ignore(reason) => ctx.info(format!(
                "leaving pod {} on the node: {reason}",
                drain::pod_name(&pod)
            )),
            drain::PodDecision::Refuse(reason) => refusals.push(reason),
        }
    }
    if ctx.host.dry_run {
        drain::get_node(api, node).map_err(crate::cluster::api_error)?;
        ctx.info(format!(
            "would cordon node {node} and evict {} pod(s): {}",
            evict.len(),
            evict
                .iter()
                .map(drain::pod_name)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for refusal in &refusals {
            ctx.warn(format!("the drain would stop: {refusal}"));
        }
        return Ok(());
    }
    let (outcome, was_unschedulable) =
        drain::set_unschedulable(api, node, true).map_err(crate::cluster::api_error)?;
    if outcome != Outcome::Unchanged {
        ctx.data.state().cordoned_by_bosun = true;
        save(ctx)?;
    }
    ctx.record_with_detail(
        format!("cluster: Node {node}"),
        outcome,
        Some(if was_unschedulable {
            "already cordoned".to_owned()
        } else {
            "cordoned".to_owned()
        }),
    );
    if !refusals.is_empty() {
        return Err(PhaseError::failed(
            drain::DrainError::Refused { node: node.clone(), reasons: refusals }.to_string(),
        )
        .with_hint("the node stays cordoned; move or delete those pods, or pass the override named, and run the same command again"));
    }
    let total = evict.len() as u64;
    drain::evict_all(api, &evict, data.options.drain_timeout, |index, pod| {
        ctx.progress(index as u64, total, format!("evicting pod {pod}"));
    })
    .map_err(|error| {
        PhaseError::failed(error.to_string()).with_hint(
            "the node stays cordoned; check the PodDisruptionBudgets (`kubectl get pdb -A`) or raise --drain-timeout, and run the same command again",
        )
    })?;
    ctx.record_with_detail(
        format!("cluster: pods on node {node}"),
        if evict.is_empty() {
            Outcome::Unchanged
        } else {
            Outcome::Removed
        },
        Some(if evict.is_empty() {
            "nothing to evict".to_owned()
        } else {
            format!("{} evicted", evict.len())
        }),
    );
    Ok(())
}

fn stop_service(ctx: &mut PhaseCtx<'_, MigrateData>, service: &str) -> Result<(), PhaseError> {
    let host = ctx.host;
    let state = host.services.state(service)?;
    if state == ServiceState::Unknown && !host.dry_run {
        return Err(PhaseError::failed(format!(
            "service {service} is not installed on {} ({} backend)",
            host.description,
            host.services.backend()
        ))
        .with_hint(
            "run bosun with the service backend that runs it (--service-backend systemd|process)",
        ));
    }
    if state == ServiceState::Active {
        ctx.info(format!(
            "stopping {service} through {}",
            host.services.backend()
        ));
        host.services.stop(service)?;
        ctx.record_with_detail(
            format!("service {service}"),
            Outcome::Updated,
            Some("stopped".to_owned()),
        );
    } else {
        ctx.record_with_detail(
            format!("service {service}"),
            Outcome::Unchanged,
            Some("not running".to_owned()),
        );
    }
    Ok(())
}

fn run_stop_kubelet(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    stop_service(ctx, KUBELET_SERVICE)
}

fn run_stop_runtime(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let service = ctx.data.runtime_service()?;
    stop_service(ctx, service)
}

fn current_mode(files: &dyn Files, path: &Path) -> Result<u32, PhaseError> {
    Ok(files
        .metadata(path)?
        .map(|meta| meta.mode & 0o7777)
        .unwrap_or(0o644))
}

fn runtime_makes(data: &MigrateData) -> Vec<Artefact> {
    data.runtime_file()
        .map(|path| Artefact::File(PathBuf::from(path)))
        .into_iter()
        .collect()
}

fn run_switch_runtime(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let target = ctx.data.target;
    let files = ctx.host.files.as_ref();
    let (path, text) = match ctx.data.inspection.runtime.kind {
        RuntimeKind::Containerd => {
            let existing = read_text(files, runtime::CONTAINERD_CONFIG)?.ok_or_else(|| {
                PhaseError::failed(format!(
                    "{} disappeared during the migration",
                    runtime::CONTAINERD_CONFIG
                ))
            })?;
            (
                runtime::CONTAINERD_CONFIG,
                edit::containerd_with_driver(&existing, target)?,
            )
        }
        RuntimeKind::Crio => {
            let existing = read_text(files, runtime::CRIO_DROP_IN)?;
            let text = edit::crio_drop_in_with_driver(existing.as_deref(), target)?;
            // A drop-in after bosun's that sets cgroup_manager again would win; refuse to leave that behind.
            let mut texts = Vec::new();
            for other in files.list_dir(Path::new(runtime::CRIO_DROP_IN_DIR))? {
                let name = other.display().to_string();
                if name == runtime::CRIO_DROP_IN
                    || other
                        .extension()
                        .is_none_or(|extension| extension != "conf")
                {
                    continue;
                }
                if name.as_str() > runtime::CRIO_DROP_IN {
                    if let Some(other_text) = read_text(files, &name)? {
                        texts.push((other, other_text));
                    }
                }
            }
            texts.insert(0, (PathBuf::from(runtime::CRIO_DROP_IN), text.clone()));
            let effective = runtime::crio_cgroup_driver(&texts)?;
            if effective != target {
                return Err(PhaseError::failed(format!(
                    "a CRI-O drop-in after {} sets cgroup_manager to {effective}",
                    runtime::CRIO_DROP_IN
                ))
                .with_hint("remove cgroup_manager from the later drop-ins in /etc/crio/crio.conf.d and run the same command again"));
            }
            (runtime::CRIO_DROP_IN, text)
        }
        RuntimeKind::CriDockerd | RuntimeKind::Other => {
            return Err(PhaseError::failed(
                "bosun cannot switch this runtime (a defect: prepare refuses it)",
            ))
        }
    };
    let mode = current_mode(files, Path::new(path))?;
    ctx.ensure_file_with_detail(
        Path::new(path),
        text.as_bytes(),
        mode,
        Some(format!("{target} cgroup driver")),
    )?;
    Ok(())
}

fn kubelet_makes(_: &MigrateData) -> Vec<Artefact> {
    vec![Artefact::File(PathBuf::from(paths::KUBELET_CONFIG))]
}

fn run_switch_kubelet(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let files = ctx.host.files.as_ref();
    let existing = read_text(files, paths::KUBELET_CONFIG)?.ok_or_else(|| {
        PhaseError::failed(format!(
            "{} disappeared during the migration",
            paths::KUBELET_CONFIG
        ))
    })?;
    let text = edit::kubelet_with_driver(&existing, ctx.data.target, paths::KUBELET_CONFIG)?;
    let mode = current_mode(files, Path::new(paths::KUBELET_CONFIG))?;
    ctx.ensure_file_with_detail(
        Path::new(paths::KUBELET_CONFIG),
        text.as_bytes(),
        mode,
        Some(format!("cgroupDriver: {}", ctx.data.target)),
    )?;
    Ok(())
}

fn run_config_map(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let target = ctx.data.target;
    let artefact = format!(
        "cluster: ConfigMap {}/{}",
        crate::cluster::upload_config::NAMESPACE,
        crate::cluster::upload_config::KUBELET_CONFIG
    );
    if ctx.host.dry_run {
        ctx.info(format!("would set cgroupDriver: {target} in {artefact}"));
        return Ok(());
    }
    match drain::update_kubelet_config_map(ctx.data.api()?, target).map_err(PhaseError::failed)? {
        Some(outcome) => ctx.record_with_detail(artefact, outcome, Some(format!("cgroupDriver: {target}"))),
        None => ctx.warn(format!(
            "the cluster has no ConfigMap {}/{}; nodes that join later get their cgroup driver from their own configuration",
            crate::cluster::upload_config::NAMESPACE,
            crate::cluster::upload_config::KUBELET_CONFIG
        )),
    }
    Ok(())
}

fn run_start_runtime(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let data = ctx.data;
    let host = ctx.host;
    let service = data.runtime_service()?;
    ctx.info(format!(
        "starting {service} through {}",
        host.services.backend()
    ));
    // A restart, not a start: after a failed attempt a supervisor may still be retrying the old process.
    host.services.restart(service)?;
    if host.dry_run {
        ctx.record_with_detail(
            format!("service {service}"),
            Outcome::Updated,
            Some("dry run: not verified".to_owned()),
        );
        return Ok(());
    }
    let detail = match (
        data.inspection.runtime.kind,
        &data.inspection.runtime.address,
    ) {
        (RuntimeKind::Containerd, Some(address)) => {
            let line = super::phases::verify_containerd(host, address, data.options.runtime_timeout).map_err(|error| {
                PhaseError::from(error).with_hint(format!(
                    "see the runtime's log (journalctl -u {service}, or /var/log/bosun/{service}.log with the process backend), \
                     fix it and run the same command again; it continues with this step"
                ))
            })?;
            format!("started, answers on its socket: {line}")
        }
        _ => {
            if host.services.state(service)? != ServiceState::Active {
                return Err(PhaseError::failed(format!(
                    "{service} did not stay running"
                )));
            }
            "started".to_owned()
        }
    };
    ctx.record_with_detail(format!("service {service}"), Outcome::Updated, Some(detail));
    Ok(())
}

fn run_start_kubelet(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let host = ctx.host;
    let now = host.clock.now();
    ctx.data.state().kubelet_started = Some(
        now.duration_since(SystemTime::UNIX_EPOCH)
            .map(|since| since.as_secs())
            .unwrap_or(0),
    );
    save(ctx)?;
    ctx.info(format!(
        "starting the kubelet through {}",
        host.services.backend()
    ));
    host.services.restart(KUBELET_SERVICE)?;
    ctx.record_with_detail(
        format!("service {KUBELET_SERVICE}"),
        Outcome::Updated,
        Some(format!("started ({} cgroup driver)", ctx.data.target)),
    );
    Ok(())
}

fn run_wait_ready(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let data = ctx.data;
    let node = &data.options.node_name;
    if ctx.host.dry_run {
        ctx.info(format!(
            "would wait up to {}s for node {node} to be Ready",
            data.options.ready_timeout.as_secs()
        ));
        return Ok(());
    }
    let since = data
        .state()
        .kubelet_started
        .map(|seconds| SystemTime::UNIX_EPOCH + Duration::from_secs(seconds))
        .unwrap_or_else(|| ctx.host.clock.now());
    ctx.info(format!(
        "waiting up to {}s for node {node} to be Ready",
        data.options.ready_timeout.as_secs()
    ));
    drain::wait_ready(data.api()?, node, since, data.options.ready_timeout).map_err(|error| {
        PhaseError::failed(error).with_hint(
            "look at the kubelet's log: a kubelet whose cgroup driver differs from the runtime's reports it there; \
             fix it and run the same command again",
        )
    })?;
    ctx.record_with_detail(
        format!("cluster: Node {node}"),
        Outcome::Unchanged,
        Some("Ready".to_owned()),
    );
    Ok(())
}

fn run_uncordon(ctx: &mut PhaseCtx<'_, MigrateData>) -> Result<(), PhaseError> {
    let data = ctx.data;
    let node = &data.options.node_name;
    let cordoned_by_bosun = data.state().cordoned_by_bosun;
    if !cordoned_by_bosun {
        ctx.record_with_detail(
            format!("cluster: Node {node}"),
            Outcome::Unchanged,
            Some("not cordoned by this migration; left as it is".to_owned()),
        );
        return Ok(());
    }
    if ctx.host.dry_run {
        ctx.info(format!("would uncordon node {node}"));
        return Ok(());
    }
    let (outcome, _) =
        drain::set_unschedulable(data.api()?, node, false).map_err(crate::cluster::api_error)?;
    ctx.data.state().cordoned_by_bosun = false;
    ctx.record_with_detail(
        format!("cluster: Node {node}"),
        outcome,
        Some("uncordoned".to_owned()),
    );
    Ok(())
}

/// The last, hidden phase: the migration is finished (a later run on the same driver is a no-op).
fn finish_phase() -> Phase<MigrateData> {
    Phase::new("finish", "Record the migration as finished")
        .hidden()
        .skip_if(|data: &MigrateData| data.noop.clone())
        .makes(|_| vec![Artefact::File(PathBuf::from(STATE_PATH))])
        .run(|ctx| {
            let now = ctx.host.clock.now();
            let (skipped, still_cordoned) = {
                let mut state = ctx.data.state();
                let missing: Vec<&str> = STEPS
                    .iter()
                    .copied()
                    .filter(|step| !state.completed.iter().any(|done| done == step))
                    .collect();
                let reason = ctx.data.cluster_skipped.clone().unwrap_or_else(|| "not selected (--skip-phases)".to_owned());
                for step in &missing {
                    let why = if CLUSTER_STEPS.contains(step) { reason.clone() } else { "not selected (--skip-phases)".to_owned() };
                    state.skip(step, &why);
                }
                state.finished = Some(stamp(now));
                (missing.iter().map(|step| (*step).to_owned()).collect::<Vec<_>>(), state.cordoned_by_bosun)
            };
            if !skipped.is_empty() {
                ctx.warn(format!("finished without these steps: {}", skipped.join(", ")));
            }
            if still_cordoned {
                ctx.warn(format!(
                    "node {} is still cordoned; uncordon it with `kubectl uncordon {}` once it is Ready",
                    ctx.data.options.node_name, ctx.data.options.node_name
                ));
            }
            save(ctx)
        })
}

/// The `cgroup-driver` workflow.
pub fn workflow() -> Workflow<MigrateData> {
    Workflow::new(WORKFLOW)
        .phase(step(
            DRAIN,
            "Cordon the node and evict its pods (not DaemonSet or static pods)",
            nothing,
            run_drain,
        ))
        .phase(step(
            STOP_KUBELET,
            "Stop the kubelet",
            nothing,
            run_stop_kubelet,
        ))
        .phase(step(
            STOP_RUNTIME,
            "Stop the container runtime",
            nothing,
            run_stop_runtime,
        ))
        .phase(step(
            SWITCH_RUNTIME,
            "Set the container runtime's cgroup driver",
            runtime_makes,
            run_switch_runtime,
        ))
        .phase(step(
            SWITCH_KUBELET,
            "Set cgroupDriver in the kubelet's config.yaml",
            kubelet_makes,
            run_switch_kubelet,
        ))
        .phase(step(
            CONFIG_MAP,
            "Set cgroupDriver in the kubelet-config ConfigMap for nodes joining later",
            nothing,
            run_config_map,
        ))
        .phase(step(
            START_RUNTIME,
            "Start the container runtime and check that it serves the CRI",
            nothing,
            run_start_runtime,
        ))
        .phase(step(
            START_KUBELET,
            "Start the kubelet",
            nothing,
            run_start_kubelet,
        ))
        .phase(step(
            WAIT_READY,
            "Wait for the node to be Ready with the new driver",
            nothing,
            run_wait_ready,
        ))
        .phase(step(
            UNCORDON,
            "Make the node schedulable again",
            nothing,
            run_uncordon,
        ))
        .phase(finish_phase())
}

/// The one-line text of an inspection's status, for `--status`.
pub fn status_text(inspection: &Inspection) -> String {
    let runtime_driver = inspection
        .runtime
        .driver
        .map(CgroupDriver::as_str)
        .unwrap_or("unknown");
    let mut text =
        format!(
        "host:     {} (systemd {} PID 1, cgroup {})\nkubelet:  {} ({})\nruntime:  {} ({}, {})\n",
        inspection.host,
        if inspection.systemd_is_init { "is" } else { "is not" },
        match inspection.cgroup_version {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
            CgroupVersion::Unknown => "version unknown",
        },
        inspection.kubelet,
        inspection.kubelet_source,
        runtime_driver,
        inspection.runtime.kind.name(),
        inspection.runtime.source,
    );
    text.push_str(&if !inspection.agree {
        "state:    the kubelet and the runtime DISAGREE; pods fail to start until they match\n".to_owned()
    } else if inspection.kubelet != inspection.host {
        format!("state:    consistent, but the host calls for {}; migrate with `bosun node cgroup-driver {}`\n", inspection.host, inspection.host)
    } else {
        "state:    consistent and fits the host\n".to_owned()
    });
    match &inspection.migration {
        Some(migration) if migration.in_progress() => text.push_str(&format!(
            "migration: to {} IN PROGRESS since {} (completed: {}); run `bosun node cgroup-driver {}` to continue\n",
            migration.target,
            migration.started,
            if migration.completed.is_empty() { "nothing yet".to_owned() } else { migration.completed.join(", ") },
            migration.target
        )),
        Some(migration) => text.push_str(&format!(
            "migration: to {} finished {}\n",
            migration.target,
            migration.finished.as_deref().unwrap_or_default()
        )),
        None => {}
    }
    text
}

#[cfg(test)]
mod tests;
