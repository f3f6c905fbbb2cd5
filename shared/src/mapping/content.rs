//! Device-mapping templates (`JsonPathContent`, `IotJsonPathContent`,
//! `IotCentralJsonPathContent`, `CalculatedContent`) inside a `CollectionContent`, and
//! normalization with them, as the connector's extractors do it:
//!
//! - every template of the collection runs on every message, in order; each match of its
//!   `typeMatchExpression` is one measurement; for the JSONPath kinds the match becomes `$` for
//!   the other expressions (no way up to the message); for `CalculatedContent` they see the
//!   message with the match added as `matchedToken`, in JSONPath or JMESPath
//!   (`defaultExpressionLanguage`, or `{"value", "language"}` per expression);
//! - device id and timestamp are required (IoT Hub: `SystemProperties.iothub-connection-device-id`,
//!   `Properties.iothub-creation-time-utc` else `SystemProperties.iothub-enqueuedtime`; IoT
//!   Central: `deviceId`, `enqueuedTime`), and so is a correlation id when its expression is set;
//!   patient and encounter ids are optional;
//! - a required value that is missing, null or blank fails the message; a missing or null
//!   optional one is left out; a blank optional one is kept; an expression that selects more
//!   than one token fails the message.

use serde_json::{Map, Value};

use super::jsonpath::{compile, JsonPath};
use super::jmespath::runtime;
use super::measurement::{Measurement, MeasurementProperty};
use super::locate::segment;
use super::templates::{collection, error_at, load, member, property, ContentKind, Envelope, TemplateError};
use super::values::{dotnet_text, iso_date_time};

/// A device mapping: the templates of a `CollectionContent`, in order.
#[derive(Debug, Clone)]
pub struct DeviceMapping {
    templates: Vec<ContentTemplate>,
}

#[derive(Debug, Clone)]
struct ContentTemplate {
    /// `CalculatedContent`: expressions see the message with `matchedToken` added; the
    /// JSONPath kinds: the match is `$`.
    calculated: bool,
    type_name: String,
    type_match: Expression,
    device_id: Expression,
    /// Tried in order: the first that gives a time.
    timestamps: Vec<Expression>,
    patient_id: Option<Expression>,
    encounter_id: Option<Expression>,
    correlation_id: Option<Expression>,
    values: Vec<ValueExpression>,
}

#[derive(Debug, Clone)]
struct ValueExpression {
    name: String,
    path: Expression,
    required: bool,
}

/// A template expression: JSONPath (Json.NET's dialect) or JMESPath.
#[derive(Clone)]
enum Expression {
    JsonPath(JsonPath),
    JmesPath(jmespath::Expression<'static>),
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl std::fmt::Display for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expression::JsonPath(p) => write!(f, "{p}"),
            Expression::JmesPath(e) => f.write_str(e.as_str()),
        }
    }
}

impl Expression {
    fn json_path(text: &str, pointer: &str) -> Result<Self, TemplateError> {
        compile(text).map(Expression::JsonPath).map_err(|e| error_at(pointer, e.to_string()))
    }

    fn jmes_path(text: &str, pointer: &str) -> Result<Self, TemplateError> {
        runtime().compile(text).map(Expression::JmesPath).map_err(|e| {
            error_at(pointer, format!("The following JmesPath expression could not be parsed: {text}. Cause: {e}"))
        })
    }

    /// Every token (SelectTokens): a JMESPath projection gives each element.
    fn select(&self, token: &Value) -> Result<Vec<Value>, NormalizationError> {
        match self {
            Expression::JsonPath(p) => Ok(p.select(token).into_iter().cloned().collect()),
            Expression::JmesPath(e) => {
                let result = jmes_search(e, token)?;
                Ok(match result {
                    Value::Null => Vec::new(),
                    Value::Array(items) if is_projection(e) => items,
                    other => vec![other],
                })
            }
        }
    }

    /// At most one token (SelectToken).
    fn select_one(&self, token: &Value) -> Result<Option<Value>, NormalizationError> {
        match self {
            Expression::JsonPath(p) => single(p, token).map(|v| v.cloned()),
            Expression::JmesPath(e) => match jmes_search(e, token)? {
                Value::Null => Ok(None),
                Value::Array(items) if is_projection(e) => match items.len() {
                    0 => Ok(None),
                    1 => Ok(items.into_iter().next().filter(|v| !v.is_null())),
                    _ => Err(NormalizationError::MultipleTokens(e.as_str().to_owned())),
                },
                other => Ok(Some(other)),
            },
        }
    }
}

fn jmes_search(e: &jmespath::Expression<'static>, token: &Value) -> Result<Value, NormalizationError> {
    let data = jmespath::Variable::from_serializable(token).map_err(|err| NormalizationError::Expression(e.as_str().to_owned(), err.to_string()))?;
    let out = e.search(data).map_err(|err| NormalizationError::Expression(e.as_str().to_owned(), err.to_string()))?;
    serde_json::to_value(&*out).map_err(|err| NormalizationError::Expression(e.as_str().to_owned(), err.to_string()))
}

/// Whether a JMESPath result is a projection (JmesPath.Net yields its elements one by one).
fn is_projection(e: &jmespath::Expression<'static>) -> bool {
    matches!(e.as_ast(), jmespath::ast::Ast::Projection { .. } | jmespath::ast::Ast::Flatten { .. } | jmespath::ast::Ast::ObjectValues { .. })
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
    #[error("the expression {0} failed: {1}")]
    Expression(String, String),
}

impl DeviceMapping {
    /// A device mapping from the text of its file: every problem of every template, each with
    /// its line and column, or the mapping.
    pub fn parse(text: &str) -> Result<Self, Vec<TemplateError>> {
        load(text, Self::from_json)
    }

    /// A device mapping from its JSON: every problem of every template, or the mapping.
    pub fn from_json(value: &Value) -> Result<Self, Vec<TemplateError>> {
        let items = collection(value, "CollectionContentTemplate", |t| ContentKind::named(t) == Some(ContentKind::Collection))?;
        let mut templates = Vec::new();
        let mut errors = Vec::new();
        for (at, item) in items {
            match ContentTemplate::from_json(item, &at) {
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
            for matched in template.type_match.select(message)? {
                let scope = if template.calculated {
                    // The message with the match added as `matchedToken` (replacing any).
                    let mut scope = message.clone();
                    if let Some(o) = scope.as_object_mut() {
                        o.insert("matchedToken".into(), matched);
                    }
                    scope
                } else {
                    matched
                };
                out.push(template.measurement(&scope)?);
            }
        }
        Ok(out)
    }
}

/// How one template of a mapping saw one message (the debugger's diagnostics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateTrace {
    /// The template's place in the collection, from 0.
    pub index: usize,
    pub type_name: String,
    /// The template's `typeMatchExpression`.
    pub type_match: String,
    /// How many tokens it matched (each is one measurement), or why it could not be evaluated.
    pub matches: Result<usize, NormalizationError>,
}

impl DeviceMapping {
    /// Which templates matched a message, and how often: what an operator needs when a
    /// message makes no measurement.
    pub fn trace(&self, message: &Value) -> Vec<TemplateTrace> {
        self.templates
            .iter()
            .enumerate()
            .map(|(index, t)| TemplateTrace {
                index,
                type_name: t.type_name.clone(),
                type_match: t.type_match.to_string(),
                matches: t.type_match.select(message).map(|found| found.len()),
            })
            .collect()
    }

    /// Each template's type name and value names, in order (for checking a FHIR mapping
    /// against the device mapping).
    pub fn value_names(&self) -> Vec<(&str, Vec<&str>)> {
        self.templates.iter().map(|t| (t.type_name.as_str(), t.values.iter().map(|v| v.name.as_str()).collect())).collect()
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }
}

impl ContentTemplate {
    fn from_json(item: &Value, at: &str) -> Result<Self, Vec<TemplateError>> {
        let envelope = Envelope::of(item).ok_or_else(|| vec![error_at(at, "A template is a JSON object with templateType and template.")])?;
        let kind = match envelope.template_type.and_then(ContentKind::named) {
            Some(k @ (ContentKind::JsonPath | ContentKind::IotJsonPath | ContentKind::IotCentralJsonPath | ContentKind::Calculated)) => k,
            _ => {
                return Err(vec![error_at(format!("{at}/templateType"), format!("No match found for template type {}.", envelope.template_type.unwrap_or("")))]);
            }
        };
        let at = format!("{at}/{}", envelope.template_key);
        let Some(Value::Object(body)) = envelope.template else {
            return Err(vec![error_at(at, format!("Expected an object for the template property value for template type {}.", kind.connector_name()))]);
        };
        Self::from_body(kind, body, &at)
    }

    /// `at`: the JSON pointer of the template's body, for error positions.
    fn from_body(kind: ContentKind, body: &Map<String, Value>, at: &str) -> Result<Self, Vec<TemplateError>> {
        // Where a member is (as the file spells it), or where it would be.
        let member_at = |name: &str| format!("{at}/{}", segment(member(body, name).map_or(name, |(k, _)| k.as_str())));
        let class = kind.connector_name();
        let calculated = kind == ContentKind::Calculated;
        let mut errors = Vec::new();
        // The members of the connector's class for this kind (unknown ones are errors, as with
        // Json.NET's MissingMemberHandling.Error); IoT kinds fix the device id and time.
        let mut members = vec!["typeName", "typeMatchExpression", "patientIdExpression", "encounterIdExpression", "correlationIdExpression", "values"];
        if matches!(kind, ContentKind::JsonPath | ContentKind::Calculated) {
            members.extend(["deviceIdExpression", "timestampExpression"]);
        }
        if calculated {
            members.push("defaultExpressionLanguage");
        }
        for key in body.keys() {
            if !members.iter().any(|m| m.eq_ignore_ascii_case(key)) {
                errors.push(error_at(format!("{at}/{}", segment(key)), format!("Could not find member '{key}' on object of type '{class}'. ")));
            }
        }
        let default_jmes = match property(body, "defaultExpressionLanguage").and_then(Value::as_str) {
            None => false,
            Some(l) if l.eq_ignore_ascii_case("JsonPath") => false,
            Some(l) if l.eq_ignore_ascii_case("JmesPath") => true,
            Some(l) => {
                errors.push(error_at(member_at("defaultExpressionLanguage"), format!("Requested value '{l}' was not found (defaultExpressionLanguage: JsonPath or JmesPath).")));
                false
            }
        };
        // An expression: a string in the default language, or (CalculatedContent) an object
        // `{"value", "language"}`. A blank string is no expression.
        let expression = |value: Option<&Value>, pointer: &str, errors: &mut Vec<TemplateError>| -> Option<Expression> {
            let (text, jmes) = match value? {
                Value::String(t) => (t.trim(), default_jmes),
                Value::Object(o) if calculated => {
                    let text = property(o, "value").and_then(Value::as_str).map(str::trim).unwrap_or("");
                    let jmes = match property(o, "language").and_then(Value::as_str) {
                        None => default_jmes,
                        Some(l) => l.eq_ignore_ascii_case("JmesPath"),
                    };
                    (text, jmes)
                }
                other => {
                    errors.push(error_at(pointer, format!("An expression is a string, not {other}.")));
                    return None;
                }
            };
            if text.is_empty() {
                return None;
            }
            let compiled = if jmes { Expression::jmes_path(text, pointer) } else { Expression::json_path(text, pointer) };
            compiled.map_err(|e| errors.push(e)).ok()
        };
        let path = |name: &'static str, pascal: &str, required: bool, errors: &mut Vec<TemplateError>| {
            let found = expression(property(body, name), &member_at(name), errors);
            if found.is_none() && required && property(body, name).is_none_or(|v| v.as_str().is_some_and(|t| t.trim().is_empty())) {
                errors.push(error_at(member_at(name), format!("Required property '{pascal}' not found in JSON. ")));
            }
            found
        };
        let type_name = property(body, "typeName").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
        if type_name.is_none() {
            errors.push(error_at(member_at("typeName"), "Required property 'TypeName' not found in JSON. "));
        }
        let type_match = path("typeMatchExpression", "TypeMatchExpression", true, &mut errors);
        let fixed = |p: &str| Expression::json_path(p, at).map_err(|e| vec![e]);
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
        let values_at = member_at("values");
        for (i, v) in property(body, "values").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let value_at = format!("{values_at}/{i}");
            let Some(v) = v.as_object() else {
                errors.push(error_at(value_at, "A value is a JSON object with valueName and valueExpression."));
                continue;
            };
            let value_member_at = |name: &str| format!("{value_at}/{}", segment(member(v, name).map_or(name, |(k, _)| k.as_str())));
            let name = property(v, "valueName").and_then(Value::as_str).map(str::to_owned);
            // Json.NET coerces "true" to true.
            let required = match property(v, "required") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
                Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
                Some(other) => {
                    errors.push(error_at(value_member_at("required"), format!("Could not convert {other} to a boolean (required: true or false).")));
                    false
                }
            };
            let value_expression = property(v, "valueExpression");
            match (name, value_expression.is_some()) {
                (Some(name), true) => {
                    if let Some(path) = expression(value_expression, &value_member_at("valueExpression"), &mut errors) {
                        values.push(ValueExpression { name, path, required });
                    }
                }
                (None, _) => errors.push(error_at(value_member_at("valueName"), "Required property 'ValueName' not found in JSON. ")),
                (_, false) => errors.push(error_at(value_member_at("valueExpression"), "Required property 'ValueExpression' not found in JSON. ")),
            }
        }
        match (type_name, type_match, device_id, errors.is_empty()) {
            (Some(type_name), Some(type_match), Some(device_id), true) => {
                Ok(Self { calculated, type_name, type_match, device_id, timestamps, patient_id, encounter_id, correlation_id, values })
            }
            _ => Err(errors),
        }
    }

    fn measurement(&self, matched: &Value) -> Result<Measurement, NormalizationError> {
        let device_id = required_text(&self.device_id, matched, "DeviceIdExpression")?;
        let occurrence = self.timestamp(matched)?;
        let correlation_id = self.correlation_id.as_ref().map(|p| required_text(p, matched, "CorrelationIdExpression")).transpose()?;
        let optional = |p: &Option<Expression>, name: &str| p.as_ref().map(|p| optional_text(p, matched, name)).transpose().map(Option::flatten);
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
            match path.select_one(matched)?.as_ref() {
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

fn required_text(path: &Expression, token: &Value, name: &str) -> Result<String, NormalizationError> {
    match path.select_one(token)?.as_ref() {
        None => Err(NormalizationError::MissingRequired(name.to_owned())),
        Some(v) => match dotnet_text(v) {
            Some(text) if !text.trim().is_empty() => Ok(text),
            Some(_) => Err(NormalizationError::EmptyRequired(name.to_owned())),
            None if v.is_null() => Err(NormalizationError::EmptyRequired(name.to_owned())),
            None => Err(NormalizationError::MissingRequired(name.to_owned())),
        },
    }
}

fn optional_text(path: &Expression, token: &Value, _name: &str) -> Result<Option<String>, NormalizationError> {
    Ok(path.select_one(token)?.as_ref().and_then(dotnet_text))
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
        let dir = crate::platform::reference_dir("conformance/iomt-fhir");
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
    fn every_normalization_conformance_case_passes() {
        let expected = conformance("expected.json");
        for case in expected["normalization_cases"].as_array().unwrap() {
            let template = match case.get("template_inline") {
                Some(inline) => inline.clone(),
                None => conformance(case["template"].as_str().unwrap()),
            };
            let mapping = DeviceMapping::from_json(&template).unwrap_or_else(|e| panic!("{}: {e:?}", case["id"]));
            let got = mapping.normalize(&conformance(case["payload"].as_str().unwrap())).unwrap();
            let want = case["expected"].as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{}", case["id"]);
            for (m, w) in got.iter().zip(want) {
                assert_eq!(m.device_id, w["DeviceId"].as_str().unwrap(), "{}", case["id"]);
                if let Some(t) = w["Type"].as_str() {
                    assert_eq!(m.type_name, t);
                }
                match (w["ts"].as_str(), w["ts_exact"].as_str()) {
                    (Some(ts), _) => assert_eq!(&m.occurrence_time_utc[..19], ts, "{}: to the second", case["id"]),
                    (_, Some(exact)) => assert_eq!(m.occurrence_time_utc, exact.split(' ').next().unwrap()),
                    _ => panic!("{}: no time expected", case["id"]),
                }
                let props: Vec<[&str; 2]> = m.properties.iter().map(|p| [p.name.as_str(), p.value.as_str()]).collect();
                let want_props: Vec<[&str; 2]> =
                    w["Properties"].as_array().unwrap().iter().map(|p| [p[0].as_str().unwrap(), p[1].as_str().unwrap()]).collect();
                assert_eq!(props, want_props, "{}", case["id"]);
            }
        }
    }

    #[test]
    fn calculated_content_takes_jmespath_by_default_or_per_expression() {
        let mapping = DeviceMapping::from_json(&json!({"templateType": "CollectionContent", "template": [{"templateType": "CalculatedContent", "template": {
            "typeName": "height", "defaultExpressionLanguage": "JmesPath",
            "typeMatchExpression": "to_array(@)[?Body.inches]",
            "deviceIdExpression": "matchedToken.Body.device",
            "timestampExpression": {"value": "$.matchedToken.Body.at", "language": "JsonPath"},
            "values": [{"valueName": "m", "valueExpression": "multiply(to_number(matchedToken.Body.inches), `0.0254`)", "required": true}]}}]}))
        .unwrap();
        let ms = mapping.normalize(&super::super::measurement::wrap(json!({"inches": "78", "device": "d9", "at": "2021-07-13T17:29:01Z"}))).unwrap();
        assert_eq!(ms.len(), 1);
        assert_eq!((ms[0].device_id.as_str(), ms[0].occurrence_time_utc.as_str()), ("d9", "2021-07-13T17:29:01Z"));
        assert_eq!(ms[0].properties[0].value, "1.9811999999999999", "the connector's own doc example");
        let bad = DeviceMapping::from_json(&json!({"templateType": "CollectionContent", "template": [{"templateType": "CalculatedContent", "template": {
            "typeName": "x", "defaultExpressionLanguage": "JmesPath", "typeMatchExpression": "[?", "deviceIdExpression": "a", "timestampExpression": "b"}}]}))
        .unwrap_err();
        assert!(bad[0].message.starts_with("The following JmesPath expression could not be parsed: [?."), "{bad:?}");
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
        let trace = mapping.trace(&message);
        let seen: Vec<(&str, Result<usize, NormalizationError>)> = trace.iter().map(|t| (t.type_name.as_str(), t.matches.clone())).collect();
        assert_eq!(seen[..3], [("heartrate", Ok(1)), ("steps", Ok(1)), ("bloodpressure", Ok(0))]);
        assert_eq!(seen.len(), mapping.len(), "every template is traced");
        assert_eq!(mapping.trace(&json!({"pulse": 1}))[0].matches, Ok(0));
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

    #[test]
    fn template_errors_say_where_they_are_in_the_file() {
        let text = "\u{feff}{\r\n  \"templateType\": \"CollectionContent\",\r\n  \"template\": [\r\n    {\r\n      \"templateType\": \"JsonPathContent\",\r\n      \"template\": {\r\n        \"typeMatchExpression\": \"$..[?(@hr)]\",\r\n        \"bogus\": 1,\r\n        \"deviceIdExpression\": \"$.[\",\r\n        \"timestampExpression\": \"$.t\"\r\n      }\r\n    }\r\n  ]\r\n}";
        let errors = DeviceMapping::parse(text).unwrap_err();
        let found: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.contains(&"line 8, column 9: Could not find member 'bogus' on object of type 'JsonPathContentTemplate'.".to_owned()), "{found:?}");
        assert!(found.iter().any(|e| e.starts_with("line 9, column 9: ")), "the bad device id expression: {found:?}");
        assert!(found.contains(&"line 6, column 7: Required property 'TypeName' not found in JSON.".to_owned()), "a missing property: its template: {found:?}");
        let not_json = DeviceMapping::parse("{\n  \"templateType\": }").unwrap_err();
        assert_eq!(not_json[0].position.map(|p| p.line), Some(2), "{not_json:?}");
        assert!(not_json[0].message.starts_with("The file is not valid JSON: "), "{not_json:?}");
    }
}
