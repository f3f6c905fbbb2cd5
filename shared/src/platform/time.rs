//! Timestamps as FHIR `instant`/`dateTime` strings.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Formats a UTC instant with millisecond precision, e.g. `2026-11-22T03:23:27.123Z`.
///
/// Fixed width, so these strings sort in time order as DynamoDB sort keys.
pub fn format_utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Converts epoch milliseconds (IoT SQL `timestamp()`) to a UTC instant.
pub fn from_epoch_millis(millis: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single()
}

/// Parses an RFC 3339 / ISO 8601 date-time that carries an offset (`Z` or `±hh:mm`).
pub fn parse_with_offset(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}
