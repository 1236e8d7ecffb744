//! Redaction of key material in text that is shown to a user (dry-run diffs, logs).
//!
//! Private keys and embedded client keys are never printed: PEM private-key blocks become one marker line, and the
//! values of kubeconfig `client-key-data` and `token` fields are replaced.

const MARKER: &str = "<redacted>";

/// Whether a path holds secret material by its name alone (`*.key`).
pub fn is_secret_path(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|extension| extension == "key")
}

/// Returns `text` with every secret replaced by a marker.
pub fn redact(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut inside_private_block = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if inside_private_block {
            if trimmed.starts_with("-----END") && trimmed.contains("PRIVATE KEY") {
                inside_private_block = false;
            }
            continue;
        }
        if trimmed.starts_with("-----BEGIN") && trimmed.contains("PRIVATE KEY") {
            inside_private_block = !trimmed.contains("-----END");
            output.push_str("<redacted private key>");
            if line.ends_with('\n') {
                output.push('\n');
            }
            continue;
        }
        output.push_str(&redact_field(line));
    }
    output
}

/// Replaces the value of a `key: value` line when the key names a secret.
fn redact_field(line: &str) -> String {
    const SECRET_KEYS: [&str; 4] = ["client-key-data", "token", "token-secret", "certificateKey"];
    let without_indent = line.trim_start();
    let indent = &line[..line.len() - without_indent.len()];
    let without_dash = without_indent.strip_prefix("- ").unwrap_or(without_indent);
    for key in SECRET_KEYS {
        if let Some(rest) = without_dash.strip_prefix(key) {
            if let Some(value) = rest.strip_prefix(':') {
                if !value.trim().is_empty() {
                    let prefix_len = without_indent.len() - without_dash.len();
                    let newline = if line.ends_with('\n') { "\n" } else { "" };
                    return format!(
                        "{indent}{}{key}: {MARKER}{newline}",
                        &without_indent[..prefix_len]
                    );
                }
            }
        }
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_private_key_blocks_become_one_marker_line() {
        let text =
            "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIE\nabc\n-----END RSA PRIVATE KEY-----\nb\n";
        assert_eq!(redact(text), "a\n<redacted private key>\nb\n");
    }

    #[test]
    fn certificates_are_kept() {
        let text = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert_eq!(redact(text), text);
    }

    #[test]
    fn kubeconfig_client_keys_and_tokens_are_replaced() {
        let text = "users:\n- name: a\n  user:\n    client-key-data: TUlJRS0t\n    token: abcdef.0123456789abcdef\n";
        let redacted = redact(text);
        assert!(!redacted.contains("TUlJRS0t"), "{redacted}");
        assert!(!redacted.contains("0123456789abcdef"), "{redacted}");
        assert!(
            redacted.contains("    client-key-data: <redacted>\n"),
            "{redacted}"
        );
        assert!(redacted.contains("    token: <redacted>\n"), "{redacted}");
    }

    #[test]
    fn list_items_with_secret_keys_are_replaced() {
        assert_eq!(redact("  - token: abc\n"), "  - token: <redacted>\n");
    }
}
