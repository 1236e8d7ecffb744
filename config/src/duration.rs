//! Go's `time.Duration` text form (`24h0m0s`, `4m0s`, `500ms`), as kubeadm's `metav1.Duration` fields are written.

use std::fmt;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that reads and writes Go's `time.Duration` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub StdDuration);

impl Duration {
    pub const fn from_secs(seconds: u64) -> Self {
        Duration(StdDuration::from_secs(seconds))
    }

    pub const fn from_millis(milliseconds: u64) -> Self {
        Duration(StdDuration::from_millis(milliseconds))
    }

    pub fn as_std(&self) -> StdDuration {
        self.0
    }

    /// Parses Go's duration syntax: a sequence of decimal numbers with units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`.
    /// Negative durations are rejected (kubeadm has no use for them).
    pub fn parse(text: &str) -> Result<Duration, String> {
        let original = text;
        let mut rest = text.trim();
        if let Some(stripped) = rest.strip_prefix('+') {
            rest = stripped;
        }
        if rest.starts_with('-') {
            return Err(format!("duration {original:?} is negative"));
        }
        if rest == "0" {
            return Ok(Duration::default());
        }
        if rest.is_empty() {
            return Err("duration is empty".to_owned());
        }
        let mut total_nanos: u128 = 0;
        while !rest.is_empty() {
            let number_length = rest
                .find(|character: char| !(character.is_ascii_digit() || character == '.'))
                .unwrap_or(rest.len());
            let number = &rest[..number_length];
            if number.is_empty() || number == "." {
                return Err(format!(
                    "duration {original:?} is not a Go duration such as 1h30m or 500ms"
                ));
            }
            rest = &rest[number_length..];
            let unit_length = rest
                .find(|character: char| character.is_ascii_digit() || character == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_length];
            rest = &rest[unit_length..];
            let unit_nanos: u128 = match unit {
                "ns" => 1,
                "us" | "µs" | "μs" => 1_000,
                "ms" => 1_000_000,
                "s" => 1_000_000_000,
                "m" => 60_000_000_000,
                "h" => 3_600_000_000_000,
                "" => {
                    return Err(format!(
                        "duration {original:?} has a number without a unit (use s, m or h)"
                    ))
                }
                other => {
                    return Err(format!(
                        "duration {original:?} has an unknown unit {other:?} (use ns, us, ms, s, m or h)"
                    ))
                }
            };
            let (whole, fraction) = match number.split_once('.') {
                Some((whole, fraction)) => (whole, fraction),
                None => (number, ""),
            };
            if fraction.contains('.') {
                return Err(format!("duration {original:?} is not a number"));
            }
            let whole_value: u128 = if whole.is_empty() {
                0
            } else {
                whole
                    .parse()
                    .map_err(|_| format!("duration {original:?} is too large"))?
            };
            let mut nanos = whole_value
                .checked_mul(unit_nanos)
                .ok_or_else(|| format!("duration {original:?} is too large"))?;
            if !fraction.is_empty() {
                let digits = fraction.len().min(18);
                let fraction_value: u128 = fraction[..digits]
                    .parse()
                    .map_err(|_| format!("duration {original:?} is not a number"))?;
                nanos += fraction_value * unit_nanos / 10u128.pow(digits as u32);
            }
            total_nanos = total_nanos
                .checked_add(nanos)
                .ok_or_else(|| format!("duration {original:?} is too large"))?;
        }
        // Go's time.Duration is an int64 of nanoseconds.
        if total_nanos > i64::MAX as u128 {
            return Err(format!("duration {original:?} is too large"));
        }
        let seconds = (total_nanos / 1_000_000_000) as u64;
        let nanos = (total_nanos % 1_000_000_000) as u32;
        Ok(Duration(StdDuration::new(seconds, nanos)))
    }
}

impl fmt::Display for Duration {
    /// Formats as Go's `Duration.String()` does: `24h0m0s`, `4m0s`, `1.5s`, `500ms`, `0s`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_nanos = self.0.as_nanos();
        if total_nanos == 0 {
            return formatter.write_str("0s");
        }
        if total_nanos < 1_000_000_000 {
            // Sub-second: pick the largest unit that keeps a leading non-zero digit.
            let (unit, scale) = if total_nanos < 1_000 {
                ("ns", 1u128)
            } else if total_nanos < 1_000_000 {
                ("µs", 1_000)
            } else {
                ("ms", 1_000_000)
            };
            return write!(formatter, "{}{unit}", decimal(total_nanos, scale));
        }
        let hours = total_nanos / 3_600_000_000_000;
        let minutes = (total_nanos / 60_000_000_000) % 60;
        let second_nanos = total_nanos % 60_000_000_000;
        let seconds = decimal(second_nanos, 1_000_000_000);
        if hours > 0 {
            write!(formatter, "{hours}h{minutes}m{seconds}s")
        } else if minutes > 0 {
            write!(formatter, "{minutes}m{seconds}s")
        } else {
            write!(formatter, "{seconds}s")
        }
    }
}

/// `value / scale` as a decimal without trailing zeros.
fn decimal(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{fraction:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a Go duration such as 24h0m0s or 500ms")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Duration, E> {
                // metav1.Duration only reads strings; a bare 0 is the one number that is unambiguous.
                if value == 0 {
                    Ok(Duration::default())
                } else {
                    Err(E::custom(format!(
                        "duration {value} has no unit (write it as {value}s, {value}m or {value}h)"
                    )))
                }
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration {value} has no unit (write it with s, m or h)"
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration {value} has no unit (write it with s, m or h)"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_strings_round_trip() {
        for (text, expected) in [
            ("24h0m0s", "24h0m0s"),
            ("24h", "24h0m0s"),
            ("4m", "4m0s"),
            ("4m0s", "4m0s"),
            ("1h30m", "1h30m0s"),
            ("500ms", "500ms"),
            ("1.5s", "1.5s"),
            ("1.5h", "1h30m0s"),
            ("8760h", "8760h0m0s"),
            ("0", "0s"),
            ("0s", "0s"),
            ("90s", "1m30s"),
        ] {
            let parsed = Duration::parse(text).expect(text);
            assert_eq!(parsed.to_string(), expected, "{text}");
        }
    }

    #[test]
    fn bad_durations_are_rejected_with_a_reason() {
        assert!(Duration::parse("5").expect_err("unitless").contains("unit"));
        assert!(Duration::parse("5 days").is_err());
        assert!(Duration::parse("-5m")
            .expect_err("neg")
            .contains("negative"));
        assert!(Duration::parse("").is_err());
        assert!(Duration::parse("h").is_err());
        assert!(Duration::parse("99999999999999h").is_err());
    }
}
