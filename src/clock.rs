//! Wall-clock time as Unix milliseconds, and the two ways Herald shows it.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-11-21T10:43:53.120Z`: for JSON and `<time datetime>`.
pub fn rfc3339(ms: i64) -> String {
    datetime(ms).format(&Rfc3339).unwrap_or_default()
}

/// `10:43:53`: for people (UTC).
pub fn hms(ms: i64) -> String {
    let t = datetime(ms);
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_both_ways() {
        let ms = 1_795_258_433_120;
        assert_eq!(rfc3339(ms), "2026-11-21T10:53:53.12Z");
        assert_eq!(hms(ms), "10:53:53");
    }
}
