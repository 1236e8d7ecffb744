//! The only code that touches a real machine: local files under a root, programs, services, the host lock and
//! machine facts. Everything else reaches the machine through `bosun_phases::host` traits.
//!
//! Files on a node this module owns itself:
//! - `/var/lib/bosun/lock` — the host lock ([`lock`]).
//! - `/etc/bosun/services/*.json`, `/run/bosun/*.pid`, `/var/log/bosun/*.log` — the process service backend
//!   ([`services`]), used where systemd is not PID 1.
//! - `/etc/systemd/system/<name>.service` — the systemd backend.
//!
//! [`kube`] is the Kubernetes API client (kube-rs) behind `bosun_phases::host::cluster`; it writes nothing on the node.

pub mod etcd;
pub mod facts;
pub mod kube;
pub mod local;
pub mod lock;
pub mod services;

use std::path::{Path, PathBuf};

use bosun_phases::host::dry_run::{DryRunCommands, DryRunFiles, DryRunServices};
use bosun_phases::host::{Host, Services, SystemClock};

use local::{LocalCommands, LocalFiles};
use services::{ProcessServices, SystemdServices};

/// Which service backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceBackend {
    /// systemd when it is PID 1 and the root is `/`, the process supervisor otherwise.
    Auto,
    Systemd,
    Process,
}

/// Builds the local host rooted at `root`.
pub fn local(root: &Path, dry_run: bool, backend: ServiceBackend) -> Host {
    let files = LocalFiles::new(root);
    let use_systemd = match backend {
        ServiceBackend::Auto => facts::systemd_is_init() && root == Path::new("/"),
        ServiceBackend::Systemd => true,
        ServiceBackend::Process => false,
    };
    let services: Box<dyn Services> = if use_systemd {
        Box::new(SystemdServices::new(files.clone()))
    } else {
        let executable = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("bosun"));
        Box::new(ProcessServices::new(files.clone(), executable))
    };
    let description = if root == Path::new("/") {
        "this host".to_owned()
    } else {
        format!("root {}", root.display())
    };
    if dry_run {
        Host {
            files: Box::new(DryRunFiles::new(Box::new(files))),
            commands: Box::new(DryRunCommands::new(Box::new(LocalCommands))),
            services: Box::new(DryRunServices::new(services)),
            clock: Box::new(SystemClock),
            description: format!("{description} (dry run)"),
            dry_run: true,
        }
    } else {
        Host {
            files: Box::new(files),
            commands: Box::new(LocalCommands),
            services,
            clock: Box::new(SystemClock),
            description,
            dry_run: false,
        }
    }
}
