//! Device-mapping templates of the JSONPath kinds (`JsonPathContent`, `IotJsonPathContent`,
//! `IotCentralJsonPathContent`) inside a `CollectionContent`, and normalization with them, as
//! the connector's `LegacyMeasurementExtractor` does it:
//!
//! - every template of the collection runs on every message, in order; each match of its
//!   `typeMatchExpression` is one measurement, and the match becomes `$` for its other
//!   expressions (there is no way up to the message);
//! - device id and timestamp are required (IoT Hub: `SystemProperties.iothub-connection-device-id`,
//!   `Properties.iothub-creation-time-utc` else `SystemProperties.iothub-enqueuedtime`; IoT
//!   Central: `deviceId`, `enqueuedTime`), and so is a correlation id when its expression is set;
//!   patient and encounter ids are optional;
//! - a required value that is missing, null or blank fails the message; a missing or null
//!   optional one is left out; a blank optional one is kept; an expression that selects more
//!   than one token fails the message.
//!
//! Still to come (issue 10): `CalculatedContent`, line and column in template errors.

use serde_json::{Map, Value};

use super::jsonpath::{compile, JsonPath};
use super::measurement::{Measurement, MeasurementProperty};
use super::templates::{property, ContentKind, Envelope};
use super::values::{dotnet_text, iso_date_time};

/// A template problem, worded as the connector words it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
}

fn template_error(message: impl Into<String>) -> TemplateError {
    TemplateError { message: message.into() }
}

/// A device mapping: the templates of a `CollectionContent`, in order.
#[derive(Debug, Clone)]
pub struct DeviceMapping {
    templates: Vec<ContentTemplate>,
}

#[derive(Debug, Clone)]
struct ContentTemplate {
    type_name: String,
    type_match: JsonPath,
    device_id: JsonPath,
    /// Tried in order: the first that gives a time.
    timestamps: Vec<JsonPath>,
    patient_id: Option<JsonPath>,
    encounter_id: Option<JsonPath>,
    correlation_id: Option<JsonPath>,
    values: Vec<ValueExpression>,
}

#[derive(Debug, Clone)]
struct ValueExpression {
    name: String,
    path: JsonPath,
    required: bool,
}

/// Why a message could not be normalized (the connector fails the whole message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizationError {
    #[error("Unable to extract required value for [{0}]")]
    MissingRequired(String),
    #[error("A null or empty value was supplied for the required field [{0}]")]
    EmptyRequired(String),
    #[error("Unable to retrieve JsonToken using expression {0}: it returned multiple tokens")]
    MultipleTokens(String),
    #[error("the value for [{0}] is not a date-time")]
    NotATime(String),
}

impl DeviceMapping {
    /// A device mapping from its JSON: every problem of every template, or the mapping.
    pub fn from_json(value: &Value) -> Result<Self, Vec<TemplateError>> {
        let Some(envelope) = Envelope::of(value) else {
            return Err(vec![template_error("a device mapping is a JSON object with templateType and template")]);
        };
        if envelope.template_type.and_then(ContentKind::named) != Some(ContentKind::Collection) {
            return Err(vec![template_error(format!(
                "Expected TemplateType value CollectionContentTemplate, actual {}.",
                envelope.template_type.unwrap_or("Not Found")
            ))]);
        }
        let Some(Value::Array(items)) = envelope.template else {
            return Err(vec![template_error("Expected an array for the template property value for template type CollectionContentTemplate.")]);
        };
        let mut templates = Vec::new();
        let mut errors = Vec::new();
        for item in items {
            match ContentTemplate::from_json(item) {
                Ok(t) => templates.push(t),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() { Ok(Self { templates }) } else { Err(errors) }
    }

    /// The measurements a message (in the `{"Body", "Properties", "SystemProperties"}`
    /// envelope) makes; none is not an error (the connector drops such a message).
    pub fn normalize(&self, message: &Value) -> Result<Vec<Measurement>, NormalizationError> {
        let mut out = Vec::new();
        for template in &self.templates {
            for matched in template.type_match.select(message) {
                out.push(template.measurement(matched)?);
            }
        }
        Ok(out)
    }
}

impl ContentTemplate {
    fn from_json(item: &Value) -> Result<Self, Vec<TemplateError>> {
        let envelope = Envelope::of(item).ok_or_else(|| vec![template_error("a template is a JSON object with templateType and template")])?;
        let kind = match envelope.template_type.and_then(ContentKind::named) {
            Some(k @ (ContentKind::JsonPath | ContentKind::IotJsonPath | ContentKind::IotCentralJsonPath)) => k,
            Some(ContentKind::Calculated) => return Err(vec![template_error("CalculatedContent templates are not supported yet")]),
            _ => return Err(vec![template_error(format!("No match found for template type {}.", envelope.template_type.unwrap_or("")))]),
        };
        let Some(Value::Object(body)) = envelope.template else {
            return Err(vec![template_error(format!("Expected an object for the template property value for template type {}.", kind.connector_name()))]);
        };
        Self::from_body(kind, body)
    }

    fn from_body(kind: ContentKind, body: &Map<String, Value>) -> Result<Self, Vec<TemplateError>> {
        let class = kind.connector_name();
        let mut errors = Vec::new();
        // The members of the connector's class for this kind (unknown ones are errors, as with
        // Json.NET's MissingMemberHandling.Error); IoT kinds fix the device id and time.
        let mut members = vec!["typeName", "typeMatchExpression", "patientIdExpression", "encounterIdExpression", "correlationIdExpression", "values"];
        if kind == ContentKind::JsonPath {
            members.extend(["deviceIdExpression", "timestampExpression"]);
        }
        for key in body.keys() {
            if !members.iter().any(|m| m.eq_ignore_ascii_case(key)) {
                errors.push(template_error(format!("Could not find member '{key}' on object of type '{class}'. ")));
            }
        }
        let text = |name: &str| property(body, name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let path = |name: &'static str, pascal: &str, required: bool, errors: &mut Vec<TemplateError>| match text(name) {
            Some(p) => compile(p).map_err(|e| errors.push(template_error(e.to_string()))).ok(),
            None => {
                if required {
                    errors.push(template_error(format!("Required property '{pascal}' not found in JSON. ")));
                }
                None
            }
        };
        let type_name = text("typeName").map(str::to_owned);
        if type_name.is_none() {
            errors.push(template_error("Required property 'TypeName' not found in JSON. "));
        }
        let type_match = path("typeMatchExpression", "TypeMatchExpression", true, &mut errors);
        let fixed = |p: &str| compile(p).map_err(|e| vec![template_error(e.to_string())]);
        let (device_id, timestamps) = match kind {
            ContentKind::IotJsonPath => (
                Some(fixed("$.SystemProperties.iothub-connection-device-id")?),
                vec![fixed("$.Properties.iothub-creation-time-utc")?, fixed("$.SystemProperties.iothub-enqueuedtime")?],
            ),
            ContentKind::IotCentralJsonPath => (Some(fixed("$.deviceId")?), vec![fixed("$.enqueuedTime")?]),
            _ => (
                path("deviceIdExpression", "DeviceIdExpression", true, &mut errors),
                path("timestampExpression", "TimestampExpression", true, &mut errors).into_iter().collect(),
            ),
        };
        let patient_id = path("patientIdExpression", "PatientIdExpression", false, &mut errors);
        let encounter_id = path("encounterIdExpression", "EncounterIdExpression", false, &mut errors);
        let correlation_id = path("correlationIdExpression", "CorrelationIdExpression", false, &mut errors);
        let mut values = Vec::new();
        for v in property(body, "values").and_then(Value::as_array).into_iter().flatten() {
            let Some(v) = v.as_object() else {
                errors.push(template_error("a value is a JSON object with valueName and valueExpression"));
                continue;
            };
            let name = property(v, "valueName").and_then(Value::as_str).map(str::to_owned);
            let expression = property(v, "valueExpression").and_then(Value::as_str);
            // Json.NET coerces "true" to true.
            let required = match property(v, "required") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
                Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
                Some(other) => {
                    errors.push(template_error(format!("required must be true or false, not {other}")));
                    false
                }
            };
            match (name, expression) {
                (Some(name), Some(expression)) => match compile(expression) {
                    Ok(path) => values.push(ValueExpression { name, path, required }),
                    Err(e) => errors.push(template_error(e.to_string())),
                },
                (None, _) => errors.push(template_error("Required property 'ValueName' not found in JSON. ")),
                (_, None) => errors.push(template_error("Required property 'ValueExpression' not found in JSON. ")),
            }
        }
        match (type_name, type_match, device_id, errors.is_empty()) {
            (Some(type_name), Some(type_match), Some(device_id), true) => {
                Ok(Self { type_name, type_match, device_id, timestamps, patient_id, encounter_id, correlation_id, values })
            }
            _ => Err(errors),
        }
    }

    fn measurement(&self, matched: &Value) -> Result<Measurement, NormalizationError> {
        let device_id = required_text(&self.device_id, matched, "DeviceIdExpression")?;
        let occurrence = self.timestamp(matched)?;
        let correlation_id = self.correlation_id.as_ref().map(|p| required_text(p, matched, "CorrelationIdExpression")).transpose()?;
        let optional = |p: &Option<JsonPath>, name: &str| p.as_ref().map(|p| optional_text(p, matched, name)).transpose().map(Option::flatten);
        let patient_id = optional(&self.patient_id, "PatientIdExpression")?;
        let encounter_id = optional(&self.encounter_id, "EncounterIdExpression")?;
        let mut properties = Vec::new();
        for v in &self.values {
            let value = if v.required { Some(required_text(&v.path, matched, &v.name)?) } else { optional_text(&v.path, matched, &v.name)? };
            properties.extend(value.map(|value| MeasurementProperty { name: v.name.clone(), value }));
        }
        Ok(Measurement {
            type_name: self.type_name.clone(),
            occurrence_time_utc: occurrence,
            ingestion_time_utc: None,
            device_id,
            patient_id,
            encounter_id,
            correlation_id,
            properties,
        })
    }

    /// The first timestamp expression that gives a time, as Json.NET writes a UTC date.
    fn timestamp(&self, matched: &Value) -> Result<String, NormalizationError> {
        for path in &self.timestamps {
            match single(path, matched)? {
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    return iso_date_time(s).map(json_net_utc).ok_or_else(|| NormalizationError::NotATime("TimestampExpression".into()));
                }
                Some(Value::Null) | None => continue,
                Some(Value::String(_)) => continue,
                Some(_) => return Err(NormalizationError::NotATime("TimestampExpression".into())),
            }
        }
        Err(NormalizationError::MissingRequired("TimestampExpression".into()))
    }
}

/// At most one token, as the connector's `SelectToken`.
fn single<'a>(path: &JsonPath, token: &'a Value) -> Result<Option<&'a Value>, NormalizationError> {
    let found = path.select(token);
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(NormalizationError::MultipleTokens(path.to_string())),
    }
}

fn required_text(path: &JsonPath, token: &Value, name: &str) -> Result<String, NormalizationError> {
    match single(path, token)? {
        None => Err(NormalizationError::MissingRequired(name.to_owned())),
        Some(v) => match dotnet_text(v) {
            Some(text) if !text.trim().is_empty() => Ok(text),
            Some(_) => Err(NormalizationError::EmptyRequired(name.to_owned())),
            None if v.is_null() => Err(NormalizationError::EmptyRequired(name.to_owned())),
            None => Err(NormalizationError::MissingRequired(name.to_owned())),
        },
    }
}

fn optional_text(path: &JsonPath, token: &Value, _name: &str) -> Result<Option<String>, NormalizationError> {
    Ok(single(path, token)?.and_then(dotnet_text))
}

/// A UTC instant as Json.NET writes dates: ISO 8601, up to seven fraction digits, trailing
/// zeros dropped, `Z`.
pub fn json_net_utc(at: chrono::DateTime<chrono::Utc>) -> String {
    let ticks = at.timestamp_subsec_nanos() / 100;
    let base = at.format("%Y-%m-%dT%H:%M:%S").to_string();
    if ticks == 0 {
        format!("{base}Z")
    } else {
        let fraction = format!("{ticks:07}");
        format!("{base}.{}Z", fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conformance(name: &str) -> Value {
        let dir = crate::platform::testing::reference_dir("conformance/iomt-fhir");
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str(super::super::templates::without_bom(&text)).unwrap()
    }

    #[test]
    fn the_iot_hub_conformance_case_normalizes_as_expected() {
        let expected = conformance("expected.json");
        let case = expected["normalization_cases"].as_array().unwrap().iter().find(|c| c["id"] == "iothub_single_value").unwrap();
        let mapping = DeviceMapping::from_json(&case["template_inline"]).unwrap();
        let measurements = mapping.normalize(&conformance(case["payload"].as_str().unwrap())).unwrap();
        let want = &case["expected"][0];
        assert_eq!(measurements.len(), 1);
        let m = &measurements[0];
        assert_eq!((m.type_name.as_str(), m.device_id.as_str()), (want["Type"].as_str().unwrap(), want["DeviceId"].as_str().unwrap()));
        let exact = want["ts_exact"].as_str().unwrap().split(' ').next().unwrap();
        assert_eq!(m.occurrence_time_utc, exact, "Properties.iothub-creation-time-utc, to the tick");
        let props: Vec<[&str; 2]> = m.properties.iter().map(|p| [p.name.as_str(), p.value.as_str()]).collect();
        let want_props: Vec<[&str; 2]> =
            want["Properties"].as_array().unwrap().iter().map(|p| [p[0].as_str().unwrap(), p[1].as_str().unwrap()]).collect();
        assert_eq!(props, want_props);
    }

    #[test]
    fn the_basic_sample_mapping_makes_one_measurement_per_match() {
        let mapping = DeviceMapping::from_json(&conformance("devicecontent.json")).unwrap();
        let message = super::super::measurement::wrap(json!([
            {"heartrate": "78", "deviceid": "d1", "patientid": "p1", "measurementdatetime": "2019-02-01T22:46:01.875Z"},
            {"steps": 120, "deviceid": "d1", "measurementdatetime": "2019-02-01T22:47:01Z"},
        ]));
        let ms = mapping.normalize(&message).unwrap();
        let kinds: Vec<(&str, &str, Option<&str>)> = ms.iter().map(|m| (m.type_name.as_str(), m.occurrence_time_utc.as_str(), m.patient_id.as_deref())).collect();
        assert_eq!(kinds, [("heartrate", "2019-02-01T22:46:01.875Z", Some("p1")), ("steps", "2019-02-01T22:47:01Z", None)]);
        assert_eq!(ms[1].properties, [MeasurementProperty { name: "steps".into(), value: "120".into() }]);
    }

    #[test]
    fn required_and_optional_values_and_bad_templates() {
        let mapping = DeviceMapping::from_json(&json!({"templateType": "CollectionContent", "template": [{"templateType": "JsonPathContent", "template": {
            "typeName": "hr", "typeMatchExpression": "$..[?(@hr)]", "deviceIdExpression": "$.d", "timestampExpression": "$.t",
            "values": [{"valueName": "hr", "valueExpression": "$.hr", "required": "true"}, {"valueName": "note", "valueExpression": "$.note"}]}}]}))
        .unwrap();
        let run = |body: Value| mapping.normalize(&super::super::measurement::wrap(body));
        let kept = run(json!({"hr": 70, "d": "x", "t": "2020-01-01T00:00:00Z", "note": " "})).unwrap();
        assert_eq!(kept[0].properties.len(), 2, "a blank optional value is kept");
        let left_out = run(json!({"hr": 70, "d": "x", "t": "2020-01-01T00:00:00Z", "note": null})).unwrap();
        assert_eq!(left_out[0].properties.len(), 1, "a null optional value is left out");
        assert_eq!(run(json!({"hr": null, "d": "x", "t": "2020-01-01T00:00:00Z"})).unwrap_err(), NormalizationError::EmptyRequired("hr".into()));
        assert_eq!(run(json!({"hr": 70, "t": "2020-01-01T00:00:00Z"})).unwrap_err(), NormalizationError::MissingRequired("DeviceIdExpression".into()));
        assert_eq!(run(json!({"hr": 70, "d": "x"})).unwrap_err(), NormalizationError::MissingRequired("TimestampExpression".into()));
        assert!(run(json!({"nothing": 1})).unwrap().is_empty(), "no match, no measurement, no error");
        let twice = DeviceMapping::from_json(&json!({"templateType": "CollectionContent", "template": [{"templateType": "JsonPathContent", "template": {
            "typeName": "hr", "typeMatchExpression": "$", "deviceIdExpression": "$..d", "timestampExpression": "$.t"}}]}))
        .unwrap();
        let two_ids = twice.normalize(&json!({"d": "x", "Body": {"d": "y"}, "t": "2020-01-01T00:00:00Z"})).unwrap_err();
        assert_eq!(two_ids, NormalizationError::MultipleTokens("$..d".into()));

        let errors = DeviceMapping::from_json(&json!({"templateType": "CollectionContent", "template": [
            {"templateType": "JsonPathContent", "template": {"typeMatchExpression": "$..[?(@hr)]", "bogus": 1}},
            {"templateType": "NoSuchContent", "template": {}},
        ]}))
        .unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert!(messages.contains(&"Could not find member 'bogus' on object of type 'JsonPathContentTemplate'. "), "{messages:?}");
        assert!(messages.contains(&"Required property 'TypeName' not found in JSON. "), "{messages:?}");
        assert!(messages.contains(&"Required property 'DeviceIdExpression' not found in JSON. "), "{messages:?}");
        assert!(messages.contains(&"No match found for template type NoSuchContent."), "{messages:?}");
    }
}
