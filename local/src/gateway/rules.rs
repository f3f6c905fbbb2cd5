//! The IoT rules of `template.yaml` that run functions: Basic Ingest rules, reached by name
//! (`$aws/rules/<name>`), and rules with a `FROM '<topic filter>'`, run for each matching
//! message. Each rule's `SELECT` list is evaluated as IoT SQL does for the functions the
//! template uses (`*`, `clientid()`, `timestamp()`, `traceid()`, `newuuid()`, `topic(n)`,
//! `encode(*, 'base64')`), each with its `AS` name. Functions run after the PUBACK,
//! asynchronously, as on AWS.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Value};
use vitalwire::platform::stack::{RuleTarget, Template};

use super::topics::filter_matches;
use super::{fleet, Gateway, Identity};

/// One item of a rule's `SELECT` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selected {
    /// `*`: the message's JSON object.
    All,
    /// `<function> AS <name>`.
    Field { name: String, value: SqlFunction },
}

/// The IoT SQL functions the local rules evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlFunction {
    ClientId,
    Timestamp,
    TraceId,
    NewUuid,
    /// `topic(n)`: the n-th level of the topic, from 1.
    Topic(usize),
    /// `encode(*, 'base64')`: the whole payload, whatever it is.
    PayloadBase64,
}

/// The `SELECT` list of a rule's SQL, or the item it cannot evaluate.
pub fn select_list(sql: &str) -> Result<Vec<Selected>, String> {
    let trimmed = sql.trim();
    let lower = trimmed.to_ascii_lowercase();
    let body = lower.strip_prefix("select ").ok_or_else(|| format!("not a SELECT: {sql}"))?;
    let end = body.find(" from ").unwrap_or(body.len());
    let list = &trimmed["select ".len().."select ".len() + end];
    let mut items = Vec::new();
    let (mut depth, mut quoted, mut start) = (0, false, 0);
    for (i, c) in list.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                items.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&list[start..]);
    items.into_iter().map(|item| selected(item.trim())).collect()
}

fn selected(item: &str) -> Result<Selected, String> {
    if item == "*" {
        return Ok(Selected::All);
    }
    let lower = item.to_ascii_lowercase();
    let at = lower.rfind(" as ").ok_or_else(|| format!("`{item}` has no AS name"))?;
    let (expr, name) = (lower[..at].replace(' ', ""), item[at + 4..].trim().to_owned());
    let value = match expr.as_str() {
        "clientid()" => SqlFunction::ClientId,
        "timestamp()" => SqlFunction::Timestamp,
        "traceid()" => SqlFunction::TraceId,
        "newuuid()" => SqlFunction::NewUuid,
        "encode(*,'base64')" => SqlFunction::PayloadBase64,
        e => match e.strip_prefix("topic(").and_then(|r| r.strip_suffix(')')).and_then(|n| n.parse().ok()) {
            Some(n) if n > 0 => SqlFunction::Topic(n),
            _ => return Err(format!("`{item}`: the local rules do not evaluate {e}")),
        },
    };
    Ok(Selected::Field { name, value })
}

/// What a rule's action reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A Lambda action: the function's registry name.
    Function(String),
    /// An SQS action: the queue's URL on the local stack.
    Queue(String),
}

/// A rule: its action's target and what its `SELECT` gives it.
#[derive(Debug, Clone)]
struct Rule {
    name: String,
    target: Target,
    select: Vec<Selected>,
}

/// Which function each rule runs.
#[derive(Debug, Clone, Default)]
pub struct RuleWiring {
    /// Basic Ingest rule name → rule.
    basic_ingest: HashMap<String, Rule>,
    /// Rules with a `FROM '<topic filter>'`: (filter, rule).
    topic_rules: Vec<(String, Rule)>,
}

impl RuleWiring {
    /// The template's topic rules and the functions (registry entries) of their Lambda actions, or the
    /// `queues` (logical id → URL) of their SQS actions. A rule whose SQL the local rules cannot
    /// evaluate is left out, with an error in the log.
    pub fn from_template(template: &Template, queues: &std::collections::BTreeMap<String, String>) -> Self {
        let functions_by_id: HashMap<_, _> = template.functions().into_iter().filter_map(|f| Some((f.logical_id, f.handler?))).collect();
        let mut wiring = Self::default();
        for r in template.topic_rules() {
            let target = match &r.target {
                RuleTarget::Function(id) => functions_by_id.get(id).cloned().map(Target::Function),
                RuleTarget::Queue(id) => queues.get(id).cloned().map(Target::Queue),
            };
            let Some(target) = target else { continue };
            let select = match select_list(&r.sql) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(rule = %r.name, error = %e, "rule left out of the local platform");
                    continue;
                }
            };
            let rule = Rule { name: r.name.clone(), target, select };
            wiring.basic_ingest.insert(r.name.clone(), rule.clone());
            if let Some(filter) = r.topic_filter() {
                wiring.topic_rules.push((filter.to_owned(), rule));
            }
        }
        wiring
    }
}

/// The value of one SQL function for a message.
fn evaluate(function: SqlFunction, topic: &str, client_id: Option<&str>, payload: &[u8]) -> Value {
    match function {
        SqlFunction::ClientId => client_id.map_or(Value::Null, |c| Value::String(c.to_owned())),
        SqlFunction::Timestamp => Value::from(chrono::Utc::now().timestamp_millis()),
        SqlFunction::TraceId | SqlFunction::NewUuid => Value::String(fleet::random_hex(16).unwrap_or_default()),
        SqlFunction::Topic(n) => topic.split('/').nth(n - 1).map_or(Value::Null, |l| Value::String(l.to_owned())),
        SqlFunction::PayloadBase64 => Value::String(base64::engine::general_purpose::STANDARD.encode(payload)),
    }
}

/// The event a rule's function gets for one message.
fn rule_output(select: &[Selected], topic: &str, client_id: Option<&str>, payload: &[u8]) -> String {
    let added: Vec<(&str, Value)> = select
        .iter()
        .filter_map(|s| match s {
            Selected::Field { name, value } => Some((name.as_str(), evaluate(*value, topic, client_id, payload))),
            Selected::All => None,
        })
        .collect();
    if select.contains(&Selected::All) {
        rule_event(payload, &added)
    } else {
        Value::Object(added.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_string()
    }
}

impl Gateway {
    /// Runs the functions of rules whose `FROM` filter matches the topic (`client_id`: the
    /// publisher, none for the platform's own events).
    pub(super) fn run_topic_rules(self: &Arc<Self>, topic: &str, client_id: Option<&str>, payload: &[u8]) {
        for (filter, rule) in &self.rules.topic_rules {
            if filter_matches(filter, topic) {
                self.invoke(rule, rule_output(&rule.select, topic, client_id, payload));
            }
        }
    }

    /// Runs a Basic Ingest rule's function with what its SQL selects.
    pub(super) fn run_rule(self: &Arc<Self>, rule: &str, identity: &Identity, payload: Bytes) {
        let Some(found) = self.rules.basic_ingest.get(rule) else {
            tracing::info!(rule, client_id = %identity.client_id, "message dropped: no such rule (RuleNotFound), as AWS IoT Core drops it");
            return;
        };
        let topic = format!("$aws/rules/{rule}");
        self.invoke(found, rule_output(&found.select, &topic, Some(&identity.client_id), &payload));
    }

    /// Runs a rule's function with its event, as IoT does: asynchronously, after the PUBACK
    /// and AWS's round trip (so a rule's reply, such as an upload link, never beats it).
    /// A rule with an SQS action sends the event to its queue instead, whose consumer runs as
    /// Lambda's event source mapping runs it (`crate::sqs_events`).
    fn invoke(self: &Arc<Self>, rule: &Rule, event: String) {
        let (gw, rule, target) = (self.clone(), rule.name.clone(), rule.target.clone());
        self.after_latency(async move {
            let started = std::time::Instant::now();
            match target {
                // Neither the event nor the answer is logged: they may quote the device's values.
                Target::Function(function) => match gw.functions.invoke(&function, &event).await {
                    Ok(_) => tracing::info!(rule, function, ms = started.elapsed().as_millis() as u64, "rule ran its function"),
                    Err(e) => tracing::error!(rule, function, error = %e, "rule's function failed (on AWS: the rule's error action)"),
                },
                Target::Queue(url) => match gw.sqs.send_message().queue_url(&url).message_body(event).send().await {
                    Ok(_) => tracing::info!(rule, queue = %url, "rule queued its message"),
                    Err(e) => tracing::error!(rule, queue = %url, error = %vitalwire::platform::describe(&e), "rule's queue refused the message (on AWS: the rule's error action)"),
                },
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
    if added.is_empty() {
        return String::from_utf8_lossy(payload).into_owned();
    }
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
        let queues = std::collections::BTreeMap::from([("IngestQueue".to_owned(), "http://queue/IngestQueue".to_owned())]);
        let function = |name: &str| Some(Target::Function(name.into()));
        let wiring = RuleWiring::from_template(&crate::stack::LocalStack::template().unwrap(), &queues);
        assert_eq!(wiring.basic_ingest.get("FHIRIngest").map(|r| r.target.clone()), function("fhir-ingest"));
        assert_eq!(wiring.basic_ingest.get("CreateFileUploadLink").map(|r| r.target.clone()), function("upload-link"));
        assert!(wiring.topic_rules.iter().any(|(filter, r)| filter == "$aws/events/jobExecution/+/+" && Some(r.target.clone()) == function("job-events")));
        // Deployed with IngestPath=queue, the same rule queues its messages.
        let queued = RuleWiring::from_template(&crate::stack::LocalStack::template().unwrap().with_parameter("IngestPath", "queue"), &queues);
        assert_eq!(queued.basic_ingest.get("FHIRIngest").map(|r| r.target.clone()), Some(Target::Queue("http://queue/IngestQueue".into())));
        let template = crate::stack::LocalStack::template().unwrap();
        for rule in template.topic_rules() {
            assert!(select_list(&rule.sql).is_ok(), "{}: {:?}", rule.name, select_list(&rule.sql));
        }
    }

    #[test]
    fn select_lists_are_evaluated_as_iot_sql_does() {
        let select = select_list("SELECT encode(*, 'base64') AS payload, topic(3) AS connector, clientid() AS clientId FROM 'a/+/b'").unwrap();
        let out: Value = serde_json::from_str(&rule_output(&select, "vitalwire/connectors/ward-7/devices/cuff-1/messages", Some("cuff-1"), b"not json")).unwrap();
        assert_eq!(out, json!({"payload": "bm90IGpzb24=", "connector": "ward-7", "clientId": "cuff-1"}));
        let ingest = select_list("SELECT *, clientid() AS thingName, timestamp() AS receivedAt, traceid() AS traceId").unwrap();
        let out: Value = serde_json::from_str(&rule_output(&ingest, "$aws/rules/FHIRIngest", Some("dev-1"), br#"{"v": 1}"#)).unwrap();
        assert_eq!((out["v"].as_i64(), out["thingName"].as_str(), out["traceId"].as_str().map(str::len)), (Some(1), Some("dev-1"), Some(32)));
        assert_eq!(rule_output(&select_list("SELECT * FROM 'x'").unwrap(), "x", None, br#"{"v": 1.50}"#), r#"{"v": 1.50}"#, "as published");
        assert!(select_list("SELECT upper(x) AS y FROM 'x'").is_err(), "what it cannot evaluate is said");
    }
}
