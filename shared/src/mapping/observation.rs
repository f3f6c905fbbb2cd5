//! Observations from observation groups and `CodeValueFhir` templates, created and merged as
//! the connector does it (`CodeValueFhirTemplateProcessor`, the value processors,
//! `R4FhirImportService`):
//!
//! - `code`: the template's codings plus `{system: <connector>, code: type, display: type}`,
//!   text = type; components likewise with their value name; category from the template;
//! - `effectivePeriod` = the group's period (seven fraction digits); `status` final, `amended`
//!   once a merge changed it; `subject`, `device` and (if resolved) `encounter` references;
//! - the identifier `{patient}.{device}.{type}.{period or correlation id}` under the
//!   connector's system, and `id` = SHA-256 of `"{system}_{value}"`: the same measurements give
//!   the same Observation, so re-processing updates rather than duplicates;
//! - a value (and each component) only when the group has values for its `valueName`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fhir::{CodeableConcept, Coding, Decimal, Identifier, Reference, Text};

use super::fhir_templates::{CodeValueTemplate, TemplateCode, TemplateConcept, ValueKind, ValueTemplate};
use super::grouping::ObservationGroup;
use super::sampled_data::{self, SampledDataError};
use super::values::iso_date_time;

/// The connector's identifier system, and the system of the coding it adds with the type name.
pub const SERVICE_SYSTEM: &str = "https://azure.microsoft.com/en-us/services/iomt-fhir-connector/";

/// `final`, or `amended` once a merge changed an Observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObservationStatus {
    Final,
    Amended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub start: String,
    pub end: String,
}

/// A FHIR Quantity with optional unit parts, as a template gives them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantity {
    pub value: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledOrigin {
    pub value: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledData {
    pub origin: SampledOrigin,
    pub period: Decimal,
    pub dimensions: u32,
    pub data: String,
}

/// `value[x]` of an Observation or component: one of four, as the template's `valueType`.
///
/// Written out as four optional fields in each resource rather than one flattened struct:
/// serde's `flatten` buffers values, and FHIR decimals (kept as raw JSON text) cannot pass
/// through that buffer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Value {
    pub value_quantity: Option<Quantity>,
    pub value_sampled_data: Option<SampledData>,
    pub value_string: Option<String>,
    pub value_codeable_concept: Option<CodeableConcept>,
}

/// The four `value[x]` fields of a serde struct, as a [`Value`].
macro_rules! value_fields {
    ($t:ty) => {
        impl $t {
            pub fn value(&self) -> Value {
                Value {
                    value_quantity: self.value_quantity.clone(),
                    value_sampled_data: self.value_sampled_data.clone(),
                    value_string: self.value_string.clone(),
                    value_codeable_concept: self.value_codeable_concept.clone(),
                }
            }

            fn set_value(&mut self, v: Value) {
                self.value_quantity = v.value_quantity;
                self.value_sampled_data = v.value_sampled_data;
                self.value_string = v.value_string;
                self.value_codeable_concept = v.value_codeable_concept;
            }
        }
    };
}

impl Value {
    fn is_empty(&self) -> bool {
        *self == Value::default()
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value { value_quantity: Some(_), .. } => "Quantity",
            Value { value_sampled_data: Some(_), .. } => "SampledData",
            Value { value_string: Some(_), .. } => "FhirString",
            Value { value_codeable_concept: Some(_), .. } => "CodeableConcept",
            _ => "null",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub code: CodeableConcept,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_sampled_data: Option<SampledData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_codeable_concept: Option<CodeableConcept>,
}

value_fields!(Component);
value_fields!(MappedObservation);

impl Component {
    fn new(code: CodeableConcept, value: Value) -> Self {
        let mut c = Self { code, value_quantity: None, value_sampled_data: None, value_string: None, value_codeable_concept: None };
        c.set_value(value);
        c
    }
}

/// A FHIR R4 Observation as mapping templates make it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MappedObservation {
    /// Always `Observation`.
    pub resource_type: String,
    pub id: String,
    pub identifier: Vec<Identifier>,
    pub status: ObservationStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<CodeableConcept>,
    pub code: CodeableConcept,
    pub subject: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encounter: Option<Reference>,
    pub effective_period: Period,
    pub issued: String,
    pub device: Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_sampled_data: Option<SampledData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_codeable_concept: Option<CodeableConcept>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub component: Vec<Component>,
}

/// The FHIR ids the measurements of a group belong to (identity resolution's answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceIds {
    pub device: String,
    pub patient: String,
    pub encounter: Option<String>,
}

/// Why an Observation could not be made or merged (the connector fails the group).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObservationError {
    #[error("Expected 1 value. Received {0}. (a Quantity holds one value: use periodInterval 0 or SampledData)")]
    NotOneValue(usize),
    #[error("Error encountered processing value: {0}.")]
    NotADecimal(String),
    #[error(transparent)]
    SampledData(#[from] SampledDataError),
    #[error("Element existingValue expected to be of type {expected}. Actual type is {actual}.")]
    ValueTypeChanged { expected: &'static str, actual: &'static str },
    #[error("Existing SampledData value has more than 1 dimension.")]
    Dimensions,
    #[error("the existing Observation's effectivePeriod {0:?} is not a date-time")]
    BadPeriod(String),
}

/// The identifier of a group's Observation and the id derived from it.
pub fn identifier(group: &ObservationGroup, ids: &ResourceIds) -> (Identifier, String) {
    let value = format!("{}.{}.{}.{}", ids.patient, ids.device, group.name, group.id_segment);
    let id = hash_id(SERVICE_SYSTEM, &value);
    (Identifier { system: SERVICE_SYSTEM.into(), value }, id)
}

/// The connector's deterministic resource id: lowercase hex SHA-256 of `"{system}_{value}"`.
pub fn hash_id(system: &str, value: &str) -> String {
    hex::encode(Sha256::digest(format!("{system}_{value}").as_bytes()))
}

/// A time as .NET's round-trip format writes a UTC `DateTime`: seven fraction digits, `Z`.
pub fn round_trip(at: DateTime<Utc>) -> String {
    format!("{}.{:07}Z", at.format("%Y-%m-%dT%H:%M:%S"), at.timestamp_subsec_nanos() / 100)
}

/// A new Observation for a group.
pub fn create(template: &CodeValueTemplate, group: &ObservationGroup, ids: &ResourceIds, issued: DateTime<Utc>) -> Result<MappedObservation, ObservationError> {
    let (identifier, id) = identifier(group, ids);
    let period = (group.start, group.end);
    let value = match &template.value {
        Some(v) => match group.samples(&v.name) {
            Some(samples) => create_value(v, &samples, period)?,
            None => Value::default(),
        },
        None => Value::default(),
    };
    let mut component = Vec::new();
    for c in &template.components {
        if let Some(samples) = group.samples(&c.value.name) {
            component.push(Component::new(code(&c.value.name, &c.codes), create_value(&c.value, &samples, period)?));
        }
    }
    let mut observation = MappedObservation {
        resource_type: "Observation".into(),
        id,
        identifier: vec![identifier],
        status: ObservationStatus::Final,
        category: template.category.iter().map(concept).collect(),
        code: code(&group.name, &template.codes),
        subject: Reference::to("Patient", &ids.patient),
        encounter: ids.encounter.as_deref().map(|e| Reference::to("Encounter", e)),
        effective_period: Period { start: round_trip(group.start), end: round_trip(group.end) },
        issued: round_trip(issued),
        device: Reference::to("Device", &ids.device),
        value_quantity: None,
        value_sampled_data: None,
        value_string: None,
        value_codeable_concept: None,
        component,
    };
    observation.set_value(value);
    Ok(observation)
}

/// An existing Observation with a group's values merged in; `status` becomes `amended` when
/// anything changed (and `issued` is left as it was: the connector does not touch it).
pub fn merge(template: &CodeValueTemplate, group: &ObservationGroup, existing: &MappedObservation) -> Result<MappedObservation, ObservationError> {
    let mut merged = existing.clone();
    merged.category = template.category.iter().map(concept).collect();
    let parse = |s: &str| iso_date_time(s).ok_or_else(|| ObservationError::BadPeriod(s.to_owned()));
    let observed = (parse(&existing.effective_period.start)?, parse(&existing.effective_period.end)?);
    let data = (group.start, group.end);
    if let Some(v) = &template.value {
        if let Some(samples) = group.samples(&v.name) {
            let value = merge_value(v, &samples, data, observed, &merged.value())?;
            merged.set_value(value);
        }
    }
    for c in &template.components {
        let Some(samples) = group.samples(&c.value.name) else { continue };
        let found = merged.component.iter_mut().find(|k| k.code.coding.iter().any(|x| x.is(SERVICE_SYSTEM, &c.value.name)));
        match found {
            Some(k) => {
                let value = merge_value(&c.value, &samples, data, observed, &k.value())?;
                k.set_value(value);
            }
            // A component the Observation lacks is created over the Observation's period.
            None => merged.component.push(Component::new(code(&c.value.name, &c.codes), create_value(&c.value, &samples, observed)?)),
        }
    }
    let start = observed.0.min(group.start);
    let end = observed.1.max(group.end);
    merged.effective_period = Period { start: round_trip(start), end: round_trip(end) };
    if merged != *existing {
        merged.status = ObservationStatus::Amended;
    }
    Ok(merged)
}

/// Whether a merge replaced a value `existing` held with another reading's (a Quantity,
/// string or CodeableConcept, of the Observation or of a component it had): two readings in one
/// identifier's window (a second, for instantaneous templates) where only one value fits. A
/// SampledData value keeps every sample and never counts.
pub fn replaces_a_reading(existing: &MappedObservation, merged: &MappedObservation) -> bool {
    let differs = |old: &Value, new: &Value| {
        old.value_sampled_data.is_none() && !old.is_empty() && (old.value_quantity != new.value_quantity || old.value_string != new.value_string || old.value_codeable_concept != new.value_codeable_concept)
    };
    differs(&existing.value(), &merged.value()) || existing.component.iter().zip(&merged.component).any(|(old, new)| differs(&old.value(), &new.value()))
}

fn code(name: &str, codes: &[TemplateCode]) -> CodeableConcept {
    let mut coding: Vec<Coding> = codes.iter().map(coding).collect();
    coding.push(Coding::new(SERVICE_SYSTEM, name, Some(name)));
    CodeableConcept { coding: coding.into(), text: Some(name.to_owned().into()) }
}

fn coding(c: &TemplateCode) -> Coding {
    Coding { system: c.system.clone().map(Text::from), code: c.code.clone().map(Text::from), display: c.display.clone().map(Text::from) }
}

fn concept(c: &TemplateConcept) -> CodeableConcept {
    CodeableConcept { coding: c.codes.iter().map(coding).collect(), text: c.text.clone().map(Text::from) }
}

pub(super) type Span = (DateTime<Utc>, DateTime<Utc>);

/// A value from a group's samples over the Observation's period.
pub(super) fn create_value(template: &ValueTemplate, samples: &[(DateTime<Utc>, &str)], (start, end): Span) -> Result<Value, ObservationError> {
    Ok(match &template.kind {
        ValueKind::Quantity { unit, system, code } => {
            let [(_, text)] = samples else { return Err(ObservationError::NotOneValue(samples.len())) };
            Value {
                value_quantity: Some(Quantity { value: dotnet_decimal(text)?, unit: unit.clone(), system: system.clone(), code: code.clone() }),
                ..Value::default()
            }
        }
        ValueKind::SampledData { default_period, unit } => {
            let (period, step) = sampled_period(default_period)?;
            Value {
                value_sampled_data: Some(SampledData {
                    origin: SampledOrigin { value: Decimal::parse("0").map_err(|_| ObservationError::NotADecimal("0".into()))?, unit: unit.clone() },
                    period: period.clone(),
                    dimensions: 1,
                    data: sampled_data::build(samples, start, end, step)?,
                }),
                ..Value::default()
            }
        }
        ValueKind::String => {
            let [(_, text)] = samples else { return Err(ObservationError::NotOneValue(samples.len())) };
            Value { value_string: Some((*text).to_owned()), ..Value::default() }
        }
        ValueKind::CodeableConcept { concept: c } => Value { value_codeable_concept: Some(concept(c)), ..Value::default() },
    })
}

fn sampled_period(default_period: &Option<Decimal>) -> Result<(&Decimal, chrono::Duration), ObservationError> {
    let period = default_period.as_ref().ok_or(SampledDataError::NoPeriod)?;
    Ok((period, sampled_data::period(period.as_f64())?))
}

/// A value merged into the existing one: SampledData streams merge (new samples win at the same
/// time, rebuilt over both periods); the other kinds are replaced. The kind may not change.
pub(super) fn merge_value(template: &ValueTemplate, samples: &[(DateTime<Utc>, &str)], data: Span, observed: Span, existing: &Value) -> Result<Value, ObservationError> {
    let expected = match template.kind {
        ValueKind::Quantity { .. } => "Quantity",
        ValueKind::SampledData { .. } => "SampledData",
        ValueKind::String => "FhirString",
        ValueKind::CodeableConcept { .. } => "CodeableConcept",
    };
    if existing.type_name() != expected {
        return Err(ObservationError::ValueTypeChanged { expected, actual: existing.type_name() });
    }
    let ValueKind::SampledData { default_period, .. } = &template.kind else {
        return create_value(template, samples, data);
    };
    let Some(stream) = &existing.value_sampled_data else {
        return Err(ObservationError::ValueTypeChanged { expected, actual: existing.type_name() });
    };
    if stream.dimensions > 1 {
        return Err(ObservationError::Dimensions);
    }
    let (_, step) = sampled_period(default_period)?;
    // Decoded from the Observation's start with the template's period, as the connector does.
    let known = sampled_data::decode(&stream.data, observed.0, step);
    let all = sampled_data::merge(known, samples);
    let all: Vec<(DateTime<Utc>, &str)> = all.iter().map(|(t, v)| (*t, v.as_str())).collect();
    let mut merged = stream.clone();
    merged.data = sampled_data::build(&all, data.0.min(observed.0), data.1.max(observed.1), step)?;
    Ok(Value { value_sampled_data: Some(merged), ..Value::default() })
}

/// A measurement value as .NET's `decimal.Parse` reads it (surrounding spaces, a leading `+`,
/// `.5`, `5.`), written as a FHIR decimal with its digits kept ("98.60" stays "98.60").
/// Exponents, thousands separators and anything else are refused, as the connector refuses
/// them, rather than guessed at.
fn dotnet_decimal(text: &str) -> Result<Decimal, ObservationError> {
    let refuse = || ObservationError::NotADecimal(text.to_owned());
    let t = text.trim();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') || digits.matches('.').count() > 1 || digits == "." {
        return Err(refuse());
    }
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let text = if frac.is_empty() { format!("{sign}{int}") } else { format!("{sign}{int}.{frac}") };
    Decimal::parse(&text).map_err(|_| refuse())
}

impl MappedObservation {
    /// Whether a value came out empty (a template without value, or no data for it): the
    /// "shell" Observation the connector also writes.
    pub fn has_value(&self) -> bool {
        !self.value().is_empty()
    }
}

/// `value[x]` alone as JSON, for the ported connector tests: a component without its code.
#[cfg(test)]
impl Value {
    pub(super) fn json_text(&self) -> String {
        let component = Component::new(CodeableConcept { coding: Default::default(), text: None }, self.clone());
        let mut json: serde_json::Value = serde_json::from_str(&serde_json::to_string(&component).unwrap_or_default()).unwrap_or_default();
        json.as_object_mut().map(|o| o.remove("code"));
        json.to_string()
    }

    /// The value of a JSON object's value[x] fields (none that parse: none).
    pub(super) fn from_json_text(text: &str) -> Self {
        let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(text) else { return Value::default() };
        fields.insert("code".into(), serde_json::json!({}));
        // Through text: FHIR decimals are read from their JSON text.
        serde_json::from_str::<Component>(&serde_json::Value::Object(fields).to_string()).map(|c| c.value()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::fhir_templates::{FhirMapping, PeriodInterval};
    use crate::mapping::grouping::{measurement_groups, observation_groups};
    use crate::mapping::measurement::{Measurement, MeasurementProperty};
    use serde_json::json;

    fn bp_mapping(period: i64, value_type: &str) -> FhirMapping {
        let value = |name: &str| json!({"valueName": name, "valueType": value_type, "defaultPeriod": 60000, "unit": "mmHg", "code": "mm[Hg]", "system": "http://unitsofmeasure.org"});
        FhirMapping::from_json(&json!({"templateType": "CollectionFhir", "template": [{"templateType": "CodeValueFhir", "template": {
            "typeName": "bloodpressure", "periodInterval": period,
            "codes": [{"code": "85354-9", "system": "http://loinc.org", "display": "Blood pressure panel"}],
            "category": [{"text": "Vital Signs", "codes": [{"code": "vital-signs", "system": "http://terminology.hl7.org/CodeSystem/observation-category"}]}],
            "components": [
                {"codes": [{"code": "8462-4", "system": "http://loinc.org"}], "value": value("diastolic")},
                {"codes": [{"code": "8480-6", "system": "http://loinc.org"}], "value": value("systolic")}]}}]}))
        .unwrap()
    }

    fn reading(time: &str, systolic: &str, diastolic: &str) -> Measurement {
        Measurement {
            type_name: "bloodpressure".into(),
            occurrence_time_utc: time.into(),
            ingestion_time_utc: None,
            device_id: "cuff".into(),
            patient_id: Some("p1".into()),
            encounter_id: None,
            correlation_id: None,
            properties: vec![
                MeasurementProperty { name: "systolic".into(), value: systolic.into() },
                MeasurementProperty { name: "diastolic".into(), value: diastolic.into() },
            ],
        }
    }

    fn ids() -> ResourceIds {
        ResourceIds { device: "dev-1".into(), patient: "pat-1".into(), encounter: None }
    }

    fn observations(mapping: &FhirMapping, batch: &[Measurement]) -> Vec<MappedObservation> {
        let template = mapping.template("bloodpressure").unwrap();
        let issued = "2024-01-01T00:00:00Z".parse().unwrap();
        let groups = measurement_groups(batch).unwrap();
        observation_groups(&groups[0], template.period_interval).unwrap().iter().map(|g| create(template, g, &ids(), issued).unwrap()).collect()
    }

    #[test]
    fn a_quantity_observation_is_shaped_as_the_connector_makes_it() {
        let mapping = bp_mapping(0, "Quantity");
        let [o] = observations(&mapping, &[reading("2019-01-01T10:25:13.5Z", "120.0", "80")]).try_into().unwrap();
        let text: serde_json::Value = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(text["code"]["coding"][1], json!({"system": SERVICE_SYSTEM, "code": "bloodpressure", "display": "bloodpressure"}));
        assert_eq!(text["code"]["text"], "bloodpressure");
        assert_eq!(text["effectivePeriod"], json!({"start": "2019-01-01T10:25:13.5000000Z", "end": "2019-01-01T10:25:13.5000000Z"}));
        assert_eq!(text["identifier"][0]["value"], "pat-1.dev-1.bloodpressure.20190101102513Z.20190101102513Z");
        assert_eq!(o.id, hash_id(SERVICE_SYSTEM, "pat-1.dev-1.bloodpressure.20190101102513Z.20190101102513Z"));
        assert_eq!(o.id.len(), 64);
        assert_eq!(text["component"][0]["code"]["text"], "diastolic", "template order, not the measurement's");
        assert_eq!(text["component"][1]["valueQuantity"], json!({"value": 120.0, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}));
        assert!(serde_json::to_string(&o).unwrap().contains(r#""value":120.0,"#), "the device's digits are kept");
        assert_eq!((text["status"].as_str(), text["subject"]["reference"].as_str(), text["device"]["reference"].as_str()), (Some("final"), Some("Patient/pat-1"), Some("Device/dev-1")));
        assert!(text.get("valueQuantity").is_none(), "no top-level value in this template");
        let back: MappedObservation = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o, "a stored Observation reads back for merging");
    }

    #[test]
    fn quantity_values_follow_dotnet_decimal_parsing_and_say_why_they_fail() {
        for (given, want) in [("80", "80"), (" +80.50 ", "80.50"), (".5", "0.5"), ("5.", "5"), ("-0.25", "-0.25"), ("007", "7")] {
            assert_eq!(dotnet_decimal(given).unwrap().as_str(), want, "{given:?}");
        }
        for bad in ["1e3", "1,000", "abc", "", "-", "."] {
            assert_eq!(dotnet_decimal(bad).unwrap_err(), ObservationError::NotADecimal(bad.into()));
        }
        let mapping = bp_mapping(60, "Quantity");
        let template = mapping.template("bloodpressure").unwrap();
        let batch = [reading("2019-01-01T10:00:00Z", "120", "80"), reading("2019-01-01T10:05:00Z", "121", "81")];
        let groups = measurement_groups(&batch).unwrap();
        let group = &observation_groups(&groups[0], PeriodInterval::Hourly).unwrap()[0];
        assert_eq!(create(template, group, &ids(), Utc::now()).unwrap_err(), ObservationError::NotOneValue(2));
    }

    #[test]
    fn sampled_data_is_built_over_the_period_and_merged_with_new_values_winning() {
        let mapping = bp_mapping(60, "SampledData");
        let template = mapping.template("bloodpressure").unwrap();
        let first = observations(&mapping, &[reading("2019-01-01T10:00:00Z", "120", "80"), reading("2019-01-01T10:02:00Z", "122", "82")]);
        assert_eq!(first.len(), 1);
        let stream = first[0].component[1].value_sampled_data.as_ref().unwrap();
        assert_eq!(stream.data.split(' ').take(4).collect::<Vec<_>>(), ["120", "E", "122", "E"]);
        assert_eq!(stream.data.split(' ').count(), 60);
        assert_eq!((stream.period.as_str(), stream.dimensions, stream.origin.value.as_str()), ("60000", 1, "0"));
        let later = [reading("2019-01-01T10:02:00Z", "130", "90"), reading("2019-01-01T10:03:00Z", "131", "91")];
        let groups = measurement_groups(&later).unwrap();
        let group = &observation_groups(&groups[0], PeriodInterval::Hourly).unwrap()[0];
        let merged = merge(template, group, &first[0]).unwrap();
        let stream = merged.component[1].value_sampled_data.as_ref().unwrap();
        assert_eq!(stream.data.split(' ').take(5).collect::<Vec<_>>(), ["120", "E", "130", "131", "E"], "the new value wins at 10:02");
        assert_eq!(merged.status, ObservationStatus::Amended);
        assert_eq!(merged.id, first[0].id);
        let again = merge(template, group, &merged).unwrap();
        assert_eq!(again, merged, "merging the same values again changes nothing");
    }

    #[test]
    fn merging_adds_missing_components_widens_the_period_and_refuses_a_changed_kind() {
        let mapping = bp_mapping(-1, "SampledData");
        let template = mapping.template("bloodpressure").unwrap();
        let mut session = reading("2019-01-01T10:00:00Z", "120", "80");
        session.correlation_id = Some("s1".into());
        session.properties.truncate(1);
        let groups = measurement_groups(std::slice::from_ref(&session)).unwrap();
        let first = create(template, &observation_groups(&groups[0], PeriodInterval::CorrelationId).unwrap()[0], &ids(), Utc::now()).unwrap();
        assert_eq!(first.component.len(), 1, "no diastolic values yet");
        assert_eq!(first.identifier[0].value, "pat-1.dev-1.bloodpressure.s1");
        let mut more = reading("2019-01-01T10:01:00Z", "121", "81");
        more.correlation_id = Some("s1".into());
        let groups = measurement_groups(std::slice::from_ref(&more)).unwrap();
        let group = &observation_groups(&groups[0], PeriodInterval::CorrelationId).unwrap()[0];
        let merged = merge(template, group, &first).unwrap();
        assert_eq!(merged.component.len(), 2);
        assert_eq!(merged.effective_period, Period { start: "2019-01-01T10:00:00.0000000Z".into(), end: "2019-01-01T10:01:00.0000000Z".into() });
        assert_eq!(merged.component[0].value_sampled_data.as_ref().unwrap().data, "120 121");
        let quantity = bp_mapping(-1, "Quantity");
        let refused = merge(quantity.template("bloodpressure").unwrap(), group, &first).unwrap_err();
        assert_eq!(refused, ObservationError::ValueTypeChanged { expected: "Quantity", actual: "SampledData" });
    }

    #[test]
    fn string_and_codeable_concept_values() {
        let mapping = FhirMapping::from_json(&json!({"templateType": "CollectionFhir", "template": [
            {"templateType": "CodeValueFhir", "template": {"typeName": "note", "codes": [], "value": {"valueName": "text", "valueType": "String"}}},
            {"templateType": "CodeValueFhir", "template": {"typeName": "worn", "codes": [], "value": {"valueName": "worn", "valueType": "CodeableConcept", "text": "Device worn", "codes": [{"code": "W", "system": "urn:x"}]}}}]}))
        .unwrap();
        for (type_name, prop, want) in [("note", "text", json!({"valueString": "feeling fine"})), ("worn", "worn", json!({"valueCodeableConcept": {"coding": [{"system": "urn:x", "code": "W"}], "text": "Device worn"}}))] {
            let m = Measurement {
                type_name: type_name.into(),
                properties: vec![MeasurementProperty { name: prop.into(), value: "feeling fine".into() }],
                ..reading("2019-01-01T10:00:00Z", "", "")
            };
            let groups = measurement_groups(std::slice::from_ref(&m)).unwrap();
            let template = mapping.template(type_name).unwrap();
            let o = create(template, &observation_groups(&groups[0], template.period_interval).unwrap()[0], &ids(), Utc::now()).unwrap();
            let (key, value) = want.as_object().unwrap().iter().next().unwrap();
            assert_eq!(&serde_json::from_str::<serde_json::Value>(&serde_json::to_string(&o).unwrap()).unwrap()[key], value, "{type_name}");
        }
    }

    #[test]
    fn merging_resets_the_category_to_the_templates_and_keeps_a_wider_period() {
        let with_category = bp_mapping(60, "SampledData");
        let template = with_category.template("bloodpressure").unwrap();
        let first = observations(&with_category, &[reading("2019-01-01T10:00:00Z", "120", "80")]).remove(0);
        assert_eq!(first.category[0].text.as_deref(), Some("Vital Signs"));
        let mut without = template.clone();
        without.category.clear();
        let later = [reading("2019-01-01T10:05:00Z", "121", "81")];
        let groups = measurement_groups(&later).unwrap();
        let group = &observation_groups(&groups[0], PeriodInterval::Hourly).unwrap()[0];
        assert!(merge(&without, group, &first).unwrap().category.is_empty(), "a template without category removes it");
        let mut wider = first.clone();
        wider.effective_period = Period { start: "2019-01-01T09:00:00.0000000Z".into(), end: "2019-01-01T12:00:00.0000000Z".into() };
        let merged = merge(template, group, &wider).unwrap();
        assert_eq!(merged.effective_period, wider.effective_period, "data inside the period leaves it as it is");
        let data = &merged.component[1].value_sampled_data.as_ref().unwrap().data;
        assert_eq!(data.split(' ').count(), 3 * 60 + 1, "rebuilt over the Observation's own period");
        assert_eq!(data.split(' ').nth(65), Some("121"), "decoded from the Observation's start: 10:05 is slot 65");
    }
}
