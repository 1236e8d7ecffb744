//! Token operations against a cluster, for `bosun token create|list|delete`.

use k8s_openapi::api::core::v1::Secret;

use super::secret::{NAMESPACE, SECRET_TYPE};
use super::{is_token_id, secret_name, Token, TokenError, TokenSpec};
use crate::host::cluster::{self, ClusterApi, ClusterError, ObjectRef};
use crate::host::Outcome;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenOpError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("a bootstrap token with id {id:?} already exists")]
    Exists { id: String },
    #[error("there is no bootstrap token with id {id:?}")]
    NotFound { id: String },
}

/// Creates a token. A token that exists already with other contents is refused, so a mistyped id never rewrites
/// somebody else's token; the same contents again are accepted and change nothing.
pub fn create(api: &dyn ClusterApi, spec: &TokenSpec) -> Result<Outcome, TokenOpError> {
    if let Some(existing) = cluster::get::<Secret>(api, Some(NAMESPACE), &spec.token.secret_name())?
    {
        let same = TokenSpec::from_secret(&existing).is_ok_and(|existing| existing == *spec);
        if !same {
            return Err(TokenOpError::Exists {
                id: spec.token.id().to_owned(),
            });
        }
    }
    Ok(cluster::apply(api, &spec.to_secret())?)
}

/// Every bootstrap token in the cluster, sorted by id; Secrets that are not valid tokens are returned as errors
/// beside them so the caller can warn.
pub fn list(api: &dyn ClusterApi) -> Result<(Vec<TokenSpec>, Vec<TokenError>), TokenOpError> {
    let selector = format!("type={SECRET_TYPE}");
    let secrets = cluster::list::<Secret>(api, Some(NAMESPACE), Some(&selector))?;
    let mut tokens = Vec::new();
    let mut problems = Vec::new();
    for secret in &secrets {
        match TokenSpec::from_secret(secret) {
            Ok(spec) => tokens.push(spec),
            Err(error) => problems.push(error),
        }
    }
    tokens.sort_by(|left, right| left.token.id().cmp(right.token.id()));
    Ok((tokens, problems))
}

/// The token id named by a token id or a whole token.
pub fn id_of(token_or_id: &str) -> Result<String, TokenError> {
    if is_token_id(token_or_id) {
        Ok(token_or_id.to_owned())
    } else {
        Token::parse(token_or_id).map(|token| token.id().to_owned())
    }
}

/// Deletes the token with `id`.
pub fn delete(api: &dyn ClusterApi, id: &str) -> Result<(), TokenOpError> {
    let reference = ObjectRef::of::<Secret>(Some(NAMESPACE), &secret_name(id));
    if api.delete(&reference)? {
        Ok(())
    } else {
        Err(TokenOpError::NotFound { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_ids_or_whole_tokens() {
        assert_eq!(id_of("abcdef").expect("id"), "abcdef");
        assert_eq!(id_of("abcdef.0123456789abcdef").expect("token"), "abcdef");
        assert!(id_of("abcdef.short").is_err());
        assert!(id_of("ABCDEF").is_err());
    }
}
