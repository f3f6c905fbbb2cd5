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
