//! Benchmark: every certificate and every kubeconfig of a first control-plane node, made by the real `bosun` binary
//! and by the real kubeadm on the same configuration, interleaved round by round so that both see the same load.
//!
//! Per key algorithm (RSA-2048, kubeadm's default, and ECDSA-P256) and per round, each of these runs once against a
//! fresh directory, in an order that rotates every round:
//! - `bosun two commands`: `bosun init phase certs` then `bosun init phase kubeconfig` (what kubeadm users script);
//! - `bosun one run`: `bosun init --offline --skip-phases etcd,control-plane` (the certs and kubeconfig phases of one
//!   `bosun init`, sharing one key supply);
//! - `kubeadm`: `kubeadm init phase certs all` then `kubeadm init phase kubeconfig all`;
//! - `keys only`: the 16 keys generated in this process on every core (`bosun_pki::generate_keys`), the practical
//!   floor on this machine under its current load.
//!
//! It prints wall-clock median and mean, CPU per round (the programs' user + system time), the ratios kubeadm / bosun
//! and bosun / floor, where the floor is `keys × (CPU of one key on one core) / cores`, measured in the same run.
//!
//! `cargo bench --bench pki_init` (`-- --quick` for fewer rounds). kubeadm is found at `$BOSUN_BENCH_KUBEADM` or in
//! the harness cache (/var/cache/bosun-e2e/kubernetes-*/bin/kubeadm); without it only bosun is measured.

#![expect(
    clippy::disallowed_methods,
    reason = "a benchmark drives real programs and files directly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bosun_pki::{generate_keys, KeyAlgorithm, PrivateKey};

/// Keys in the full set: 10 certificates, the service-account key and 5 kubeconfigs.
const KEYS: usize = 16;

fn kubeadm() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BOSUN_BENCH_KUBEADM") {
        return Some(PathBuf::from(path));
    }
    let cache = std::fs::read_dir("/var/cache/bosun-e2e").ok()?;
    let mut found: Vec<PathBuf> = cache
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin/kubeadm"))
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// CPU time (user + system) of this process and of the children it has waited for, from /proc/self/stat.
fn cpu_times() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    // After the name: state is field 0; utime, stime, cutime, cstime are fields 11..=14.
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .skip(11)
        .take(4)
        .filter_map(|field| field.parse().ok())
        .collect();
    let ticks = |values: &[u64]| Duration::from_millis(values.iter().sum::<u64>() * 10);
    if fields.len() < 4 {
        return (Duration::ZERO, Duration::ZERO);
    }
    (ticks(&fields[0..2]), ticks(&fields[2..4]))
}

fn run(program: &Path, arguments: &[&str]) {
    let output = Command::new(program)
        .args(arguments)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("start");
    assert!(
        output.status.success(),
        "{} {arguments:?}: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn bosun_config(algorithm: KeyAlgorithm) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 192.168.10.5
nodeRegistration:
  name: bench-node
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.35.4
encryptionAlgorithm: {algorithm}
controlPlaneEndpoint: lb.example.com:6443
apiServer:
  certSANs:
  - 10.0.0.9
  - api.example.com
"
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    BosunTwo,
    BosunOne,
    Kubeadm,
    KeysOnly,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::BosunTwo => "bosun two commands",
            Variant::BosunOne => "bosun one run",
            Variant::Kubeadm => "kubeadm certs + kubeconfig",
            Variant::KeysOnly => "keys only (in process)",
        }
    }
}

#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu: Duration,
}

impl Samples {
    fn median(&self) -> Duration {
        let mut sorted = self.wall.clone();
        sorted.sort();
        sorted.get(sorted.len() / 2).copied().unwrap_or_default()
    }

    fn mean(&self) -> Duration {
        self.wall.iter().sum::<Duration>() / self.wall.len().max(1) as u32
    }
}

struct Setup {
    bosun: PathBuf,
    kubeadm: Option<PathBuf>,
    scratch: tempfile::TempDir,
    algorithm: KeyAlgorithm,
}

impl Setup {
    fn fresh(&self, name: &str) -> PathBuf {
        let directory = self.scratch.path().join(name);
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).expect("scratch");
        directory
    }

    fn once(&self, variant: Variant) {
        match variant {
            Variant::BosunTwo | Variant::BosunOne => {
                let root = self.fresh("bosun-root");
                let config = self.scratch.path().join("bosun.yaml");
                let config = config.to_str().expect("utf-8");
                let root = root.to_str().expect("utf-8");
                if variant == Variant::BosunTwo {
                    for phase in ["certs", "kubeconfig"] {
                        run(
                            &self.bosun,
                            &["--root", root, "init", "phase", phase, "--config", config],
                        );
                    }
                } else {
                    run(
                        &self.bosun,
                        &[
                            "--root",
                            root,
                            "init",
                            "--offline",
                            "--skip-phases",
                            "etcd,control-plane",
                            "--config",
                            config,
                        ],
                    );
                }
            }
            Variant::Kubeadm => {
                let Some(kubeadm) = &self.kubeadm else { return };
                let directory = self.fresh("kubeadm");
                let config = directory.join("kubeadm.yaml");
                std::fs::write(
                    &config,
                    format!(
                        "{}certificatesDir: {}\n",
                        bosun_config(self.algorithm),
                        directory.join("pki").display()
                    ),
                )
                .expect("config");
                let config = config.to_str().expect("utf-8");
                run(
                    kubeadm,
                    &["init", "phase", "certs", "all", "--config", config],
                );
                let kubeconfig_dir = directory.join("kubeconfigs");
                run(
                    kubeadm,
                    &[
                        "init",
                        "phase",
                        "kubeconfig",
                        "all",
                        "--config",
                        config,
                        "--kubeconfig-dir",
                        kubeconfig_dir.to_str().expect("utf-8"),
                    ],
                );
            }
            Variant::KeysOnly => {
                let keys = generate_keys(self.algorithm, KEYS).expect("keys");
                std::hint::black_box(keys);
            }
        }
    }
}

/// The CPU cost of one key on one core: the mean over `rounds` keys made one after another.
fn one_key_cpu(algorithm: KeyAlgorithm, rounds: u32) -> Duration {
    let (before, _) = cpu_times();
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(PrivateKey::generate(algorithm).expect("key"));
    }
    let (after, _) = cpu_times();
    let cpu = after - before;
    // Clock ticks are 10 ms: for cheap keys the wall clock on one core is the better measure.
    if cpu >= Duration::from_millis(500) {
        cpu / rounds
    } else {
        started.elapsed() / rounds
    }
}

fn main() {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let kubeadm = kubeadm();
    println!(
        "cores: {cores}; kubeadm: {}",
        kubeadm
            .as_ref()
            .map_or("not found, bosun only".to_owned(), |path| path
                .display()
                .to_string())
    );
    for (algorithm, rounds, key_rounds) in [
        (KeyAlgorithm::Rsa2048, 12, 40),
        (KeyAlgorithm::EcdsaP256, 20, 400),
    ] {
        let (rounds, key_rounds) = if quick {
            (rounds / 3, key_rounds / 4)
        } else {
            (rounds, key_rounds)
        };
        let setup = Setup {
            bosun: PathBuf::from(env!("CARGO_BIN_EXE_bosun")),
            kubeadm: kubeadm.clone(),
            scratch: tempfile::tempdir().expect("scratch"),
            algorithm,
        };
        std::fs::write(
            setup.scratch.path().join("bosun.yaml"),
            bosun_config(algorithm),
        )
        .expect("config");
        let mut variants = vec![Variant::BosunTwo, Variant::BosunOne, Variant::KeysOnly];
        if setup.kubeadm.is_some() {
            variants.push(Variant::Kubeadm);
        }
        // Warm-up: page cache, binaries, allocator.
        for variant in &variants {
            setup.once(*variant);
        }
        let mut samples: Vec<Samples> = variants.iter().map(|_| Samples::default()).collect();
        let mut per_key = Duration::ZERO;
        for round in 0..rounds {
            // The floor's per-key cost is measured between rounds too, under the same load.
            per_key += one_key_cpu(algorithm, (key_rounds / rounds).max(1) as u32);
            for offset in 0..variants.len() {
                let index = (round + offset) % variants.len();
                let (own_before, children_before) = cpu_times();
                let started = Instant::now();
                setup.once(variants[index]);
                let wall = started.elapsed();
                let (own_after, children_after) = cpu_times();
                samples[index].wall.push(wall);
                samples[index].cpu += (own_after - own_before) + (children_after - children_before);
            }
        }
        let per_key = per_key / rounds as u32;
        let floor = per_key.mul_f64(KEYS as f64 / cores as f64);
        println!(
            "\n{algorithm}, {rounds} rounds; one key on one core {:.2} ms CPU; floor = {KEYS} keys x that / {cores} cores = {:.1} ms",
            per_key.as_secs_f64() * 1e3,
            floor.as_secs_f64() * 1e3
        );
        let ms = |duration: Duration| duration.as_secs_f64() * 1e3;
        for (variant, measured) in variants.iter().zip(&samples) {
            println!(
                "  {:<28} wall median {:>8.1} ms  mean {:>8.1} ms  cpu/round {:>8.1} ms  median/floor {:>5.2}",
                variant.label(),
                ms(measured.median()),
                ms(measured.mean()),
                ms(measured.cpu / rounds as u32),
                measured.median().as_secs_f64() / floor.as_secs_f64(),
            );
        }
        if let Some(kubeadm_index) = variants.iter().position(|v| *v == Variant::Kubeadm) {
            let kubeadm_median = samples[kubeadm_index].median().as_secs_f64();
            for (index, variant) in variants.iter().enumerate() {
                if matches!(variant, Variant::BosunTwo | Variant::BosunOne) {
                    println!(
                        "  kubeadm / {:<22} {:>5.2}x (medians)",
                        variant.label(),
                        kubeadm_median / samples[index].median().as_secs_f64()
                    );
                }
            }
        }
    }
}
