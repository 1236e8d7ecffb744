#![expect(
    clippy::disallowed_methods,
    reason = "src/host is where bosun touches the machine"
)]
//! Service backends: systemd on real hosts, and a process supervisor where systemd is not PID 1.
//!
//! The process backend keeps each service definition as JSON in `/etc/bosun/services/<name>.json` on the node and
//! runs it under `bosun __supervise <name>`, a small supervisor in its own process group that restarts the program
//! when it exits (systemd's `Restart=always`), expands `$VAR` from its environment files as systemd does, and writes
//! its output to `/var/log/bosun/<name>.log`. Stopping a service signals the whole group.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bosun_phases::host::{
    describe_io_error, ensure_file, run_checked, CommandSpec, Commands, Files, HostError, Outcome,
    ServiceSpec, ServiceState, Services,
};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use super::local::{LocalCommands, LocalFiles};

/// Where the process backend keeps service definitions on a node.
pub const PROCESS_SERVICE_DIR: &str = "/etc/bosun/services";
/// Where the process backend keeps supervisor pid files on a node.
pub const PROCESS_RUN_DIR: &str = "/run/bosun";
/// Where the process backend writes service output on a node.
pub const PROCESS_LOG_DIR: &str = "/var/log/bosun";

fn service_error(service: &str, reason: impl Into<String>) -> HostError {
    HostError::Service {
        service: service.to_owned(),
        reason: reason.into(),
    }
}

/// Services run by a bosun supervisor process, for hosts without systemd as PID 1.
pub struct ProcessServices {
    files: LocalFiles,
    executable: PathBuf,
}

impl ProcessServices {
    pub fn new(files: LocalFiles, executable: PathBuf) -> Self {
        ProcessServices { files, executable }
    }

    fn spec_path(name: &str) -> PathBuf {
        Path::new(PROCESS_SERVICE_DIR).join(format!("{name}.json"))
    }

    fn pid_path(&self, name: &str) -> PathBuf {
        self.files
            .real_path(&Path::new(PROCESS_RUN_DIR).join(format!("{name}.pid")))
    }

    /// The supervisor's pid if it is alive and really is our supervisor (not a reused pid).
    fn running_supervisor(&self, name: &str) -> Option<Pid> {
        let text = fs::read_to_string(self.pid_path(name)).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        let command_line = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let command_line = String::from_utf8_lossy(&command_line);
        let pid = Pid::from_raw(pid);
        (command_line.contains("__supervise")
            && command_line.split('\0').any(|word| word == name)
            && is_alive(pid))
        .then_some(pid)
    }
}

impl Services for ProcessServices {
    fn backend(&self) -> &'static str {
        "process"
    }

    fn install(&self, spec: &ServiceSpec) -> Result<Outcome, HostError> {
        let mut bytes = serde_json::to_vec_pretty(spec)
            .map_err(|error| service_error(&spec.name, error.to_string()))?;
        bytes.push(b'\n');
        ensure_file(&self.files, &Self::spec_path(&spec.name), &bytes, 0o644)
    }

    fn start(&self, name: &str) -> Result<(), HostError> {
        if self.running_supervisor(name).is_some() {
            return Ok(());
        }
        if !self.files.exists(&Self::spec_path(name))? {
            return Err(service_error(name, "it is not installed"));
        }
        let log_path = self
            .files
            .real_path(&Path::new(PROCESS_LOG_DIR).join(format!("{name}.log")));
        if let Some(parent) = log_path.parent() {
            fs::create_dir_all(parent)
                .map_err(|error| HostError::file("create the directory", parent, &error))?;
        }
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|error| HostError::file("open", &log_path, &error))?;
        let log_for_stderr = log
            .try_clone()
            .map_err(|error| HostError::file("open", &log_path, &error))?;
        Command::new(&self.executable)
            .arg("__supervise")
            .arg("--root")
            .arg(self.files.root())
            .arg(name)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0)
            .spawn()
            .map_err(|error| {
                service_error(
                    name,
                    format!("cannot start its supervisor: {}", describe_io_error(&error)),
                )
            })?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.running_supervisor(name).is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(service_error(
            name,
            format!("its supervisor did not start; see {}", log_path.display()),
        ))
    }

    fn stop(&self, name: &str) -> Result<(), HostError> {
        let Some(pid) = self.running_supervisor(name) else {
            return Ok(());
        };
        let _ = killpg(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && is_alive(pid) {
            std::thread::sleep(Duration::from_millis(50));
        }
        if is_alive(pid) {
            let _ = killpg(pid, Signal::SIGKILL);
        }
        let _ = fs::remove_file(self.pid_path(name));
        Ok(())
    }

    fn restart(&self, name: &str) -> Result<(), HostError> {
        self.stop(name)?;
        self.start(name)
    }

    fn uninstall(&self, name: &str) -> Result<Outcome, HostError> {
        self.stop(name)?;
        let removed = self.files.remove_file(&Self::spec_path(name))?;
        Ok(if removed {
            Outcome::Removed
        } else {
            Outcome::Unchanged
        })
    }

    fn state(&self, name: &str) -> Result<ServiceState, HostError> {
        if self.running_supervisor(name).is_some() {
            Ok(ServiceState::Active)
        } else if self.files.exists(&Self::spec_path(name))? {
            Ok(ServiceState::Inactive)
        } else {
            Ok(ServiceState::Unknown)
        }
    }
}

/// Whether a process exists and is not a zombie waiting for its parent.
fn is_alive(pid: Pid) -> bool {
    if kill(pid, None).is_err() {
        return false;
    }
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name.
    let state = state.rsplit(')').next().unwrap_or_default().trim_start();
    !state.starts_with('Z')
}

/// Reads `KEY=value` lines (values optionally quoted) from environment files, later files winning.
fn read_environment(files: &LocalFiles, paths: &[PathBuf]) -> Vec<(String, String)> {
    let mut environment: Vec<(String, String)> = Vec::new();
    for path in paths {
        let Ok(Some(bytes)) = files.read(path) else {
            continue;
        };
        for line in String::from_utf8_lossy(&bytes).lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .map(|inner| inner.replace("\\\"", "\"").replace("\\\\", "\\"))
                .unwrap_or_else(|| value.to_owned());
            environment.retain(|(existing, _)| existing != key.trim());
            environment.push((key.trim().to_owned(), value));
        }
    }
    environment
}

/// Expands arguments the way systemd's `ExecStart=` does: a lone `$VAR` becomes the variable's words (none when it
/// is empty or unset); `${VAR}` inside a word is replaced in place.
fn expand_arguments(arguments: &[String], environment: &[(String, String)]) -> Vec<String> {
    let lookup = |name: &str| {
        environment
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_default()
    };
    let mut expanded = Vec::new();
    for argument in arguments {
        if let Some(name) = argument
            .strip_prefix('$')
            .filter(|name| !name.starts_with('{'))
        {
            expanded.extend(lookup(name).split_whitespace().map(str::to_owned));
            continue;
        }
        let mut word = argument.clone();
        while let Some(start) = word.find("${") {
            let Some(length) = word[start..].find('}') else {
                break;
            };
            let name = word[start + 2..start + length].to_owned();
            word.replace_range(start..=start + length, &lookup(&name));
        }
        expanded.push(word);
    }
    expanded
}

/// Runs one service under supervision until the process group is signalled. Never returns normally.
pub fn supervise(root: &Path, name: &str) -> Result<(), HostError> {
    let files = LocalFiles::new(root);
    let pid_path = files.real_path(&Path::new(PROCESS_RUN_DIR).join(format!("{name}.pid")));
    if let Some(parent) = pid_path.parent() {
        fs::create_dir_all(parent)
            .map_err(|error| HostError::file("create the directory", parent, &error))?;
    }
    fs::write(&pid_path, std::process::id().to_string())
        .map_err(|error| HostError::file("write", &pid_path, &error))?;
    loop {
        let spec_bytes = files
            .read(&ProcessServices::spec_path(name))?
            .ok_or_else(|| service_error(name, "it is not installed"))?;
        let spec: ServiceSpec = serde_json::from_slice(&spec_bytes).map_err(|error| {
            service_error(name, format!("its definition is not valid: {error}"))
        })?;
        let environment = read_environment(&files, &spec.environment_files);
        let arguments = expand_arguments(&spec.command.args, &environment);
        eprintln!(
            "[supervise] starting {} {}",
            spec.command.program,
            arguments.join(" ")
        );
        let status = Command::new(&spec.command.program)
            .args(&arguments)
            .envs(environment.iter().map(|(key, value)| (key, value)))
            .envs(spec.command.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(status) => eprintln!("[supervise] {name} exited: {status}"),
            Err(error) => eprintln!(
                "[supervise] {name} could not start: {}",
                describe_io_error(&error)
            ),
        }
        std::thread::sleep(Duration::from_secs(u64::from(
            spec.restart_after_seconds.max(1),
        )));
    }
}

/// Services managed by systemd.
pub struct SystemdServices {
    files: LocalFiles,
    commands: LocalCommands,
}

impl SystemdServices {
    pub fn new(files: LocalFiles) -> Self {
        SystemdServices {
            files,
            commands: LocalCommands,
        }
    }

    fn systemctl(&self, arguments: &[&str]) -> Result<(), HostError> {
        run_checked(
            &self.commands,
            &CommandSpec::new("systemctl").args(arguments.iter().copied()),
        )
        .map(|_| ())
    }
}

/// The systemd unit for a service.
pub fn systemd_unit(spec: &ServiceSpec) -> String {
    let mut unit = format!(
        "# Written by bosun; changes are overwritten.\n[Unit]\nDescription={}\nWants=network-online.target\nAfter=network-online.target\n\n[Service]\n",
        spec.description
    );
    for path in &spec.environment_files {
        unit.push_str(&format!("EnvironmentFile=-{}\n", path.display()));
    }
    for (key, value) in &spec.command.env {
        unit.push_str(&format!("Environment=\"{key}={value}\"\n"));
    }
    let mut exec = spec.command.program.clone();
    for argument in &spec.command.args {
        exec.push(' ');
        exec.push_str(argument);
    }
    unit.push_str(&format!(
        "ExecStart={exec}\nRestart=always\nStartLimitInterval=0\nRestartSec={}\n\n[Install]\nWantedBy=multi-user.target\n",
        spec.restart_after_seconds.max(1)
    ));
    unit
}

impl Services for SystemdServices {
    fn backend(&self) -> &'static str {
        "systemd"
    }

    fn install(&self, spec: &ServiceSpec) -> Result<Outcome, HostError> {
        let path = PathBuf::from(format!("/etc/systemd/system/{}.service", spec.name));
        let outcome = ensure_file(&self.files, &path, systemd_unit(spec).as_bytes(), 0o644)?;
        if outcome != Outcome::Unchanged {
            self.systemctl(&["daemon-reload"])?;
        }
        self.systemctl(&["enable", &spec.name])?;
        Ok(outcome)
    }

    fn start(&self, name: &str) -> Result<(), HostError> {
        self.systemctl(&["start", name])
    }

    fn stop(&self, name: &str) -> Result<(), HostError> {
        self.systemctl(&["stop", name])
    }

    fn restart(&self, name: &str) -> Result<(), HostError> {
        self.systemctl(&["restart", name])
    }

    fn uninstall(&self, name: &str) -> Result<Outcome, HostError> {
        let path = PathBuf::from(format!("/etc/systemd/system/{name}.service"));
        if self.state(name)? == ServiceState::Active {
            self.systemctl(&["stop", name])?;
        }
        if !self.files.exists(&path)? {
            // A packaged unit (kubelet.service from the kubernetes deb) is not bosun's to remove; it stays stopped.
            return Ok(Outcome::Unchanged);
        }
        self.systemctl(&["disable", name])?;
        self.files.remove_file(&path)?;
        self.systemctl(&["daemon-reload"])?;
        Ok(Outcome::Removed)
    }

    fn state(&self, name: &str) -> Result<ServiceState, HostError> {
        let output = self.commands.run(
            &CommandSpec::new("systemctl")
                .args(["is-active", name])
                .read_only(),
        )?;
        Ok(match String::from_utf8_lossy(&output.stdout).trim() {
            "active" | "activating" | "reloading" => ServiceState::Active,
            "failed" => ServiceState::Failed,
            "inactive" | "deactivating" => ServiceState::Inactive,
            _ => ServiceState::Unknown,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_variables_split_into_words_like_systemd() {
        let environment = vec![
            ("KUBELET_KUBEADM_ARGS".to_owned(), "--a=1 --b=2".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ];
        let arguments: Vec<String> = [
            "--config=x",
            "$KUBELET_KUBEADM_ARGS",
            "$EMPTY",
            "$UNSET",
            "--dir=${KUBELET_KUBEADM_ARGS}",
        ]
        .iter()
        .map(|word| (*word).to_owned())
        .collect();
        assert_eq!(
            expand_arguments(&arguments, &environment),
            ["--config=x", "--a=1", "--b=2", "--dir=--a=1 --b=2"]
        );
    }

    #[test]
    fn environment_files_are_read_in_order_with_quotes_removed() {
        let root = tempfile::tempdir().expect("tempdir");
        let files = LocalFiles::new(root.path());
        files
            .write_atomic(Path::new("/a.env"), b"# comment\nA=\"x y\"\nB=1\n", 0o644)
            .expect("write");
        files
            .write_atomic(Path::new("/b.env"), b"B=2\n", 0o644)
            .expect("write");
        let environment = read_environment(
            &files,
            &[
                PathBuf::from("/a.env"),
                PathBuf::from("/missing"),
                PathBuf::from("/b.env"),
            ],
        );
        assert_eq!(
            environment,
            [
                ("A".to_owned(), "x y".to_owned()),
                ("B".to_owned(), "2".to_owned())
            ]
        );
    }

    #[test]
    fn the_systemd_unit_carries_environment_files_and_restart() {
        let spec = ServiceSpec {
            name: "kubelet".to_owned(),
            description: "kubelet".to_owned(),
            command: CommandSpec::new("/usr/bin/kubelet").args(["$KUBELET_KUBEADM_ARGS"]),
            environment_files: vec![PathBuf::from("/var/lib/kubelet/kubeadm-flags.env")],
            restart_after_seconds: 10,
        };
        let unit = systemd_unit(&spec);
        assert!(
            unit.contains("EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env\n"),
            "{unit}"
        );
        assert!(
            unit.contains("ExecStart=/usr/bin/kubelet $KUBELET_KUBEADM_ARGS\n"),
            "{unit}"
        );
        assert!(unit.contains("Restart=always\n"), "{unit}");
    }
}
