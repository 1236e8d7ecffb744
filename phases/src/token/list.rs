//! `bosun token list` as kubeadm prints it: columns TOKEN, TTL, EXPIRES, USAGES, DESCRIPTION, EXTRA GROUPS, laid out
//! like Go's tabwriter with minimum width 10 and padding 3, `<forever>`/`<never>`/`<none>` for empty cells, and the
//! TTL in apimachinery's short human form (`23h`, `6d`, `<invalid>`).

use std::time::SystemTime;

use serde::Serialize;
use time::OffsetDateTime;

use super::secret::{format_time, TokenSpec};

/// apimachinery's `duration.ShortHumanDuration`.
pub fn short_human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / (24 * 365))
}

/// One token as `-o json` shows it (the field names of kubeadm's BootstrapToken output).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRow {
    pub token: String,
    pub ttl: String,
    pub expires: Option<String>,
    pub usages: Vec<String>,
    pub description: String,
    pub groups: Vec<String>,
}

impl TokenRow {
    pub fn new(spec: &TokenSpec, now: SystemTime) -> TokenRow {
        let ttl = match spec.expiration {
            Some(expiration) => {
                let left = expiration - OffsetDateTime::from(now);
                short_human_duration(left.whole_seconds())
            }
            None => "<forever>".to_owned(),
        };
        TokenRow {
            token: spec.token.expose(),
            ttl,
            expires: spec.expiration.map(format_time),
            usages: spec.usages.clone(),
            description: spec.description.clone(),
            groups: spec.groups.clone(),
        }
    }

    /// The cells as kubeadm formats them: TTL padded to 9, usages to 22 and the description to 56 characters.
    fn cells(&self) -> Vec<String> {
        let or_none = |text: String| {
            if text.is_empty() {
                "<none>".to_owned()
            } else {
                text
            }
        };
        vec![
            self.token.clone(),
            format!("{:<9}", self.ttl),
            self.expires.clone().unwrap_or_else(|| "<never>".to_owned()),
            format!("{:<22}", or_none(self.usages.join(","))),
            format!("{:<56}", or_none(self.description.clone())),
            or_none(self.groups.join(",")),
        ]
    }
}

/// Lays out lines as Go's `tabwriter.NewWriter(w, 10, 4, 3, ' ', 0)`: every cell but the last of a line is padded
/// to the widest cell of its column plus 3, and to at least 10.
fn tabwrite(lines: &[Vec<String>]) -> String {
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns.saturating_sub(1))
        .map(|column| {
            let widest = lines
                .iter()
                .filter_map(|line| line.get(column))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + 3).max(10)
        })
        .collect();
    let mut text = String::new();
    for line in lines {
        for (column, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if column + 1 < line.len() {
                text.push_str(&" ".repeat(widths[column] - cell.chars().count()));
            }
        }
        text.push('\n');
    }
    text
}

/// The table as kubeadm prints it: kubeadm flushes a fresh tabwriter per token, so the header is aligned with the
/// first token only and each further row on its own (the fixed cell padding keeps them near each other). No tokens
/// print nothing, not even the header.
pub fn table(rows: &[TokenRow]) -> String {
    let Some((first, rest)) = rows.split_first() else {
        return String::new();
    };
    let header: Vec<String> = [
        "TOKEN",
        "TTL",
        "EXPIRES",
        "USAGES",
        "DESCRIPTION",
        "EXTRA GROUPS",
    ]
    .iter()
    .map(|title| (*title).to_owned())
    .collect();
    let mut text = tabwrite(&[header, first.cells()]);
    for row in rest {
        text.push_str(&tabwrite(&[row.cells()]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::Token;
    use std::time::Duration;

    #[test]
    fn short_durations_match_apimachinery() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h"),
            (23 * 3600 + 3599, "23h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (729 * 24 * 3600, "729d"),
            (730 * 24 * 3600, "2y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(short_human_duration(seconds), expected, "{seconds}");
        }
    }

    #[test]
    fn table_matches_kubeadms_layout() {
        // Widths: token 23+3; TTL padded to 9, +3; RFC 3339 20+3; usages padded to 22, +3; description padded to 56,
        // +3; the second row is laid out alone, so `<never>` (7) gets the minimum width 10.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let spec = TokenSpec::new(
            Token::parse("abcdef.0123456789abcdef").expect("token"),
            "bosun init",
            Some(Duration::from_secs(24 * 3600)),
            None,
            &["signing".to_owned(), "authentication".to_owned()],
            &["system:bootstrappers:kubeadm:default-node-token".to_owned()],
            now,
        )
        .expect("spec");
        let forever = TokenSpec::new(
            Token::parse("zzzzzz.0123456789abcdef").expect("token"),
            "",
            Some(Duration::ZERO),
            None,
            &[],
            &[],
            now,
        )
        .expect("spec");
        let text = table(&[TokenRow::new(&spec, now), TokenRow::new(&forever, now)]);
        let header = format!(
            "TOKEN                     TTL         EXPIRES                USAGES                   {:<59}EXTRA GROUPS\n",
            "DESCRIPTION"
        );
        let first = format!(
            "abcdef.0123456789abcdef   24h         2026-05-29T20:26:40Z   authentication,signing   {:<59}system:bootstrappers:kubeadm:default-node-token\n",
            "bosun init"
        );
        let second = format!(
            "zzzzzz.0123456789abcdef   {:<12}<never>   {:<25}{:<59}<none>\n",
            "<forever>", "<none>", "<none>"
        );
        let expected = header + &first + &second;
        assert_eq!(text, expected);
        assert_eq!(table(&[]), "");
    }
}
