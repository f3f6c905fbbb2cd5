//! Timestamps as the Polaris messages service reads and writes them (its `timestamp` helpers):
//! the date extended (`2018-02-11`), the time extended or basic (`11:59:50` or `115950`), a
//! fraction of 1 to 6 digits and an offset (`Z`, `+03:00` or `+0300`) both required; written
//! back as `YYYY-MM-DDTHH:MM:SS.mmm` in the offset it came with (`Z` when zero), the
//! milliseconds truncated.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone, Timelike, Utc};

/// A timestamp with the offset it was given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolarisTime {
    pub at: DateTime<FixedOffset>,
}

/// Why a timestamp is refused, worded as the reference words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} does not match expected ISO8601 format")]
pub struct NotIso8601(pub String);

impl PolarisTime {
    /// Parses as the reference does: a trailing `Z` is `+00:00`, every `:` is dropped, and what
    /// is left must read `%Y-%m-%dT%H%M%S.%f%z`.
    pub fn parse(text: &str) -> Result<Self, NotIso8601> {
        let refused = || NotIso8601(text.to_owned());
        let zulu = text.strip_suffix('Z').map(|t| format!("{t}+00:00"));
        let compact: String = zulu.as_deref().unwrap_or(text).chars().filter(|c| *c != ':').collect();
        let (date, rest) = compact.split_once('T').ok_or_else(refused)?;
        let mut parts = date.splitn(3, '-');
        let number = |s: Option<&str>, max: usize| s.filter(|s| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())).and_then(|s| s.parse::<u32>().ok());
        let (year, month, day) = (number(parts.next(), 4).ok_or_else(refused)?, number(parts.next(), 2).ok_or_else(refused)?, number(parts.next(), 2).ok_or_else(refused)?);
        let date = NaiveDate::from_ymd_opt(i32::try_from(year).map_err(|_| refused())?, month, day).ok_or_else(refused)?;
        let (clock, fraction_and_offset) = rest.split_once('.').ok_or_else(refused)?;
        let sign_at = fraction_and_offset.find(['+', '-']).ok_or_else(refused)?;
        let (fraction, offset) = fraction_and_offset.split_at(sign_at);
        if fraction.is_empty() || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refused());
        }
        let time = clock_time(clock).ok_or_else(refused)?;
        let nanos: u32 = format!("{fraction:0<9}").parse().map_err(|_| refused())?;
        let time = time.with_nanosecond(nanos).ok_or_else(refused)?;
        let offset = parse_offset(offset).ok_or_else(refused)?;
        let at = offset.from_local_datetime(&date.and_time(time)).single().ok_or_else(refused)?;
        Ok(Self { at })
    }

    /// An instant in UTC.
    pub fn utc(at: DateTime<Utc>) -> Self {
        Self { at: at.fixed_offset() }
    }

    /// As the reference writes it: milliseconds truncated, `Z` for a zero offset.
    pub fn format(&self) -> String {
        let millis = self.at.timestamp_subsec_millis().min(999);
        let offset = self.at.offset().local_minus_utc();
        let zone = if offset == 0 {
            "Z".to_owned()
        } else {
            let sign = if offset < 0 { '-' } else { '+' };
            let minutes = offset.unsigned_abs() / 60;
            format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
        };
        format!("{}.{millis:03}{zone}", self.at.format("%Y-%m-%dT%H:%M:%S"))
    }
}

/// `HHMMSS`, its fields 1 or 2 digits as `strptime` allows when they are unambiguous: here,
/// only the fully padded six-digit form and the extended form (its colons already removed, so
/// also six digits) occur in practice; shorter unpadded forms are refused.
fn clock_time(clock: &str) -> Option<NaiveTime> {
    if clock.len() != 6 || !clock.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |i: usize| clock[i..i + 2].parse::<u32>().ok();
    NaiveTime::from_hms_opt(field(0)?, field(2)?, field(4)?)
}

/// `+0300` or `-0000` (colons already removed).
fn parse_offset(offset: &str) -> Option<FixedOffset> {
    let (sign, digits) = offset.split_at(1);
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    let seconds = (hours * 60 + minutes) * 60;
    FixedOffset::east_opt(if sign == "-" { -seconds } else { seconds })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_and_basic_times_are_read_and_written_back_in_their_offset() {
        for (given, written) in [
            ("2018-02-11T11:59:50.123+03:00", "2018-02-11T11:59:50.123+03:00"),
            ("2018-02-11T115950.123+0300", "2018-02-11T11:59:50.123+03:00"),
            ("2022-01-01T101500.123456Z", "2022-01-01T10:15:00.123Z"),
            ("2022-01-01T10:15:00.5+00:00", "2022-01-01T10:15:00.500Z"),
            ("2022-01-01T10:15:00.999999-05:30", "2022-01-01T10:15:00.999-05:30"),
        ] {
            assert_eq!(PolarisTime::parse(given).map(|t| t.format()), Ok(written.to_owned()), "{given}");
        }
        let t = PolarisTime::parse("2018-02-11T11:59:50.123+03:00").unwrap();
        assert_eq!(t.at.with_timezone(&Utc).to_rfc3339(), "2018-02-11T08:59:50.123+00:00", "the instant is kept");
    }

    #[test]
    fn what_the_reference_refuses_is_refused_with_its_words() {
        for bad in ["2018-02-11T11:59:50Z", "2018-02-11T11:59:50.123", "20180211T115950.123Z", "2018-02-11T11:59:50.1234567Z", "2018-02-11T11:59:50.123+03", "2018-02-11T11:59:50.123z", "2018-02-11 11:59:50.123Z", "2018-02-30T11:59:50.123Z", ""] {
            assert_eq!(PolarisTime::parse(bad), Err(NotIso8601(bad.to_owned())), "{bad}");
        }
        assert_eq!(NotIso8601("x".into()).to_string(), "x does not match expected ISO8601 format");
    }
}
