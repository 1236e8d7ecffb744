//! The image versions kubeadm pairs with each Kubernetes minor (constants/constants.go `SupportedEtcdVersion`,
//! `PauseVersion`): etcd for the local etcd static pod, pause for the runtime's sandbox image.

use bosun_config::KubernetesVersion;

/// Images that belong with one Kubernetes minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinorImages {
    pub minor: u64,
    /// etcd image tag (`3.6.6-0`).
    pub etcd: &'static str,
    /// pause image tag (`3.10.1`).
    pub pause: &'static str,
}

/// kubeadm's table, newest first. Minors above the newest use the newest row; below the oldest, the oldest.
pub const IMAGES: [MinorImages; 5] = [
    MinorImages {
        minor: 35,
        etcd: "3.6.6-0",
        pause: "3.10.1",
    },
    MinorImages {
        minor: 34,
        etcd: "3.6.4-0",
        pause: "3.10.1",
    },
    MinorImages {
        minor: 33,
        etcd: "3.5.24-0",
        pause: "3.10",
    },
    MinorImages {
        minor: 32,
        etcd: "3.5.24-0",
        pause: "3.10",
    },
    MinorImages {
        minor: 31,
        etcd: "3.5.24-0",
        pause: "3.10",
    },
];

/// The images for a Kubernetes version.
pub fn images_for(version: &KubernetesVersion) -> MinorImages {
    IMAGES
        .iter()
        .find(|row| row.minor <= version.minor)
        .copied()
        .unwrap_or(IMAGES[IMAGES.len() - 1])
}

/// Whether an etcd image tag is 3.6 or newer (it then takes `--feature-gates=InitialCorruptCheck=true` instead of
/// the `--experimental-` flags, which 3.6 removed).
pub fn etcd_is_3_6_or_newer(tag: &str) -> bool {
    let mut parts = tag
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|part| part.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (3, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_their_minor_or_the_nearest_known_one() {
        let version = |text: &str| KubernetesVersion::parse(text).expect("version");
        assert_eq!(images_for(&version("v1.35.4")).etcd, "3.6.6-0");
        assert_eq!(images_for(&version("v1.37.0")).minor, 35);
        assert_eq!(images_for(&version("v1.29.0")).minor, 31);
        assert_eq!(images_for(&version("v1.33.2")).pause, "3.10");
    }

    #[test]
    fn etcd_3_6_is_recognised_from_its_tag() {
        assert!(etcd_is_3_6_or_newer("3.6.6-0"));
        assert!(etcd_is_3_6_or_newer("v3.7.0"));
        assert!(!etcd_is_3_6_or_newer("3.5.24-0"));
    }
}
