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
//! Validation reports every problem of a reading with its field. Values keep the text the
//! device sent (`98.60` stays `98.60`); ranges are checked on the number in the unit given.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::fhir::{CodeableConcept, Coding, Decimal, Identifier, Observation, ObservationComponent, Quantity, Reference};
use crate::measurement::{Effective, Measurement};
use crate::observations::{build_observation, device_sourced, natural_key, observation_id, ObservationContext, IDENTIFIER_SYSTEM};
use crate::vitals::{self, Category, LOINC, OBSERVATION_CATEGORY, UCUM, VITAL_SIGNS_PROFILE};

/// How far in the future a device clock may be.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// One field's problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn field_error(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError { field: field.to_owned(), reason: reason.into() }
}

/// A single-valued vital sign of a reading.
#[derive(Debug, Clone, PartialEq)]
pub struct SingleVital {
    /// The reading's field (`heart_rate`).
    pub field: &'static str,
    pub loinc: &'static str,
    pub value: Decimal,
    /// The unit as the device gave it (`F`, `lbs`), or the field's implied unit (`bpm`).
    pub unit: String,
    pub ucum: &'static str,
}

/// A validated reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device_id: String,
    pub timestamp: Effective,
    pub vitals: Vec<SingleVital>,
    /// Systolic and diastolic, in mmHg.
    pub blood_pressure: Option<(Decimal, Decimal)>,
    /// Free text from the device; never logged.
    pub notes: Option<String>,
    pub signal_quality: Option<Decimal>,
    pub battery_level: Option<Decimal>,
}

impl Reading {
    /// How many measurements the reading holds (blood pressure counts once).
    pub fn measurement_count(&self) -> usize {
        self.vitals.len() + usize::from(self.blood_pressure.is_some())
    }

    /// The value of a field, as a number, for scoring.
    pub fn number(&self, field: &str) -> Option<f64> {
        self.vitals.iter().find(|v| v.field == field).map(|v| v.value.as_f64())
    }
}

/// Fields a reading may carry.
const KNOWN_FIELDS: &[&str] = &[
    "device_id",
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

/// A number field's literal text as a FHIR decimal; `None` when absent or null.
fn decimal(map: &Map<String, Value>, raw: &HashMap<String, Box<RawValue>>, field: &str, errors: &mut Vec<FieldError>) -> Option<Decimal> {
    match map.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Number(_)) => match raw.get(field).map(|r| Decimal::parse(r.get())) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                errors.push(field_error(field, format!("is not a usable number: {e}")));
                None
            }
            None => None,
        },
        Some(_) => {
            errors.push(field_error(field, "must be a number"));
            None
        }
    }
}

fn in_range(field: &str, value: &Decimal, low: f64, high: f64, unit: &str, errors: &mut Vec<FieldError>) -> bool {
    let v = value.as_f64();
    if (low..=high).contains(&v) {
        true
    } else {
        errors.push(field_error(field, format!("{} {unit} is outside the physiological range {low}–{high} {unit}", value.as_str())));
        false
    }
}

/// Validates one reading (a JSON object's text); `now` bounds timestamps from the future.
/// `device_id` may be supplied by the enclosing batch.
pub fn parse(text: &str, batch_device: Option<&str>, now: DateTime<Utc>) -> Result<Reading, Vec<FieldError>> {
    let map: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(vec![field_error("body", "a reading must be a JSON object")]),
        Err(e) => return Err(vec![field_error("body", format!("is not valid JSON: {e}"))]),
    };
    // The same text again, keeping each number's literal text.
    let raw: HashMap<String, Box<RawValue>> = serde_json::from_str(text).unwrap_or_default();
    let mut errors = Vec::new();
    for key in map.keys().filter(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        errors.push(field_error(key, "is not a field of a reading"));
    }

    let device_id = match (map.get("device_id"), batch_device) {
        (Some(Value::String(d)), batch) if !d.trim().is_empty() => {
            if batch.is_some_and(|b| b != d) {
                errors.push(field_error("device_id", "differs from the batch's device_id"));
            }
            d.clone()
        }
        (None | Some(Value::Null), Some(b)) => b.to_owned(),
        (None | Some(Value::Null), None) => {
            errors.push(field_error("device_id", "is required"));
            String::new()
        }
        _ => {
            errors.push(field_error("device_id", "must be a non-empty string"));
            String::new()
        }
    };

    let timestamp = match map.get("timestamp") {
        None | Some(Value::Null) => {
            errors.push(field_error("timestamp", "is required"));
            None
        }
        Some(Value::String(t)) => match crate::time::parse_with_offset(t) {
            None => {
                errors.push(field_error("timestamp", "must be an ISO 8601 date-time with an offset, e.g. 2025-11-17T10:30:00Z"));
                None
            }
            Some(at) if (at - now).num_seconds() > MAX_CLOCK_SKEW_SECONDS => {
                errors.push(field_error("timestamp", "is more than 5 minutes in the future"));
                None
            }
            Some(at) => Some(Effective { text: t.clone(), at }),
        },
        Some(_) => {
            errors.push(field_error("timestamp", "must be a string"));
            None
        }
    };

    let mut vitals = Vec::new();
    let mut single = |field: &'static str, loinc: &'static str, unit: &str, ucum: &'static str, low: f64, high: f64, errors: &mut Vec<FieldError>| {
        if let Some(value) = decimal(&map, &raw, field, errors) {
            if in_range(field, &value, low, high, unit, errors) {
                vitals.push(SingleVital { field, loinc, value, unit: unit.to_owned(), ucum });
            }
        }
    };
    single("heart_rate", "8867-4", "bpm", "/min", 20.0, 300.0, &mut errors);
    single("respiratory_rate", "9279-1", "breaths/min", "/min", 4.0, 60.0, &mut errors);
    single("oxygen_saturation", "2708-6", "%", "%", 50.0, 100.0, &mut errors);
    single("glucose", "2339-0", "mg/dL", "mg/dL", 10.0, 1000.0, &mut errors);

    let unit_of = |field: &str, allowed: &[&str], errors: &mut Vec<FieldError>| -> Option<String> {
        match map.get(field) {
            Some(Value::String(u)) if allowed.contains(&u.as_str()) => Some(u.clone()),
            None | Some(Value::Null) => {
                errors.push(field_error(field, format!("is required with the value: {}", allowed.join(" or "))));
                None
            }
            _ => {
                errors.push(field_error(field, format!("must be {}", allowed.join(" or "))));
                None
            }
        }
    };
    if map.get("temperature").is_some_and(|v| !v.is_null()) {
        let unit = unit_of("temperature_unit", &["F", "C"], &mut errors);
        let value = decimal(&map, &raw, "temperature", &mut errors);
        if let (Some(unit), Some(value)) = (unit, value) {
            let (low, high, ucum) = if unit == "C" { (25.0, 45.0, "Cel") } else { (77.0, 113.0, "[degF]") };
            if in_range("temperature", &value, low, high, &unit, &mut errors) {
                vitals.push(SingleVital { field: "temperature", loinc: "8310-5", value, unit, ucum });
            }
        }
    } else if map.get("temperature_unit").is_some_and(|v| !v.is_null()) {
        errors.push(field_error("temperature_unit", "given without a temperature"));
    }
    if map.get("weight").is_some_and(|v| !v.is_null()) {
        let unit = unit_of("weight_unit", &["lbs", "kg"], &mut errors);
        let value = decimal(&map, &raw, "weight", &mut errors);
        if let (Some(unit), Some(value)) = (unit, value) {
            let (low, high, ucum) = if unit == "kg" { (0.5, 500.0, "kg") } else { (1.0, 1100.0, "[lb_av]") };
            if in_range("weight", &value, low, high, &unit, &mut errors) {
                vitals.push(SingleVital { field: "weight", loinc: "29463-7", value, unit, ucum });
            }
        }
    } else if map.get("weight_unit").is_some_and(|v| !v.is_null()) {
        errors.push(field_error("weight_unit", "given without a weight"));
    }

    let systolic = decimal(&map, &raw, "blood_pressure_systolic", &mut errors);
    let diastolic = decimal(&map, &raw, "blood_pressure_diastolic", &mut errors);
    let given = |f: &str| map.get(f).is_some_and(|v| !v.is_null());
    let blood_pressure = match (systolic, diastolic) {
        (Some(s), Some(d)) => {
            let s_ok = in_range("blood_pressure_systolic", &s, 50.0, 300.0, "mmHg", &mut errors);
            let d_ok = in_range("blood_pressure_diastolic", &d, 30.0, 200.0, "mmHg", &mut errors);
            if s_ok && d_ok && s.as_f64() <= d.as_f64() {
                errors.push(field_error("blood_pressure_systolic", "must be above blood_pressure_diastolic"));
                None
            } else {
                (s_ok && d_ok).then_some((s, d))
            }
        }
        _ if given("blood_pressure_systolic") != given("blood_pressure_diastolic") => {
            let missing = if given("blood_pressure_systolic") { "blood_pressure_diastolic" } else { "blood_pressure_systolic" };
            errors.push(field_error(missing, "blood pressure needs both systolic and diastolic"));
            None
        }
        _ => None,
    };

    let notes = match map.get("notes") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if n.chars().count() <= 2000 => Some(n.clone()),
        Some(_) => {
            errors.push(field_error("notes", "must be text of at most 2000 characters"));
            None
        }
    };
    let percent = |field: &str, errors: &mut Vec<FieldError>| {
        decimal(&map, &raw, field, errors).filter(|v| {
            let ok = (0.0..=100.0).contains(&v.as_f64());
            if !ok {
                errors.push(field_error(field, "must be from 0 to 100"));
            }
            ok
        })
    };
    let signal_quality = percent("signal_quality", &mut errors);
    let battery_level = percent("battery_level", &mut errors);

    let has_vital = ["heart_rate", "blood_pressure_systolic", "blood_pressure_diastolic", "temperature", "respiratory_rate", "oxygen_saturation", "glucose", "weight"]
        .iter()
        .any(|f| given(f));
    if !has_vital {
        errors.push(field_error("vital_signs", "at least one vital sign measurement is required"));
    }
    match (errors.is_empty(), timestamp) {
        (true, Some(timestamp)) => {
            Ok(Reading { device_id, timestamp, vitals, blood_pressure, notes, signal_quality, battery_level })
        }
        _ => Err(errors),
    }
}

/// Who an Observation set is for and when it was filed.
pub struct SetContext<'a> {
    pub thing_name: &'a str,
    pub patient_id: &'a str,
    pub issued: &'a str,
}

/// The FHIR Observations of a reading: one per vital sign (blood pressure as the 85354-9 panel
/// with its two components, glucose as `laboratory`), then the 85353-1 vital-signs panel that
/// groups them, whose id is the reading set's id. Ids derive from (device, time, code), so the
/// same reading always gives the same Observations.
pub fn observations(reading: &Reading, ctx: &SetContext<'_>) -> Vec<(Observation, String)> {
    let effective_utc = crate::time::format_utc(reading.timestamp.at);
    let obs_ctx = ObservationContext {
        thing_name: ctx.thing_name,
        patient_id: ctx.patient_id,
        effective: &reading.timestamp.text,
        effective_utc: &effective_utc,
        issued: ctx.issued,
    };
    let mut out = Vec::new();
    for v in &reading.vitals {
        let known = vitals::lookup(v.loinc);
        let m = Measurement {
            value: v.value.clone(),
            unit: v.unit.clone(),
            coding: vec![Coding::new(LOINC, v.loinc, known.map(|k| k.display))],
            known,
            ucum: Some(v.ucum),
            patient_id: None,
            effective: Some(reading.timestamp.clone()),
        };
        out.push((build_observation(&m, &obs_ctx), m.code_key()));
    }
    if let Some((systolic, diastolic)) = &reading.blood_pressure {
        out.push(panel(&obs_ctx, "85354-9", Some("bp"), |o| {
            o.component = [("8480-6", "Systolic blood pressure", systolic), ("8462-4", "Diastolic blood pressure", diastolic)]
                .into_iter()
                .map(|(code, display, value)| ObservationComponent {
                    code: CodeableConcept { coding: vec![Coding::new(LOINC, code, Some(display))], text: None },
                    value_quantity: Quantity { value: value.clone(), unit: "mmHg".into(), system: Some(UCUM.into()), code: Some("mm[Hg]".into()) },
                })
                .collect();
        }));
    }
    let members: Vec<Reference> = out.iter().map(|(o, _)| Reference::to("Observation", &o.id)).collect();
    out.push(panel(&obs_ctx, "85353-1", Some("vitalspanel"), |o| o.has_member = members));
    out
}

/// The reading set's id: the id of its 85353-1 grouping panel.
pub fn reading_set_id(reading: &Reading, thing_name: &str) -> String {
    let key = natural_key(thing_name, &crate::time::format_utc(reading.timestamp.at), &format!("{LOINC}|85353-1"));
    observation_id(&key)
}

fn panel(ctx: &ObservationContext<'_>, loinc: &str, profile: Option<&str>, fill: impl FnOnce(&mut Observation)) -> (Observation, String) {
    let known = vitals::lookup(loinc);
    let code_key = format!("{LOINC}|{loinc}");
    let key = natural_key(ctx.thing_name, ctx.effective_utc, &code_key);
    let display = known.map(|k| k.display);
    let mut profiles = vec![VITAL_SIGNS_PROFILE.to_owned()];
    profiles.extend(profile.map(vitals::profile_url));
    let mut o = Observation {
        resource_type: "Observation".into(),
        id: observation_id(&key),
        meta: Some(device_sourced(profiles)),
        identifier: vec![Identifier { system: IDENTIFIER_SYSTEM.into(), value: key }],
        status: "final".into(),
        category: vec![CodeableConcept {
            coding: vec![Coding::new(OBSERVATION_CATEGORY, Category::VitalSigns.code(), Some(Category::VitalSigns.display()))],
            text: None,
        }],
        code: CodeableConcept { coding: vec![Coding::new(LOINC, loinc, display)], text: display.map(str::to_owned) },
        subject: Reference::to("Patient", ctx.patient_id),
        device: Some(Reference::to("Device", ctx.thing_name)),
        effective_date_time: ctx.effective.to_owned(),
        issued: ctx.issued.to_owned(),
        value_quantity: None,
        component: Vec::new(),
        has_member: Vec::new(),
    };
    fill(&mut o);
    (o, code_key)
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

    #[test]
    fn the_seed_reading_is_valid_and_keeps_the_devices_text() {
        let r = parse(SEED, None, now()).unwrap();
        assert_eq!(r.device_id, "DEV001");
        assert_eq!(r.measurement_count(), 7);
        let temp = r.vitals.iter().find(|v| v.field == "temperature").unwrap();
        assert_eq!((temp.value.as_str(), temp.unit.as_str(), temp.ucum), ("98.6", "F", "[degF]"));
        let spo2 = r.vitals.iter().find(|v| v.field == "oxygen_saturation").unwrap();
        assert_eq!(spo2.value.as_str(), "98.0", "not rounded to 98");
        assert_eq!(r.blood_pressure.as_ref().map(|(s, d)| (s.as_str(), d.as_str())), Some(("120", "80")));
        assert_eq!(r.notes.as_deref(), Some("Morning reading"));
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
        assert!(parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:35:00Z", "heart_rate": 70}"#, None, now()).is_ok());
        let errors = parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:30:00Z", "blood_pressure_systolic": 80, "blood_pressure_diastolic": 90}"#, None, now()).unwrap_err();
        assert_eq!(errors[0].reason, "must be above blood_pressure_diastolic");
        let errors = parse(r#"{"device_id": "D", "timestamp": "2025-11-17T10:30:00Z", "temperature": 37.2}"#, None, now()).unwrap_err();
        assert_eq!(fields(&errors), ["temperature_unit"], "a temperature without a unit is not guessed");
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
        assert_eq!(r.device_id, "DEV001");
        let errors = parse(r#"{"device_id": "DEV002", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75}"#, Some("DEV001"), now()).unwrap_err();
        assert_eq!(fields(&errors), ["device_id"]);
    }

    #[test]
    fn a_reading_becomes_observations_grouped_by_a_vital_signs_panel() {
        let r = parse(SEED, None, now()).unwrap();
        let ctx = SetContext { thing_name: "dev001", patient_id: "P123", issued: "2025-11-17T10:31:00.000Z" };
        let set = observations(&r, &ctx);
        assert_eq!(set.len(), 8, "six single vitals, the blood-pressure panel, the grouping panel");
        let by_code = |code: &str| set.iter().map(|(o, _)| o).find(|o| o.code.coding[0].code.as_deref() == Some(code)).unwrap();
        let bp = by_code("85354-9");
        assert!(bp.value_quantity.is_none());
        assert_eq!(bp.component.len(), 2);
        assert_eq!(bp.component[0].value_quantity.code.as_deref(), Some("mm[Hg]"));
        assert_eq!(by_code("2339-0").category[0].coding[0].code.as_deref(), Some("laboratory"));
        let temp = by_code("8310-5");
        let q = temp.value_quantity.as_ref().unwrap();
        assert_eq!((q.value.as_str(), q.unit.as_str(), q.code.as_deref()), ("98.6", "F", Some("[degF]")));
        assert_eq!(temp.meta.as_ref().unwrap().tag[0].code.as_deref(), Some("device"));
        assert_eq!(temp.device.as_ref().unwrap().reference, "Device/dev001");
        let group = by_code("85353-1");
        assert_eq!(group.has_member.len(), 7);
        assert_eq!(group.id, reading_set_id(&r, "dev001"));
        let again = observations(&r, &ctx);
        assert_eq!(set.iter().map(|(o, _)| &o.id).collect::<Vec<_>>(), again.iter().map(|(o, _)| &o.id).collect::<Vec<_>>());
    }
}
