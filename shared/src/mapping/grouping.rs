//! Measurements gathered as the connector gathers them before and inside FHIR mapping:
//!
//! 1. measurement groups (`MeasurementFhirImportService.ParseEventData`): by device, type,
//!    patient, encounter and correlation id, in first-seen order; within a group one
//!    measurement per occurrence time, the latest ingested (a re-sent, corrected reading
//!    replaces the earlier one at that instant);
//! 2. observation groups (`MeasurementObservationGroupFactory`): per the template's period
//!    interval, one group per measurement time, UTC hour or UTC day, or one per correlation id;
//!    each holds per property name the time-sorted values (the first at a time kept).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Timelike, Utc};

use super::fhir_templates::PeriodInterval;
use super::measurement::Measurement;
use super::values::iso_date_time;

/// Measurements of one device, type, patient, encounter and correlation id.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasurementGroup<'a> {
    pub device_id: &'a str,
    pub type_name: &'a str,
    pub patient_id: Option<&'a str>,
    pub encounter_id: Option<&'a str>,
    pub correlation_id: Option<&'a str>,
    /// One per occurrence time, in arrival order, with its time.
    pub measurements: Vec<(DateTime<Utc>, &'a Measurement)>,
}

/// Why measurements could not be grouped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupingError {
    #[error("the measurement's OccurrenceTimeUtc {0:?} is not a date-time")]
    NotATime(String),
    #[error("The correlation id is not defined: periodInterval -1 (CorrelationId) needs measurements with a CorrelationId.")]
    CorrelationIdNotDefined,
}

/// The measurement groups of a batch, in first-seen order.
pub fn measurement_groups(measurements: &[Measurement]) -> Result<Vec<MeasurementGroup<'_>>, GroupingError> {
    let mut groups: Vec<MeasurementGroup> = Vec::new();
    // Indexes, so a batch is grouped in linear time: group by key, measurement by (group, time).
    let mut by_key: HashMap<_, usize> = HashMap::new();
    let mut by_time: HashMap<(usize, DateTime<Utc>), usize> = HashMap::new();
    for m in measurements {
        let at = iso_date_time(&m.occurrence_time_utc).ok_or_else(|| GroupingError::NotATime(m.occurrence_time_utc.clone()))?;
        let key = (m.device_id.as_str(), m.type_name.as_str(), m.patient_id.as_deref(), m.encounter_id.as_deref(), m.correlation_id.as_deref());
        let g = *by_key.entry(key).or_insert_with(|| {
            groups.push(MeasurementGroup {
                    device_id: key.0,
                    type_name: key.1,
                    patient_id: key.2,
                    encounter_id: key.3,
                    correlation_id: key.4,
                measurements: Vec::new(),
            });
            groups.len() - 1
        });
        let group = &mut groups[g];
        match by_time.get(&(g, at)) {
            // The latest ingestion wins; without ingestion times the first stays (the
            // connector's stable descending sort puts missing times last).
            Some(&i) if ingested(m) > ingested(group.measurements[i].1) => group.measurements[i].1 = m,
            Some(_) => {}
            None => {
                by_time.insert((g, at), group.measurements.len());
                group.measurements.push((at, m));
            }
        }
    }
    Ok(groups)
}

fn ingested(m: &Measurement) -> Option<DateTime<Utc>> {
    m.ingestion_time_utc.as_deref().and_then(iso_date_time)
}

/// The measurements one Observation is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationGroup {
    /// The measurement type.
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The part of the Observation identifier that tells groups of a type apart: the period
    /// as `yyyyMMddHHmmssZ.yyyyMMddHHmmssZ`, or the correlation id.
    pub id_segment: String,
    /// Per property name, the time-sorted values.
    pub values: BTreeMap<String, BTreeMap<DateTime<Utc>, String>>,
}

impl ObservationGroup {
    /// The time-sorted values of one property.
    pub fn samples(&self, name: &str) -> Option<Vec<(DateTime<Utc>, &str)>> {
        self.values.get(name).map(|v| v.iter().map(|(t, s)| (*t, s.as_str())).collect())
    }

    fn add(&mut self, at: DateTime<Utc>, m: &Measurement) {
        for p in &m.properties {
            // Same property at the same time: the first value stays (a sorted set by time).
            self.values.entry(p.name.clone()).or_default().entry(at).or_insert_with(|| p.value.clone());
        }
    }
}

/// The observation groups of a measurement group under a period interval.
pub fn observation_groups(group: &MeasurementGroup, interval: PeriodInterval) -> Result<Vec<ObservationGroup>, GroupingError> {
    let name = group.type_name.to_owned();
    if interval == PeriodInterval::CorrelationId {
        let id = group.correlation_id.filter(|c| !c.trim().is_empty()).ok_or(GroupingError::CorrelationIdNotDefined)?;
        let start = group.measurements.iter().map(|(t, _)| *t).min();
        let end = group.measurements.iter().map(|(t, _)| *t).max();
        let (Some(start), Some(end)) = (start, end) else { return Ok(Vec::new()) };
        let mut one = ObservationGroup { name, start, end, id_segment: id.to_owned(), values: BTreeMap::new() };
        for (at, m) in &group.measurements {
            one.add(*at, m);
        }
        return Ok(vec![one]);
    }
    let mut out: Vec<ObservationGroup> = Vec::new();
    let mut by_start: HashMap<DateTime<Utc>, usize> = HashMap::new();
    for (at, m) in &group.measurements {
        let (start, end) = boundary(*at, interval);
        let i = *by_start.entry(start).or_insert_with(|| {
            out.push(ObservationGroup { name: name.clone(), start, end, id_segment: id_segment(start, end), values: BTreeMap::new() });
            out.len() - 1
        });
        out[i].add(*at, m);
    }
    Ok(out)
}

/// The period of a time under an interval: the instant, its UTC hour or its UTC day (ends one
/// tick, 100 ns, before the next period, as .NET's `AddTicks(-1)`).
pub fn boundary(at: DateTime<Utc>, interval: PeriodInterval) -> (DateTime<Utc>, DateTime<Utc>) {
    let tick = Duration::nanoseconds(100);
    let hour = || at.with_minute(0).and_then(|t| t.with_second(0)).and_then(|t| t.with_nanosecond(0)).unwrap_or(at);
    match interval {
        PeriodInterval::Single | PeriodInterval::CorrelationId => (at, at),
        PeriodInterval::Hourly => (hour(), hour() + Duration::hours(1) - tick),
        PeriodInterval::Daily => {
            let day = hour().with_hour(0).unwrap_or(at);
            (day, day + Duration::days(1) - tick)
        }
    }
}

pub(super) fn id_segment(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    format!("{}.{}", start.format("%Y%m%d%H%M%SZ"), end.format("%Y%m%d%H%M%SZ"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::measurement::MeasurementProperty;

    fn m(device: &str, time: &str, correlation: Option<&str>, props: &[(&str, &str)]) -> Measurement {
        Measurement {
            type_name: "hr".into(),
            occurrence_time_utc: time.into(),
            ingestion_time_utc: None,
            device_id: device.into(),
            patient_id: None,
            encounter_id: None,
            correlation_id: correlation.map(Into::into),
            properties: props.iter().map(|(n, v)| MeasurementProperty { name: (*n).into(), value: (*v).into() }).collect(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn periods_are_utc_instants_hours_and_days() {
        let at = t("2019-01-01T10:25:13.5Z");
        assert_eq!(boundary(at, PeriodInterval::Single), (at, at));
        assert_eq!(boundary(at, PeriodInterval::Hourly), (t("2019-01-01T10:00:00Z"), t("2019-01-01T10:59:59.9999999Z")));
        assert_eq!(boundary(at, PeriodInterval::Daily), (t("2019-01-01T00:00:00Z"), t("2019-01-01T23:59:59.9999999Z")));
        let (s, e) = boundary(t("2019-01-01T00:30:00Z"), PeriodInterval::Hourly);
        assert_eq!(id_segment(s, e), "20190101000000Z.20190101005959Z", "the connector's own test");
    }

    #[test]
    fn measurement_groups_split_by_identity_and_keep_the_latest_ingestion_per_time() {
        let mut a = m("d1", "2019-01-01T00:00:00Z", None, &[("hr", "70")]);
        a.ingestion_time_utc = Some("2019-01-01T00:00:05Z".into());
        let mut corrected = m("d1", "2019-01-01T00:00:00Z", None, &[("hr", "72")]);
        corrected.ingestion_time_utc = Some("2019-01-01T00:00:09Z".into());
        let other_device = m("d2", "2019-01-01T00:00:00Z", None, &[("hr", "90")]);
        let batch = [a, other_device, corrected, m("d1", "2019-01-01T00:01:00Z", None, &[("hr", "71")])];
        let groups = measurement_groups(&batch).unwrap();
        assert_eq!(groups.iter().map(|g| g.device_id).collect::<Vec<_>>(), ["d1", "d2"]);
        let values: Vec<&str> = groups[0].measurements.iter().map(|(_, m)| m.properties[0].value.as_str()).collect();
        assert_eq!(values, ["72", "71"], "the re-sent reading at the same instant replaces the first; a reading a minute later is its own");
        assert_eq!(measurement_groups(&[m("d", "yesterday", None, &[])]).unwrap_err(), GroupingError::NotATime("yesterday".into()));
    }

    #[test]
    fn observation_groups_follow_the_period_interval() {
        let batch = [
            m("d1", "2019-01-01T00:10:00Z", Some("s1"), &[("hr", "1")]),
            m("d1", "2019-01-01T00:50:00Z", Some("s1"), &[("hr", "2")]),
            m("d1", "2019-01-01T01:05:00Z", Some("s1"), &[("hr", "3")]),
            m("d1", "2019-01-01T00:05:00Z", Some("s1"), &[("hr", "0")]),
        ];
        let groups = measurement_groups(&batch).unwrap();
        let single = observation_groups(&groups[0], PeriodInterval::Single).unwrap();
        assert_eq!(single.len(), 4);
        let hourly = observation_groups(&groups[0], PeriodInterval::Hourly).unwrap();
        assert_eq!(hourly.len(), 2);
        assert_eq!(hourly[0].samples("hr").unwrap(), [(t("2019-01-01T00:05:00Z"), "0"), (t("2019-01-01T00:10:00Z"), "1"), (t("2019-01-01T00:50:00Z"), "2")]);
        assert_eq!(observation_groups(&groups[0], PeriodInterval::Daily).unwrap().len(), 1);
        let by_session = observation_groups(&groups[0], PeriodInterval::CorrelationId).unwrap();
        assert_eq!(by_session.len(), 1);
        assert_eq!((by_session[0].start, by_session[0].end), (t("2019-01-01T00:05:00Z"), t("2019-01-01T01:05:00Z")));
        assert_eq!(by_session[0].id_segment, "s1");
        let uncorrelated = [Measurement { correlation_id: None, ..batch[0].clone() }];
        let without = measurement_groups(&uncorrelated).unwrap();
        assert_eq!(observation_groups(&without[0], PeriodInterval::CorrelationId).unwrap_err(), GroupingError::CorrelationIdNotDefined);
    }
}
