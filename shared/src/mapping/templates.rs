//! The template envelope `{"templateType": ..., "template": ...}` and the template type names.
//!
//! As the connector's `TemplateContainer.MatchTemplateName`: a type name matches the
//! connector's own name case-insensitively, as written or with `Template` appended. So
//! `CollectionContent`, `collectioncontenttemplate` and `JSONPATHCONTENT` match, but because
//! the suffix is only ever *added* to what the template says, `CalculatedContentTemplate` does
//! not match `CalculatedContent` (the connector's own name for it has no suffix).

use serde_json::Value;

use super::locate::{segment, Positions, Position};

/// The device-mapping (normalization) template types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    Collection,
    JsonPath,
    IotJsonPath,
    IotCentralJsonPath,
    Calculated,
}

/// The FHIR-mapping template types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirKind {
    Collection,
    CodeValue,
}

impl ContentKind {
    /// Every content template type, in the order the connector's factories try them.
    pub const ALL: [ContentKind; 5] =
        [ContentKind::Collection, ContentKind::JsonPath, ContentKind::IotJsonPath, ContentKind::IotCentralJsonPath, ContentKind::Calculated];

    /// The connector's own name for the type (its factories' `TemplateName`).
    pub fn connector_name(self) -> &'static str {
        match self {
            ContentKind::Collection => "CollectionContentTemplate",
            ContentKind::JsonPath => "JsonPathContentTemplate",
            ContentKind::IotJsonPath => "IotJsonPathContentTemplate",
            ContentKind::IotCentralJsonPath => "IotCentralJsonPathContent",
            ContentKind::Calculated => "CalculatedContent",
        }
    }

    /// The type a template's `templateType` names, if any.
    pub fn named(template_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| names(k.connector_name(), template_type))
    }
}

impl FhirKind {
    pub const ALL: [FhirKind; 2] = [FhirKind::Collection, FhirKind::CodeValue];

    pub fn connector_name(self) -> &'static str {
        match self {
            FhirKind::Collection => "CollectionFhirTemplate",
            FhirKind::CodeValue => "CodeValueFhirTemplate",
        }
    }

    pub fn named(template_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| names(k.connector_name(), template_type))
    }
}

/// Whether `template_type` names the type the connector calls `expected`.
fn names(expected: &str, template_type: &str) -> bool {
    expected.eq_ignore_ascii_case(template_type)
        || (expected.len() == template_type.len() + "Template".len()
            && expected[..template_type.len()].eq_ignore_ascii_case(template_type)
            && expected.ends_with("Template"))
}

/// A template as written: its `templateType` and its `template`, each looked up by a
/// case-insensitive property name (as Json.NET binds them).
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope<'a> {
    pub template_type: Option<&'a str>,
    pub template: Option<&'a Value>,
    /// The JSON pointer segment of `template` as the file spells it.
    pub template_key: String,
}

impl<'a> Envelope<'a> {
    /// The envelope of a JSON value; `None` when it is not an object.
    pub fn of(value: &'a Value) -> Option<Self> {
        let object = value.as_object()?;
        let template = member(object, "template");
        Some(Self {
            template_type: property(object, "templateType").and_then(Value::as_str),
            template: template.map(|(_, v)| v),
            template_key: segment(template.map_or("template", |(k, _)| k.as_str())),
        })
    }
}

/// An object's property by name, matched exactly first and then ignoring ASCII case, as
/// Json.NET's contract resolver does.
pub fn property<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    member(object, name).map(|(_, v)| v)
}

/// [`property`] with the name as the file spells it.
pub fn member<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<(&'a String, &'a Value)> {
    object.get_key_value(name).or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
}

/// A template problem, worded as the connector words it, with where it is: a JSON pointer
/// into the file and, once [`load`] has located it, the line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub message: String,
    pub pointer: String,
    pub position: Option<Position>,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some(at) => write!(f, "{at}: {}", self.message.trim_end()),
            None => f.write_str(self.message.trim_end()),
        }
    }
}

impl std::error::Error for TemplateError {}

/// The elements of a collection template (`CollectionContent`, `CollectionFhir`), each with
/// its JSON pointer, or why the file is not one: `is_collection` says whether a `templateType`
/// names the collection, `name` is the connector's name for it.
pub fn collection<'a>(value: &'a Value, name: &str, is_collection: impl Fn(&str) -> bool) -> Result<Vec<(String, &'a Value)>, Vec<TemplateError>> {
    let Some(envelope) = Envelope::of(value) else {
        return Err(vec![error_at("", "A mapping is a JSON object with templateType and template.")]);
    };
    if !envelope.template_type.is_some_and(is_collection) {
        return Err(vec![error_at("/templateType", format!("Expected TemplateType value {name}, actual {}.", envelope.template_type.unwrap_or("Not Found")))]);
    }
    let list = format!("/{}", envelope.template_key);
    let Some(Value::Array(items)) = envelope.template else {
        return Err(vec![error_at(list, format!("Expected an array for the template property value for template type {name}."))]);
    };
    Ok(items.iter().enumerate().map(|(i, item)| (format!("{list}/{i}"), item)).collect())
}

/// A template error at a JSON pointer.
pub fn error_at(pointer: impl Into<String>, message: impl Into<String>) -> TemplateError {
    TemplateError { message: message.into(), pointer: pointer.into(), position: None }
}

/// Builds a mapping from the text of its file (a BOM and CRLF line ends accepted): every
/// error, each with its line and column.
pub fn load<T>(text: &str, build: impl FnOnce(&Value) -> Result<T, Vec<TemplateError>>) -> Result<T, Vec<TemplateError>> {
    let text = without_bom(text);
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message);
        vec![TemplateError {
            message: format!("The file is not valid JSON: {message}."),
            pointer: String::new(),
            position: Some(Position { line: e.line(), column: e.column() }),
        }]
    })?;
    build(&value).map_err(|errors| {
        let positions = Positions::of(text);
        errors.into_iter().map(|e| TemplateError { position: positions.at(&e.pointer), ..e }).collect()
    })
}

/// The text of a template file as JSON parsers take it: without a UTF-8 byte-order mark.
/// (CRLF line ends need nothing: JSON treats them as whitespace.)
pub fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_names_match_as_the_connector_matches_them() {
        for (name, kind) in [
            ("CollectionContent", Some(ContentKind::Collection)),
            ("collectioncontenttemplate", Some(ContentKind::Collection)),
            ("JSONPATHCONTENT", Some(ContentKind::JsonPath)),
            ("JsonPathContentTemplate", Some(ContentKind::JsonPath)),
            ("IotJsonPathContent", Some(ContentKind::IotJsonPath)),
            ("IotCentralJsonPathContent", Some(ContentKind::IotCentralJsonPath)),
            ("iotcentraljsonpathcontent", Some(ContentKind::IotCentralJsonPath)),
            ("CalculatedContent", Some(ContentKind::Calculated)),
            // The suffix is only added to what the template says, never taken away.
            ("CalculatedContentTemplate", None),
            ("IotCentralJsonPathContentTemplate", None),
            ("JsonPath", None),
            ("Template", None),
            ("", None),
        ] {
            assert_eq!(ContentKind::named(name), kind, "{name:?}");
        }
        assert_eq!(FhirKind::named("CollectionFhir"), Some(FhirKind::Collection));
        assert_eq!(FhirKind::named("codevaluefhirtemplate"), Some(FhirKind::CodeValue));
        assert_eq!(FhirKind::named("CodeValue"), None);
    }

    #[test]
    fn the_envelope_is_read_with_case_insensitive_names_and_files_may_start_with_a_bom() {
        let text = "\u{feff}{\r\n  \"TemplateType\": \"CollectionContent\",\r\n  \"TEMPLATE\": []\r\n}";
        let value: Value = serde_json::from_str(without_bom(text)).unwrap();
        let envelope = Envelope::of(&value).unwrap();
        assert_eq!(envelope.template_type.and_then(ContentKind::named), Some(ContentKind::Collection));
        assert_eq!(envelope.template, Some(&json!([])));
        // An exact match wins over a case-insensitive one.
        let both = json!({"template": 1, "Template": 2});
        assert_eq!(Envelope::of(&both).unwrap().template, Some(&json!(1)));
        assert_eq!(Envelope::of(&json!([])), None);
        assert_eq!(Envelope::of(&json!({})).unwrap(), Envelope { template_type: None, template: None, template_key: "template".into() });
    }
}
