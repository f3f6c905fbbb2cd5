//! A device's measurement as published to the `FHIRIngest` rule, validated field by field.
//!
//! Payload: `{"value", "unit", "coding": [{"code","system","display"}], "patientId"?,
//! "effectiveDateTime"?}`. Each problem is reported with the field and the reason so the
//! device maker can fix it from the dead-letter record alone.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::fhir::{is_valid_id, Coding, Decimal};
use crate::vitals::{self, KnownCode, LOINC};

/// How far ahead of the platform's clock a device's own timestamp may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// What is wrong with a measurement payload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not a JSON object: {0}")]
    NotJson(String),
    #[error("`{0}` is required")]
    Missing(&'static str),
    #[error("`value` must be a finite number or numeric string: {0}")]
    Value(String),
    #[error("`unit` must be a non-empty string")]
    Unit,
    #[error("`coding` {0}")]
    Coding(String),
    #[error("`patientId` must be a FHIR id (1-64 letters, digits, '-' or '.')")]
    PatientId,
    #[error("`effectiveDateTime` {0}")]
    EffectiveDateTime(String),
    #[error("unit '{unit}' is not a unit of LOINC {code} ({display}); expected one of: {expected}")]
    UnitNotAllowed { code: &'static str, display: &'static str, unit: String, expected: String },
    #[error("LOINC {0} is a panel: send its parts (for blood pressure 8480-6 and 8462-4) as separate measurements")]
    Panel(&'static str),
    #[error("`coding` names more than one measurement (LOINC {0} and {1})")]
    Ambiguous(&'static str, &'static str),
}

impl PayloadError {
    /// A stable machine-readable code for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            PayloadError::NotJson(_) => "INVALID_JSON",
            PayloadError::Missing(_) => "MISSING_FIELD",
            PayloadError::Value(_) => "INVALID_VALUE",
            PayloadError::Unit => "INVALID_UNIT",
            PayloadError::Coding(_) => "INVALID_CODING",
            PayloadError::PatientId => "INVALID_PATIENT_ID",
            PayloadError::EffectiveDateTime(_) => "INVALID_EFFECTIVE_TIME",
            PayloadError::UnitNotAllowed { .. } => "UNIT_NOT_ALLOWED",
            PayloadError::Panel(_) => "PANEL_NEEDS_COMPONENTS",
            PayloadError::Ambiguous(..) => "AMBIGUOUS_CODING",
        }
    }
}

/// When the device says it measured, as sent and as a UTC instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub text: String,
    pub at: DateTime<Utc>,
}

/// A validated measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub value: Decimal,
    /// The unit as the device sent it.
    pub unit: String,
    /// The codings as sent, plus 2708-6 where a pulse-oximetry code came alone (US Core).
    pub coding: Vec<Coding>,
    /// The catalogue entry of the LOINC code, when the platform knows it.
    pub known: Option<&'static KnownCode>,
    /// The UCUM code of `unit`, when it could be identified.
    pub ucum: Option<&'static str>,
    pub patient_id: Option<String>,
    pub effective: Option<Effective>,
}

impl Measurement {
    /// `system|code` of the measurement's primary coding: the catalogue code if known, else the
    /// first coding. Used to key storage and idempotency.
    pub fn code_key(&self) -> String {
        match self.known {
            Some(k) => format!("{LOINC}|{}", k.loinc),
            None => {
                let c = &self.coding[0];
                format!("{}|{}", c.system.as_deref().unwrap_or(""), c.code.as_deref().unwrap_or(""))
            }
        }
    }
}

/// The raw shape of a payload; fields stay loose so each can be reported precisely.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPayload {
    value: Option<Box<RawValue>>,
    unit: Option<Value>,
    coding: Option<Value>,
    patient_id: Option<Value>,
    effective_date_time: Option<Value>,
}

/// Validates a payload; `received_at` bounds device timestamps from the future.
pub fn parse(json: &str, received_at: DateTime<Utc>) -> Result<Measurement, PayloadError> {
    let raw: RawPayload = serde_json::from_str(json).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let value = parse_value(raw.value.as_deref())?;
    let unit = match raw.unit {
        None | Some(Value::Null) => return Err(PayloadError::Missing("unit")),
        Some(Value::String(u)) if !u.trim().is_empty() => u,
        Some(_) => return Err(PayloadError::Unit),
    };
    let mut coding = parse_coding(raw.coding)?;
    let known = known_code(&coding)?;
    add_spo2_parent(&mut coding);
    let ucum = match known {
        Some(k) => {
            let u = k.unit_for(&unit).ok_or_else(|| PayloadError::UnitNotAllowed {
                code: k.loinc,
                display: k.display,
                unit: unit.clone(),
                expected: k.ucum_codes().join(", "),
            })?;
            Some(u.ucum)
        }
        None => vitals::verbatim_ucum(&unit),
    };
    let patient_id = match raw.patient_id {
        None | Some(Value::Null) => None,
        // Sample device scripts send "" when no patient is given.
        Some(Value::String(p)) if p.is_empty() => None,
        Some(Value::String(p)) if is_valid_id(&p) => Some(p),
        Some(_) => return Err(PayloadError::PatientId),
    };
    let effective = match raw.effective_date_time {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            let at = crate::time::parse_with_offset(&text).ok_or_else(|| {
                PayloadError::EffectiveDateTime("must be an ISO 8601 date-time with an offset".into())
            })?;
            if at > received_at + MAX_CLOCK_SKEW {
                return Err(PayloadError::EffectiveDateTime(
                    "is more than 5 minutes after the time the platform received it".into(),
                ));
            }
            Some(Effective { text, at })
        }
        Some(_) => return Err(PayloadError::EffectiveDateTime("must be a string".into())),
    };
    Ok(Measurement { value, unit, coding, known, ucum, patient_id, effective })
}

fn parse_value(raw: Option<&RawValue>) -> Result<Decimal, PayloadError> {
    let raw = raw.ok_or(PayloadError::Missing("value"))?;
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => {
            let s: String = serde_json::from_str(text).map_err(|e| PayloadError::Value(e.to_string()))?;
            Decimal::parse(&s).map_err(|e| PayloadError::Value(format!("the string {e}")))
        }
        Some(b'-' | b'0'..=b'9') => Decimal::parse(text).map_err(|e| PayloadError::Value(format!("the number {e}"))),
        _ => Err(PayloadError::Value(format!("got {}", json_kind(text)))),
    }
}

fn json_kind(text: &str) -> &'static str {
    match text.as_bytes().first() {
        Some(b't' | b'f') => "a boolean",
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        _ => "something else",
    }
}

fn parse_coding(raw: Option<Value>) -> Result<Vec<Coding>, PayloadError> {
    let items = match raw {
        None | Some(Value::Null) => return Err(PayloadError::Missing("coding")),
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(PayloadError::Coding("must name at least one code".into()))
        }
        Some(Value::Array(items)) => items,
        Some(_) => return Err(PayloadError::Coding("must be an array of codings".into())),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(mut obj) = item else {
                return Err(PayloadError::Coding(format!("[{i}] must be an object")));
            };
            let mut text = |field: &'static str, required: bool| match obj.remove(field) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
                None | Some(Value::Null) if !required => Ok(None),
                Some(Value::String(_)) if !required => Ok(None),
                _ => Err(PayloadError::Coding(format!("[{i}].{field} must be a non-empty string"))),
            };
            let system = text("system", true)?;
            let code = text("code", true)?;
            let display = text("display", false)?;
            Ok(Coding { system, code, display })
        })
        .collect()
}

const SPO2: &str = "2708-6";
const SPO2_PULSE_OX: &str = "59408-5";

fn known_code(coding: &[Coding]) -> Result<Option<&'static KnownCode>, PayloadError> {
    let mut found: Option<&'static KnownCode> = None;
    for c in coding.iter().filter(|c| c.system.as_deref() == Some(LOINC)) {
        let Some(k) = c.code.as_deref().and_then(vitals::lookup) else { continue };
        if k.panel {
            return Err(PayloadError::Panel(k.loinc));
        }
        found = match found {
            None => Some(k),
            // Pulse oximetry is a kind of SpO2: the pair names one measurement; keep the finer code.
            Some(prev) if is_spo2_pair(prev.loinc, k.loinc) => {
                Some(if k.loinc == SPO2_PULSE_OX { k } else { prev })
            }
            Some(prev) if prev.loinc == k.loinc => Some(prev),
            Some(prev) => return Err(PayloadError::Ambiguous(prev.loinc, k.loinc)),
        };
    }
    Ok(found)
}

fn is_spo2_pair(a: &str, b: &str) -> bool {
    (a == SPO2 && b == SPO2_PULSE_OX) || (a == SPO2_PULSE_OX && b == SPO2)
}

/// US Core pulse oximetry wants 2708-6 beside 59408-5; add it when the device sent only the latter.
fn add_spo2_parent(coding: &mut Vec<Coding>) {
    let has = |code: &str| coding.iter().any(|c| c.is(LOINC, code));
    if has(SPO2_PULSE_OX) && !has(SPO2) {
        let display = vitals::lookup(SPO2).map(|k| k.display);
        coding.push(Coding::new(LOINC, SPO2, display));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        crate::time::parse_with_offset("2026-11-22T10:00:00Z").unwrap()
    }

    fn payload(value: Value, unit: &str, system: &str, code: &str) -> String {
        json!({"value": value, "unit": unit, "coding": [{"system": system, "code": code, "display": "x"}]})
            .to_string()
    }

    #[test]
    fn every_vital_sign_of_the_conformance_table_is_recognised_with_its_ucum_units() {
        // (LOINC, unit as a device sends it, expected UCUM code) from fhir-vitals.md.
        let cases = [
            ("8867-4", "bpm", "/min"),
            ("8867-4", "/min", "/min"),
            ("9279-1", "breaths/min", "/min"),
            ("2708-6", "%", "%"),
            ("59408-5", "%", "%"),
            ("8310-5", "Cel", "Cel"),
            ("8310-5", "C", "Cel"),
            ("8310-5", "F", "[degF]"),
            ("8310-5", "[degF]", "[degF]"),
            ("29463-7", "kg", "kg"),
            ("29463-7", "lbs", "[lb_av]"),
            ("29463-7", "g", "g"),
            ("8480-6", "mmHg", "mm[Hg]"),
            ("8462-4", "mm[Hg]", "mm[Hg]"),
            ("2339-0", "mg/dL", "mg/dL"),
            ("15074-8", "mmol/L", "mmol/L"),
        ];
        for (code, unit, ucum) in cases {
            let m = parse(&payload(json!(42), unit, LOINC, code), now()).unwrap();
            assert_eq!(m.known.map(|k| k.loinc), Some(code), "{code}");
            assert_eq!(m.ucum, Some(ucum), "{code} {unit}");
            assert_eq!(m.unit, unit, "the device's unit text is kept");
        }
    }

    #[test]
    fn a_wrong_unit_for_a_vital_sign_is_rejected_not_converted() {
        let err = parse(&payload(json!(70), "beats/s", LOINC, "8867-4"), now()).unwrap_err();
        assert_eq!(err.code(), "UNIT_NOT_ALLOWED");
        assert!(err.to_string().contains("expected one of: /min"), "{err}");
        let err = parse(&payload(json!(37), "K", LOINC, "8310-5"), now()).unwrap_err();
        assert!(err.to_string().contains("Cel, [degF]"), "{err}");
    }

    #[test]
    fn numeric_strings_keep_their_precision() {
        let m = parse(&payload(json!("98.60"), "F", LOINC, "8310-5"), now()).unwrap();
        assert_eq!(m.value.as_str(), "98.60");
        let m = parse(r#"{"value": 36.60, "unit": "C", "coding": [{"system": "http://loinc.org", "code": "8310-5"}]}"#, now())
            .unwrap();
        assert_eq!(m.value.as_str(), "36.60", "a JSON number's text is kept too");
    }

    #[test]
    fn bad_values_are_rejected_with_the_reason() {
        for (value, expect) in [
            (json!("abc"), "the string is not a decimal number"),
            (json!(""), "the string is empty"),
            (json!("NaN"), "not a decimal"),
            (json!("1e999"), "not finite"),
            (json!(true), "got a boolean"),
            (json!({"v": 1}), "got an object"),
            (json!([1]), "got an array"),
        ] {
            let err = parse(&payload(value.clone(), "%", "urn:x", "battery"), now()).unwrap_err();
            assert_eq!(err.code(), "INVALID_VALUE", "{value}");
            assert!(err.to_string().contains(expect), "{value}: {err}");
        }
        let err = parse(r#"{"unit":"%","coding":[{"system":"s","code":"c"}]}"#, now()).unwrap_err();
        assert_eq!(err, PayloadError::Missing("value"));
        let err = parse(r#"{"value":null,"unit":"%","coding":[{"system":"s","code":"c"}]}"#, now()).unwrap_err();
        assert_eq!(err, PayloadError::Missing("value"));
    }

    #[test]
    fn unit_and_coding_are_required() {
        let err = parse(r#"{"value":1,"coding":[{"system":"s","code":"c"}]}"#, now()).unwrap_err();
        assert_eq!(err, PayloadError::Missing("unit"));
        let err = parse(r#"{"value":1,"unit":" ","coding":[{"system":"s","code":"c"}]}"#, now()).unwrap_err();
        assert_eq!(err, PayloadError::Unit);
        let err = parse(r#"{"value":1,"unit":"%"}"#, now()).unwrap_err();
        assert_eq!(err, PayloadError::Missing("coding"));
        let err = parse(r#"{"value":1,"unit":"%","coding":[]}"#, now()).unwrap_err();
        assert_eq!(err.code(), "INVALID_CODING");
        let err = parse(r#"{"value":1,"unit":"%","coding":[{"code":"c"}]}"#, now()).unwrap_err();
        assert_eq!(err.to_string(), "`coding` [0].system must be a non-empty string");
        let err = parse(r#"{"value":1,"unit":"%","coding":[{"system":"s","code":"c"},{"system":"s"}]}"#, now())
            .unwrap_err();
        assert_eq!(err.to_string(), "`coding` [1].code must be a non-empty string");
        let err = parse("[1,2]", now()).unwrap_err();
        assert_eq!(err.code(), "INVALID_JSON");
    }

    #[test]
    fn a_manufacturer_code_keeps_its_own_system() {
        let m = parse(&payload(json!("100"), "%", "http://lifeomic.com/fhir/devices", "9750d5e5"), now()).unwrap();
        assert!(m.known.is_none());
        assert_eq!(m.ucum, Some("%"), "a unit that is UCUM verbatim is tagged as such");
        assert_eq!(m.code_key(), "http://lifeomic.com/fhir/devices|9750d5e5");
        let m = parse(&payload(json!(3), "charges", "urn:vendor", "cycles"), now()).unwrap();
        assert_eq!(m.ucum, None, "an unknown unit text is not passed off as UCUM");
    }

    #[test]
    fn panels_and_conflicting_codes_are_rejected() {
        let err = parse(&payload(json!(120), "mmHg", LOINC, "85354-9"), now()).unwrap_err();
        assert_eq!(err.code(), "PANEL_NEEDS_COMPONENTS");
        let two = r#"{"value":1,"unit":"/min","coding":[{"system":"http://loinc.org","code":"8867-4"},{"system":"http://loinc.org","code":"9279-1"}]}"#;
        assert_eq!(parse(two, now()).unwrap_err(), PayloadError::Ambiguous("8867-4", "9279-1"));
    }

    #[test]
    fn pulse_oximetry_gets_its_spo2_parent_code() {
        let m = parse(&payload(json!(97), "%", LOINC, "59408-5"), now()).unwrap();
        let codes: Vec<_> = m.coding.iter().filter_map(|c| c.code.as_deref()).collect();
        assert_eq!(codes, ["59408-5", "2708-6"]);
        assert_eq!(m.code_key(), "http://loinc.org|59408-5");
    }

    #[test]
    fn patient_id_is_optional_and_checked() {
        let with = |p: Value| {
            json!({"value": 1, "unit": "%", "coding": [{"system": "s", "code": "c"}], "patientId": p}).to_string()
        };
        assert_eq!(parse(&with(json!("")), now()).unwrap().patient_id, None);
        assert_eq!(parse(&with(json!("pat-1")), now()).unwrap().patient_id.as_deref(), Some("pat-1"));
        assert_eq!(parse(&with(json!("bad id/..")), now()).unwrap_err(), PayloadError::PatientId);
        assert_eq!(parse(&with(json!(7)), now()).unwrap_err(), PayloadError::PatientId);
    }

    #[test]
    fn device_timestamps_need_an_offset_and_may_not_be_in_the_future() {
        let with = |t: &str| {
            json!({"value": 1, "unit": "%", "coding": [{"system": "s", "code": "c"}], "effectiveDateTime": t})
                .to_string()
        };
        let m = parse(&with("2026-11-22T11:00:00+01:00"), now()).unwrap();
        assert_eq!(m.effective.unwrap().at, now());
        assert!(parse(&with("2026-11-22T10:04:59Z"), now()).is_ok());
        assert_eq!(parse(&with("2026-11-22T10:05:01Z"), now()).unwrap_err().code(), "INVALID_EFFECTIVE_TIME");
        assert_eq!(parse(&with("2026-11-22T10:00:00"), now()).unwrap_err().code(), "INVALID_EFFECTIVE_TIME");
    }
}
