//! `cleanup-node` and its sub-phases: what init and join put on the node goes, in an order that keeps every step
//! safe to repeat.
//!
//! 1. `kubelet`: stop the kubelet (so it neither restarts pods nor rewrites its state) and remove the service bosun
//!    installed (process-backend definition or systemd unit) and bosun's systemd drop-in.
//! 2. `containers`: stop and remove the runtime's Kubernetes containers, pod sandboxes included (containerd namespace
//!    `k8s.io`, through `ctr`; CRI-O and others through `crictl` when it is installed). The static-pod containers
//!    (etcd among them) stop here, before their data goes.
//! 3. `unmount`: unmount every filesystem mounted below `/var/lib/kubelet` (volumes, projected secrets), deepest
//!    first, with the configured `unmountFlags`.
//! 4. `files`: the contents of the etcd data directory, `/etc/kubernetes/manifests`, `/var/lib/kubelet`, the
//!    certificates directory, `/etc/cni/net.d` and (with `--cleanup-tmp-dir`) `/etc/kubernetes/tmp`, and the
//!    kubeconfigs in `/etc/kubernetes`. Directory trees are removed without following symbolic links and without
//!    entering a filesystem that is still mounted.
//! 5. `schedules`: the daily certificate renewal (timer or cron entry) and the etcd backup schedule.
//!
//! Guarantees: every step removes only what is present and reports each item, so a re-run after a failure goes on
//! from where the last one stopped. The directories themselves stay (empty), as kubeadm leaves them.

use std::path::{Path, PathBuf};

use super::{file, ResetData, DEFAULT_CERTIFICATES_DIR};
use crate::certops::timer;
use crate::engine::{Artefact, Phase, PhaseCtx, PhaseError};
use crate::etcd::schedule;
use crate::host::{ensure_absent, run_checked, CommandSpec, Outcome, ServiceState};
use crate::node::kubelet::KUBELET_SERVICE;
use crate::node::runtime::{self, RuntimeKind};
use crate::paths;

/// The kubeconfig files init and join write in `/etc/kubernetes`.
pub const KUBECONFIGS: [&str; 6] = [
    paths::ADMIN_CONF,
    paths::SUPER_ADMIN_CONF,
    paths::KUBELET_CONF,
    paths::BOOTSTRAP_KUBELET_CONF,
    paths::CONTROLLER_MANAGER_CONF,
    paths::SCHEDULER_CONF,
];

/// The containerd namespace of the CRI plugin: every container Kubernetes runs.
pub const CONTAINERD_NAMESPACE: &str = "k8s.io";

pub(crate) fn phase() -> Phase<ResetData> {
    Phase::new(
        "cleanup-node",
        "Stop the kubelet and the Kubernetes containers, and remove the files init and join wrote",
    )
    .child(kubelet_phase())
    .child(containers_phase())
    .child(unmount_phase())
    .child(files_phase())
    .child(schedules_phase())
}

fn kubelet_phase() -> Phase<ResetData> {
    Phase::new(
        "kubelet",
        "Stop the kubelet and remove the service bosun installed",
    )
    .makes(|_| {
        vec![
            file(paths::KUBELET_DROP_IN),
            Artefact::State("kubelet-stopped".to_owned()),
        ]
    })
    .run(|context: &mut PhaseCtx<'_, ResetData>| {
        let services = context.host.services.as_ref();
        let state = services.state(KUBELET_SERVICE)?;
        if state == ServiceState::Active {
            services.stop(KUBELET_SERVICE).map_err(|error| {
                PhaseError::failed(format!("cannot stop the kubelet: {error}"))
                    .with_hint("stop it by hand, then run the reset again")
            })?;
            context.record_with_detail(
                "service kubelet",
                Outcome::Updated,
                Some(format!("stopped ({})", services.backend())),
            );
        }
        let removed = services.uninstall(KUBELET_SERVICE)?;
        context.record_with_detail(
            format!("service definition kubelet ({})", services.backend()),
            removed,
            None,
        );
        let drop_in = Path::new(paths::KUBELET_DROP_IN);
        let outcome = ensure_absent(context.host.files.as_ref(), drop_in)?;
        if outcome == Outcome::Removed {
            context.record(paths::KUBELET_DROP_IN, outcome);
        }
        if outcome == Outcome::Removed && services.backend() == "systemd" {
            run_checked(
                context.host.commands.as_ref(),
                &CommandSpec::new("systemctl").arg("daemon-reload"),
            )?;
        }
        Ok(())
    })
}

/// The lines of a command's stdout, trimmed, without empty ones.
fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect()
}

fn ctr(address: &str) -> CommandSpec {
    CommandSpec::new("ctr").args(["--address", address, "--namespace", CONTAINERD_NAMESPACE])
}

fn remove_containerd_containers(
    context: &mut PhaseCtx<'_, ResetData>,
    socket: &str,
) -> Result<(), PhaseError> {
    let address = runtime::socket_path(socket);
    let commands = context.host.commands.as_ref();
    if commands.find_program("ctr").is_none() {
        return Err(PhaseError::failed(format!(
            "cannot remove containerd's Kubernetes containers on {}: ctr is not installed",
            context.host.description
        ))
        .with_hint("install containerd's ctr (Debian: containerd), or skip with --skip-phases cleanup-node/containers"));
    }
    let query = |arguments: &[&str]| -> Result<Option<Vec<String>>, PhaseError> {
        let output = commands.run(&ctr(&address).args(arguments.iter().copied()).read_only())?;
        if output.success() {
            Ok(Some(lines(&output.stdout)))
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr);
            if stderr.contains("connect") || stderr.contains("no such file") {
                Ok(None)
            } else {
                Err(PhaseError::failed(format!(
                    "cannot list containerd's Kubernetes containers at {socket}: {}",
                    stderr.trim()
                )))
            }
        }
    };
    let Some(tasks) = query(&["tasks", "list", "--quiet"])? else {
        context.info(format!(
            "containerd does not answer at {socket}: it is not running, so it runs no containers"
        ));
        return Ok(());
    };
    let containers = query(&["containers", "list", "--quiet"])?.unwrap_or_default();
    for container in &containers {
        if tasks.iter().any(|task| task == container) {
            // A running task is killed with it; `--force` also deletes a task that will not stop on SIGTERM.
            run_checked(
                commands,
                &ctr(&address).args(["tasks", "delete", "--force", container]),
            )
            .map_err(|error| {
                PhaseError::failed(format!(
                    "cannot stop container {container} in containerd at {socket}: {error}"
                ))
            })?;
        }
        run_checked(
            commands,
            &ctr(&address).args(["containers", "delete", container]),
        )
        .map_err(|error| {
            PhaseError::failed(format!(
                "cannot remove container {container} from containerd at {socket}: {error}"
            ))
        })?;
        context.record(format!("container {container}"), Outcome::Removed);
    }
    if containers.is_empty() {
        context.record_with_detail(
            format!("containers in containerd namespace {CONTAINERD_NAMESPACE}"),
            Outcome::Unchanged,
            Some("none".to_owned()),
        );
        return Ok(());
    }
    // containerd's CRI plugin keeps its pods in memory and does not see removals made through the containers API:
    // a restart makes it forget them, so that the next kubelet does not meet sandboxes that no longer exist.
    let services = context.host.services.as_ref();
    if services.state("containerd")? == ServiceState::Active {
        services.restart("containerd").map_err(|error| {
            PhaseError::failed(format!(
                "cannot restart containerd after removing its Kubernetes containers: {error}"
            ))
            .with_hint("restart containerd by hand, then run the reset again")
        })?;
        context.record_with_detail(
            "service containerd",
            Outcome::Updated,
            Some("restarted, so that its CRI plugin forgets the removed pods".to_owned()),
        );
    } else {
        context.warn(format!(
            "containerd at {socket} is not run by the {} service backend: restart it, so that its CRI plugin \
             forgets the removed pods",
            services.backend()
        ));
    }
    Ok(())
}

fn remove_cri_containers(
    context: &mut PhaseCtx<'_, ResetData>,
    socket: &str,
    kind: RuntimeKind,
) -> Result<(), PhaseError> {
    let commands = context.host.commands.as_ref();
    if commands.find_program("crictl").is_none() {
        context.warn(format!(
            "cannot remove the Kubernetes containers of {} at {socket}: crictl is not installed; they stop with the \
             runtime (or remove them with the runtime's own tools)",
            kind.name()
        ));
        return Ok(());
    }
    let crictl = || CommandSpec::new("crictl").args(["--runtime-endpoint", socket]);
    let pods = commands.run(&crictl().args(["pods", "--quiet"]).read_only())?;
    let pods = lines(&pods.stdout);
    for pod in &pods {
        run_checked(commands, &crictl().args(["stopp", pod]))?;
        run_checked(commands, &crictl().args(["rmp", "--force", pod]))?;
        context.record(format!("pod sandbox {pod}"), Outcome::Removed);
    }
    let containers = commands.run(&crictl().args(["ps", "--all", "--quiet"]).read_only())?;
    for container in lines(&containers.stdout) {
        run_checked(commands, &crictl().args(["rm", "--force", &container]))?;
        context.record(format!("container {container}"), Outcome::Removed);
    }
    Ok(())
}

fn containers_phase() -> Phase<ResetData> {
    Phase::new(
        "containers",
        "Stop and remove the container runtime's Kubernetes containers and pod sandboxes",
    )
    .makes(|_| vec![Artefact::State("kubernetes-containers-removed".to_owned())])
    .run(|context: &mut PhaseCtx<'_, ResetData>| {
        let socket = context.data.cri_socket.clone();
        match RuntimeKind::of_socket(&socket) {
            RuntimeKind::Containerd => remove_containerd_containers(context, &socket),
            kind => remove_cri_containers(context, &socket, kind),
        }
    })
}

fn unmount_phase() -> Phase<ResetData> {
    Phase::new(
        "unmount",
        "Unmount the filesystems mounted below /var/lib/kubelet",
    )
    .makes(|_| vec![Artefact::State("kubelet-mounts-unmounted".to_owned())])
    .run(|context: &mut PhaseCtx<'_, ResetData>| {
        let files = context.host.files.as_ref();
        let mounts = files.mounts_below(Path::new(paths::KUBELET_DIR))?;
        for mount in mounts {
            files
                .unmount(&mount, context.data.unmount_flags)
                .map_err(|error| {
                    PhaseError::failed(format!("cannot unmount {}: {error}", mount.display())).with_hint(
                        "stop what still uses it (fuser -vm PATH), or set unmountFlags: [MNT_DETACH] in the \
                         ResetConfiguration, then run the reset again",
                    )
                })?;
            context.record(format!("mount {}", mount.display()), Outcome::Removed);
        }
        Ok(())
    })
}

/// The directories whose contents go, in order.
fn directories(data: &ResetData) -> Vec<PathBuf> {
    let mut directories = vec![
        data.survey.etcd_data_dir.clone(),
        PathBuf::from(paths::MANIFESTS_DIR),
        PathBuf::from(paths::KUBELET_DIR),
        data.certificates_dir.clone(),
        PathBuf::from(runtime::CNI_CONF_DIR),
    ];
    if data.cleanup_tmp_dir {
        directories.push(PathBuf::from(paths::KUBERNETES_TMP_DIR));
    }
    directories
}

/// Whether a directory holds an etcd member's data (`member/snap`, `member/wal`), so that a worker's unrelated
/// `/var/lib/etcd` is not emptied.
fn holds_etcd_data(
    context: &PhaseCtx<'_, ResetData>,
    directory: &Path,
) -> Result<bool, PhaseError> {
    if context.data.survey.etcd_member.is_some() {
        return Ok(true);
    }
    Ok(context.host.files.exists(&directory.join("member"))?)
}

/// Refuses to empty a directory so broad that a wrong `certificatesDir` or `--data-dir` would wipe the system
/// (`/`, `/etc`, `/var/lib`, anything under `/usr`).
fn refuse_broad(directory: &Path) -> Result<(), PhaseError> {
    let depth = directory
        .components()
        .filter(|component| matches!(component, std::path::Component::Normal(_)))
        .count();
    let broad = depth < 2
        || directory == Path::new("/var/lib")
        || directory == Path::new("/etc/kubernetes")
        || directory.starts_with("/usr")
        || directory.starts_with("/etc/ssl")
        || directory.starts_with("/etc/pki")
        || directory.starts_with("/boot")
        || directory.starts_with("/home");
    if broad {
        return Err(PhaseError::failed(format!(
            "refusing to empty {}: it is not a directory reset owns",
            directory.display()
        ))
        .with_hint("check certificatesDir (--cert-dir) and the etcd manifest's --data-dir"));
    }
    Ok(())
}

fn files_phase() -> Phase<ResetData> {
    Phase::new(
        "files",
        "Remove etcd data, static-pod manifests, kubelet state, certificates, kubeconfigs and CNI configuration",
    )
    .makes(|data| {
        let mut made: Vec<Artefact> = directories(data).into_iter().map(file).collect();
        made.extend(KUBECONFIGS.iter().map(|path| file(*path)));
        made
    })
    .run(|context: &mut PhaseCtx<'_, ResetData>| {
        let data = context.data;
        if data.certificates_dir != Path::new(DEFAULT_CERTIFICATES_DIR) {
            context.warn(format!(
                "cleaning a certificates directory that is not the default: {}",
                data.certificates_dir.display()
            ));
        }
        for directory in directories(data) {
            refuse_broad(&directory)?;
            if directory == data.survey.etcd_data_dir && !holds_etcd_data(context, &directory)? {
                continue;
            }
            for entry in context.host.files.list_dir(&directory)? {
                let removed = context.host.files.remove_all(&entry).map_err(|error| {
                    PhaseError::failed(format!("cannot remove {}: {error}", entry.display()))
                        .with_hint("fix the cause (a mount left, permissions), then run the reset again")
                })?;
                if removed {
                    context.record(entry.display().to_string(), Outcome::Removed);
                }
            }
        }
        for kubeconfig in KUBECONFIGS {
            let path = Path::new(kubeconfig);
            let outcome = ensure_absent(context.host.files.as_ref(), path)?;
            if outcome == Outcome::Removed {
                context.record(kubeconfig, outcome);
            }
        }
        Ok(())
    })
}

fn schedules_phase() -> Phase<ResetData> {
    Phase::new(
        "schedules",
        "Remove the certificate renewal timer and the etcd backup schedule",
    )
    .makes(|_| {
        [
            timer::SERVICE_UNIT,
            timer::TIMER_UNIT,
            timer::CRON_FILE,
            schedule::SERVICE_FILE,
            schedule::TIMER_FILE,
            schedule::CRON_FILE,
        ]
        .into_iter()
        .map(file)
        .collect()
    })
    .run(|context: &mut PhaseCtx<'_, ResetData>| {
        timer::remove(context)?;
        let scheduler = if context.host.services.backend() == "systemd" {
            schedule::Scheduler::Systemd
        } else {
            schedule::Scheduler::Cron
        };
        let changes = schedule::remove(
            context.host.files.as_ref(),
            context.host.commands.as_ref(),
            scheduler,
        )?;
        for change in changes
            .into_iter()
            .filter(|change| change.outcome == Outcome::Removed)
        {
            context.record(change.path.display().to_string(), change.outcome);
        }
        Ok(())
    })
}
