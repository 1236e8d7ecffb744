//! What node configuration needs to know about the machine. The binary gathers it (src/host/facts.rs) for a
//! workflow, so that every decision here is a pure function of plain data and testable without a machine.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Which cgroup hierarchy the machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// Legacy hierarchies (possibly with a unified one beside them: "hybrid").
    V1,
    /// The unified hierarchy only.
    V2,
    #[default]
    Unknown,
}

/// What to gather.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactRequest {
    /// TCP ports whose local availability preflight checks.
    pub ports: Vec<u16>,
    /// Kernel parameters to read (`net.ipv4.ip_forward`).
    pub sysctls: Vec<String>,
    /// A host name to resolve.
    pub hostname: String,
}

/// Facts about the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct NodeFacts {
    /// Whether facts were gathered at all (false in `Default`, so nothing is concluded from an empty value).
    pub gathered: bool,
    pub hostname: String,
    /// Effective user id 0.
    pub is_root: bool,
    pub cpus: u32,
    pub memory_mib: u64,
    /// Active swap in KiB (from /proc/swaps).
    pub swap_kib: u64,
    /// systemd is PID 1.
    pub systemd_is_init: bool,
    /// systemd-resolved's stub resolv.conf is in use.
    pub systemd_resolved: bool,
    pub cgroup_version: CgroupVersion,
    /// Controllers available (v2 `cgroup.controllers`, or the mounted v1 hierarchies).
    pub cgroup_controllers: Vec<String>,
    /// Values of the requested kernel parameters that exist.
    pub sysctls: BTreeMap<String, String>,
    /// Requested ports something already listens on.
    pub ports_in_use: Vec<u16>,
    /// Whether the requested host name resolved.
    pub hostname_resolves: bool,
    pub kernel_release: String,
    /// The `*_proxy` variables (either case) of bosun's environment, handed to the control-plane pods.
    pub proxy_env: Vec<(String, String)>,
}

/// [`NodeFacts`] gathered when a phase first asks for them, once per run.
///
/// Why: gathering reads /proc, the kernel parameters and the environment and resolves the node name, which a run
/// that needs none of it (`init phase certs`, `init phase kubeconfig`) should not pay for or wait on (a broken
/// resolver can take seconds). Clones share the one gathering, so `join` hands its facts to the init phases it runs.
#[derive(Clone, Default)]
pub struct LazyFacts {
    facts: Arc<OnceLock<NodeFacts>>,
    gather: Option<Arc<dyn Fn() -> NodeFacts + Send + Sync>>,
}

impl LazyFacts {
    /// Facts that `gather` makes on first use.
    pub fn new(gather: impl Fn() -> NodeFacts + Send + Sync + 'static) -> Self {
        LazyFacts {
            facts: Arc::default(),
            gather: Some(Arc::new(gather)),
        }
    }

    /// Facts known already (tests, and callers that gathered them themselves).
    pub fn ready(facts: NodeFacts) -> Self {
        LazyFacts {
            facts: Arc::new(OnceLock::from(facts)),
            gather: None,
        }
    }

    /// The facts, gathered now if no phase asked before. Without a gatherer they are `NodeFacts::default()`, whose
    /// `gathered` is false, which preflight refuses.
    pub fn get(&self) -> &NodeFacts {
        self.facts.get_or_init(|| {
            self.gather
                .as_ref()
                .map(|gather| gather())
                .unwrap_or_default()
        })
    }
}

impl std::fmt::Debug for LazyFacts {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.facts.get() {
            Some(facts) => facts.fmt(formatter),
            None => formatter.write_str("LazyFacts(not gathered yet)"),
        }
    }
}

#[cfg(test)]
mod lazy_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn facts_are_gathered_once_on_first_use_and_shared_by_clones() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&calls);
        let lazy = LazyFacts::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            NodeFacts {
                gathered: true,
                hostname: "node-a".to_owned(),
                ..NodeFacts::default()
            }
        });
        let clone = lazy.clone();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "nothing is gathered before a phase asks"
        );
        assert_eq!(clone.get().hostname, "node-a");
        assert_eq!(lazy.get().hostname, "node-a");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(!LazyFacts::default().get().gathered);
        assert_eq!(
            LazyFacts::ready(NodeFacts::default()).get(),
            &NodeFacts::default()
        );
    }
}
