//! The process service backend runs real processes: start, restart on exit, stop of the whole process group.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bosun::host::local::LocalFiles;
use bosun::host::services::ProcessServices;
use bosun_phases::host::{CommandSpec, Files, Outcome, ServiceSpec, ServiceState, Services};

use crate::support::TempRoot;

/// Pids of processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc") {
        let entry = entry.expect("entry");
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(command_line) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let command_line = String::from_utf8_lossy(&command_line).replace('\0', " ");
            if command_line.starts_with("sleep ") && command_line.contains(marker) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn the_process_backend_supervises_restarts_and_stops_a_service() {
    let root = TempRoot::new();
    let files = LocalFiles::new(root.path());
    // A unique duration marks our process among others on the machine.
    let marker = format!(
        "{}.{}",
        3000 + std::process::id() % 1000,
        std::process::id()
    );
    files
        .write_atomic(
            Path::new("/etc/default/sleeper"),
            format!("SLEEP_ARGS={marker}\n").as_bytes(),
            0o644,
        )
        .expect("environment file");
    let services = ProcessServices::new(files.clone(), PathBuf::from(env!("CARGO_BIN_EXE_bosun")));
    let spec = ServiceSpec {
        name: "sleeper".to_owned(),
        description: "a test service".to_owned(),
        command: CommandSpec::new("sleep").arg("$SLEEP_ARGS"),
        environment_files: vec![PathBuf::from("/etc/default/sleeper")],
        restart_after_seconds: 1,
    };
    assert_eq!(services.install(&spec).expect("install"), Outcome::Created);
    assert_eq!(
        services.install(&spec).expect("install again"),
        Outcome::Unchanged
    );
    assert_eq!(
        services.state("sleeper").expect("state"),
        ServiceState::Inactive
    );

    services.start("sleeper").expect("start");
    assert_eq!(
        services.state("sleeper").expect("state"),
        ServiceState::Active
    );
    wait_for("the service process", || processes_with(&marker).len() == 1);
    let first = processes_with(&marker)[0];

    // The supervisor restarts the program when it dies.
    std::process::Command::new("kill")
        .arg(first.to_string())
        .status()
        .expect("kill");
    wait_for("the restarted process", || {
        let now = processes_with(&marker);
        now.len() == 1 && now[0] != first
    });

    services.stop("sleeper").expect("stop");
    assert_eq!(
        services.state("sleeper").expect("state"),
        ServiceState::Inactive
    );
    wait_for("every process of the service to end", || {
        processes_with(&marker).is_empty()
    });
    let log = root.read_string("/var/log/bosun/sleeper.log");
    assert!(log.contains(&format!("starting sleep {marker}")), "{log}");
}
