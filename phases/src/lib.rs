//! bosun-phases: the phase engine and the phases of bosun's workflows.
//!
//! Map of the crate:
//! - [`engine`]: phases as data (names, summaries, run conditions, `needs`/`makes`), workflow selection
//!   (`--skip-phases`, `phase <name>`), the pre-flight check of needs, and the runner that emits [`engine::Event`]s.
//!   It knows nothing about Kubernetes.
//! - [`host`]: the narrow traits through which phases touch a node (files under a root, commands, services, clock),
//!   the idempotent `ensure_file` primitive, the dry-run overlay that records diffs instead of writing, and an
//!   in-memory host for tests. The real implementations live in the `bosun` binary's `host/` module.
//! - [`paths`]: the well-known node paths, declared once.
//! - [`addon`]: `addon history|status|rollback` for the addons bosun owns (kube-proxy's DaemonSet, through its
//!   ControllerRevisions, as `kubectl rollout undo` does); the rollout follower itself is [`cluster::rollout`].
//! - [`certs`]: the `init` phases `certs/*` (the PKI) and `kubeconfig/*` (the kubeconfig files).
//! - [`certops`]: `certs check-expiration|renew|generate-csr|certificate-key|timer` and `kubeconfig user`: the PKI
//!   after init (expiry tables, the renew workflow with static-pod restarts, CSRs, the daily renewal timer).
//! - [`init`]: the `init` workflow tree and [`init::InitData`], the typed data its phases read.
//! - [`reset`]: the `reset` workflow (preflight, remove-etcd-member, cleanup-node/*) and [`reset::ResetData`].
//!
//! Files on a node that this crate writes itself: none. Phases write through [`host::Files`]; the runner's journal
//! (`/var/lib/bosun/journal.json`) is written by the binary.

pub mod addon;
pub mod certops;
pub mod certs;
pub mod cluster;
pub mod engine;
pub mod etcd;
pub mod host;
pub mod init;
pub mod join;
pub mod node;
pub mod paths;
pub mod render;
pub mod reset;
pub mod token;
