//! "did you mean …?" for misspelt field and kind names.

/// The known name closest to `wanted`, if it is close enough to be a likely typo (or differs only in case).
pub fn closest<'a>(wanted: &str, known: &[&'a str]) -> Option<&'a str> {
    if let Some(exact) = known.iter().find(|name| name.eq_ignore_ascii_case(wanted)) {
        return Some(exact);
    }
    let wanted_lower = wanted.to_lowercase();
    // A truncated name (`ClusterConfig` for `ClusterConfiguration`).
    if wanted_lower.len() >= 4 {
        let mut prefixed = known
            .iter()
            .filter(|name| name.to_lowercase().starts_with(&wanted_lower));
        if let (Some(only), None) = (prefixed.next(), prefixed.next()) {
            return Some(only);
        }
    }
    known
        .iter()
        .map(|name| {
            (
                strsim::damerau_levenshtein(&wanted_lower, &name.to_lowercase()),
                *name,
            )
        })
        .filter(|(distance, name)| {
            let limit = (name.len().max(wanted.len()) / 4).clamp(1, 3);
            *distance <= limit
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_the_intended_field() {
        let known = ["podSubnet", "serviceSubnet", "dnsDomain"];
        assert_eq!(closest("podSubnt", &known), Some("podSubnet"));
        assert_eq!(closest("podsubnet", &known), Some("podSubnet"));
        assert_eq!(closest("servceSubnet", &known), Some("serviceSubnet"));
        assert_eq!(closest("banana", &known), None);
        let kinds = ["ClusterConfiguration", "InitConfiguration"];
        assert_eq!(
            closest("ClusterConfig", &kinds),
            Some("ClusterConfiguration")
        );
    }
}
