//! The cgroup driver: the kubelet and the container runtime must manage cgroups the same way, and that way must
//! fit the machine — `systemd` where systemd is PID 1 (two managers of one tree fight over it), `cgroupfs`
//! otherwise (the systemd driver needs systemd to talk to).
//!
//! kubeadm defaults the kubelet to `systemd` whatever the host and leaves the runtime to the user; bosun decides
//! from the host, writes the same choice into the kubelet config and the runtime config, and refuses a
//! configuration that would force them apart.

use std::fmt;

use super::facts::NodeFacts;
use super::NodeError;

/// A cgroup driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupDriver {
    Systemd,
    Cgroupfs,
}

impl CgroupDriver {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "systemd" => Some(CgroupDriver::Systemd),
            "cgroupfs" => Some(CgroupDriver::Cgroupfs),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CgroupDriver::Systemd => "systemd",
            CgroupDriver::Cgroupfs => "cgroupfs",
        }
    }
}

impl fmt::Display for CgroupDriver {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The driver the machine calls for.
pub fn host_driver(facts: &NodeFacts) -> CgroupDriver {
    if facts.systemd_is_init {
        CgroupDriver::Systemd
    } else {
        CgroupDriver::Cgroupfs
    }
}

/// The driver to configure: the host's, unless the KubeletConfiguration sets one; a set value that does not fit
/// the host is refused with an explanation.
///
/// `configured` is the KubeletConfiguration's `cgroupDriver` and `set_by_user` whether the user's document set it
/// (kubeadm's own default `systemd` is not a user's choice).
pub fn decide(
    configured: &str,
    set_by_user: bool,
    facts: &NodeFacts,
) -> Result<CgroupDriver, NodeError> {
    let host = host_driver(facts);
    if !set_by_user || configured.is_empty() {
        return Ok(host);
    }
    let Some(wanted) = CgroupDriver::parse(configured) else {
        return Err(NodeError::CgroupDriver {
            message: format!(
                "KubeletConfiguration cgroupDriver {configured:?} is not a cgroup driver (systemd or cgroupfs)"
            ),
            hint: "remove cgroupDriver and bosun picks the one that fits this host".to_owned(),
        });
    };
    if wanted == host {
        return Ok(wanted);
    }
    let message = match wanted {
        CgroupDriver::Systemd => format!(
            "KubeletConfiguration cgroupDriver is systemd, but systemd is not PID 1 on {}: the kubelet and the \
             container runtime would ask a systemd that is not there to create pod cgroups",
            describe(facts)
        ),
        CgroupDriver::Cgroupfs => format!(
            "KubeletConfiguration cgroupDriver is cgroupfs, but systemd is PID 1 on {}: systemd and the kubelet \
             would both manage the cgroup tree, which makes nodes unstable under resource pressure",
            describe(facts)
        ),
    };
    Err(NodeError::CgroupDriver {
        message,
        hint: format!(
            "remove cgroupDriver from the KubeletConfiguration (bosun then uses {host} for the kubelet and the \
             runtime alike), or set it to {host}"
        ),
    })
}

fn describe(facts: &NodeFacts) -> String {
    if facts.hostname.is_empty() {
        "this host".to_owned()
    } else {
        format!("host {}", facts.hostname)
    }
}

/// Checks that the runtime's configured driver matches the kubelet's; the error explains which file to change.
pub fn check_agreement(
    kubelet: CgroupDriver,
    runtime: CgroupDriver,
    runtime_source: &str,
) -> Result<(), NodeError> {
    if kubelet == runtime {
        return Ok(());
    }
    Err(NodeError::CgroupDriver {
        message: format!(
            "the kubelet is to use the {kubelet} cgroup driver but {runtime_source} configures the container runtime \
             with {runtime}; pods would fail to start"
        ),
        hint: "let bosun's container-runtime phase configure the runtime (do not skip it), or change the runtime's \
               setting to match and restart it"
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(systemd_is_init: bool) -> NodeFacts {
        NodeFacts {
            gathered: true,
            hostname: "node-1".to_owned(),
            systemd_is_init,
            ..NodeFacts::default()
        }
    }

    #[test]
    fn the_host_decides_when_the_user_does_not() {
        assert_eq!(
            decide("systemd", false, &facts(false)).expect("ok"),
            CgroupDriver::Cgroupfs
        );
        assert_eq!(
            decide("", false, &facts(true)).expect("ok"),
            CgroupDriver::Systemd
        );
    }

    #[test]
    fn a_user_choice_that_fits_the_host_is_kept() {
        assert_eq!(
            decide("cgroupfs", true, &facts(false)).expect("ok"),
            CgroupDriver::Cgroupfs
        );
    }

    #[test]
    fn systemd_without_systemd_is_refused_with_an_explanation() {
        let error = decide("systemd", true, &facts(false)).expect_err("mismatch");
        let message = error.to_string();
        assert!(
            message.contains("systemd is not PID 1 on host node-1"),
            "{message}"
        );
        assert!(error.hint().unwrap_or_default().contains("cgroupfs"));
    }

    #[test]
    fn cgroupfs_under_systemd_is_refused() {
        let error = decide("cgroupfs", true, &facts(true)).expect_err("mismatch");
        assert!(error.to_string().contains("both manage"), "{error}");
    }

    #[test]
    fn runtime_and_kubelet_must_agree() {
        check_agreement(CgroupDriver::Systemd, CgroupDriver::Systemd, "x").expect("agree");
        let error = check_agreement(
            CgroupDriver::Cgroupfs,
            CgroupDriver::Systemd,
            "/etc/containerd/config.toml",
        )
        .expect_err("disagree");
        assert!(error.to_string().contains("/etc/containerd/config.toml"));
    }
}
