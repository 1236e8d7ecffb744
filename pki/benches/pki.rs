//! Benchmark: the whole PKI (every certificate, the service-account key and every kubeconfig client certificate)
//! made in memory, with RSA-2048 and ECDSA-P256, against the floor set by key generation alone.
//!
//! Run with `cargo bench -p bosun-pki` (add `-- --quick` for fewer rounds). For each algorithm it prints the
//! median and minimum wall time of `generate_all`, the median CPU cost of generating one key on one core, and the
//! floor: keys × per-key cost ÷ cores. RSA prime search has a long-tailed cost, so medians over many rounds are what
//! the targets are judged on.

use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use bosun_pki::bundle::{generate_all, key_count};
use bosun_pki::{KeyAlgorithm, PkiInputs, PrivateKey, Validity};

fn inputs(algorithm: KeyAlgorithm) -> PkiInputs {
    PkiInputs {
        node_name: "bench-node".to_owned(),
        advertise_address: IpAddr::from([192, 168, 10, 5]),
        bind_port: 6443,
        service_vip: IpAddr::from([10, 96, 0, 1]),
        dns_domain: "cluster.local".to_owned(),
        control_plane_endpoint: Some("lb.example.com:6443".to_owned()),
        apiserver_cert_sans: vec!["10.0.0.9".to_owned(), "api.example.com".to_owned()],
        etcd_server_cert_sans: Vec::new(),
        etcd_peer_cert_sans: Vec::new(),
        cluster_name: "kubernetes".to_owned(),
        key_algorithm: algorithm,
        validity: Validity::default(),
        external_etcd: false,
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn measure(label: &str, rounds: usize, mut work: impl FnMut()) -> (Duration, Duration) {
    work(); // warm-up
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    let minimum = samples.iter().copied().min().unwrap_or_default();
    let middle = median(&mut samples);
    println!(
        "{label:<40} median {:>9.2} ms   min {:>9.2} ms   ({rounds} rounds)",
        middle.as_secs_f64() * 1e3,
        minimum.as_secs_f64() * 1e3
    );
    (middle, minimum)
}

fn main() {
    let quick = std::env::args().any(|argument| argument == "--quick");
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    println!("cores: {cores}");
    for (algorithm, full_rounds, key_rounds) in [
        (KeyAlgorithm::EcdsaP256, 200, 400),
        (KeyAlgorithm::Rsa2048, 15, 60),
    ] {
        let (full_rounds, key_rounds) = if quick {
            (full_rounds / 5, key_rounds / 5)
        } else {
            (full_rounds, key_rounds)
        };
        let pki_inputs = inputs(algorithm);
        let keys = key_count(&pki_inputs);
        let (per_key, _) = measure(
            &format!("{algorithm}: one key, one core"),
            key_rounds,
            || {
                let key = PrivateKey::generate(algorithm).expect("key generation");
                std::hint::black_box(key);
            },
        );
        let (full, _) = measure(
            &format!("{algorithm}: full PKI ({keys} keys)"),
            full_rounds,
            || {
                let generated = generate_all(&pki_inputs, SystemTime::now()).expect("generate");
                std::hint::black_box(generated);
            },
        );
        let floor = per_key.mul_f64(keys as f64 / cores as f64);
        println!(
            "{algorithm}: floor (keys x per-key / cores) {:.2} ms; full set / floor = {:.2}\n",
            floor.as_secs_f64() * 1e3,
            full.as_secs_f64() / floor.as_secs_f64()
        );
    }
}
