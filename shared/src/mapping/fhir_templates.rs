//! FHIR-mapping templates: a `CollectionFhir` of `CodeValueFhir` templates, one per measurement
//! type, as the connector loads them (`CollectionFhirTemplateFactory`,
//! `CodeValueFhirTemplateFactory`, `FhirLookupTemplate`):
//!
//! - `typeName` and `codes` are required; unknown members of the template, its codes,
//!   categories and components are errors; members inside `value` that a value type does not
//!   have are ignored (the connector reads those with a lenient reader);
//! - `valueType` (`Quantity`, `SampledData`, `String`, `CodeableConcept`) is matched ignoring
//!   case; `periodInterval` is 0 (absent), 60, 1440 or -1 (by correlation id), or their names;
//! - type names are unique ignoring case, and looked up ignoring case.

use serde_json::{Map, Value};

use crate::fhir::Decimal;

use super::locate::segment;
use super::templates::{collection, error_at, load, member, property, Envelope, FhirKind, TemplateError};

/// How measurements are gathered into one Observation (`ObservationPeriodInterval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodInterval {
    /// One Observation per measurement time.
    Single,
    /// One per UTC hour.
    Hourly,
    /// One per UTC day.
    Daily,
    /// One per correlation id.
    CorrelationId,
}

impl PeriodInterval {
    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Number(n) => match n.as_i64()? {
                0 => Some(Self::Single),
                60 => Some(Self::Hourly),
                1440 => Some(Self::Daily),
                -1 => Some(Self::CorrelationId),
                _ => None,
            },
            // Json.NET also takes the enum's names, and numbers as text.
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "single" | "0" => Some(Self::Single),
                "hourly" | "60" => Some(Self::Hourly),
                "daily" | "1440" => Some(Self::Daily),
                "correlationid" | "-1" => Some(Self::CorrelationId),
                _ => None,
            },
            Value::Null => Some(Self::Single),
            _ => None,
        }
    }
}

/// A coding a template gives (`FhirCode`): every part optional.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateCode {
    pub code: Option<String>,
    pub system: Option<String>,
    pub display: Option<String>,
}

/// A category a template gives (`FhirCodeableConcept`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TemplateConcept {
    pub text: Option<String>,
    pub codes: Vec<TemplateCode>,
}

/// The value an Observation (or a component) gets from the measurements' property `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueTemplate {
    /// The measurement property the value comes from (`valueName`).
    pub name: String,
    pub kind: ValueKind,
}

/// `valueType` and what it carries.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    Quantity { unit: Option<String>, system: Option<String>, code: Option<String> },
    /// `defaultPeriod`: milliseconds between samples; the connector fails at conversion time
    /// when it is missing, and so does this.
    SampledData { default_period: Option<Decimal>, unit: Option<String> },
    String,
    /// The value is the template's concept; the measurement's value only says it happened.
    CodeableConcept { concept: TemplateConcept },
}

/// An Observation component: its codes and value.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentTemplate {
    pub codes: Vec<TemplateCode>,
    pub value: ValueTemplate,
}

/// A `CodeValueFhir` template: the Observation a measurement type becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct CodeValueTemplate {
    pub type_name: String,
    pub period_interval: PeriodInterval,
    pub codes: Vec<TemplateCode>,
    pub category: Vec<TemplateConcept>,
    pub value: Option<ValueTemplate>,
    pub components: Vec<ComponentTemplate>,
}

/// A FHIR mapping: the templates of a `CollectionFhir`, by type name.
#[derive(Debug, Clone, Default)]
pub struct FhirMapping {
    templates: Vec<CodeValueTemplate>,
}

impl FhirMapping {
    /// A FHIR mapping from the text of its file: every problem, each with line and column.
    pub fn parse(text: &str) -> Result<Self, Vec<TemplateError>> {
        load(text, Self::from_json)
    }

    /// A FHIR mapping from its JSON: every problem of every template, or the mapping.
    pub fn from_json(value: &Value) -> Result<Self, Vec<TemplateError>> {
        let items = collection(value, "CollectionFhirTemplate", |t| FhirKind::named(t) == Some(FhirKind::Collection))?;
        let mut templates: Vec<CodeValueTemplate> = Vec::new();
        let mut errors = Vec::new();
        for (at, item) in items {
            match code_value_template(item, &at) {
                Ok(t) if templates.iter().any(|known| known.type_name.eq_ignore_ascii_case(&t.type_name)) => {
                    errors.push(error_at(at, format!("Duplicate template defined for type name: '{}'", t.type_name)));
                }
                Ok(t) => templates.push(t),
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() { Ok(Self { templates }) } else { Err(errors) }
    }

    /// The template for a measurement type, ignoring case.
    pub fn template(&self, type_name: &str) -> Option<&CodeValueTemplate> {
        self.templates.iter().find(|t| t.type_name.eq_ignore_ascii_case(type_name))
    }

    pub fn templates(&self) -> &[CodeValueTemplate] {
        &self.templates
    }
}

fn code_value_template(item: &Value, at: &str) -> Result<CodeValueTemplate, Vec<TemplateError>> {
    let envelope = Envelope::of(item).ok_or_else(|| vec![error_at(at, "A template is a JSON object with templateType and template.")])?;
    if envelope.template_type.and_then(FhirKind::named) != Some(FhirKind::CodeValue) {
        return Err(vec![error_at(format!("{at}/templateType"), format!("No match found for template type {}.", envelope.template_type.unwrap_or("")))]);
    }
    let at = format!("{at}/{}", envelope.template_key);
    let Some(Value::Object(body)) = envelope.template else {
        return Err(vec![error_at(at, "Expected an object for the template property value for template type CodeValueFhirTemplate.")]);
    };
    let mut errors = Vec::new();
    let o = Object { body, at: &at, class: "CodeValueFhirTemplate" };
    o.only(&["typeName", "periodInterval", "codes", "category", "value", "components"], &mut errors);
    let type_name = match property(body, "typeName") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(s)) => {
            errors.push(error_at(o.member_at("typeName"), format!("Empty type name is not allowed: '{s}'")));
            None
        }
        _ => {
            errors.push(error_at(o.member_at("typeName"), "Required property 'TypeName' not found in JSON. "));
            None
        }
    };
    let period_interval = match property(body, "periodInterval") {
        None => PeriodInterval::Single,
        Some(v) => PeriodInterval::from_json(v).unwrap_or_else(|| {
            errors.push(error_at(o.member_at("periodInterval"), format!("ObservationPeriodInterval {v} is not supported (0, 60, 1440 or -1).")));
            PeriodInterval::Single
        }),
    };
    let codes = match property(body, "codes") {
        None | Some(Value::Null) => {
            errors.push(error_at(o.member_at("codes"), "Required property 'Codes' not found in JSON. "));
            Vec::new()
        }
        Some(v) => read_codes(v, &o.member_at("codes"), &mut errors),
    };
    let category = list(property(body, "category"), &o.member_at("category"), &mut errors, |v, at, errors| {
        let c = object(v, at, "FhirCodeableConcept", errors)?;
        c.only(&["text", "codes"], errors);
        Some(TemplateConcept { text: c.text("text", errors), codes: property(c.body, "codes").map(|v| read_codes(v, &c.member_at("codes"), errors)).unwrap_or_default() })
    });
    let value = match property(body, "value") {
        None | Some(Value::Null) => None,
        Some(v) => value_template(v, &o.member_at("value"), &mut errors),
    };
    let components = list(property(body, "components"), &o.member_at("components"), &mut errors, |v, at, errors| {
        let c = object(v, at, "CodeValueMapping", errors)?;
        c.only(&["codes", "value"], errors);
        let codes = match property(c.body, "codes") {
            None | Some(Value::Null) => {
                errors.push(error_at(c.member_at("codes"), "Required property 'Codes' not found in JSON. "));
                Vec::new()
            }
            Some(v) => read_codes(v, &c.member_at("codes"), errors),
        };
        match property(c.body, "value") {
            None | Some(Value::Null) => {
                errors.push(error_at(c.member_at("value"), "A component needs a value (valueName and valueType)."));
                None
            }
            Some(v) => value_template(v, &c.member_at("value"), errors).map(|value| ComponentTemplate { codes, value }),
        }
    });
    match (type_name, errors.is_empty()) {
        (Some(type_name), true) => Ok(CodeValueTemplate { type_name, period_interval, codes, category, value, components }),
        _ => Err(errors),
    }
}

/// A template object being read: its members, where it is, and its class in the connector
/// (named in errors).
struct Object<'a> {
    body: &'a Map<String, Value>,
    at: &'a str,
    class: &'static str,
}

impl Object<'_> {
    fn member_at(&self, name: &str) -> String {
        format!("{}/{}", self.at, segment(member(self.body, name).map_or(name, |(k, _)| k.as_str())))
    }

    /// Unknown members are errors (Json.NET's `MissingMemberHandling.Error`).
    fn only(&self, members: &[&str], errors: &mut Vec<TemplateError>) {
        for key in self.body.keys() {
            if !members.iter().any(|m| m.eq_ignore_ascii_case(key)) {
                errors.push(error_at(format!("{}/{}", self.at, segment(key)), format!("Could not find member '{key}' on object of type '{}'. ", self.class)));
            }
        }
    }

    /// An optional string member; an empty one is absent (FHIR has no empty strings, and
    /// templates use `""` for "none", e.g. a unitless SampledData).
    fn text(&self, name: &str, errors: &mut Vec<TemplateError>) -> Option<String> {
        match property(self.body, name)? {
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            // Json.NET reads scalars into string members as their text.
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_owned()),
            other => {
                errors.push(error_at(self.member_at(name), format!("Unexpected {} for '{name}': expected a string.", kind_of(other))));
                None
            }
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "value",
    }
}

fn object<'a>(v: &'a Value, at: &'a str, class: &'static str, errors: &mut Vec<TemplateError>) -> Option<Object<'a>> {
    match v {
        Value::Object(body) => Some(Object { body, at, class }),
        other => {
            errors.push(error_at(at, format!("Unexpected {} for {class}: expected an object.", kind_of(other))));
            None
        }
    }
}

fn list<T>(v: Option<&Value>, at: &str, errors: &mut Vec<TemplateError>, item: impl Fn(&Value, &str, &mut Vec<TemplateError>) -> Option<T>) -> Vec<T> {
    match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().enumerate().filter_map(|(i, v)| item(v, &format!("{at}/{i}"), errors)).collect(),
        Some(other) => {
            errors.push(error_at(at, format!("Unexpected {} : expected an array.", kind_of(other))));
            Vec::new()
        }
    }
}

fn read_codes(v: &Value, at: &str, errors: &mut Vec<TemplateError>) -> Vec<TemplateCode> {
    list(Some(v), at, errors, |v, at, errors| {
        let c = object(v, at, "FhirCode", errors)?;
        c.only(&["code", "system", "display"], errors);
        Some(TemplateCode { code: c.text("code", errors), system: c.text("system", errors), display: c.text("display", errors) })
    })
}

/// A `value`: `valueType` picks the kind (ignoring case); members a kind lacks are ignored.
fn value_template(v: &Value, at: &str, errors: &mut Vec<TemplateError>) -> Option<ValueTemplate> {
    let o = object(v, at, "FhirValueType", errors)?;
    let name = o.text("valueName", errors);
    let kind = match property(o.body, "valueType").and_then(Value::as_str) {
        None => {
            errors.push(error_at(o.member_at("valueType"), "Property ValueType is missing."));
            return None;
        }
        Some(t) => match t.trim().to_ascii_lowercase().as_str() {
            "quantity" => ValueKind::Quantity { unit: o.text("unit", errors), system: o.text("system", errors), code: o.text("code", errors) },
            "sampleddata" => {
                let default_period = match property(o.body, "defaultPeriod") {
                    None | Some(Value::Null) => None,
                    Some(p) => {
                        let text = match p {
                            Value::String(s) => s.trim().to_owned(),
                            other => other.to_string(),
                        };
                        match Decimal::parse(&text) {
                            Ok(d) if d.as_f64() > 0.0 => Some(d),
                            _ => {
                                errors.push(error_at(o.member_at("defaultPeriod"), format!("defaultPeriod must be a positive number of milliseconds, not {p}.")));
                                None
                            }
                        }
                    }
                };
                ValueKind::SampledData { default_period, unit: o.text("unit", errors) }
            }
            "string" => ValueKind::String,
            "codeableconcept" => {
                let codes = property(o.body, "codes").map(|v| read_codes(v, &o.member_at("codes"), errors)).unwrap_or_default();
                ValueKind::CodeableConcept { concept: TemplateConcept { text: o.text("text", errors), codes } }
            }
            _ => {
                errors.push(error_at(o.member_at("valueType"), format!("The value type {t} is not supported (Quantity, SampledData, String or CodeableConcept).")));
                return None;
            }
        },
    };
    match name {
        Some(name) if !name.trim().is_empty() => Some(ValueTemplate { name, kind }),
        _ => {
            errors.push(error_at(o.member_at("valueName"), "A value needs a valueName: the measurement property it comes from."));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conformance(name: &str) -> String {
        let dir = crate::platform::reference_dir("conformance/iomt-fhir");
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn the_conformance_fhir_mappings_load() {
        let sample = FhirMapping::parse(&conformance("fhirmapping.json")).unwrap();
        let hr = sample.template("HEARTRATE").expect("type names are looked up ignoring case");
        assert_eq!(hr.period_interval, PeriodInterval::Hourly);
        assert!(matches!(&hr.value, Some(ValueTemplate { name, kind: ValueKind::SampledData { default_period: Some(p), .. } }) if name == "hr" && p.as_str() == "1000"));
        let hrv = sample.template("hrv").unwrap();
        assert!(matches!(&hrv.value, Some(ValueTemplate { kind: ValueKind::SampledData { unit: None, .. }, .. })), "an empty unit is no unit");
        let bp = FhirMapping::parse(&conformance("data_CodeValueFhirTemplate_Quantity.json"));
        // That file is a single CodeValueFhir template, not a collection.
        assert!(bp.is_err());
        let wrapped = json!({"templateType": "CollectionFhir", "template": [serde_json::from_str::<Value>(super::super::templates::without_bom(&conformance("data_CodeValueFhirTemplate_Quantity.json"))).unwrap()]});
        let bp = FhirMapping::from_json(&wrapped).unwrap();
        let t = bp.template("bloodpressure").unwrap();
        assert_eq!(t.components.len(), 2);
        assert_eq!(
            t.components[0].value.kind,
            ValueKind::Quantity { unit: Some("mmHg".into()), system: Some("http://unitsofmeasure.org".into()), code: Some("mm[Hg]".into()) },
            "valueType matched ignoring case"
        );
        FhirMapping::parse(&conformance("data_CollectionFhirTemplateValid.json")).unwrap();
    }

    #[test]
    fn every_problem_of_a_fhir_mapping_is_reported_with_its_place() {
        let text = r#"{
  "templateType": "CollectionFhir",
  "template": [
    {"templateType": "CodeValueFhir", "template": {"codes": [{"code": "8867-4", "bogus": 1}], "periodInterval": 30}},
    {"templateType": "CodeValueFhir", "template": {"typeName": "hr", "codes": []}},
    {"templateType": "CodeValueFhir", "template": {"typeName": "HR", "codes": []}},
    {"templateType": "CodeValueFhir", "template": {"typeName": "x", "value": {"valueName": "v", "valueType": "Ratio"}}},
    {"templateType": "Nope", "template": {}}
  ]
}"#;
        let errors = FhirMapping::parse(text).unwrap_err();
        let found: Vec<String> = errors.iter().map(ToString::to_string).collect();
        for want in [
            "line 4, column 39: Required property 'TypeName' not found in JSON.",
            "line 4, column 81: Could not find member 'bogus' on object of type 'FhirCode'.",
            "line 4, column 95: ObservationPeriodInterval 30 is not supported (0, 60, 1440 or -1).",
            "line 6, column 5: Duplicate template defined for type name: 'HR'",
            "line 7, column 39: Required property 'Codes' not found in JSON.",
            "line 7, column 97: The value type Ratio is not supported (Quantity, SampledData, String or CodeableConcept).",
            "line 8, column 6: No match found for template type Nope.",
        ] {
            assert!(found.iter().any(|f| f == want), "{want}\nnot in {found:#?}");
        }
        assert_eq!(found.len(), 7, "{found:#?}");
    }
}
