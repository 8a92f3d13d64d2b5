//! OpenStack's timestamp formats, written once.

use chrono::{DateTime, TimeZone, Utc};

/// Microseconds since the epoch: how FerroStack stores instants (portable across engines).
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Keystone's `expires_at` / `issued_at` form: `2026-11-24T10:32:45.000000Z`.
pub fn keystone_format(micros: i64) -> String {
    to_datetime(micros)
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Nova's and most services' form: `2026-11-24T01:51:22Z`.
pub fn iso8601_seconds(micros: i64) -> String {
    to_datetime(micros).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Parses the ISO 8601 forms clients send (`2026-11-24T10:32:45Z`, with fractions, with
/// an offset, or naive and taken as UTC) into epoch microseconds.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

fn to_datetime(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keystone_format_has_microseconds_and_z() {
        let t = parse_iso8601("2026-11-24T10:32:45.123456Z").unwrap();
        assert_eq!(keystone_format(t), "2026-11-24T10:32:45.123456Z");
        assert_eq!(iso8601_seconds(t), "2026-11-24T10:32:45Z");
    }

    #[test]
    fn parses_the_forms_clients_send() {
        for s in [
            "2026-11-24T10:32:45Z",
            "2026-11-24T10:32:45",
            "2026-11-24T10:32:45+00:00",
        ] {
            assert_eq!(
                iso8601_seconds(parse_iso8601(s).unwrap()),
                "2026-11-24T10:32:45Z"
            );
        }
        assert!(parse_iso8601("tomorrow").is_none());
    }
}
