//! The `kube-system/bootstrap-token-<id>` Secret: what bosun writes for a token, and what it reads back for
//! `bosun token list` (staging/src/k8s.io/cluster-bootstrap/token/api: data keys `token-id`, `token-secret`,
//! `description`, `expiration`, `usage-bootstrap-<usage>`, `auth-extra-groups`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Token, TokenError};

pub const NAMESPACE: &str = "kube-system";
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
pub const USAGE_PREFIX: &str = "usage-bootstrap-";
/// The usages a token may carry.
pub const KNOWN_USAGES: [&str; 2] = ["authentication", "signing"];

/// A bootstrap token with everything its Secret records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub token: Token,
    pub description: String,
    /// When the token stops working; `None` never.
    pub expiration: Option<OffsetDateTime>,
    /// `authentication`, `signing`, sorted.
    pub usages: Vec<String>,
    /// Extra groups the token authenticates as (each starts with `system:bootstrappers:`).
    pub groups: Vec<String>,
}

/// Formats a time as kubeadm does: RFC 3339 in UTC, whole seconds.
pub fn format_time(moment: OffsetDateTime) -> String {
    let whole = moment
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(moment);
    whole.format(&Rfc3339).unwrap_or_default()
}

impl TokenSpec {
    /// The spec of a configured token (`bootstrapTokens[i]`), with `expires` winning over `ttl`, a zero TTL meaning
    /// "never expires", measured from `now`.
    pub fn new(
        token: Token,
        description: &str,
        ttl: Option<Duration>,
        expires: Option<&str>,
        usages: &[String],
        groups: &[String],
        now: SystemTime,
    ) -> Result<TokenSpec, TokenError> {
        let expiration =
            match expires.filter(|text| !text.is_empty()) {
                Some(text) => Some(OffsetDateTime::parse(text, &Rfc3339).map_err(|error| {
                    TokenError::Field {
                        field: "expires".to_owned(),
                        reason: format!("{text:?} is not an RFC 3339 time ({error})"),
                    }
                })?),
                None => match ttl {
                    Some(ttl) if !ttl.is_zero() => Some(OffsetDateTime::from(now + ttl)),
                    _ => None,
                },
            };
        let mut sorted_usages: Vec<String> = usages
            .iter()
            .map(|usage| usage.trim().to_owned())
            .filter(|usage| !usage.is_empty())
            .collect();
        for usage in &sorted_usages {
            if !KNOWN_USAGES.contains(&usage.as_str()) {
                return Err(TokenError::Field {
                    field: "usages".to_owned(),
                    reason: format!(
                        "{usage:?} is not a token usage (valid: {})",
                        KNOWN_USAGES.join(", ")
                    ),
                });
            }
        }
        sorted_usages.sort();
        sorted_usages.dedup();
        let groups: Vec<String> = groups
            .iter()
            .map(|group| group.trim().to_owned())
            .filter(|group| !group.is_empty())
            .collect();
        for group in &groups {
            let valid = group
                .strip_prefix("system:bootstrappers:")
                .is_some_and(|rest| {
                    !rest.is_empty()
                        && rest.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || ":-".contains(c)
                        })
                        && !rest.ends_with(':')
                });
            if !valid {
                return Err(TokenError::Field {
                    field: "groups".to_owned(),
                    reason: format!(
                        "{group:?} must match system:bootstrappers:[a-z0-9:-]*[a-z0-9]"
                    ),
                });
            }
        }
        if !groups.is_empty() && !sorted_usages.iter().any(|usage| usage == "authentication") {
            return Err(TokenError::Field {
                field: "groups".to_owned(),
                reason: "extra groups need the usage \"authentication\"".to_owned(),
            });
        }
        Ok(TokenSpec {
            token,
            description: description.to_owned(),
            expiration,
            usages: sorted_usages,
            groups,
        })
    }

    /// The Secret as the API stores it.
    pub fn to_secret(&self) -> Secret {
        let mut data = BTreeMap::new();
        let mut put = |key: String, value: &str| {
            data.insert(key, ByteString(value.as_bytes().to_vec()));
        };
        put("token-id".to_owned(), self.token.id());
        put("token-secret".to_owned(), self.token.secret());
        if !self.description.is_empty() {
            put("description".to_owned(), &self.description);
        }
        if let Some(expiration) = self.expiration {
            put("expiration".to_owned(), &format_time(expiration));
        }
        for usage in &self.usages {
            put(format!("{USAGE_PREFIX}{usage}"), "true");
        }
        if !self.groups.is_empty() {
            put("auth-extra-groups".to_owned(), &self.groups.join(","));
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(self.token.secret_name()),
                namespace: Some(NAMESPACE.to_owned()),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.to_owned()),
            data: Some(data),
            ..Secret::default()
        }
    }

    /// Reads a token back from its Secret; an error names the Secret and what is wrong with it.
    pub fn from_secret(secret: &Secret) -> Result<TokenSpec, TokenError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let bad = |reason: String| TokenError::BadSecret {
            name: name.clone(),
            reason,
        };
        let empty = BTreeMap::new();
        let data = secret.data.as_ref().unwrap_or(&empty);
        let text = |key: &str| -> Option<String> {
            data.get(key)
                .map(|value| String::from_utf8_lossy(&value.0).into_owned())
        };
        let id = text("token-id").ok_or_else(|| bad("it has no token-id".to_owned()))?;
        let secret_part =
            text("token-secret").ok_or_else(|| bad("it has no token-secret".to_owned()))?;
        if name != super::secret_name(&id) {
            return Err(bad(format!(
                "its name is not bootstrap-token-<token-id> (token-id is {id:?})"
            )));
        }
        let token = Token::parse(&format!("{id}.{secret_part}"))
            .map_err(|_| bad("its token-id or token-secret is malformed".to_owned()))?;
        let expiration =
            match text("expiration") {
                Some(value) => Some(OffsetDateTime::parse(&value, &Rfc3339).map_err(|_| {
                    bad(format!("its expiration {value:?} is not an RFC 3339 time"))
                })?),
                None => None,
            };
        let usages = data
            .iter()
            .filter(|(_, value)| value.0 == b"true")
            .filter_map(|(key, _)| key.strip_prefix(USAGE_PREFIX).map(str::to_owned))
            .collect();
        let groups = text("auth-extra-groups")
            .map(|joined| {
                joined
                    .split(',')
                    .map(|group| group.trim().to_owned())
                    .filter(|group| !group.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(TokenSpec {
            token,
            description: text("description").unwrap_or_default(),
            expiration,
            usages,
            groups,
        })
    }

    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expiration
            .is_some_and(|expiration| expiration <= OffsetDateTime::from(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> Token {
        Token::parse("abcdef.0123456789abcdef").expect("valid")
    }

    fn data_text(secret: &Secret) -> BTreeMap<String, String> {
        secret
            .data
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|(key, value)| (key, String::from_utf8(value.0).expect("utf-8")))
            .collect()
    }

    fn at(text: &str) -> SystemTime {
        OffsetDateTime::parse(text, &Rfc3339).expect("time").into()
    }

    #[test]
    fn secret_holds_kubeadms_keys() {
        let spec = TokenSpec::new(
            token(),
            "The default bootstrap token",
            Some(Duration::from_secs(24 * 3600)),
            None,
            &["signing".to_owned(), "authentication".to_owned()],
            &["system:bootstrappers:kubeadm:default-node-token".to_owned()],
            at("2026-12-01T10:00:00.75Z"),
        )
        .expect("spec");
        let secret = spec.to_secret();
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("bootstrap-token-abcdef")
        );
        assert_eq!(secret.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(
            secret.type_.as_deref(),
            Some("bootstrap.kubernetes.io/token")
        );
        let expected: BTreeMap<String, String> = [
            (
                "auth-extra-groups",
                "system:bootstrappers:kubeadm:default-node-token",
            ),
            ("description", "The default bootstrap token"),
            ("expiration", "2026-12-02T10:00:00Z"),
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
            ("usage-bootstrap-signing", "true"),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(data_text(&secret), expected);
        assert_eq!(
            TokenSpec::from_secret(&secret).expect("parse"),
            TokenSpec {
                expiration: Some(
                    OffsetDateTime::parse("2026-12-02T10:00:00Z", &Rfc3339).expect("time")
                ),
                ..spec
            }
        );
    }

    #[test]
    fn expires_wins_over_ttl_and_zero_ttl_never_expires() {
        let now = at("2026-12-01T10:00:00Z");
        let with_expires = TokenSpec::new(
            token(),
            "",
            Some(Duration::from_secs(60)),
            Some("2027-01-01T00:00:00Z"),
            &[],
            &[],
            now,
        )
        .expect("spec");
        assert_eq!(
            data_text(&with_expires.to_secret())["expiration"],
            "2027-01-01T00:00:00Z"
        );
        let forever =
            TokenSpec::new(token(), "", Some(Duration::ZERO), None, &[], &[], now).expect("spec");
        let data = data_text(&forever.to_secret());
        assert!(!data.contains_key("expiration"));
        assert!(!data.contains_key("description"));
        assert!(!data.contains_key("auth-extra-groups"));
        assert!(!forever.expired(at("2099-01-01T00:00:00Z")));
        assert!(with_expires.expired(at("2027-01-01T00:00:00Z")));
        assert!(!with_expires.expired(at("2026-12-31T23:59:59Z")));
    }

    #[test]
    fn rejects_unknown_usages_and_bad_groups() {
        let now = SystemTime::now();
        let usage = TokenSpec::new(token(), "", None, None, &["signin".to_owned()], &[], now)
            .expect_err("bad usage");
        assert!(usage.to_string().contains("signin"), "{usage}");
        let group = TokenSpec::new(
            token(),
            "",
            None,
            None,
            &["authentication".to_owned()],
            &["system:nodes".to_owned()],
            now,
        )
        .expect_err("bad group");
        assert!(
            group.to_string().contains("system:bootstrappers:"),
            "{group}"
        );
        let without_authentication = TokenSpec::new(
            token(),
            "",
            None,
            None,
            &["signing".to_owned()],
            &["system:bootstrappers:x".to_owned()],
            now,
        )
        .expect_err("groups need authentication");
        assert!(without_authentication
            .to_string()
            .contains("authentication"));
    }

    #[test]
    fn a_secret_under_the_wrong_name_is_refused() {
        let mut secret = TokenSpec::new(token(), "", None, None, &[], &[], SystemTime::now())
            .expect("spec")
            .to_secret();
        secret.metadata.name = Some("bootstrap-token-zzzzzz".to_owned());
        let error = TokenSpec::from_secret(&secret).expect_err("wrong name");
        assert!(
            error.to_string().contains("bootstrap-token-zzzzzz"),
            "{error}"
        );
    }
}
