//! bosun-phases: the phase engine and the phases of bosun's workflows.
//!
//! Map of the crate:
//! - [`engine`]: phases as data (names, summaries, run conditions, `needs`/`makes`), workflow selection
//!   (`--skip-phases`, `phase <name>`), the pre-flight check of needs, and the runner that emits [`engine::Event`]s.
//!   It knows nothing about Kubernetes.
//! - [`host`]: the narrow traits through which phases touch a node (files under a root, commands, services, clock),
//!   the idempotent `ensure_file` primitive, the dry-run overlay that records diffs instead of writing, and an
//!   in-memory host for tests. The real implementations live in the `bosun` binary's `host/` module.
//!
//! Files on a node that this crate writes itself: none. Phases write through [`host::Files`]; the runner's journal
//! (`/var/lib/bosun/journal.json`) is written by the binary.

pub mod engine;
pub mod etcd;
pub mod host;
