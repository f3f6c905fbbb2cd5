//! Device shadows, classic and named, as AWS IoT Device Shadow serves them: over MQTT
//! (`$aws/things/<thing>/shadow[/name/<name>]/{get,update,delete}` answered on `/accepted` or
//! `/rejected`, with `/update/delta` and `/update/documents` published after an update) and over
//! the data-plane HTTP API (`GetThingShadow`, `UpdateThingShadow`, `DeleteThingShadow`,
//! `ListNamedShadowsForThing`).
//!
//! The rules are AWS's (its Device Shadow service document): `desired` and `reported` merge into
//! the document, a `null` deletes a key (and `"desired": null` the whole section); the delta is
//! what `desired` holds that `reported` does not (compared per key, recursively; arrays whole);
//! every key carries its last update's timestamp in `metadata`; an update naming a `version`
//! other than the current one is refused 409; the version goes up by one on every update and
//! survives a delete; a document's state is at most 8 KB and 6 levels deep; `clientToken` is
//! echoed. Like the jobs engine, this is synchronous state answering reply bodies and the
//! [`Effect`]s the gateway publishes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{json, Map, Value};

/// Something to publish after a shadow operation (`/update/delta`, `/update/documents`).
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub topic: String,
    pub payload: Value,
}

/// A refused shadow request: AWS's `{code, message}` (and `clientToken`, `timestamp`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowError {
    pub code: u16,
    pub message: String,
}

impl ShadowError {
    fn new(code: u16, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// The rejected body: `{code, message, timestamp}` (the caller echoes the `clientToken`).
    pub fn body(&self, now: i64) -> Value {
        json!({"code": self.code, "message": self.message, "timestamp": now})
    }
}

/// AWS's limits: 8 KB of state (desired and reported), 6 levels of depth, names of 64.
const MAX_STATE_BYTES: usize = 8 * 1024;
const MAX_DEPTH: usize = 6;

#[derive(Debug, Clone, Default)]
struct Shadow {
    desired: Map<String, Value>,
    reported: Map<String, Value>,
    desired_meta: Map<String, Value>,
    reported_meta: Map<String, Value>,
    version: i64,
    /// False once deleted (the version stays, as AWS keeps it).
    exists: bool,
}

/// The key of a shadow: the thing and, for a named shadow, its name.
type Key = (String, Option<String>);

/// The shadows of every thing.
#[derive(Default)]
pub struct Shadows {
    state: Mutex<BTreeMap<Key, Shadow>>,
}

/// `topic` prefix of a shadow: `$aws/things/<thing>/shadow[/name/<name>]`.
pub fn topic_prefix(thing: &str, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("$aws/things/{thing}/shadow/name/{n}"),
        None => format!("$aws/things/{thing}/shadow"),
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Merges `update` into `doc` (and stamps `meta`): objects recursively, `null` deletes.
fn merge(doc: &mut Map<String, Value>, meta: &mut Map<String, Value>, update: &Map<String, Value>, now: i64) {
    for (key, value) in update {
        match value {
            Value::Null => {
                doc.remove(key);
                meta.remove(key);
            }
            Value::Object(inner) => {
                let child = doc.entry(key.clone()).or_insert_with(|| json!({}));
                if !child.is_object() {
                    *child = json!({});
                }
                let child_meta = meta.entry(key.clone()).or_insert_with(|| json!({}));
                if !child_meta.is_object() || child_meta.get("timestamp").is_some() {
                    *child_meta = json!({});
                }
                if let (Value::Object(c), Value::Object(m)) = (child, child_meta) {
                    merge(c, m, inner, now);
                }
                if doc.get(key).and_then(Value::as_object).is_some_and(Map::is_empty) {
                    doc.remove(key);
                    meta.remove(key);
                }
            }
            other => {
                doc.insert(key.clone(), other.clone());
                meta.insert(key.clone(), metadata_of(other, now));
            }
        }
    }
}

/// The metadata of a value: `{"timestamp": t}`, per element for arrays.
fn metadata_of(value: &Value, now: i64) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| metadata_of(v, now)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), metadata_of(v, now))).collect()),
        _ => json!({"timestamp": now}),
    }
}

/// What `desired` holds that `reported` does not (objects compared per key).
fn delta(desired: &Map<String, Value>, reported: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, want) in desired {
        match (want, reported.get(key)) {
            (Value::Object(w), Some(Value::Object(r))) => {
                let inner = delta(w, r);
                if !inner.is_empty() {
                    out.insert(key.clone(), Value::Object(inner));
                }
            }
            (w, Some(r)) if w == r => {}
            (w, _) => {
                out.insert(key.clone(), w.clone());
            }
        }
    }
    out
}

/// The metadata entries of the keys in `delta`.
fn delta_metadata(delta: &Map<String, Value>, meta: &Map<String, Value>) -> Map<String, Value> {
    delta
        .iter()
        .filter_map(|(k, v)| match (v, meta.get(k)) {
            (Value::Object(d), Some(Value::Object(m))) if !m.contains_key("timestamp") => Some((k.clone(), Value::Object(delta_metadata(d, m)))),
            (_, Some(m)) => Some((k.clone(), m.clone())),
            _ => None,
        })
        .collect()
}

impl Shadow {
    /// The document as `GetThingShadow` and `/get/accepted` answer it.
    fn document(&self, now: i64) -> Value {
        let mut state = Map::new();
        let mut metadata = Map::new();
        if !self.desired.is_empty() {
            state.insert("desired".into(), Value::Object(self.desired.clone()));
            metadata.insert("desired".into(), Value::Object(self.desired_meta.clone()));
        }
        if !self.reported.is_empty() {
            state.insert("reported".into(), Value::Object(self.reported.clone()));
            metadata.insert("reported".into(), Value::Object(self.reported_meta.clone()));
        }
        let d = delta(&self.desired, &self.reported);
        if !d.is_empty() {
            state.insert("delta".into(), Value::Object(d));
        }
        json!({"state": state, "metadata": metadata, "version": self.version, "timestamp": now})
    }

    /// The state and metadata for `/update/documents` (`previous`, `current`).
    fn snapshot(&self) -> Value {
        json!({
            "state": {"desired": self.desired, "reported": self.reported},
            "metadata": {"desired": self.desired_meta, "reported": self.reported_meta},
            "version": self.version,
        })
    }
}

impl Shadows {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Shadow>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `get`: the document, or 404.
    pub fn get(&self, thing: &str, name: Option<&str>, now: i64) -> Result<Value, ShadowError> {
        let state = self.lock();
        match state.get(&(thing.to_owned(), name.map(str::to_owned))) {
            Some(s) if s.exists => Ok(s.document(now)),
            _ => Err(ShadowError::new(404, format!("No shadow exists with name: '{}'", name.unwrap_or(thing)))),
        }
    }

    /// `update`: the accepted body and the delta and documents to publish.
    pub fn update(&self, thing: &str, name: Option<&str>, request: &Value, now: i64) -> Result<(Value, Vec<Effect>), ShadowError> {
        let Some(request) = request.as_object() else { return Err(ShadowError::new(400, "Payload contains invalid json")) };
        let Some(update) = request.get("state").and_then(Value::as_object) else {
            return Err(ShadowError::new(400, "Missing required node: state"));
        };
        for section in update.keys() {
            if section != "desired" && section != "reported" {
                return Err(ShadowError::new(400, format!("State contains an invalid node: '{section}'")));
            }
        }
        if depth(&Value::Object(update.clone())) > MAX_DEPTH + 1 {
            return Err(ShadowError::new(400, "JSON contains too many levels of nesting; maximum is 6"));
        }
        let expected = match request.get("version") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().ok_or_else(|| ShadowError::new(400, "Invalid version"))?),
        };
        let key = (thing.to_owned(), name.map(str::to_owned));
        let mut state = self.lock();
        let shadow = state.entry(key).or_default();
        if let Some(v) = expected {
            if v != shadow.version {
                return Err(ShadowError::new(409, "Version conflict"));
            }
        }
        let previous = shadow.exists.then(|| shadow.snapshot());
        let mut next = shadow.clone();
        if !next.exists {
            next.desired.clear();
            next.reported.clear();
            next.desired_meta.clear();
            next.reported_meta.clear();
        }
        for (section, value) in update {
            let (doc, meta) = if section == "desired" { (&mut next.desired, &mut next.desired_meta) } else { (&mut next.reported, &mut next.reported_meta) };
            match value {
                Value::Null => {
                    doc.clear();
                    meta.clear();
                }
                Value::Object(changes) => merge(doc, meta, changes, now),
                _ => return Err(ShadowError::new(400, format!("{section} must be an object or null"))),
            }
        }
        let size = serde_json::to_vec(&json!({"desired": next.desired, "reported": next.reported})).map_or(usize::MAX, |b| b.len());
        if size > MAX_STATE_BYTES {
            return Err(ShadowError::new(413, "The payload exceeds the maximum size allowed"));
        }
        next.version += 1;
        next.exists = true;
        *shadow = next;
        let token = request.get("clientToken").filter(|t| !t.is_null());
        let mut accepted = json!({"state": update, "metadata": {}, "version": shadow.version, "timestamp": now});
        for section in update.keys() {
            accepted["metadata"][section] = metadata_of(&update[section], now);
        }
        let prefix = topic_prefix(thing, name);
        let mut effects = Vec::new();
        let d = delta(&shadow.desired, &shadow.reported);
        // A delta goes out when the update touched `desired` and something differs.
        if update.contains_key("desired") && !d.is_empty() {
            let mut payload = json!({"state": d, "metadata": delta_metadata(&d, &shadow.desired_meta), "version": shadow.version, "timestamp": now});
            if let Some(t) = token {
                payload["clientToken"] = t.clone();
            }
            effects.push(Effect { topic: format!("{prefix}/update/delta"), payload });
        }
        let mut documents = json!({"previous": previous, "current": shadow.snapshot(), "timestamp": now});
        if let Some(t) = token {
            accepted["clientToken"] = t.clone();
            documents["clientToken"] = t.clone();
        }
        effects.push(Effect { topic: format!("{prefix}/update/documents"), payload: documents });
        Ok((accepted, effects))
    }

    /// `delete`: the accepted body; 404 when there is no shadow. The version is kept.
    pub fn delete(&self, thing: &str, name: Option<&str>, now: i64) -> Result<Value, ShadowError> {
        let mut state = self.lock();
        match state.get_mut(&(thing.to_owned(), name.map(str::to_owned))) {
            Some(s) if s.exists => {
                s.exists = false;
                Ok(json!({"version": s.version, "timestamp": now}))
            }
            _ => Err(ShadowError::new(404, format!("No shadow exists with name: '{}'", name.unwrap_or(thing)))),
        }
    }

    /// `ListNamedShadowsForThing`.
    pub fn named(&self, thing: &str, now: i64) -> Value {
        let state = self.lock();
        let names: Vec<&String> = state.iter().filter(|((t, n), s)| t == thing && n.is_some() && s.exists).filter_map(|((_, n), _)| n.as_ref()).collect();
        json!({"results": names, "timestamp": now})
    }
}

/// A shadow request on an MQTT topic: `(shadow name, operation)` from the words after
/// `$aws/things/<thing>/shadow/`, or `None` for a topic that is not a request.
pub fn request_of<'a>(rest: &[&'a str]) -> Option<(Option<&'a str>, &'a str)> {
    match rest {
        [op @ ("get" | "update" | "delete")] => Some((None, op)),
        ["name", name, op @ ("get" | "update" | "delete")] if !name.is_empty() && name.len() <= 64 => Some((Some(name), op)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_merge_delete_with_null_and_publish_the_delta_and_documents() {
        let shadows = Shadows::default();
        assert_eq!(shadows.get("cuff", None, 1).unwrap_err().code, 404);
        let request = json!({"state": {"desired": {"interval": 60, "units": {"temperature": "C"}}}, "clientToken": "t-1"});
        let (accepted, effects) = shadows.update("cuff", None, &request, 10).unwrap();
        assert_eq!((accepted["version"].clone(), accepted["clientToken"].clone()), (json!(1), json!("t-1")));
        assert_eq!(accepted["metadata"]["desired"]["units"]["temperature"], json!({"timestamp": 10}));
        assert_eq!(effects[0].topic, "$aws/things/cuff/shadow/update/delta");
        assert_eq!(effects[0].payload["state"], json!({"interval": 60, "units": {"temperature": "C"}}));
        assert_eq!((effects[1].topic.as_str(), effects[1].payload["previous"].clone()), ("$aws/things/cuff/shadow/update/documents", Value::Null));

        // The device reports: what matches leaves the delta.
        let (_, effects) = shadows.update("cuff", None, &json!({"state": {"reported": {"interval": 60, "units": {"temperature": "F"}}}}), 20).unwrap();
        assert_eq!(effects.len(), 1, "no delta for a reported-only update");
        let doc = shadows.get("cuff", None, 30).unwrap();
        assert_eq!(doc["state"]["delta"], json!({"units": {"temperature": "C"}}));
        assert_eq!(doc["version"], 2);
        assert_eq!(doc["metadata"]["reported"]["interval"], json!({"timestamp": 20}));

        // A stale version is refused; null removes a key.
        let stale = shadows.update("cuff", None, &json!({"state": {"desired": {"interval": 30}}, "version": 1}), 40).unwrap_err();
        assert_eq!((stale.code, stale.message.as_str()), (409, "Version conflict"));
        shadows.update("cuff", None, &json!({"state": {"desired": {"units": null}}, "version": 2}), 50).unwrap();
        let doc = shadows.get("cuff", None, 60).unwrap();
        assert_eq!(doc["state"]["desired"], json!({"interval": 60}));
        assert!(doc["state"].get("delta").is_none(), "desired matches reported");

        // Delete keeps the version; named shadows are separate.
        assert_eq!(shadows.delete("cuff", None, 70).unwrap()["version"], 3);
        assert_eq!(shadows.get("cuff", None, 80).unwrap_err().code, 404);
        let (again, _) = shadows.update("cuff", None, &json!({"state": {"reported": {"on": true}}}), 90).unwrap();
        assert_eq!(again["version"], 4, "the version survives a delete");
        assert!(shadows.get("cuff", None, 95).unwrap()["state"].get("desired").is_none(), "a deleted shadow starts empty");
        shadows.update("cuff", Some("settings"), &json!({"state": {"desired": {"interval": 5}}}), 100).unwrap();
        assert_eq!(shadows.named("cuff", 110)["results"], json!(["settings"]));
        assert_eq!(shadows.get("cuff", Some("settings"), 120).unwrap()["version"], 1);
    }

    #[test]
    fn bad_updates_are_refused_with_aws_codes() {
        let shadows = Shadows::default();
        assert_eq!(shadows.update("t", None, &json!({"desired": {}}), 1).unwrap_err().message, "Missing required node: state");
        assert_eq!(shadows.update("t", None, &json!({"state": {"wanted": {}}}), 1).unwrap_err().code, 400);
        let deep = json!({"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}});
        assert_eq!(shadows.update("t", None, &deep, 1).unwrap_err().code, 400);
        let big = json!({"state": {"desired": {"blob": "x".repeat(9000)}}});
        assert_eq!(shadows.update("t", None, &big, 1).unwrap_err().code, 413);
        assert_eq!(shadows.delete("t", None, 1).unwrap_err().code, 404, "nothing was stored");
        assert_eq!(request_of(&["name", "settings", "update"]), Some((Some("settings"), "update")));
        assert_eq!(request_of(&["update", "accepted"]), None, "a reply topic is not a request");
    }
}
