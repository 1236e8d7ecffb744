//! The `bosun join` command printed after `init` and by `bosun token create --print-join-command`
//! (kubeadm's cmd/util/join.go layout: one flag group per line, continued with a backslash).

use super::pin::Pin;

/// What a join command says.
#[derive(Debug, Clone)]
pub struct JoinCommand {
    /// The API server as `host:port` (the admin kubeconfig's server without `https://`).
    pub endpoint: String,
    /// The token text, or `<value withheld>` when it must not be shown.
    pub token: String,
    pub ca_pins: Vec<Pin>,
    /// For a control-plane join: the certificate key, if certificates were uploaded (`None` prints only
    /// `--control-plane`).
    pub control_plane: Option<Option<String>>,
}

/// The text shown instead of a secret that must not be printed.
pub const WITHHELD: &str = "<value withheld>";

impl JoinCommand {
    /// The endpoint of a kubeconfig server URL: `https://10.0.0.1:6443` → `10.0.0.1:6443`.
    pub fn endpoint_of(server: &str) -> String {
        server
            .trim()
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned()
    }

    /// The command over several lines, as `init` prints it.
    pub fn multi_line(&self) -> String {
        let mut text = format!("bosun join {} --token {}", self.endpoint, self.token);
        for pin in &self.ca_pins {
            text.push_str(" \\\n    --discovery-token-ca-cert-hash ");
            text.push_str(&pin.to_string());
        }
        if let Some(certificate_key) = &self.control_plane {
            text.push_str(" \\\n    --control-plane");
            if let Some(key) = certificate_key {
                text.push_str(" --certificate-key ");
                text.push_str(key);
            }
        }
        text
    }

    /// The command on one line, as `token create --print-join-command` prints it.
    pub fn one_line(&self) -> String {
        self.multi_line()
            .replace(" \\\n    ", " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(digit: char) -> Pin {
        Pin::parse(&format!("sha256:{}", digit.to_string().repeat(64))).expect("pin")
    }

    #[test]
    fn worker_command_has_one_line_per_flag_group() {
        let command = JoinCommand {
            endpoint: JoinCommand::endpoint_of("https://10.0.0.1:6443"),
            token: "abcdef.0123456789abcdef".to_owned(),
            ca_pins: vec![pin('a')],
            control_plane: None,
        };
        assert_eq!(
            command.multi_line(),
            format!(
                "bosun join 10.0.0.1:6443 --token abcdef.0123456789abcdef \\\n    --discovery-token-ca-cert-hash sha256:{}",
                "a".repeat(64)
            )
        );
        assert_eq!(
            command.one_line(),
            format!(
                "bosun join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:{}",
                "a".repeat(64)
            )
        );
    }

    #[test]
    fn control_plane_command_carries_the_certificate_key() {
        let command = JoinCommand {
            endpoint: "cp.example:6443".to_owned(),
            token: "abcdef.0123456789abcdef".to_owned(),
            ca_pins: vec![pin('a'), pin('b')],
            control_plane: Some(Some("00ff".to_owned())),
        };
        let text = command.multi_line();
        assert!(
            text.ends_with(" \\\n    --control-plane --certificate-key 00ff"),
            "{text}"
        );
        assert_eq!(text.matches("--discovery-token-ca-cert-hash").count(), 2);
        assert!(!command.one_line().contains('\n'));
        let without_key = JoinCommand {
            control_plane: Some(None),
            ..command
        };
        assert!(without_key.one_line().ends_with("--control-plane"));
    }
}
