//! SampledData streams as the connector writes and merges them (`SampledDataProcessor`):
//! one token per `period` slot from `start` through `end`, space-separated, `E` for an empty
//! slot, the latest value of a slot winning; decoding drops the `E`s; merging existing samples
//! with new ones lets the new value win at the same time.

use chrono::{DateTime, Duration, Utc};

/// A sample: when, and the value as the measurement gave it (never reformatted).
pub type Sample = (DateTime<Utc>, String);

/// More slots than a stream may have: a period far too small for the Observation's interval
/// (the connector would try to build it; this refuses with a reason instead).
pub const MAX_SLOTS: i64 = 1_000_000;

/// Why a stream could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampledDataError {
    #[error("a SampledData value needs a positive defaultPeriod in its template")]
    NoPeriod,
    #[error("{slots} samples of {period_ms} ms from {start} to {end} are more than {MAX_SLOTS}: use a longer defaultPeriod or a shorter periodInterval")]
    TooManySlots { slots: i64, period_ms: String, start: String, end: String },
}

/// The period of a template's `defaultPeriod` (milliseconds, fractions to the tick of 100 ns,
/// as .NET's `AddMilliseconds`).
pub fn period(ms: f64) -> Result<Duration, SampledDataError> {
    let ticks = (ms * 10_000.0).round();
    if !(1.0..1e15).contains(&ticks) {
        return Err(SampledDataError::NoPeriod);
    }
    Ok(Duration::nanoseconds(ticks as i64 * 100))
}

/// The stream of time-sorted samples over `[start, end]`.
pub fn build(samples: &[(DateTime<Utc>, &str)], start: DateTime<Utc>, end: DateTime<Utc>, period: Duration) -> Result<String, SampledDataError> {
    let span = (end - start).num_nanoseconds().unwrap_or(i64::MAX);
    let step = period.num_nanoseconds().unwrap_or(i64::MAX).max(1);
    let slots = if span < 0 { 0 } else { span / step + 1 };
    if slots > MAX_SLOTS {
        return Err(SampledDataError::TooManySlots {
            slots,
            period_ms: format!("{}", step as f64 / 1e6),
            start: start.to_rfc3339(),
            end: end.to_rfc3339(),
        });
    }
    let mut out = String::with_capacity(slots as usize * 3);
    let mut current = start;
    let mut next = current + period;
    let mut i = 0;
    while current <= end {
        let mut value = None;
        // As the connector: values are consumed in order while they fall in the slot, so the
        // last one wins; one before `start` would never be consumed (cannot happen: `start`
        // is the earliest time of the Observation).
        while i < samples.len() && samples[i].0 >= current && samples[i].0 < next {
            value = Some(samples[i].1);
            i += 1;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(value.unwrap_or("E"));
        current = next;
        next += period;
    }
    Ok(out)
}

/// The samples of a stream that starts at `start`, without its empty (`E`) slots.
pub fn decode(data: &str, start: DateTime<Utc>, period: Duration) -> Vec<Sample> {
    let mut at = start;
    let mut out = Vec::new();
    for token in data.split(' ') {
        if token != "E" {
            out.push((at, token.to_owned()));
        }
        at += period;
    }
    out
}

/// Two time-sorted sample lists as one; at the same time the new sample wins.
pub fn merge(existing: Vec<Sample>, new: &[(DateTime<Utc>, &str)]) -> Vec<Sample> {
    let mut out = Vec::with_capacity(existing.len() + new.len());
    let mut old = existing.into_iter().peekable();
    let mut new = new.iter().peekable();
    loop {
        match (old.peek(), new.peek()) {
            (Some(o), Some(n)) if o.0 < n.0 => out.extend(old.next()),
            (Some(o), Some(n)) if o.0 == n.0 => {
                old.next();
                out.extend(new.next().map(|(t, v)| (*t, (*v).to_owned())));
            }
            (_, Some(_)) => out.extend(new.next().map(|(t, v)| (*t, (*v).to_owned()))),
            (Some(_), None) => out.extend(old.next()),
            (None, None) => return out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        "2019-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::minutes(minute)
    }

    #[test]
    fn the_conformance_stream_drops_values_past_the_end() {
        let values: Vec<String> = (0..=10).map(|i| i.to_string()).collect();
        let samples: Vec<(DateTime<Utc>, &str)> = values.iter().enumerate().map(|(i, v)| (at(i as i64), v.as_str())).collect();
        let end = at(10) - Duration::milliseconds(1);
        assert_eq!(build(&samples, at(0), end, period(60000.0).unwrap()).unwrap(), "0 1 2 3 4 5 6 7 8 9");
    }

    #[test]
    fn empty_slots_are_e_and_the_latest_value_of_a_slot_wins() {
        let samples = [(at(0), "1"), (at(0) + Duration::seconds(30), "2"), (at(2), "3")];
        assert_eq!(build(&samples, at(0), at(4), period(60000.0).unwrap()).unwrap(), "2 E 3 E E");
        assert_eq!(build(&[], at(0), at(0), period(1000.0).unwrap()).unwrap(), "E", "a single-time Observation has one slot");
        let hourly = build(&[], at(0), at(60) - Duration::nanoseconds(100), period(1000.0).unwrap()).unwrap();
        assert_eq!(hourly.split(' ').count(), 3600);
    }

    #[test]
    fn decoding_drops_empty_slots_and_merging_lets_new_values_win() {
        let decoded = decode("1 E 3", at(0), period(60000.0).unwrap());
        assert_eq!(decoded, vec![(at(0), "1".to_owned()), (at(2), "3".to_owned())]);
        let merged = merge(decoded, &[(at(1), "20"), (at(2), "30"), (at(3), "40")]);
        assert_eq!(merged, vec![(at(0), "1".into()), (at(1), "20".into()), (at(2), "30".into()), (at(3), "40".into())]);
        assert_eq!(merge(vec![(at(5), "5".into())], &[(at(1), "1")]), vec![(at(1), "1".to_owned()), (at(5), "5".to_owned())]);
    }

    #[test]
    fn a_period_too_small_for_the_interval_is_refused() {
        let refused = build(&[], at(0), at(60 * 24), period(1.0).unwrap()).unwrap_err();
        assert!(matches!(refused, SampledDataError::TooManySlots { slots: 86_400_001, .. }), "{refused:?}");
        assert_eq!(period(0.0).unwrap_err(), SampledDataError::NoPeriod);
        assert_eq!(period(0.5).unwrap(), Duration::microseconds(500));
    }
}
