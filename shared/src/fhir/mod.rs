//! The FHIR R4 datatypes and resources Vitalwire emits, as serde structs.
//!
//! Only what the platform writes is modelled; optional elements are skipped when empty so the
//! JSON stays valid FHIR (FHIR forbids empty arrays and objects). Text that is mostly the
//! platform's own constants (code systems, profiles, codes) is a [`Text`], which borrows them:
//! an Observation is built per reading, and those copies were half of its allocations.

/// Text that is usually one of the platform's constants, borrowed, and otherwise owned.
pub type Text = Cow<'static, str>;

pub mod json;
pub mod vitals;

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// A FHIR `decimal` kept exactly as the device wrote it ("98.60" stays "98.60").
///
/// FHIR decimals carry their precision in their text, so parsing to `f64` and back would round
/// silently. The text is checked against FHIR's decimal grammar and emitted verbatim as a JSON
/// number; `as_f64` serves computations only.
#[derive(Debug, Clone, PartialEq)]
pub struct Decimal {
    text: String,
    value: f64,
}

/// Why a text is not a FHIR decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    #[error("is empty")]
    Empty,
    #[error("is not a decimal number")]
    NotANumber,
    #[error("is not finite")]
    NotFinite,
}

impl Decimal {
    /// Parses FHIR's decimal grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        if text.is_empty() {
            return Err(DecimalError::Empty);
        }
        if !matches_decimal_grammar(text.as_bytes()) {
            return Err(DecimalError::NotANumber);
        }
        let value: f64 = text.parse().map_err(|_| DecimalError::NotANumber)?;
        if !value.is_finite() {
            return Err(DecimalError::NotFinite);
        }
        Ok(Self { text: text.to_owned(), value })
    }

    /// A whole number (a score, a count).
    pub fn whole(n: i64) -> Self {
        Self { text: n.to_string(), value: n as f64 }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn as_f64(&self) -> f64 {
        self.value
    }
}

fn matches_decimal_grammar(s: &[u8]) -> bool {
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if s.first() == Some(&b'-') {
        i += 1;
    }
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return false,
    }
    if s.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == s.len()
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Borrowed: the text is already a JSON number (FHIR's decimal grammar), nothing to copy.
        let raw: &RawValue = serde_json::from_str(&self.text).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Decimal::parse(raw.get()).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coding {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<Text>,
}

impl Coding {
    pub fn new(system: &str, code: &str, display: Option<&str>) -> Self {
        Self { system: Some(system.to_owned().into()), code: Some(code.to_owned().into()), display: display.map(|d| d.to_owned().into()) }
    }

    /// A coding of the platform's constants, borrowed (`const`, so a static can hold one).
    pub const fn fixed(system: &'static str, code: &'static str, display: Option<&'static str>) -> Self {
        let display = match display {
            Some(d) => Some(Cow::Borrowed(d)),
            None => None,
        };
        Self { system: Some(Cow::Borrowed(system)), code: Some(Cow::Borrowed(code)), display }
    }

    pub fn is(&self, system: &str, code: &str) -> bool {
        self.system.as_deref() == Some(system) && self.code.as_deref() == Some(code)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeableConcept {
    /// Shared when they are the platform's own (a category, a vital sign's standard coding).
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub coding: Cow<'static, [Coding]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    pub reference: String,
}

impl Reference {
    pub fn to(resource_type: &str, id: &str) -> Self {
        Self { reference: [resource_type, "/", id].concat() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantity {
    pub value: Decimal,
    /// The unit as the device sent it.
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<Text>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identifier {
    pub system: Text,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Shared when they are the platform's own (a vital sign's profiles).
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub profile: Cow<'static, [Text]>,
    /// E.g. the data-source tag (`device`), shared when it is the platform's own.
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub tag: Cow<'static, [Coding]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationComponent {
    pub code: CodeableConcept,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_codeable_concept: Option<CodeableConcept>,
    /// Why a component has no value (a diastolic pressure nobody took).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_absent_reason: Option<CodeableConcept>,
}

impl ObservationComponent {
    /// A component with a quantity.
    pub fn quantity(code: CodeableConcept, value: Quantity) -> Self {
        Self { code, value_quantity: Some(value), value_codeable_concept: None, data_absent_reason: None }
    }
}

/// FHIR R4 `Observation`, as Vitalwire writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// Always `"Observation"`.
    pub resource_type: Text,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    pub status: Text,
    /// Shared when it is the platform's own (a vital sign's category).
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub category: Cow<'static, [CodeableConcept]>,
    pub code: CodeableConcept,
    pub subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<Reference>,
    pub effective_date_time: String,
    pub issued: String,
    /// Who took an entered value (a clinician, or the patient); none on a device's reading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performer: Vec<Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_codeable_concept: Option<CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    /// E.g. a score's severity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interpretation: Vec<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub component: Vec<ObservationComponent>,
    /// The Observations a grouping panel (85353-1) gathers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub has_member: Vec<Reference>,
    /// The Observations a score was computed from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived_from: Vec<Reference>,
}

/// FHIR `id`: 1–64 of `[A-Za-z0-9\-\.]`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_keeps_its_text_when_serialized() {
        let d = Decimal::parse("98.60").unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), "98.60");
        assert_eq!(d.as_f64(), 98.6);
        let back: Decimal = serde_json::from_str("98.60").unwrap();
        assert_eq!(back.as_str(), "98.60");
    }

    #[test]
    fn decimal_accepts_fhir_grammar_only() {
        for ok in ["0", "-0.5", "120", "1e3", "1.25E-2", "37.0"] {
            assert!(Decimal::parse(ok).is_ok(), "{ok} should parse");
        }
        for bad in ["", " 1", "1 ", "+1", "01", ".5", "5.", "1e", "NaN", "Infinity", "0x10", "1,5", "--1"] {
            assert!(Decimal::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(Decimal::parse("1e999"), Err(DecimalError::NotFinite));
    }

    #[test]
    fn fhir_ids_are_checked() {
        assert!(is_valid_id("patient-1.a"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("has space"));
        assert!(!is_valid_id(&"a".repeat(65)));
    }
}
