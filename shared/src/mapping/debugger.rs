//! The mapping debugger behind `vitalwire-mapping` and `POST /connectors/{c}/mappings/debug`:
//! IoMT device and FHIR mapping templates tried on sample messages, with diagnostics that say
//! which template matched which message and why a message made nothing. Nothing is stored.
//!
//! Every function returns a [`Report`]: what goes to stdout (JSON), the diagnostics for
//! stderr, and whether anything failed (exit status 1).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use super::content::DeviceMapping;
use super::convert::{convert, ConversionError, IdentityOptions, NoPrior, ObservationSet, Sources, Written};
use super::fhir_templates::FhirMapping;
use super::identity::{IdentityMode, MemoryRegistry};
use super::measurement::{split_messages, wrap, Measurement};
use super::observation::{hash_id, MappedObservation};
use super::templates::TemplateError;

/// The outcome of a command.
#[derive(Debug, Default)]
pub struct Report {
    pub stdout: String,
    pub diagnostics: Vec<String>,
    pub failed: bool,
}

impl Report {
    pub fn note(&mut self, line: String) {
        self.diagnostics.push(line);
    }

    /// A diagnostic that makes the command fail.
    pub fn fail(&mut self, line: String) {
        self.failed = true;
        self.diagnostics.push(line);
    }
}

/// One message read from a file, with where it came from (`file#n`, from 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub label: String,
    pub message: Value,
}

/// The messages of a file: one JSON message, a JSON array of messages, or NDJSON (one per
/// line). With `wrap`, each is bare device JSON and becomes `{"Body": ...}`.
pub fn read_messages(path: &Path, text: &str, wrap_bodies: bool) -> Result<Vec<Message>, String> {
    let name = path.display();
    let values = split_messages(text).map_err(|e| format!("{name}:{}:{}: not valid JSON: {}", e.line, e.column, e.message))?;
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Message { label: format!("{name}#{}", i + 1), message: if wrap_bodies { wrap(v) } else { v } })
        .collect())
}

fn template_errors(report: &mut Report, file: &Path, errors: &[TemplateError]) {
    for e in errors {
        match e.position {
            Some(at) => report.fail(format!("{}:{}:{}: {}", file.display(), at.line, at.column, e.message.trim_end())),
            None => report.fail(format!("{}: {}", file.display(), e.message.trim_end())),
        }
    }
}

/// A device mapping from its file, errors into the report.
pub fn load_device_mapping(report: &mut Report, file: &Path, text: &str) -> Option<DeviceMapping> {
    DeviceMapping::parse(text).map_err(|errors| template_errors(report, file, &errors)).ok()
}

/// A FHIR mapping from its file, errors into the report.
pub fn load_fhir_mapping(report: &mut Report, file: &Path, text: &str) -> Option<FhirMapping> {
    FhirMapping::parse(text).map_err(|errors| template_errors(report, file, &errors)).ok()
}

/// `validate`: both mappings load, and (given both) every device template's type and values
/// have a FHIR template to go to (warnings, as the connector's validator gives them).
pub fn validate(device: (&Path, &str), fhir: Option<(&Path, &str)>) -> Report {
    let mut report = Report::default();
    let mapping = load_device_mapping(&mut report, device.0, device.1);
    let fhir_mapping = fhir.and_then(|(file, text)| load_fhir_mapping(&mut report, file, text));
    if let (Some(mapping), Some(fhir_mapping)) = (&mapping, &fhir_mapping) {
        let available: Vec<&str> = fhir_mapping.templates().iter().map(|t| t.type_name.as_str()).collect();
        for (type_name, values) in mapping.value_names() {
            let Some(template) = fhir_mapping.template(type_name) else {
                report.note(format!(
                    "warning: No matching Fhir Template exists for Device Mapping [{type_name}]. Available Fhir Templates: [{}].",
                    available.join(", ")
                ));
                continue;
            };
            let names: Vec<&str> = template.value.iter().chain(template.components.iter().map(|c| &c.value)).map(|v| v.name.as_str()).collect();
            for v in values.iter().filter(|v| !names.contains(v)) {
                report.note(format!(
                    "warning: The value [{v}] in Device Mapping [{type_name}] is not represented within the Fhir Template of type [{}]. Available values are: [{}]. No value will appear inside of Observations.",
                    template.type_name,
                    names.join(", ")
                ));
            }
        }
    }
    if !report.failed {
        let counts = match (&mapping, &fhir_mapping) {
            (Some(m), Some(f)) => format!("{} device templates, {} FHIR templates", m.len(), f.templates().len()),
            (Some(m), None) => format!("{} device templates", m.len()),
            _ => String::new(),
        };
        report.stdout = json!({"valid": true, "summary": counts}).to_string();
    }
    report
}

/// `normalize`: every message through the device mapping; the measurements, and per message
/// which templates matched it or why it made nothing.
pub fn normalize(mapping: &DeviceMapping, messages: &[Message], report: &mut Report) -> Vec<Measurement> {
    let mut all = Vec::new();
    for m in messages {
        match mapping.normalize(&m.message) {
            Ok(made) if made.is_empty() => {
                let tried: Vec<String> = mapping
                    .trace(&m.message)
                    .iter()
                    .map(|t| match &t.matches {
                        Ok(n) => format!("template {} ({}) typeMatchExpression {} matched {n}", t.index, t.type_name, t.type_match),
                        Err(e) => format!("template {} ({}) failed: {e}", t.index, t.type_name),
                    })
                    .collect();
                let mut line = format!("{}: no measurement: no template's typeMatchExpression matched ({})", m.label, tried.join("; "));
                if m.message.get("Body").is_none() {
                    line.push_str(". The message has no Body: device JSON must be in the envelope {\"Body\": ...}; pass --wrap to wrap bare device JSON");
                }
                report.note(line);
            }
            Ok(made) => {
                let matched: Vec<String> = mapping
                    .trace(&m.message)
                    .iter()
                    .filter(|t| t.matches.as_ref().is_ok_and(|n| *n > 0))
                    .map(|t| format!("template {} ({}) x{}", t.index, t.type_name, t.matches.as_ref().copied().unwrap_or(0)))
                    .collect();
                report.note(format!("{}: {} measurement(s) from {}", m.label, made.len(), matched.join(", ")));
                all.extend(made);
            }
            Err(e) => report.fail(format!("{}: refused: {e}", m.label)),
        }
    }
    all
}

/// How `convert` resolves identities.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Lookup as for devices assigned to this patient; without one, Create from the
    /// measurements' patient ids.
    pub patient_id: Option<String>,
    pub device_system: Option<String>,
    pub issued: DateTime<Utc>,
}

/// A FHIR `Bundle` of type `collection` (serialized from the typed Observations, so their
/// decimals keep the device's digits).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Bundle<'a> {
    resource_type: &'static str,
    r#type: &'static str,
    entry: Vec<Entry<'a>>,
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    resource: &'a MappedObservation,
}

/// `convert`: the Observations of all the measurements, grouped and merged across messages,
/// as a FHIR `Bundle` of type `collection` (JSON text).
pub async fn convert_measurements(fhir: &FhirMapping, measurements: &[Measurement], options: &ConvertOptions, report: &mut Report) -> String {
    let registry = MemoryRegistry::default();
    let mode = match &options.patient_id {
        Some(patient) => {
            let system = options.device_system.as_deref();
            let mut seen = std::collections::HashSet::new();
            for m in measurements {
                if !seen.insert(m.device_id.as_str()) {
                    continue;
                }
                let id = hash_id(system.unwrap_or(""), &m.device_id);
                if let Err(e) = registry.register_device(&id, system, &m.device_id, Some(&format!("Patient/{patient}"))) {
                    report.fail(format!("convert: {e}"));
                }
            }
            IdentityMode::Lookup
        }
        None => IdentityMode::Create,
    };
    let identity = IdentityOptions { mode, device_system: options.device_system.clone() };
    let mut set = ObservationSet::default();
    match convert(fhir, measurements, &identity, Sources { registry: &registry, prior: &NoPrior }, options.issued, &mut set).await {
        Err(e) => report.fail(format!("convert: {e}")),
        Ok(outcomes) => {
            for o in outcomes {
                let what = format!("{} from device {} ({} measurement(s))", o.type_name, o.device_id, o.measurements);
                match o.result {
                    Ok(written) => {
                        let each: Vec<String> = written
                            .iter()
                            .map(|(id, w)| {
                                let how = match w {
                                    Written::Created => "created",
                                    Written::Amended => "merged",
                                    Written::Unchanged => "unchanged",
                                    Written::Replaced => "merged, replacing the value of another reading in the same window",
                                };
                                format!("Observation/{id} {how}")
                            })
                            .collect();
                        report.note(format!("convert: {what}: {}", each.join(", ")));
                    }
                    Err(e @ ConversionError::Identity(_)) if options.patient_id.is_none() => {
                        report.fail(format!("convert: {what}: refused: {e} (or pass --patient-id to convert as for a device assigned to that patient)"))
                    }
                    Err(e) => report.fail(format!("convert: {what}: refused: {e}")),
                }
            }
        }
    }
    let bundle = Bundle { resource_type: "Bundle", r#type: "collection", entry: set.observations().iter().map(|resource| Entry { resource }).collect() };
    serde_json::to_string_pretty(&bundle).unwrap_or_else(|e| {
        report.fail(format!("convert: the Bundle could not be written: {e}"));
        String::new()
    })
}

/// One run over sample messages, as the debug route answers it: `{"measurements", "bundle"
/// (without a FHIR mapping: null), "diagnostics", "failed"}`, as JSON text (so Observations'
/// decimals keep the device's digits).
pub async fn run(device: &DeviceMapping, fhir: Option<&FhirMapping>, messages: &[Message], options: &ConvertOptions) -> String {
    let mut report = Report::default();
    let measurements = normalize(device, messages, &mut report);
    let bundle = match fhir {
        Some(fhir) => convert_measurements(fhir, &measurements, options, &mut report).await,
        None => "null".to_owned(),
    };
    let measurements = serde_json::to_string(&measurements).unwrap_or_else(|_| "[]".to_owned());
    format!(
        r#"{{"measurements":{measurements},"bundle":{bundle},"diagnostics":{},"failed":{}}}"#,
        Value::from(report.diagnostics.clone()),
        report.failed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_files_hold_one_message_an_array_or_ndjson() {
        let p = Path::new("m.json");
        assert_eq!(read_messages(p, r#"{"Body": {"hr": 1}}"#, false).unwrap().len(), 1);
        let many = read_messages(p, r#"[{"hr": 1}, {"hr": 2}]"#, true).unwrap();
        assert_eq!(many[1], Message { label: "m.json#2".into(), message: wrap(json!({"hr": 2})) });
        let lines = read_messages(p, "{\"hr\": 1}\n\n{\"hr\": 2}\r\n", true).unwrap();
        assert_eq!(lines.len(), 2);
        let bad = read_messages(p, "{\"hr\": 1}\n{\"hr\": }\n", false).unwrap_err();
        assert!(bad.starts_with("m.json:2:"), "{bad}");
        let broken = read_messages(p, "{\"hr\": \n", false).unwrap_err();
        assert!(broken.starts_with("m.json:2:"), "{broken}");
    }
}
