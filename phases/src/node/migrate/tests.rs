use std::time::SystemTime;

use super::*;
use crate::engine::event::RecordingSink;
use crate::engine::{run, RunOptions};
use crate::host::memory::{MemoryCommands, MemoryFiles, MemoryServices};
use crate::host::{CommandSpec, FixedClock, Host, ServiceSpec, Services};

const CONTAINERD: &str = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";
const KUBELET: &str = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\n";

fn facts(systemd_is_init: bool) -> NodeFacts {
    NodeFacts {
        gathered: true,
        hostname: "node-1".to_owned(),
        systemd_is_init,
        cgroup_version: CgroupVersion::V2,
        ..NodeFacts::default()
    }
}

fn node() -> (MemoryFiles, MemoryCommands, MemoryServices) {
    let files = MemoryFiles::default();
    files
        .write_atomic(Path::new(paths::KUBELET_CONFIG), KUBELET.as_bytes(), 0o644)
        .expect("write");
    files
        .write_atomic(
            Path::new(runtime::CONTAINERD_CONFIG),
            CONTAINERD.as_bytes(),
            0o644,
        )
        .expect("write");
    files
        .write_atomic(
            Path::new(paths::KUBELET_FLAGS_ENV),
            b"KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///run/containerd/containerd.sock\"\n",
            0o644,
        )
        .expect("write");
    let commands = MemoryCommands::default();
    commands.respond(
        "ctr",
        0,
        "TYPE                                  ID                    PLATFORMS      STATUS\n\
         io.containerd.grpc.v1                 cri                   linux/amd64    ok\n",
    );
    let services = MemoryServices::default();
    for name in ["kubelet", "containerd"] {
        services
            .install(&ServiceSpec {
                name: name.to_owned(),
                description: name.to_owned(),
                command: CommandSpec::new(name),
                environment_files: Vec::new(),
                restart_after_seconds: 1,
            })
            .expect("install");
        services.start(name).expect("start");
    }
    (files, commands, services)
}

fn host(files: &MemoryFiles, commands: &MemoryCommands, services: &MemoryServices) -> Host {
    Host {
        files: Box::new(files.clone()),
        commands: Box::new(commands.clone()),
        services: Box::new(services.clone()),
        clock: Box::new(FixedClock(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        )),
        description: "memory".to_owned(),
        dry_run: false,
    }
}

fn options(skip: &[&str]) -> Options {
    Options {
        node_name: "node-1".to_owned(),
        skip: skip.iter().map(|name| (*name).to_owned()).collect(),
        drain: drain::DrainOptions::default(),
        drain_timeout: Duration::from_secs(1),
        ready_timeout: Duration::from_secs(1),
        runtime_timeout: Duration::from_secs(1),
    }
}

fn prepared(
    files: &MemoryFiles,
    target: CgroupDriver,
    skip: &[&str],
) -> Result<MigrateData, NodeError> {
    let inspection = inspect(files, &facts(false), None).expect("inspect");
    prepare(
        target,
        inspection,
        options(skip),
        || Ok(Err("--no-drain".to_owned())),
        "node-1",
        SystemTime::UNIX_EPOCH,
    )
}

#[test]
fn inspection_reads_the_kubelet_and_containerd() {
    let (files, ..) = node();
    let inspection = inspect(&files, &facts(false), None).expect("inspect");
    assert_eq!(inspection.host, CgroupDriver::Cgroupfs);
    assert_eq!(inspection.kubelet, CgroupDriver::Systemd);
    assert_eq!(inspection.runtime.kind, RuntimeKind::Containerd);
    assert_eq!(inspection.runtime.driver, Some(CgroupDriver::Systemd));
    assert_eq!(
        inspection.runtime.address.as_deref(),
        Some("/run/containerd/containerd.sock")
    );
    assert!(inspection.agree);
    let text = status_text(&inspection);
    assert!(text.contains("host calls for cgroupfs"), "{text}");
}

#[test]
fn systemd_without_systemd_is_refused_before_anything_changes() {
    let (files, ..) = node();
    let before = files.snapshot();
    let Err(error) = prepared(&files, CgroupDriver::Systemd, &[]) else {
        panic!("refused")
    };
    assert!(
        error
            .to_string()
            .contains("systemd is not PID 1 on host node-1"),
        "{error}"
    );
    assert_eq!(files.snapshot(), before);
}

#[test]
fn skipping_only_one_switch_is_refused() {
    let (files, ..) = node();
    let Err(error) = prepared(&files, CgroupDriver::Cgroupfs, &["switch-runtime"]) else {
        panic!("refused")
    };
    assert!(
        error
            .to_string()
            .contains("would use different cgroup drivers"),
        "{error}"
    );
    assert!(prepared(
        &files,
        CgroupDriver::Cgroupfs,
        &["switch-runtime", "switch-kubelet"]
    )
    .is_ok());
}

#[test]
fn a_runtime_bosun_cannot_switch_is_refused() {
    let (files, ..) = node();
    let inspection = inspect(
        &files,
        &facts(false),
        Some("unix:///var/run/cri-dockerd.sock"),
    )
    .expect("inspect");
    let Err(error) = prepare(
        CgroupDriver::Cgroupfs,
        inspection,
        options(&[]),
        || Ok(Err(String::new())),
        "n",
        SystemTime::UNIX_EPOCH,
    ) else {
        panic!("refused")
    };
    assert!(error.to_string().contains("make it disagree"), "{error}");
}

#[test]
fn migration_switches_both_restarts_both_and_a_second_run_is_a_no_op() {
    let (files, commands, services) = node();
    let data = prepared(&files, CgroupDriver::Cgroupfs, &[]).expect("prepare");
    let sink = RecordingSink::default();
    let report = run(
        &workflow(),
        &data,
        &host(&files, &commands, &services),
        &sink,
        &RunOptions::default(),
    )
    .expect("run");
    assert!(report.changed());
    let config = String::from_utf8(
        files
            .read(Path::new(runtime::CONTAINERD_CONFIG))
            .expect("read")
            .expect("file"),
    )
    .expect("utf-8");
    assert!(config.contains("SystemdCgroup = false"), "{config}");
    let kubelet = String::from_utf8(
        files
            .read(Path::new(paths::KUBELET_CONFIG))
            .expect("read")
            .expect("file"),
    )
    .expect("utf-8");
    assert!(kubelet.contains("cgroupDriver: cgroupfs"), "{kubelet}");
    let state = state::read(&files).expect("read").expect("state");
    assert!(state.finished.is_some());
    assert_eq!(
        state.completed,
        [
            STOP_KUBELET,
            STOP_RUNTIME,
            SWITCH_RUNTIME,
            SWITCH_KUBELET,
            START_RUNTIME,
            START_KUBELET
        ]
    );
    assert_eq!(state.skipped.len(), 4);
    assert_eq!(
        services.state("kubelet").expect("state"),
        ServiceState::Active
    );

    let before = files.snapshot();
    let again = prepared(&files, CgroupDriver::Cgroupfs, &[]).expect("prepare");
    assert!(again.noop.is_some());
    let report = run(
        &workflow(),
        &again,
        &host(&files, &commands, &services),
        &sink,
        &RunOptions::default(),
    )
    .expect("run");
    assert!(!report.changed());
    assert_eq!(files.snapshot(), before);
}

#[test]
fn a_re_run_continues_after_the_last_completed_step() {
    let (files, commands, services) = node();
    // ctr does not answer: start-runtime fails after the switches.
    commands.respond("ctr", 1, "");
    let data = prepared(&files, CgroupDriver::Cgroupfs, &[]).expect("prepare");
    let sink = RecordingSink::default();
    let error = run(
        &workflow(),
        &data,
        &host(&files, &commands, &services),
        &sink,
        &RunOptions::default(),
    )
    .expect_err("fails");
    assert!(error.to_string().contains(START_RUNTIME), "{error}");
    let state = state::read(&files).expect("read").expect("state");
    assert!(state.in_progress());
    assert_eq!(
        state.completed.last().map(String::as_str),
        Some(SWITCH_KUBELET)
    );

    // Another target is refused while this one is in progress.
    let inspection = inspect(&files, &facts(true), None).expect("inspect");
    let Err(refused) = prepare(
        CgroupDriver::Systemd,
        inspection,
        options(&[]),
        || Ok(Err(String::new())),
        "n",
        SystemTime::UNIX_EPOCH,
    ) else {
        panic!("refused")
    };
    assert!(refused.to_string().contains("in progress"), "{refused}");

    commands.respond(
        "ctr",
        0,
        "io.containerd.grpc.v1                 cri                   linux/amd64    ok\n",
    );
    services.stop("kubelet").expect("stop");
    let resumed = prepared(&files, CgroupDriver::Cgroupfs, &[]).expect("prepare");
    assert!(
        resumed.noop.is_none(),
        "an unfinished migration is continued although both files say cgroupfs"
    );
    run(
        &workflow(),
        &resumed,
        &host(&files, &commands, &services),
        &sink,
        &RunOptions::default(),
    )
    .expect("resumes");
    let state = state::read(&files).expect("read").expect("state");
    assert!(state.finished.is_some());
    assert_eq!(
        state.completed.last().map(String::as_str),
        Some(START_KUBELET)
    );
    assert!(sink.events().iter().any(|event| matches!(
        event,
        crate::engine::event::Event::Artefact { phase, detail: Some(detail), .. } if phase == STOP_KUBELET && detail == "done in an earlier run"
    )));
}

#[test]
fn kubelet_flags_are_read_from_kubeadm_flags_env() {
    let flags = "KUBELET_KUBEADM_ARGS=\"--container-runtime-endpoint=unix:///x.sock --hostname-override=n-2\"\n";
    assert_eq!(
        kubelet_flag(flags, "hostname-override").as_deref(),
        Some("n-2")
    );
    assert_eq!(
        kubelet_flag(flags, "container-runtime-endpoint").as_deref(),
        Some("unix:///x.sock")
    );
    assert_eq!(kubelet_flag(flags, "missing"), None);
}
