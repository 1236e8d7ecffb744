//! Benchmark: `bosun etcd backup` (encrypted, and with `--no-encrypt`) against `etcdctl snapshot save` on the same
//! real etcd member with the same data, over TLS on loopback. Reports wall time, throughput, the ratio to etcdctl,
//! and each program's peak resident memory at two database sizes (to show memory stays flat as the database grows).
//!
//! `cargo bench --bench etcd_backup` (BOSUN_BENCH_ETCD_MB sets the large size, default 1024; BOSUN_BENCH_RUNS the
//! runs per program, default 3). Needs Debian's etcd-server and etcd-client, and openssl.

#![expect(
    clippy::disallowed_methods,
    reason = "a benchmark drives real programs and files directly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bosun::host::etcd::{LocalEtcd, TlsMaterial};
use bosun_phases::etcd::EtcdClient;

const ADDRESS: &str = "127.0.43.1";

/// The etcd PKI of the etcd integration tests, shared with them.
#[path = "../tests/integration/etcd_pki.rs"]
mod etcd_pki;

/// Runs a program to completion, sampling its peak resident set (VmHWM) while it runs.
fn measure(program: &Path, arguments: &[String]) -> (Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(arguments)
        .env("ETCDCTL_API", "3")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_path) {
            if let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:")) {
                let kib: u64 = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(0);
                peak_kib = peak_kib.max(kib);
            }
        }
        if let Some(status) = child.try_wait().expect("wait") {
            let elapsed = started.elapsed();
            if !status.success() {
                let mut text = String::new();
                if let Some(mut stderr) = child.stderr.take() {
                    use std::io::Read;
                    let _ = stderr.read_to_string(&mut text);
                }
                panic!("{} failed: {text}", program.display());
            }
            return (elapsed, peak_kib * 1024);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

struct Row {
    name: &'static str,
    time: Duration,
    peak: u64,
}

fn main() {
    if std::env::args().any(|argument| argument == "--list") {
        return;
    }
    let large_mb: u64 = std::env::var("BOSUN_BENCH_ETCD_MB")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1024);
    let runs: usize = std::env::var("BOSUN_BENCH_RUNS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let work = tempfile::Builder::new()
        .prefix("bosun-etcd-bench-")
        .tempdir_in("/var/tmp")
        .expect("work dir");
    let root = work.path().join("root");
    let pki = root.join("etc/kubernetes/pki/etcd");
    etcd_pki::make(&pki, &[ADDRESS]);
    let endpoint = format!("https://{ADDRESS}:2379");
    let log = std::fs::File::create(work.path().join("etcd.log")).expect("log");
    let data_dir = work.path().join("data");
    let file = |name: &str| pki.join(name).display().to_string();
    let mut etcd = Command::new("/usr/bin/etcd")
        .args([
            "--name=bench".to_owned(),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={endpoint}"),
            format!("--advertise-client-urls={endpoint}"),
            format!("--listen-peer-urls=http://{ADDRESS}:2380"),
            format!("--initial-advertise-peer-urls=http://{ADDRESS}:2380"),
            format!("--initial-cluster=bench=http://{ADDRESS}:2380"),
            format!("--cert-file={}", file("server.crt")),
            format!("--key-file={}", file("server.key")),
            format!("--trusted-ca-file={}", file("ca.crt")),
            "--client-cert-auth=true".to_owned(),
            "--quota-backend-bytes=8589934592".to_owned(),
            "--max-request-bytes=2097152".to_owned(),
            "--snapshot-count=100000".to_owned(),
        ])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start etcd");
    let read = |name: &str| std::fs::read(pki.join(name)).expect("read pki");
    let client = LocalEtcd::new(
        vec![endpoint.clone()],
        Some(TlsMaterial {
            ca: read("ca.crt"),
            cert: read("healthcheck-client.crt"),
            key: read("healthcheck-client.key"),
        }),
        Duration::from_secs(60),
    )
    .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.health(&endpoint).is_err() {
        assert!(
            Instant::now() < deadline,
            "etcd did not start; see {}",
            work.path().join("etcd.log").display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let bosun_program = PathBuf::from(env!("CARGO_BIN_EXE_bosun"));
    let etcdctl = PathBuf::from("/usr/bin/etcdctl");
    let connection = [
        "--endpoints".to_owned(),
        endpoint.clone(),
        "--cacert".to_owned(),
        "/etc/kubernetes/pki/etcd/ca.crt".to_owned(),
        "--cert".to_owned(),
        "/etc/kubernetes/pki/etcd/healthcheck-client.crt".to_owned(),
        "--key".to_owned(),
        "/etc/kubernetes/pki/etcd/healthcheck-client.key".to_owned(),
    ];
    let mut written_mb = 0u64;
    let mut value = vec![0u8; 1 << 20];
    println!(
        "etcd backup benchmark: bosun {} vs etcdctl snapshot save, {runs} interleaved runs each, median",
        bosun_program.display()
    );
    for target_mb in [large_mb / 4, large_mb] {
        while written_mb < target_mb {
            for (index, byte) in value.iter_mut().enumerate() {
                *byte = (index as u64 ^ written_mb.wrapping_mul(0x9e37_79b9)) as u8;
            }
            client
                .put_many(&[(format!("bench/{written_mb:06}"), value.clone())])
                .expect("put");
            written_mb += 1;
        }
        let database = client.status(&endpoint).expect("status").db_size as u64;
        let programs = [
            ("bosun etcd backup", true),
            ("bosun etcd backup --no-encrypt", false),
            ("etcdctl snapshot save", false),
        ];
        let mut times: Vec<Vec<Duration>> = programs.iter().map(|_| Vec::new()).collect();
        let mut peaks = vec![0u64; programs.len()];
        // Interleaved, in an order that rotates every run, so that all programs see the same load.
        for run_index in 0..runs {
            for offset in 0..programs.len() {
                let index = (run_index + offset) % programs.len();
                let (name, encrypted) = programs[index];
                let output = root.join(format!("out-{run_index}.db"));
                let _ = std::fs::remove_file(&output);
                let (time, resident) = if name.starts_with("etcdctl") {
                    let mut arguments = vec![
                        "--endpoints".to_owned(),
                        endpoint.clone(),
                        "--cacert".to_owned(),
                        file("ca.crt"),
                        "--cert".to_owned(),
                        file("healthcheck-client.crt"),
                        "--key".to_owned(),
                        file("healthcheck-client.key"),
                        "snapshot".to_owned(),
                        "save".to_owned(),
                    ];
                    arguments.push(output.display().to_string());
                    measure(&etcdctl, &arguments)
                } else {
                    let mut arguments = vec![
                        "--root".to_owned(),
                        root.display().to_string(),
                        "etcd".to_owned(),
                        "backup".to_owned(),
                    ];
                    arguments.extend(connection.iter().cloned());
                    arguments.extend(["--output-file".to_owned(), format!("/out-{run_index}.db")]);
                    if !encrypted {
                        arguments.push("--no-encrypt".to_owned());
                    }
                    measure(&bosun_program, &arguments)
                };
                times[index].push(time);
                peaks[index] = peaks[index].max(resident);
                let _ = std::fs::remove_file(&output);
            }
        }
        let rows: Vec<Row> = programs
            .iter()
            .zip(times)
            .zip(&peaks)
            .map(|(((name, _), times), peak)| Row {
                name,
                time: median(times),
                peak: *peak,
            })
            .collect();
        let etcdctl_time = rows.last().map(|row| row.time).unwrap_or_default();
        println!(
            "\ndatabase {:.1} MiB ({written_mb} MiB of values):",
            database as f64 / 1048576.0
        );
        println!(
            "  {:<32} {:>9} {:>11} {:>16} {:>10}",
            "program", "time", "MiB/s", "vs etcdctl (x)", "peak RSS"
        );
        for row in &rows {
            println!(
                "  {:<32} {:>8.2}s {:>11.1} {:>16.2} {:>7.1} MiB",
                row.name,
                row.time.as_secs_f64(),
                database as f64 / 1048576.0 / row.time.as_secs_f64(),
                etcdctl_time.as_secs_f64() / row.time.as_secs_f64(),
                row.peak as f64 / 1048576.0
            );
        }
    }
    let _ = etcd.kill();
    let _ = etcd.wait();
}
