//! Timestamps as FHIR `instant`/`dateTime` strings.

use chrono::{DateTime, Datelike, SecondsFormat, TimeZone, Timelike, Utc};

/// Formats a UTC instant with millisecond precision, e.g. `2026-11-22T03:23:27.123Z`.
///
/// Fixed width, so these strings sort in time order as DynamoDB sort keys.
pub fn format_utc(at: DateTime<Utc>) -> String {
    let (year, nanos) = (at.year(), at.nanosecond());
    // Written digit by digit: every reading formats its time, and chrono's general formatter
    // cost a few per cent of the hot path. Years outside 0-9999 and leap seconds go through
    // chrono.
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return at.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            // n % 10 is a digit: it fits a byte.
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, at.month());
    put(8, 2, at.day());
    put(11, 2, at.hour());
    put(14, 2, at.minute());
    put(17, 2, at.second());
    put(20, 3, nanos / 1_000_000);
    // Digits and separators only: always UTF-8.
    std::str::from_utf8(&text).map(str::to_owned).unwrap_or_default()
}

/// Converts epoch milliseconds (IoT SQL `timestamp()`) to a UTC instant.
pub fn from_epoch_millis(millis: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(millis).single()
}

/// Parses an RFC 3339 / ISO 8601 date-time that carries an offset (`Z` or `±hh:mm`).
pub fn parse_with_offset(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

/// The time the platform's scheduled work goes by: the system's, or (on the local platform and
/// in tests) the system's moved forward by however far it was advanced, so that a developer can
/// see an alert escalate without waiting for its deadline. AWS functions never advance it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds added to the system time; none: the system time.
    advanced_ms: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

impl Clock {
    /// A clock that [`Clock::advance`] moves; clones share it.
    pub fn controllable() -> Self {
        Self { advanced_ms: Some(std::sync::Arc::default()) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let advanced = self.advanced_ms.as_ref().map_or(0, |a| a.load(std::sync::atomic::Ordering::SeqCst));
        Utc::now() + chrono::Duration::milliseconds(advanced)
    }

    /// Moves a controllable clock forward; false for the system clock, which does not move.
    pub fn advance(&self, by: chrono::Duration) -> bool {
        match &self.advanced_ms {
            Some(a) => {
                a.fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

impl crate::wiring::FromWiring for Clock {
    fn from_wiring(w: &crate::wiring::Wiring) -> Result<Self, crate::wiring::WiringError> {
        Ok(w.clock.clone())
    }
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    #[test]
    fn a_controllable_clock_moves_for_every_clone_and_the_system_clock_never_does() {
        let clock = Clock::controllable();
        let shared = clock.clone();
        let before = shared.now();
        assert!(clock.advance(chrono::Duration::minutes(15)));
        assert!(shared.now() - before >= chrono::Duration::minutes(15));
        let system = Clock::default();
        assert!(!system.advance(chrono::Duration::minutes(15)));
        assert!(system.now() - Utc::now() < chrono::Duration::minutes(1));
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn utc_times_are_written_as_chrono_writes_them() {
        let chrono_text = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, true);
        // Every millisecond digit, leap-year days, the ends of years and of days, far and near.
        let mut millis: Vec<i64> = vec![0, 1, 999, 86_399_999, 951_782_400_000, 1_795_315_200_120, 253_402_300_799_999, -1, -62_167_219_200_000];
        let mut x = 1_700_000_000_123_i64;
        for _ in 0..20_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            millis.push(x.rem_euclid(253_402_300_800_000));
        }
        for ms in millis {
            let at = Utc.timestamp_millis_opt(ms).unwrap();
            assert_eq!(format_utc(at), chrono_text(at), "{ms}");
        }
        let far = Utc.timestamp_millis_opt(253_402_300_800_000).unwrap();
        assert_eq!(format_utc(far), chrono_text(far), "beyond 9999 through chrono");
        assert!(format_utc(far).starts_with("+10000-"));
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_milli_opt(23, 59, 59, 1_500).unwrap().and_utc();
        assert_eq!(format_utc(leap), chrono_text(leap), "a leap second through chrono");
        let micro = Utc.timestamp_opt(1_795_315_200, 123_999_999).unwrap();
        assert_eq!(format_utc(micro), "2026-11-22T02:40:00.123Z", "truncated to the millisecond");
        assert_eq!(format_utc(micro), chrono_text(micro));
    }
}
