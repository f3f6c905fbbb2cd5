//! A device's measurement as published to the `FHIRIngest` rule, validated field by field.
//!
//! Payload: `{"value", "unit", "coding": [{"code","system","display"}], "patientId"?,
//! "effectiveDateTime"?, "messageId"?}`. Each problem is reported with the field and the reason
//! so the device maker can fix it from the dead-letter record alone. A vital sign's value must
//! be plausible in its unit (a heart rate of 10 000/min is a fault, not a reading).

use chrono::{DateTime, Utc};
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{check_time, Effective};
use crate::fhir::vitals::{self, Implausible, VitalSign, LOINC};
use std::borrow::Cow;
use std::marker::PhantomData;

use crate::fhir::{is_valid_id, Coding, Decimal};
use crate::observations::Measurement;

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
    #[error("`messageId` must be 1-128 printable characters")]
    MessageId,
    #[error("unit '{unit}' is not a unit of LOINC {code} ({display}); expected one of: {expected}")]
    UnitNotAllowed { code: &'static str, display: &'static str, unit: String, expected: String },
    #[error("`value` {0}")]
    Implausible(Implausible),
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
            PayloadError::MessageId => "INVALID_MESSAGE_ID",
            PayloadError::UnitNotAllowed { .. } => "UNIT_NOT_ALLOWED",
            PayloadError::Implausible(_) => "VALUE_OUT_OF_RANGE",
            PayloadError::Panel(_) => "PANEL_NEEDS_COMPONENTS",
            PayloadError::Ambiguous(..) => "AMBIGUOUS_CODING",
        }
    }
}

/// A validated payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub measurement: Measurement,
    pub patient_id: Option<String>,
    pub effective: Option<Effective>,
    /// The device's own id of this message, so that a re-publish is recognised even without a
    /// device time.
    pub message_id: Option<String>,
}

/// The raw shape of a payload; fields stay loose so each can be reported precisely.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPayload<'a> {
    /// Borrowed: the value's text as it is in the payload.
    #[serde(borrow)]
    value: Option<&'a RawValue>,
    unit: Option<Value>,
    #[serde(borrow)]
    coding: Option<RawCodings<'a>>,
    patient_id: Option<Value>,
    effective_date_time: Option<Value>,
    message_id: Option<Value>,
}

/// Validates a payload; `received_at` bounds device timestamps.
pub fn parse(json: &str, received_at: DateTime<Utc>) -> Result<Payload, PayloadError> {
    let raw: RawPayload = serde_json::from_str(json).map_err(|e| PayloadError::NotJson(e.to_string()))?;
    let value = parse_value(raw.value)?;
    let unit = match raw.unit {
        None | Some(Value::Null) => return Err(PayloadError::Missing("unit")),
        Some(Value::String(u)) if !u.trim().is_empty() => u,
        Some(_) => return Err(PayloadError::Unit),
    };
    let mut coding = parse_coding(raw.coding)?;
    let vital = vital_sign(&coding)?;
    add_spo2_parent(&mut coding);
    let coding = match vital {
        Some(v) if coding == v.standard_coding() => Cow::Borrowed(v.standard_coding()),
        _ => Cow::Owned(coding),
    };
    let ucum = match vital {
        Some(v) => {
            let u = v.unit_for(&unit).ok_or_else(|| PayloadError::UnitNotAllowed {
                code: v.loinc(),
                display: v.display(),
                unit: unit.clone(),
                expected: v.ucum_codes().join(", "),
            })?;
            v.check_plausible(&value, &unit, u).map_err(PayloadError::Implausible)?;
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
            let at = crate::platform::time::parse_with_offset(&text)
                .ok_or_else(|| PayloadError::EffectiveDateTime("must be an ISO 8601 date-time with an offset".into()))?;
            check_time(at, received_at).map_err(|p| PayloadError::EffectiveDateTime(p.to_string()))?;
            Some(Effective { text, at })
        }
        Some(_) => return Err(PayloadError::EffectiveDateTime("must be a string".into())),
    };
    let message_id = match raw.message_id {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) if (1..=128).contains(&m.chars().count()) && !m.chars().any(char::is_control) => Some(m),
        Some(_) => return Err(PayloadError::MessageId),
    };
    Ok(Payload { measurement: Measurement { value, unit, coding, vital, ucum }, patient_id, effective, message_id })
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

/// Visitor methods that read any JSON scalar (null included) as `$type::Other`.
macro_rules! forward_scalars_to_other {
    ($type:ident) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($type::Other)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($type::Other)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($type::Other)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($type::Other)
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($type::Other)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($type::Other)
        }
    };
}

fn parse_coding(raw: Option<RawCodings<'_>>) -> Result<Vec<Coding>, PayloadError> {
    let items = match raw {
        None => return Err(PayloadError::Missing("coding")),
        Some(RawCodings::Array(items)) if items.is_empty() => return Err(PayloadError::Coding("must name at least one code".into())),
        Some(RawCodings::Array(items)) => items,
        Some(RawCodings::Other) => return Err(PayloadError::Coding("must be an array of codings".into())),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let RawCoding::Object { system, code, display } = item else {
                return Err(PayloadError::Coding(format!("[{i}] must be an object")));
            };
            let refused = |field: &str| PayloadError::Coding(format!("[{i}].{field} must be a non-empty string"));
            let (system, code) = (required(system).ok_or_else(|| refused("system"))?, required(code).ok_or_else(|| refused("code"))?);
            // A blank display is left out, as an absent one is.
            let display = match display {
                LooseText::Other => return Err(refused("display")),
                LooseText::Null => None,
                LooseText::Text(d) => Some(d).filter(|d| !d.trim().is_empty()),
            };
            Ok(vitals::coding_as_sent(system, code, display))
        })
        .collect()
}

/// A coding's text that must be there: a string with more than blanks.
fn required(text: LooseText<'_>) -> Option<Cow<'_, str>> {
    match text {
        LooseText::Text(s) if !s.trim().is_empty() => Some(s),
        _ => None,
    }
}

/// `coding` as sent, read only as far as validation needs: an array, or anything else. (Read
/// into codings directly rather than through `serde_json::Value`, whose maps cost a sixth of
/// parsing a payload.)
enum RawCodings<'a> {
    Array(Vec<RawCoding<'a>>),
    Other,
}

/// One element of `coding`: an object's three fields (absent ones null), or anything else.
enum RawCoding<'a> {
    Object { system: LooseText<'a>, code: LooseText<'a>, display: LooseText<'a> },
    Other,
}

/// A field that should be a string: a string (borrowed from the payload unless it had escapes),
/// null (or absent), or anything else.
enum LooseText<'a> {
    Null,
    Text(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawCodings<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Codings<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Codings<'a> {
            type Value = RawCodings<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCodings<'a>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(RawCodings::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawCodings<'a>, A::Error> {
                IgnoredAny.visit_map(map).map(|_| RawCodings::Other)
            }
            forward_scalars_to_other!(RawCodings);
        }
        deserializer.deserialize_any(Codings(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawCoding<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Item<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Item<'a> {
            type Value = RawCoding<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawCoding<'a>, A::Error> {
                /// The keys of a coding that are read; serde's field identifiers compare them
                /// without copying them.
                #[derive(Deserialize)]
                #[serde(field_identifier, rename_all = "lowercase")]
                enum Field {
                    System,
                    Code,
                    Display,
                    #[serde(other)]
                    Other,
                }
                let (mut system, mut code, mut display) = (LooseText::Null, LooseText::Null, LooseText::Null);
                // As `serde_json::Value` reads an object, a repeated key's last value counts.
                while let Some(key) = map.next_key::<Field>()? {
                    match key {
                        Field::System => system = map.next_value()?,
                        Field::Code => code = map.next_value()?,
                        Field::Display => display = map.next_value()?,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawCoding::Object { system, code, display })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawCoding<'a>, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| RawCoding::Other)
            }
            forward_scalars_to_other!(RawCoding);
        }
        deserializer.deserialize_any(Item(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for LooseText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Loose<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Loose<'a> {
            type Value = LooseText<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Text(Cow::Owned(v)))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Null)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Null)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Other)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Other)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Other)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<LooseText<'a>, E> {
                Ok(LooseText::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<LooseText<'a>, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| LooseText::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<LooseText<'a>, A::Error> {
                IgnoredAny.visit_map(map).map(|_| LooseText::Other)
            }
        }
        deserializer.deserialize_any(Loose(PhantomData))
    }
}

fn vital_sign(coding: &[Coding]) -> Result<Option<VitalSign>, PayloadError> {
    let mut found: Option<VitalSign> = None;
    for c in coding.iter().filter(|c| c.system.as_deref() == Some(LOINC)) {
        let Some(v) = c.code.as_deref().and_then(VitalSign::from_loinc) else { continue };
        if v.is_panel() {
            return Err(PayloadError::Panel(v.loinc()));
        }
        found = match found {
            None => Some(v),
            // Pulse oximetry is a kind of SpO2: the pair names one measurement; keep the finer code.
            Some(prev) if is_spo2_pair(prev, v) => Some(VitalSign::PulseOximetry),
            Some(prev) if prev == v => Some(prev),
            Some(prev) => return Err(PayloadError::Ambiguous(prev.loinc(), v.loinc())),
        };
    }
    Ok(found)
}

fn is_spo2_pair(a: VitalSign, b: VitalSign) -> bool {
    let pair = [VitalSign::OxygenSaturation, VitalSign::PulseOximetry];
    a != b && pair.contains(&a) && pair.contains(&b)
}

/// US Core pulse oximetry wants 2708-6 beside 59408-5; add it when the device sent only the latter.
fn add_spo2_parent(coding: &mut Vec<Coding>) {
    let has = |v: VitalSign| coding.iter().any(|c| c.is(LOINC, v.loinc()));
    if has(VitalSign::PulseOximetry) && !has(VitalSign::OxygenSaturation) {
        let spo2 = VitalSign::OxygenSaturation;
        coding.push(Coding::new(LOINC, spo2.loinc(), Some(spo2.display())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        crate::platform::time::parse_with_offset("2026-11-22T10:00:00Z").unwrap()
    }

    fn payload(value: Value, unit: &str, system: &str, code: &str) -> String {
        json!({"value": value, "unit": unit, "coding": [{"system": system, "code": code, "display": "x"}]}).to_string()
    }

    fn measured(json: &str) -> Measurement {
        parse(json, now()).unwrap().measurement
    }

    #[test]
    fn every_vital_sign_of_the_conformance_table_is_recognised_with_its_ucum_units() {
        // (LOINC, a plausible value, unit as a device sends it, expected UCUM code) from fhir-vitals.md.
        let cases = [
            ("8867-4", 72, "bpm", "/min"),
            ("8867-4", 72, "/min", "/min"),
            ("9279-1", 16, "breaths/min", "/min"),
            ("2708-6", 97, "%", "%"),
            ("59408-5", 97, "%", "%"),
            ("8310-5", 37, "Cel", "Cel"),
            ("8310-5", 37, "C", "Cel"),
            ("8310-5", 99, "F", "[degF]"),
            ("8310-5", 99, "[degF]", "[degF]"),
            ("29463-7", 70, "kg", "kg"),
            ("29463-7", 150, "lbs", "[lb_av]"),
            ("29463-7", 3500, "g", "g"),
            ("8480-6", 120, "mmHg", "mm[Hg]"),
            ("8462-4", 80, "mm[Hg]", "mm[Hg]"),
            ("2339-0", 95, "mg/dL", "mg/dL"),
            ("15074-8", 5, "mmol/L", "mmol/L"),
        ];
        for (code, value, unit, ucum) in cases {
            let m = measured(&payload(json!(value), unit, LOINC, code));
            assert_eq!(m.vital.map(|v| v.loinc()), Some(code), "{code}");
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
    fn implausible_values_of_a_vital_sign_are_refused_in_the_devices_unit() {
        let err = parse(&payload(json!(10000), "bpm", LOINC, "8867-4"), now()).unwrap_err();
        assert_eq!(err.code(), "VALUE_OUT_OF_RANGE");
        assert_eq!(err.to_string(), "`value` 10000 bpm is outside the physiological range 20–300 bpm");
        assert_eq!(parse(&payload(json!(98.6), "C", LOINC, "8310-5"), now()).unwrap_err().code(), "VALUE_OUT_OF_RANGE");
        assert!(parse(&payload(json!(98.6), "F", LOINC, "8310-5"), now()).is_ok());
        let vendor = parse(&payload(json!(10000), "mV", "urn:vendor", "battery-voltage"), now());
        assert!(vendor.is_ok(), "a manufacturer's own code has no range the platform knows");
    }

    #[test]
    fn numeric_strings_keep_their_precision() {
        let m = measured(&payload(json!("98.60"), "F", LOINC, "8310-5"));
        assert_eq!(m.value.as_str(), "98.60");
        let m = measured(r#"{"value": 36.60, "unit": "C", "coding": [{"system": "http://loinc.org", "code": "8310-5"}]}"#);
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
    fn each_malformed_coding_is_refused_with_where_and_why() {
        let cases = [
            (r#"null"#, "`coding` is required"),
            (r#"[]"#, "`coding` must name at least one code"),
            (r#"{"system":"s","code":"c"}"#, "`coding` must be an array of codings"),
            (r#""8867-4""#, "`coding` must be an array of codings"),
            (r#"7"#, "`coding` must be an array of codings"),
            (r#"[{"system":"s","code":"c"},"x"]"#, "`coding` [1] must be an object"),
            (r#"[null]"#, "`coding` [0] must be an object"),
            (r#"[[{"system":"s","code":"c"}]]"#, "`coding` [0] must be an object"),
            (r#"[{"system":7,"code":"c"}]"#, "`coding` [0].system must be a non-empty string"),
            (r#"[{"system":"s","code":{"x":1}}]"#, "`coding` [0].code must be a non-empty string"),
            (r#"[{"system":"s","code":"  "}]"#, "`coding` [0].code must be a non-empty string"),
            (r#"[{"system":"s","code":null}]"#, "`coding` [0].code must be a non-empty string"),
            (r#"[{"system":"s","code":"c","display":["a"]}]"#, "`coding` [0].display must be a non-empty string"),
            (r#"[{"system":"s","code":"c","display":false}]"#, "`coding` [0].display must be a non-empty string"),
        ];
        for (coding, why) in cases {
            let payload = format!(r#"{{"value":1,"unit":"%","coding":{coding}}}"#);
            assert_eq!(parse(&payload, now()).unwrap_err().to_string(), why, "{coding}");
        }
        // What is kept: other fields ignored, an empty or null display dropped, a repeated key's
        // last value (as a JSON object reads).
        let kept = |coding: &str| measured(&format!(r#"{{"value":1,"unit":"%","coding":{coding}}}"#)).coding.into_owned();
        assert_eq!(kept(r#"[{"system":"s","code":"c","display":"","userSelected":true,"extension":[{}]}]"#), [Coding::new("s", "c", None)]);
        assert_eq!(kept(r#"[{"system":"s","code":"a","display":null,"code":"b"}]"#), [Coding::new("s", "b", None)]);
        assert_eq!(kept(r#"[{"display":"Pulse \u00e9","code":"c","system":"s"}]"#), [Coding::new("s", "c", Some("Pulse é"))]);
    }

    #[test]
    fn a_vital_signs_loinc_text_is_shared_not_copied_and_anything_else_is_kept_as_sent() {
        use std::borrow::Cow;
        let shared = |t: &Option<crate::fhir::Text>| matches!(t, Some(Cow::Borrowed(_)));
        // Escaped or not, LOINC's heart rate is the platform's own text; a display of the
        // device's own wording is kept as sent.
        for coding in [r#"{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}"#, r#"{"system":"http:\/\/loinc.org","code":"\u0038867-4","display":"Heart\u0020rate"}"#] {
            let m = measured(&payload_with(coding));
            assert!(matches!(m.coding, Cow::Borrowed(_)), "{coding}: the standard coding itself is shared");
            let c = &m.coding[0];
            assert_eq!(*c, Coding::new(LOINC, "8867-4", Some("Heart rate")), "{coding}");
            assert!(shared(&c.system) && shared(&c.code) && shared(&c.display), "{coding}: {c:?}");
        }
        let m = measured(&payload_with(r#"{"system":"http://loinc.org","code":"8867-4","display":"Pulse"}"#));
        assert!(matches!(m.coding, Cow::Owned(_)), "a display of the device's own");
        let c = &m.coding[0];
        assert_eq!(*c, Coding::new(LOINC, "8867-4", Some("Pulse")));
        assert!(shared(&c.code) && !shared(&c.display));
        let c = &measured(&payload_with(r#"{"system":"urn:acme","code":"8867-4","display":"Heart rate"}"#)).coding[0];
        assert_eq!(*c, Coding::new("urn:acme", "8867-4", Some("Heart rate")));
        assert!(!shared(&c.system) && !shared(&c.code) && !shared(&c.display), "not LOINC: not a vital sign's text");
    }

    fn payload_with(coding: &str) -> String {
        format!(r#"{{"value":70,"unit":"/min","coding":[{coding}]}}"#)
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
        let err = parse(r#"{"value":1,"unit":"%","coding":[{"system":"s","code":"c"},{"system":"s"}]}"#, now()).unwrap_err();
        assert_eq!(err.to_string(), "`coding` [1].code must be a non-empty string");
        let err = parse("[1,2]", now()).unwrap_err();
        assert_eq!(err.code(), "INVALID_JSON");
    }

    #[test]
    fn a_manufacturer_code_keeps_its_own_system() {
        let m = measured(&payload(json!("100"), "%", "http://lifeomic.com/fhir/devices", "9750d5e5"));
        assert!(m.vital.is_none());
        assert_eq!(m.ucum, Some("%"), "a unit that is UCUM verbatim is tagged as such");
        assert_eq!(m.code_key(), "http://lifeomic.com/fhir/devices|9750d5e5");
        let m = measured(&payload(json!(3), "charges", "urn:vendor", "cycles"));
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
        let m = measured(&payload(json!(97), "%", LOINC, "59408-5"));
        let codes: Vec<_> = m.coding.iter().filter_map(|c| c.code.as_deref()).collect();
        assert_eq!(codes, ["59408-5", "2708-6"]);
        assert_eq!(m.code_key(), "http://loinc.org|59408-5");
        let both = r#"{"value":97,"unit":"%","coding":[{"system":"http://loinc.org","code":"2708-6"},{"system":"http://loinc.org","code":"59408-5"}]}"#;
        assert_eq!(measured(both).vital, Some(VitalSign::PulseOximetry), "the finer code of the pair");
    }

    #[test]
    fn patient_id_and_message_id_are_optional_and_checked() {
        let with = |k: &str, p: Value| {
            let mut v = json!({"value": 1, "unit": "%", "coding": [{"system": "s", "code": "c"}]});
            v[k] = p;
            v.to_string()
        };
        assert_eq!(parse(&with("patientId", json!("")), now()).unwrap().patient_id, None);
        assert_eq!(parse(&with("patientId", json!("pat-1")), now()).unwrap().patient_id.as_deref(), Some("pat-1"));
        assert_eq!(parse(&with("patientId", json!("bad id/..")), now()).unwrap_err(), PayloadError::PatientId);
        assert_eq!(parse(&with("patientId", json!(7)), now()).unwrap_err(), PayloadError::PatientId);
        assert_eq!(parse(&with("messageId", json!("m-1")), now()).unwrap().message_id.as_deref(), Some("m-1"));
        assert_eq!(parse(&with("messageId", json!("")), now()).unwrap_err(), PayloadError::MessageId);
        assert_eq!(parse(&with("messageId", json!(12)), now()).unwrap_err(), PayloadError::MessageId);
    }

    #[test]
    fn device_timestamps_need_an_offset_and_a_plausible_time() {
        let with = |t: &str| json!({"value": 1, "unit": "%", "coding": [{"system": "s", "code": "c"}], "effectiveDateTime": t}).to_string();
        let p = parse(&with("2026-11-22T11:00:00+01:00"), now()).unwrap();
        assert_eq!(p.effective.unwrap().at, now());
        assert!(parse(&with("2026-11-22T10:04:59Z"), now()).is_ok());
        assert_eq!(parse(&with("2026-11-22T10:05:01Z"), now()).unwrap_err().code(), "INVALID_EFFECTIVE_TIME");
        assert_eq!(parse(&with("2026-11-22T10:00:00"), now()).unwrap_err().code(), "INVALID_EFFECTIVE_TIME");
        let reset = parse(&with("1970-01-01T00:00:00Z"), now()).unwrap_err();
        assert_eq!(reset.code(), "INVALID_EFFECTIVE_TIME");
        assert!(reset.to_string().contains("5 years before"), "{reset}");
    }
}
