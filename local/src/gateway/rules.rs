//! The IoT rules of `template.yaml` that run functions: Basic Ingest rules, reached by name
//! (`$aws/rules/<name>`), get the device's message with the fields their SQL adds; rules with a
//! `FROM '<topic filter>'` get each matching message as published (`SELECT *`). Functions run
//! after the PUBACK, asynchronously, as on AWS.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use vitalwire::platform::stack::Template;

use super::topics::filter_matches;
use super::{fleet, Gateway, Identity};

/// Which function each rule runs.
#[derive(Debug, Clone, Default)]
pub struct RuleWiring {
    /// Basic Ingest rule name → function.
    basic_ingest: HashMap<String, String>,
    /// Rules with a `FROM '<topic filter>'`: (filter, function).
    topic_rules: Vec<(String, String)>,
}

impl RuleWiring {
    /// The template's topic rules and the functions (binaries) of their Lambda actions.
    pub fn from_template(template: &Template) -> Self {
        let functions_by_id: HashMap<_, _> = template.functions().into_iter().filter_map(|f| Some((f.logical_id, f.binary?))).collect();
        let defined = template.topic_rules();
        let basic_ingest = defined.iter().filter_map(|r| Some((r.name.clone(), functions_by_id.get(&r.function)?.clone()))).collect();
        let topic_rules =
            defined.iter().filter_map(|r| Some((r.topic_filter()?.to_owned(), functions_by_id.get(&r.function)?.clone()))).collect();
        Self { basic_ingest, topic_rules }
    }
}

impl Gateway {
    /// Runs the functions of rules whose `FROM` filter matches the topic.
    pub(super) fn run_topic_rules(self: &Arc<Self>, topic: &str, payload: &[u8]) {
        for (filter, function) in &self.rules.topic_rules {
            if filter_matches(filter, topic) {
                self.invoke(function.clone(), String::from_utf8_lossy(payload).into_owned());
            }
        }
    }

    /// Runs a Basic Ingest rule's function with the fields its SQL adds.
    pub(super) fn run_rule(self: &Arc<Self>, rule: &str, identity: &Identity, payload: Bytes) {
        let Some(function) = self.rules.basic_ingest.get(rule).cloned() else {
            tracing::info!(rule, "no such rule (RuleNotFound)");
            return;
        };
        let added = [
            ("thingName", Value::String(identity.client_id.clone())),
            ("receivedAt", Value::from(chrono::Utc::now().timestamp_millis())),
            ("traceId", Value::String(fleet::random_hex(16).unwrap_or_default())),
        ];
        self.invoke(function, rule_event(&payload, &added));
    }

    /// Runs a rule's function with its event, as IoT does: asynchronously, after the PUBACK.
    fn invoke(self: &Arc<Self>, function: String, event: String) {
        let gw = self.clone();
        tokio::spawn(async move {
            match gw.functions.invoke(&function, &event).await {
                // The answer may quote the device's values: not logged.
                Ok(_) => tracing::debug!(function, "rule function ran"),
                Err(e) => tracing::error!(error = %e, "rule function failed"),
            }
        });
    }
}

/// The JSON a rule's `SELECT *, <fields>` produces: the device's object with the rule's fields
/// added. The device's text is kept as written (number literals such as `36.60` must reach the
/// handler unchanged), so fields are appended to it rather than parsed and re-serialized; only
/// a payload that already uses one of the rule's field names is rebuilt, the rule's value
/// winning as in IoT SQL. A payload that is not a JSON object is kept under `payload`, so the
/// refusal can show it.
fn rule_event(payload: &[u8], added: &[(&str, Value)]) -> String {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(payload) else {
        let mut map = Map::from_iter([("payload".to_owned(), Value::String(String::from_utf8_lossy(payload).into_owned()))]);
        map.extend(added.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        return Value::Object(map).to_string();
    };
    if added.iter().any(|(k, _)| map.contains_key(*k)) {
        map.extend(added.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        return Value::Object(map).to_string();
    }
    // A valid JSON object's text ends with its closing brace.
    let text = String::from_utf8_lossy(payload);
    let body = text.trim_end().strip_suffix('}').unwrap_or_default();
    let fields: Vec<String> = added.iter().map(|(k, v)| format!("{}:{v}", Value::String((*k).to_owned()))).collect();
    let separator = if map.is_empty() { "" } else { "," };
    format!("{body}{separator}{}}}", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn added() -> Vec<(&'static str, Value)> {
        vec![("thingName", json!("dev-1")), ("receivedAt", json!(1700))]
    }

    #[test]
    fn rule_events_keep_the_devices_number_text() {
        let event = rule_event(br#"{"value": 36.60, "unit": "Cel"} "#, &added());
        assert!(event.contains("36.60"), "{event}");
        let v: Value = serde_json::from_str(&event).unwrap();
        assert_eq!((v["thingName"].as_str(), v["receivedAt"].as_i64(), v["unit"].as_str()), (Some("dev-1"), Some(1700), Some("Cel")));
        let empty: Value = serde_json::from_str(&rule_event(b"{}", &added())).unwrap();
        assert_eq!(empty, json!({"thingName": "dev-1", "receivedAt": 1700}));
    }

    #[test]
    fn rule_fields_win_over_the_devices_and_non_objects_are_kept() {
        let v: Value = serde_json::from_str(&rule_event(br#"{"thingName": "someone-else"}"#, &added())).unwrap();
        assert_eq!(v["thingName"], "dev-1", "a device cannot claim another identity");
        let v: Value = serde_json::from_str(&rule_event(b"not json", &added())).unwrap();
        assert_eq!((v["payload"].as_str(), v["thingName"].as_str()), (Some("not json"), Some("dev-1")));
    }

    #[test]
    fn the_templates_rules_run_their_functions() {
        let wiring = RuleWiring::from_template(&crate::stack::LocalStack::template().unwrap());
        assert_eq!(wiring.basic_ingest.get("FHIRIngest").map(String::as_str), Some("fhir-ingest"));
        assert_eq!(wiring.basic_ingest.get("CreateFileUploadLink").map(String::as_str), Some("upload-link"));
        assert!(wiring.topic_rules.iter().any(|(filter, f)| filter == "$aws/events/jobExecution/+/+" && f == "job-events"));
    }
}
