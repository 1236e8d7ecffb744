//! Kubernetes version strings (`v1.35.4`, `1.35.0`, `v1.36.0-rc.1`).

use std::fmt;

/// A parsed Kubernetes version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubernetesVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// The pre-release part after `-` (`rc.1`, `alpha.0`), empty for a release.
    pub pre_release: String,
}

impl KubernetesVersion {
    /// Parses `v1.35.4` or `1.35.4` (with an optional `-pre` and `+build` suffix).
    pub fn parse(text: &str) -> Result<KubernetesVersion, String> {
        let trimmed = text.trim();
        let body = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let body = body.split('+').next().unwrap_or(body);
        let (core, pre_release) = match body.split_once('-') {
            Some((core, pre)) => (core, pre.to_owned()),
            None => (body, String::new()),
        };
        let parts: Vec<&str> = core.split('.').collect();
        if parts.len() != 3 {
            return Err(format!(
                "{text:?} is not a Kubernetes version such as v1.35.4"
            ));
        }
        let number = |part: &str| -> Result<u64, String> {
            if part.is_empty() || !part.bytes().all(|byte| byte.is_ascii_digit()) {
                return Err(format!(
                    "{text:?} is not a Kubernetes version such as v1.35.4"
                ));
            }
            part.parse()
                .map_err(|_| format!("{text:?} has a number that is too large"))
        };
        Ok(KubernetesVersion {
            major: number(parts[0])?,
            minor: number(parts[1])?,
            patch: number(parts[2])?,
            pre_release,
        })
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre_release.is_empty() {
            write!(formatter, "-{}", self.pre_release)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_and_without_v() {
        let version = KubernetesVersion::parse("v1.35.4").expect("v1.35.4");
        assert_eq!((version.major, version.minor, version.patch), (1, 35, 4));
        assert_eq!(version.to_string(), "v1.35.4");
        assert_eq!(
            KubernetesVersion::parse("1.35.0")
                .expect("bare")
                .to_string(),
            "v1.35.0"
        );
        let rc = KubernetesVersion::parse("v1.36.0-rc.1").expect("rc");
        assert_eq!(rc.pre_release, "rc.1");
        assert!(KubernetesVersion::parse("stable-1").is_err());
        assert!(KubernetesVersion::parse("v1.35").is_err());
        assert!(KubernetesVersion::parse("latest").is_err());
    }
}
