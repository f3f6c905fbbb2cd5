//! How the connector turns a selected JSON value into the text of a measurement property or
//! id (`JToken.Value<string>()` over a body Json.NET parsed with its defaults): strings as
//! they are, except that ISO 8601 date-times (which Json.NET's reader turns into dates) come
//! out in .NET's invariant "G" form, `MM/dd/yyyy HH:mm:ss`; integers in decimal; floats in
//! .NET's shortest round-trip form (`78.0` is `78`, `1e16` is `1E+16`); booleans as `True` and
//! `False`. Objects and arrays have no text (the connector fails the cast).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

/// The text of a scalar value as the connector writes it; `None` for null, objects and arrays.
pub fn dotnet_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(iso_date_time(s).map_or_else(|| s.clone(), |at| at.format("%m/%d/%Y %H:%M:%S").to_string())),
        Value::Number(n) => Some(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => dotnet_double(f),
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
        Value::Null | Value::Object(_) | Value::Array(_) => None,
    }
}

/// A string Json.NET's reader takes for a date-time (`yyyy-MM-ddTHH:mm:ss[.fffffff][Z|±hh:mm]`),
/// as a UTC instant: with `Z` or an offset, that instant; without, the wall-clock time as UTC
/// (the connector runs in UTC).
pub fn iso_date_time(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    // The shape first: Json.NET only tries strings that look like `dddd-dd-ddTdd:dd:dd`.
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// .NET's `double.ToString()` (shortest round-trip digits; exponent form from 1e15 and below 1e-4).
pub fn dotnet_double(f: f64) -> String {
    if !f.is_finite() {
        return f.to_string();
    }
    if f == 0.0 {
        return "0".into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits too: `d.ddde[-]x`.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..15).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}E{sign}{:02}", exponent.abs());
    }
    let text = format!("{f}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_come_out_as_the_connector_writes_them() {
        for (value, text) in [
            (json!("78"), Some("78")),
            (json!(78), Some("78")),
            (json!(78.0), Some("78")),
            (json!(98.6), Some("98.6")),
            (json!(-0.5), Some("-0.5")),
            (json!(1e16), Some("1E+16")),
            (json!(0.00001), Some("1E-05")),
            (json!(0.0001), Some("0.0001")),
            (json!(123456789012345.0), Some("123456789012345")),
            (json!(78.0 * 0.0254), Some("1.9811999999999999")),
            (json!(true), Some("True")),
            (json!(false), Some("False")),
            (json!("2019-02-01T22:46:01.875Z"), Some("02/01/2019 22:46:01")),
            (json!("2019-02-01T23:46:01+01:00"), Some("02/01/2019 22:46:01")),
            (json!("2019-02-01"), Some("2019-02-01")),
            (json!("not 2019-02-01T22:46:01"), Some("not 2019-02-01T22:46:01")),
            (json!(null), None),
            (json!({"a": 1}), None),
            (json!([1]), None),
        ] {
            assert_eq!(dotnet_text(&value).as_deref(), text, "{value}");
        }
    }

    #[test]
    fn date_times_without_an_offset_are_utc() {
        let at = iso_date_time("2019-01-30T22:45:02.6073744").unwrap();
        assert_eq!(crate::platform::time::format_utc(at), "2019-01-30T22:45:02.607Z");
        assert_eq!(iso_date_time("2019-01-30T22:45:02.6073744Z"), Some(at), "the same instant, to the 100 ns");
        assert!(iso_date_time("2019-01-30").is_none());
    }
}
