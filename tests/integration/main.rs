//! bosun's integration tests: they run the real `bosun` binary against temporary roots and real components.
//!
//! Modules:
//! - `support`: the temporary root (prints its listing on failure) and the binary runner.
//! - `docs`: the pages in docs/ stay true to the code (exit codes, one page per command).
//! - `cgroup`: `bosun node cgroup-driver` migrating a node root's real containerd and a kubelet stand-in under the
//!   process backend (order, resume after a failure, refusals), and the drain against a real control plane.
//! - `config`: `bosun config print|validate|migrate`, and every kind of bad configuration input (exit code 3,
//!   one located sentence, nothing changed on the host).
//! - `certs`: `bosun certs` (check-expiration compared with real kubeadm, renew checked with OpenSSL, generate-csr,
//!   timer) and `bosun kubeconfig user` (parsed by kubectl).
//! - `cluster`: the cluster-side init phases (upload-config, upload-certs, mark-control-plane, bootstrap-token,
//!   addons, show-join-command) on a real control plane (tier 1).
//! - `addon`: kube-proxy rollouts followed by `init phase addon kube-proxy`, and `bosun addon history|status|rollback`
//!   through the DaemonSet's ControllerRevisions and CoreDNS's ReplicaSets, compared with the real kubectl (tier 1);
//!   a kube-proxy image change rolled out and back on a real node (tier 2).
//! - `token`: `bosun token` locally and against a real control plane, compared with kubeadm (tier 1).
//! - `init`: `bosun init` as a workflow: idempotence, dry runs, phase selection, the needs check, killed runs.
//! - `join`: `bosun join` on real parts: discovery against a bosun-built control plane (pins, signatures, bad input),
//!   a control-plane join (downloaded certificates, etcd learner promoted), a worker's real kubelet TLS bootstrap;
//!   the nodes are connected through `harness::network`.
//! - `pki`: `init phase certs|kubeconfig` output checked by openssl, kubectl and a real etcd 3.4; bad files refused.
//! - `etcd`: `bosun etcd` backup, status, restore (through a manifest-watching runner) and members, against real
//!   etcd: backup and restore on etcd 3.4 and the harness's 3.6 with the PKI bosun made, members with openssl's.
//! - `node`: rendered manifests against the Kubernetes OpenAPI schema, etcd run from bosun's manifest, a real
//!   containerd loading bosun's config.toml.
//! - `reset`: `bosun reset` on roots written by `bosun init`: what goes and what stays, dry runs, a supervised
//!   kubelet stand-in, a real containerd's k8s.io containers, a real two-member etcd, init again afterwards.
//! - `status`: the journal behind `bosun status`.
//! - `services`: the process service backend starting, restarting and stopping a real process.
//! - `harness` (tests/e2e/harness/): the real-Kubernetes harness — built binaries, sandbox nodes, static pods run as
//!   processes (docs/testing.md).
//! - `tier1` (tests/e2e/tier1.rs): a real control plane from a node root's manifests, certificates and kubeconfigs.
//! - `tier2` (tests/e2e/tier2.rs): a node's own containerd runs the locally built images; `bosun init` for real on a
//!   node in namespaces (containerd, kubelet, static pods, CNI, kube-proxy, CoreDNS), and again with no change.
//! - `tier3` (tests/e2e/tier3.rs): a second node joins the first with `bosun join` over a bridge.
//! - `renew` (tests/e2e/renew.rs): `bosun certs renew all` on a tier-2 node; the real kubelet restarts the
//!   control plane one component at a time.
//! - `differential` (tests/e2e/differential.rs): real kubeadm and bosun write equivalent files from one config.

#![expect(
    clippy::disallowed_methods,
    reason = "integration tests inspect the machine directly"
)]

mod addon;
mod certs;
mod cgroup;
mod cluster;
mod config;
#[path = "../e2e/differential.rs"]
mod differential;
mod docs;
mod etcd;
#[path = "../e2e/harness/mod.rs"]
mod harness;
mod init;
mod join;
mod node;
mod pki;
#[path = "../e2e/renew.rs"]
mod renew;
mod reset;
mod services;
mod status;
mod support;
#[path = "../e2e/tier1.rs"]
mod tier1;
#[path = "../e2e/tier2.rs"]
mod tier2;
#[path = "../e2e/tier3.rs"]
mod tier3;
mod token;
