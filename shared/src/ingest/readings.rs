//! Vital-sign readings as gateways and apps send them over the REST API and the S3 inbox:
//!
//! ```json
//! {"device_id": "DEV001", "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75,
//!  "blood_pressure_systolic": 120, "blood_pressure_diastolic": 80,
//!  "temperature": 98.6, "temperature_unit": "F", "respiratory_rate": 16,
//!  "oxygen_saturation": 98.0, "glucose": 95.0, "weight": 150.0, "weight_unit": "lbs",
//!  "notes": "Morning reading", "signal_quality": 95, "battery_level": 80}
//! ```
//!
//! plus an optional `patient_id`, for a device that may name the patient (a shared clinic
//! device). Validation reports every problem of a reading with its field. Values keep the text
//! the device sent (`98.60` stays `98.60`); plausible ranges are checked on the number in the
//! unit given ([`VitalSign`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{check_time, Effective, Reading, Timing};
use crate::fhir::vitals::VitalSign;
use crate::fhir::{is_valid_id, Decimal};
use crate::observations::Measurement;

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: &str, reason: impl Into<String>) -> Self {
        Self { field: field.to_owned(), reason: reason.into() }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

/// A validated reading of the vitals format, and the fields of it that are not filed. Its
/// `battery_level` is filed, as the device's battery charge (MDC 67996); `notes` and
/// `signal_quality` are checked, not filed (see the README).
#[derive(Debug, Clone, PartialEq)]
pub struct VitalsReading {
    pub reading: Reading,
    /// The reading's `timestamp` as the device wrote it.
    pub timestamp: String,
    /// Free text from the device; never logged.
    pub notes: Option<String>,
    pub signal_quality: Option<Decimal>,
}

/// Fields a reading may carry.
const KNOWN_FIELDS: &[&str] = &[
    "device_id",
    "patient_id",
    "timestamp",
    "heart_rate",
    "blood_pressure_systolic",
    "blood_pressure_diastolic",
    "temperature",
    "temperature_unit",
    "respiratory_rate",
    "oxygen_saturation",
    "glucose",
    "weight",
    "weight_unit",
    "notes",
    "signal_quality",
    "battery_level",
];

/// The fields of a reading whose unit is fixed: (field, vital sign, the unit as the seed names it).
const FIXED_UNIT_VITALS: &[(&str, VitalSign, &str)] = &[
    ("heart_rate", VitalSign::HeartRate, "bpm"),
    ("respiratory_rate", VitalSign::RespiratoryRate, "breaths/min"),
    ("oxygen_saturation", VitalSign::OxygenSaturation, "%"),
    ("glucose", VitalSign::BloodGlucose, "mg/dL"),
];

/// The fields of a reading whose unit comes in a companion field: (field, unit field, vital
/// sign, the unit texts accepted).
const UNIT_FIELD_VITALS: &[(&str, &str, VitalSign, &[&str])] = &[
    ("temperature", "temperature_unit", VitalSign::BodyTemperature, &["F", "C"]),
    ("weight", "weight_unit", VitalSign::BodyWeight, &["lbs", "kg"]),
];

const SYSTOLIC: &str = "blood_pressure_systolic";
const DIASTOLIC: &str = "blood_pressure_diastolic";

/// One JSON object's fields being checked, collecting every problem: a reading's here, an
/// observation set's in [`crate::clinical::sets`].
pub(crate) struct Fields<'a> {
    pub(crate) map: Map<String, Value>,
    /// The same text again, keeping each number's literal text.
    raw: HashMap<String, Box<RawValue>>,
    pub(crate) errors: Vec<FieldError>,
    batch_device: Option<&'a str>,
}

impl Fields<'_> {
    /// The fields of a JSON object's text (`what` names it in the refusal), each field named in
    /// `known` or refused as not one of `what`'s.
    pub(crate) fn of(text: &str, what: &str, known: &[&str]) -> Result<Self, Vec<FieldError>> {
        let map: Map<String, Value> = match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(vec![FieldError::new("body", format!("{what} must be a JSON object"))]),
            Err(e) => return Err(vec![FieldError::new("body", format!("is not valid JSON: {e}"))]),
        };
        let raw = serde_json::from_str(text).unwrap_or_default();
        let mut f = Fields { map, raw, errors: Vec::new(), batch_device: None };
        let unknown: Vec<String> = f.map.keys().filter(|k| !known.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            f.problem(&key, format!("is not a field of {what}"));
        }
        Ok(f)
    }

    pub(crate) fn given(&self, field: &str) -> bool {
        self.map.get(field).is_some_and(|v| !v.is_null())
    }

    pub(crate) fn problem(&mut self, field: &str, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    /// A number field's literal text as a FHIR decimal; `None` when absent or null.
    pub(crate) fn decimal(&mut self, field: &str) -> Option<Decimal> {
        match self.map.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(_)) => match self.raw.get(field).map(|r| Decimal::parse(r.get())) {
                Some(Ok(d)) => Some(d),
                Some(Err(e)) => {
                    self.problem(field, format!("is not a usable number: {e}"));
                    None
                }
                None => None,
            },
            Some(_) => {
                self.problem(field, "must be a number");
                None
            }
        }
    }

    /// A vital sign's value in a unit, if given and plausible.
    pub(crate) fn vital(&mut self, field: &str, vital: VitalSign, unit_text: &str) -> Option<(Decimal, &'static str)> {
        let value = self.decimal(field)?;
        let unit = vital.unit_for(unit_text)?;
        match vital.check_plausible(&value, unit_text, unit) {
            Ok(()) => Some((value, unit.ucum)),
            Err(e) => {
                self.problem(field, e.to_string());
                None
            }
        }
    }

    fn device_id(&mut self) -> String {
        match (self.map.get("device_id").cloned(), self.batch_device) {
            (Some(Value::String(d)), batch) if !d.trim().is_empty() => {
                if batch.is_some_and(|b| b != d) {
                    self.problem("device_id", "differs from the batch's device_id");
                }
                d
            }
            (None | Some(Value::Null), Some(b)) => b.to_owned(),
            (None | Some(Value::Null), None) => {
                self.problem("device_id", "is required");
                String::new()
            }
            _ => {
                self.problem("device_id", "must be a non-empty string");
                String::new()
            }
        }
    }

    fn patient_id(&mut self) -> Option<String> {
        match self.map.get("patient_id").cloned() {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if is_valid_id(&p) => Some(p),
            Some(_) => {
                self.problem("patient_id", "must be a FHIR id (1-64 letters, digits, '-' or '.')");
                None
            }
        }
    }

    fn timestamp(&mut self, now: DateTime<Utc>) -> Option<Effective> {
        self.time("timestamp", now)
    }

    /// A required date-time field with an offset, not in the future nor too old.
    pub(crate) fn time(&mut self, field: &str, now: DateTime<Utc>) -> Option<Effective> {
        match self.map.get(field).cloned() {
            None | Some(Value::Null) => {
                self.problem(field, "is required");
                None
            }
            Some(Value::String(t)) => match crate::platform::time::parse_with_offset(&t) {
                None => {
                    self.problem(field, "must be an ISO 8601 date-time with an offset, e.g. 2025-11-17T10:30:00Z");
                    None
                }
                Some(at) => match check_time(at, now) {
                    Ok(()) => Some(Effective { text: t, at }),
                    Err(p) => {
                        self.problem(field, p.to_string());
                        None
                    }
                },
            },
            Some(_) => {
                self.problem(field, "must be a string");
                None
            }
        }
    }

    fn measurements(&mut self) -> Vec<Measurement> {
        let mut out = Vec::new();
        for &(field, vital, unit) in FIXED_UNIT_VITALS {
            if let Some((value, ucum)) = self.vital(field, vital, unit) {
                out.push(Measurement::vital(vital, value, unit, ucum));
            }
        }
        for &(field, unit_field, vital, allowed) in UNIT_FIELD_VITALS {
            if !self.given(field) {
                if self.given(unit_field) {
                    self.problem(unit_field, format!("given without a {field}"));
                }
                continue;
            }
            let unit = match self.map.get(unit_field) {
                Some(Value::String(u)) if allowed.contains(&u.as_str()) => Some(u.clone()),
                None | Some(Value::Null) => {
                    self.problem(unit_field, format!("is required with the value: {}", allowed.join(" or ")));
                    None
                }
                _ => {
                    self.problem(unit_field, format!("must be {}", allowed.join(" or ")));
                    None
                }
            };
            let value = self.vital(field, vital, unit.as_deref().unwrap_or_default());
            if let (Some(unit), Some((value, ucum))) = (unit, value) {
                out.push(Measurement::vital(vital, value, &unit, ucum));
            }
        }
        out
    }

    fn blood_pressure(&mut self) -> Option<(Decimal, Decimal)> {
        let systolic = self.vital(SYSTOLIC, VitalSign::SystolicBloodPressure, "mmHg");
        let diastolic = self.vital(DIASTOLIC, VitalSign::DiastolicBloodPressure, "mmHg");
        match (systolic, diastolic) {
            (Some((s, _)), Some((d, _))) if s.as_f64() <= d.as_f64() => {
                self.problem(SYSTOLIC, "must be above blood_pressure_diastolic");
                None
            }
            (Some((s, _)), Some((d, _))) => Some((s, d)),
            _ if self.given(SYSTOLIC) != self.given(DIASTOLIC) => {
                let missing = if self.given(SYSTOLIC) { DIASTOLIC } else { SYSTOLIC };
                self.problem(missing, "blood pressure needs both systolic and diastolic");
                None
            }
            _ => None,
        }
    }

    fn percent(&mut self, field: &str) -> Option<Decimal> {
        let value = self.decimal(field)?;
        if (0.0..=100.0).contains(&value.as_f64()) {
            Some(value)
        } else {
            self.problem(field, "must be from 0 to 100");
            None
        }
    }

    fn notes(&mut self) -> Option<String> {
        match self.map.get("notes").cloned() {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if n.chars().count() <= 2000 => Some(n),
            Some(_) => {
                self.problem("notes", "must be text of at most 2000 characters");
                None
            }
        }
    }
}

/// Validates one reading (a JSON object's text); `now` bounds timestamps. `device_id` may be
/// supplied by the enclosing batch.
pub fn parse(text: &str, batch_device: Option<&str>, now: DateTime<Utc>) -> Result<VitalsReading, Vec<FieldError>> {
    let mut f = Fields::of(text, "a reading", KNOWN_FIELDS)?;
    f.batch_device = batch_device;
    let device_id = f.device_id();
    let named_patient = f.patient_id();
    let timestamp = f.timestamp(now);
    let measurements = f.measurements();
    let blood_pressure = f.blood_pressure();
    let notes = f.notes();
    let signal_quality = f.percent("signal_quality");
    let battery_level = f.percent("battery_level");
    let vital_fields = FIXED_UNIT_VITALS.iter().map(|v| v.0).chain(UNIT_FIELD_VITALS.iter().map(|v| v.0)).chain([SYSTOLIC, DIASTOLIC]);
    if !vital_fields.into_iter().any(|field| f.given(field)) {
        f.problem("vital_signs", "at least one vital sign measurement is required");
    }
    match (f.errors.is_empty(), timestamp) {
        (true, Some(timestamp)) => Ok(VitalsReading {
            timestamp: timestamp.text.clone(),
            reading: Reading {
                device_id,
                named_patient,
                timing: Timing::Device(timestamp),
                measurements,
                blood_pressure,
                grouped: true,
                device_status: battery_level.map(Measurement::battery_charge).into_iter().collect(),
            },
            notes,
            signal_quality,
        }),
        _ => Err(f.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 11, 17, 10, 31, 0).unwrap()
    }

    const SEED: &str = r#"{
        "device_id": "DEV001", "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75,
        "blood_pressure_systolic": 120, "blood_pressure_diastolic": 80, "temperature": 98.6,
        "temperature_unit": "F", "respiratory_rate": 16, "oxygen_saturation": 98.0, "glucose": 95.0,
        "weight": 150.0, "weight_unit": "lbs", "notes": "Morning reading", "signal_quality": 95, "battery_level": 80
    }"#;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    fn vital(r: &VitalsReading, v: VitalSign) -> &Measurement {
        r.reading.measurements.iter().find(|m| m.vital == Some(v)).unwrap()
    }

    #[test]
    fn the_seed_reading_is_valid_and_keeps_the_devices_text() {
        let r = parse(SEED, None, now()).unwrap();
        assert_eq!(r.reading.device_id, "DEV001");
        assert_eq!((r.reading.measurements.len(), r.reading.blood_pressure.is_some()), (6, true), "six vitals and blood pressure");
        let temp = vital(&r, VitalSign::BodyTemperature);
        assert_eq!((temp.value.as_str(), temp.unit.as_str(), temp.ucum), ("98.6", "F", Some("[degF]")));
        assert_eq!(vital(&r, VitalSign::OxygenSaturation).value.as_str(), "98.0", "not rounded to 98");
        let bp = r.reading.blood_pressure.as_ref().map(|(s, d)| (s.as_str(), d.as_str()));
        assert_eq!(bp, Some(("120", "80")));
        assert_eq!(r.notes.as_deref(), Some("Morning reading"));
        assert_eq!(r.timestamp, "2025-11-17T10:30:00Z");
    }

    #[test]
    fn the_battery_level_is_filed_as_the_devices_battery_charge_outside_the_vital_signs_panel() {
        use crate::observations::{MDC_BATTERY_CHARGE, MDC_SYSTEM};
        let r = parse(&SEED.replace(r#""battery_level": 80"#, r#""battery_level": 80.50"#), None, now()).unwrap();
        let [battery] = r.reading.device_status.as_slice() else { panic!("one device status: {:?}", r.reading.device_status) };
        assert_eq!((battery.value.as_str(), battery.unit.as_str(), battery.ucum, battery.vital), ("80.50", "%", Some("%"), None), "as sent");
        assert!(battery.coding[0].is(MDC_SYSTEM, MDC_BATTERY_CHARGE));
        let built = r.reading.observations("P123", "2025-11-17T10:31:00.000Z");
        let codes: Vec<&str> = built.iter().map(|(o, _)| o.code.coding[0].code.as_deref().unwrap()).collect();
        assert_eq!(codes.len(), 9, "{codes:?}: six vitals, the blood-pressure panel, the battery, the grouping panel");
        let (panel, _) = built.last().unwrap();
        assert_eq!(panel.code.coding[0].code.as_deref(), Some("85353-1"), "the grouping panel stays last: it is the reading set");
        let (charge, key) = built.iter().find(|(o, _)| o.code.coding[0].code.as_deref() == Some(MDC_BATTERY_CHARGE)).unwrap();
        assert_eq!(key, "urn:iso:std:iso:11073:10101|67996");
        assert!(charge.category.is_empty() && charge.meta.as_ref().unwrap().profile.is_empty(), "not a vital sign");
        assert_eq!(charge.device.as_ref().unwrap().reference, "Device/DEV001");
        assert_eq!(charge.effective_date_time, "2025-11-17T10:30:00Z", "the reading's time");
        assert_eq!(panel.has_member.len(), 7, "the vital signs and the blood-pressure panel only");
        assert!(!panel.has_member.iter().any(|m| m.reference == format!("Observation/{}", charge.id)));
        let quiet = parse(&SEED.replace(r#", "battery_level": 80"#, ""), None, now()).unwrap();
        assert!(quiet.reading.device_status.is_empty());
        let errors = parse(&SEED.replace(r#""battery_level": 80"#, r#""battery_level": 101"#), None, now()).unwrap_err();
        assert_eq!((fields(&errors), errors[0].reason.as_str()), (vec!["battery_level"], "must be from 0 to 100"));
    }

    #[test]
    fn each_problem_is_reported_with_its_field() {
        let bad = r#"{"heart_rate": 350, "temperature": 50, "temperature_unit": "K", "blood_pressure_systolic": 120,
                      "weight": 600, "weight_unit": "kg", "oxygen_saturation": "98", "heartrate": 70}"#;
        let errors = parse(bad, None, now()).unwrap_err();
        let mut f = fields(&errors);
        f.sort();
        assert_eq!(
            f,
            ["blood_pressure_diastolic", "device_id", "heart_rate", "heartrate", "oxygen_saturation", "temperature_unit", "timestamp", "weight"]
        );
        let f = fields(&parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:30:00Z"}"#, None, now()).unwrap_err()).join(",");
        assert_eq!(f, "vital_signs");
        let f = fields(&parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:30:00", "heart_rate": 70}"#, None, now()).unwrap_err()).join(",");
        assert_eq!(f, "timestamp", "an offset is required");
        let f = fields(&parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:37:00Z", "heart_rate": 70}"#, None, now()).unwrap_err()).join(",");
        assert_eq!(f, "timestamp", "more than 5 minutes ahead");
        let old = parse(r#"{"device_id": "D", "timestamp": "1970-01-01T00:00:00Z", "heart_rate": 70}"#, None, now()).unwrap_err();
        assert_eq!(fields(&old), ["timestamp"], "a device clock reset to 1970");
        assert!(parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:35:00Z", "heart_rate": 70}"#, None, now()).is_ok());
        let errors = parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:30:00Z", "blood_pressure_systolic": 80, "blood_pressure_diastolic": 90}"#, None, now()).unwrap_err();
        assert_eq!(errors[0].reason, "must be above blood_pressure_diastolic");
        let errors = parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:30:00Z", "temperature": 37.2}"#, None, now()).unwrap_err();
        assert_eq!(fields(&errors), ["temperature_unit"], "a temperature without a unit is not guessed");
        let errors = parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 350}"#, None, now()).unwrap_err();
        assert_eq!(errors[0].reason, "350 bpm is outside the physiological range 20–300 bpm");
    }

    #[test]
    fn range_limits_are_inclusive_and_depend_on_the_unit() {
        let ok = |body: &str| parse(&format!(r#"{{"device_id": "D", "timestamp": "2025-11-17T10:30:00Z", {body}}}"#), None, now()).is_ok();
        assert!(ok(r#""heart_rate": 20"#) && ok(r#""heart_rate": 300"#) && !ok(r#""heart_rate": 19.9"#));
        assert!(ok(r#""temperature": 25, "temperature_unit": "C""#) && !ok(r#""temperature": 25, "temperature_unit": "F""#));
        assert!(ok(r#""temperature": 113, "temperature_unit": "F""#) && !ok(r#""temperature": 46, "temperature_unit": "C""#));
        assert!(ok(r#""weight": 1100, "weight_unit": "lbs""#) && !ok(r#""weight": 1100, "weight_unit": "kg""#));
        assert!(ok(r#""weight": 0.5, "weight_unit": "kg""#) && !ok(r#""weight": 0.5, "weight_unit": "lbs""#));
        assert!(ok(r#""respiratory_rate": 4"#) && !ok(r#""respiratory_rate": 61"#));
        assert!(ok(r#""oxygen_saturation": 50"#) && !ok(r#""oxygen_saturation": 100.1"#));
        assert!(ok(r#""glucose": 10"#) && !ok(r#""glucose": 1001"#));
        assert!(ok(r#""blood_pressure_systolic": 300, "blood_pressure_diastolic": 200"#));
        assert!(!ok(r#""blood_pressure_systolic": 301, "blood_pressure_diastolic": 200"#));
    }

    #[test]
    fn a_batch_supplies_the_device_and_may_not_be_contradicted() {
        let r = parse(r#"{"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75}"#, Some("DEV001"), now()).unwrap();
        assert_eq!(r.reading.device_id, "DEV001");
        let errors = parse(r#"{"device_id": "DEV002", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75}"#, Some("DEV001"), now()).unwrap_err();
        assert_eq!(fields(&errors), ["device_id"]);
    }

    #[test]
    fn a_reading_may_name_its_patient() {
        let r = parse(r#"{"device_id": "D", "patient_id": "pat-9", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75}"#, None, now()).unwrap();
        assert_eq!(r.reading.named_patient.as_deref(), Some("pat-9"));
        let errors = parse(r#"{"device_id": "D", "patient_id": "no/such", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75}"#, None, now()).unwrap_err();
        assert_eq!(fields(&errors), ["patient_id"]);
    }

    #[test]
    fn a_reading_becomes_observations_grouped_by_a_vital_signs_panel() {
        let r = parse(SEED, None, now()).unwrap();
        let set = r.reading.observations("P123", "2025-11-17T10:31:00.000Z");
        assert_eq!(set.len(), 9, "six single vitals, the blood-pressure panel, the battery, the grouping panel");
        let by_code = |code: &str| set.iter().map(|(o, _)| o).find(|o| o.code.coding[0].code.as_deref() == Some(code)).unwrap();
        let bp = by_code("85354-9");
        assert!(bp.value_quantity.is_none());
        assert_eq!(bp.component.len(), 2);
        assert_eq!(bp.component[0].value_quantity.as_ref().unwrap().code.as_deref(), Some("mm[Hg]"));
        assert_eq!(by_code("2339-0").category[0].coding[0].code.as_deref(), Some("laboratory"));
        let temp = by_code("8310-5");
        let q = temp.value_quantity.as_ref().unwrap();
        assert_eq!((q.value.as_str(), q.unit.as_str(), q.code.as_deref()), ("98.6", "F", Some("[degF]")));
        assert_eq!(temp.meta.as_ref().unwrap().tag[0].code.as_deref(), Some("device"));
        assert_eq!(temp.device.as_ref().unwrap().reference, "Device/DEV001");
        let group = by_code("85353-1");
        assert_eq!(group.has_member.len(), 7);
        assert_eq!(group.id, r.reading.set_id(&set));
        for (o, key) in &set {
            let coding = &o.code.coding[0];
            assert_eq!(key, &format!("{}|{}", coding.system.as_deref().unwrap(), coding.code.as_deref().unwrap()), "code keys line up");
        }
        let again = r.reading.observations("P123", "2025-11-17T10:31:00.000Z");
        assert_eq!(set.iter().map(|(o, _)| &o.id).collect::<Vec<_>>(), again.iter().map(|(o, _)| &o.id).collect::<Vec<_>>());
    }
}
