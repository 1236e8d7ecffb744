//! Expiry formatting as `kubeadm certs check-expiration` prints it.

use time::OffsetDateTime;

/// apimachinery's ShortHumanDuration of a residual time in whole seconds: `<invalid>` below −1 s, then `0s`, `Ns`,
/// `Nm`, `Nh`, `Nd` (under 365 days) and `Ny`.
pub fn short_human_duration(seconds: i64) -> String {
    if seconds < -1 {
        "<invalid>".to_owned()
    } else if seconds < 0 {
        "0s".to_owned()
    } else if seconds < 60 {
        format!("{seconds}s")
    } else if seconds / 60 < 60 {
        format!("{}m", seconds / 60)
    } else if seconds / 3600 < 24 {
        format!("{}h", seconds / 3600)
    } else if seconds / 3600 < 24 * 365 {
        format!("{}d", seconds / 3600 / 24)
    } else {
        format!("{}y", seconds / 3600 / 24 / 365)
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A date as Go's layout `Jan 02, 2006 15:04 MST` prints it in UTC (`Aug 27, 2026 12:16 UTC`).
pub fn format_expiry(time: OffsetDateTime) -> String {
    let utc = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{} {:02}, {} {:02}:{:02} UTC",
        MONTHS[usize::from(u8::from(utc.month())) - 1],
        utc.day(),
        utc.year(),
        utc.hour(),
        utc.minute()
    )
}

/// Whole seconds from `now` until `not_after` (negative once expired).
pub fn residual_seconds(not_after: OffsetDateTime, now: OffsetDateTime) -> i64 {
    (not_after - now).whole_seconds()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (86399, "23h"),
            (86400, "1d"),
            (364 * 86400 + 86399, "364d"),
            (365 * 86400, "1y"),
            (87600 * 3600 - 300, "9y"),
            (87600 * 3600, "10y"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(short_human_duration(seconds), expected, "{seconds}s");
        }
    }

    #[test]
    fn expiry_dates_use_go_layout() {
        let time = OffsetDateTime::from_unix_timestamp(1_787_832_960).expect("time");
        assert_eq!(format_expiry(time), "Aug 27, 2026 12:16 UTC");
        let january = OffsetDateTime::from_unix_timestamp(1_767_312_000).expect("time");
        assert_eq!(format_expiry(january), "Jan 02, 2026 00:00 UTC");
    }
}
