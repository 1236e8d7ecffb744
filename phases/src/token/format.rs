//! The bootstrap token string `[a-z0-9]{6}.[a-z0-9]{16}`: parsing and generation.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

use super::TokenError;

/// Characters a token is made of.
const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
pub const ID_LENGTH: usize = 6;
pub const SECRET_LENGTH: usize = 16;

/// A bootstrap token. `Debug` and `Display` never show the secret; use [`Token::expose`] where the full value is
/// the output (`bosun token create`, the join command).
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    id: String,
    secret: String,
}

fn valid_part(text: &str, length: usize) -> bool {
    text.len() == length && text.bytes().all(|byte| ALPHABET.contains(&byte))
}

/// Whether `text` is a token id (`[a-z0-9]{6}`).
pub fn is_token_id(text: &str) -> bool {
    valid_part(text, ID_LENGTH)
}

impl Token {
    /// Parses `id.secret`; the whole text must match, nothing around it.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let malformed = || TokenError::Malformed {
            given: redact_candidate(text),
        };
        let (id, secret) = text.split_once('.').ok_or_else(malformed)?;
        if valid_part(id, ID_LENGTH) && valid_part(secret, SECRET_LENGTH) {
            Ok(Token {
                id: id.to_owned(),
                secret: secret.to_owned(),
            })
        } else {
            Err(malformed())
        }
    }

    /// A fresh random token from the operating system's secure random source.
    pub fn generate() -> Result<Token, TokenError> {
        let random = SystemRandom::new();
        Ok(Token {
            id: random_string(&random, ID_LENGTH)?,
            secret: random_string(&random, SECRET_LENGTH)?,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The full `id.secret` text.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The Secret that holds this token: `bootstrap-token-<id>`.
    pub fn secret_name(&self) -> String {
        secret_name(&self.id)
    }
}

/// The name of the Secret holding the token `id`.
pub fn secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

impl fmt::Debug for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Token({}.<redacted>)", self.id)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}.<redacted>", self.id)
    }
}

/// What to show of a string that was meant to be a token: its first part only, so a typo'd secret is not echoed.
fn redact_candidate(text: &str) -> String {
    match text.split_once('.') {
        Some((id, _)) => format!("{id}.…"),
        None if text.chars().count() > ID_LENGTH => {
            format!("{}…", text.chars().take(ID_LENGTH).collect::<String>())
        }
        None => text.to_owned(),
    }
}

/// Uniformly random characters from [`ALPHABET`] (rejection sampling: bytes ≥ 252 are redrawn, 252 = 7 × 36).
fn random_string(random: &SystemRandom, length: usize) -> Result<String, TokenError> {
    let mut text = String::with_capacity(length);
    let mut buffer = [0u8; 32];
    while text.len() < length {
        random.fill(&mut buffer).map_err(|_| TokenError::Random)?;
        for byte in buffer {
            if byte < 252 && text.len() < length {
                text.push(char::from(ALPHABET[usize::from(byte % 36)]));
            }
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_well_formed_token() {
        let token = Token::parse("abcdef.0123456789abcdef").expect("valid");
        assert_eq!(token.id(), "abcdef");
        assert_eq!(token.secret(), "0123456789abcdef");
        assert_eq!(token.secret_name(), "bootstrap-token-abcdef");
        assert_eq!(token.expose(), "abcdef.0123456789abcdef");
    }

    #[test]
    fn rejects_malformed_tokens_without_echoing_the_secret() {
        for bad in [
            "",
            "abcdef",
            "abcdef.",
            "abcde.0123456789abcdef",
            "abcdefg.0123456789abcdef",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdeF",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef0",
            " abcdef.0123456789abcdef",
            "abcdef.0123456789abcdef\n",
            "abcdef:0123456789abcdef",
            "abc-ef.0123456789abcdef",
        ] {
            let error = Token::parse(bad).expect_err(bad);
            assert!(
                !error.to_string().contains("0123456789"),
                "{bad:?} echoed: {error}"
            );
        }
    }

    #[test]
    fn generated_tokens_are_well_formed_and_differ() {
        let first = Token::generate().expect("random");
        let second = Token::generate().expect("random");
        assert!(Token::parse(&first.expose()).is_ok(), "{}", first.expose());
        assert_ne!(first, second);
    }

    #[test]
    fn generated_characters_cover_the_alphabet() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(Token::generate().expect("random").expose().chars());
        }
        seen.remove(&'.');
        assert_eq!(seen.len(), 36, "{seen:?}");
    }

    #[test]
    fn debug_and_display_hide_the_secret() {
        let token = Token::parse("abcdef.0123456789abcdef").expect("valid");
        assert_eq!(format!("{token}"), "abcdef.<redacted>");
        assert!(!format!("{token:?}").contains("0123456789abcdef"));
    }
}
