//! Clinician–patient messages, compatible with the Polaris (DHOS) messages API: typed messages
//! between patients, clinicians and locations, with the retrieved / confirmed / cancelled
//! handshake. The reference's behaviour, read from its source, is in
//! `docs/polaris/messages-reference.md`; this module follows it where its OpenAPI document is
//! silent or wrong (a message type is an object; `confirmed` is always present).
//!
//! Here: the model, its JSON as the reference writes it, the checks of a new message and of a
//! PATCH, what "active" means, the reference's timestamps ([`time`]), who may send, read and
//! list what ([`access`]), the listings ([`listings`]), the store (an index per party and
//! direction) and the routes ([`http`]).

pub mod access;
mod dynamodb;
pub mod http;
pub mod listings;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod time;

use std::future::Future;

use serde_json::{Map, Value};

pub use dynamodb::DynamoMessageStore;
pub use time::{NotIso8601, PolarisTime};

use crate::StoreError;

/// A message's type, by the integer value Polaris clients send (`{"value": n}`). Value 4 (an
/// old callback type) no longer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MessageType {
    General,
    Dosage,
    Dietary,
    Feedback,
    Callback,
    ActivationCode,
    RedAlert,
    AmberAlert,
    GreyAlert,
    ClearAlerts,
}

impl MessageType {
    pub const ALL: [Self; 10] = [
        Self::General,
        Self::Dosage,
        Self::Dietary,
        Self::Feedback,
        Self::Callback,
        Self::ActivationCode,
        Self::RedAlert,
        Self::AmberAlert,
        Self::GreyAlert,
        Self::ClearAlerts,
    ];

    pub fn value(self) -> i64 {
        match self {
            Self::General => 0,
            Self::Dosage => 1,
            Self::Dietary => 2,
            Self::Feedback => 3,
            Self::Callback => 5,
            Self::ActivationCode => 6,
            Self::RedAlert => 7,
            Self::AmberAlert => 8,
            Self::GreyAlert => 9,
            Self::ClearAlerts => 10,
        }
    }

    pub fn from_value(value: i64) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.value() == value)
    }

    /// The type's identifier in the reference (`message_type.uuid`).
    pub fn uuid(self) -> &'static str {
        match self {
            Self::General => "DHOS-MESSAGES-GENERAL",
            Self::Dosage => "DHOS-MESSAGES-DOSAGE",
            Self::Dietary => "DHOS-MESSAGES-DIETARY",
            Self::Feedback => "DHOS-MESSAGES-FEEDBACK",
            Self::Callback => "DHOS-MESSAGES-CALLBACK",
            Self::ActivationCode => "DHOS-MESSAGES-ACTIVATION-CODE",
            Self::RedAlert => "DHOS-MESSAGES-RED-ALERT",
            Self::AmberAlert => "DHOS-MESSAGES-AMBER-ALERT",
            Self::GreyAlert => "DHOS-MESSAGES-GREY-ALERT",
            Self::ClearAlerts => "DHOS-MESSAGES-CLEAR-ALERTS",
        }
    }

    /// Red, amber and grey alerts: never shown to a patient in their listing.
    pub fn is_alert(self) -> bool {
        matches!(self, Self::RedAlert | Self::AmberAlert | Self::GreyAlert)
    }

    /// `message_type` as the reference writes it: the whole type record, its own identifier
    /// fields included (created by `sys` when the reference's migration ran).
    pub fn to_json(self) -> Value {
        serde_json::to_value(WireType::of(self)).unwrap_or(Value::Null)
    }
}

/// A message type as the reference writes it (fields in its sorted order).
#[derive(Debug, serde::Serialize)]
pub struct WireType {
    created: &'static str,
    created_by: &'static str,
    modified: &'static str,
    modified_by: &'static str,
    uuid: &'static str,
    value: i64,
}

impl WireType {
    fn of(t: MessageType) -> Self {
        Self { created: TYPES_CREATED, created_by: "sys", modified: TYPES_CREATED, modified_by: "sys", uuid: t.uuid(), value: t.value() }
    }
}

/// A message as the reference writes it: fields in its (alphabetical) order, `confirmed`
/// always there (`null` until set), the other handshake fields and `internal` only once set.
#[derive(Debug, serde::Serialize)]
pub struct WireMessage<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled_by: Option<&'a str>,
    confirmed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_by: Option<&'a str>,
    content: &'a str,
    created: String,
    created_by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    internal: Option<&'a str>,
    message_type: WireType,
    modified: String,
    modified_by: &'a str,
    receiver: &'a str,
    receiver_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    related_message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retrieved: Option<String>,
    sender: &'a str,
    sender_type: &'a str,
    uuid: &'a str,
}

/// When the reference's migration created the message types (what its clients see).
const TYPES_CREATED: &str = "2018-02-16T16:03:26.092Z";

/// A message as kept. Sender and receiver types are free text, as in the reference (`patient`,
/// `clinician` and `location` are the ones with meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub uuid: String,
    pub created: PolarisTime,
    pub created_by: String,
    pub modified: PolarisTime,
    pub modified_by: String,
    pub sender: String,
    pub sender_type: String,
    pub receiver: String,
    pub receiver_type: String,
    pub content: String,
    pub message_type: MessageType,
    pub retrieved: Option<PolarisTime>,
    pub confirmed: Option<PolarisTime>,
    pub confirmed_by: Option<String>,
    pub related_message: Option<String>,
    pub cancelled: Option<PolarisTime>,
    pub cancelled_by: Option<String>,
    pub internal: Option<String>,
    /// Counts writes from 1: a change is written only over the version it was made from.
    pub version: u64,
}

/// Where messages are kept; every listing is served by an index (sender, receiver), newest first.
pub trait MessageStore: Send + Sync {
    /// Writes a new message; false if its uuid is taken.
    fn create(&self, message: &Message) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn get(&self, uuid: &str) -> impl Future<Output = Result<Option<Message>, StoreError>> + Send;
    /// Writes a changed message if the stored one still has version `message.version - 1`;
    /// false when another change came first.
    fn update(&self, message: &Message) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Every message a party sent, newest first (all of them: the reference does not page).
    fn sent_by(&self, sender: &str) -> impl Future<Output = Result<Vec<Message>, StoreError>> + Send;
    /// Every message a party received, newest first.
    fn received_by(&self, receiver: &str) -> impl Future<Output = Result<Vec<Message>, StoreError>> + Send;
    /// Writes many new messages at once (the development route `POST /create_messages`).
    fn create_many(&self, messages: &[Message]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Deletes every message (the development route `POST /drop_data`); how many there were.
    fn drop_all(&self) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

impl Message {
    /// A new message as it is first kept: `by` created it at `at`, with the handshake fields it
    /// came with.
    pub fn from_new(uuid: String, new: NewMessage, by: &str, at: PolarisTime) -> Self {
        let mut m = Self {
            uuid,
            created: at,
            created_by: by.to_owned(),
            modified: at,
            modified_by: by.to_owned(),
            sender: new.sender,
            sender_type: new.sender_type,
            receiver: new.receiver,
            receiver_type: new.receiver_type,
            content: new.content,
            message_type: new.message_type,
            retrieved: None,
            confirmed: None,
            confirmed_by: None,
            related_message: None,
            cancelled: None,
            cancelled_by: None,
            internal: new.internal,
            version: 1,
        };
        new.changes.apply(&mut m);
        m
    }

    /// The JSON the reference answers: keys sorted, `confirmed` always there (`null` until
    /// set), the other handshake fields only once set.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.wire()).unwrap_or(Value::Null)
    }

    /// The message as the reference writes it, to serialize directly (a listing of thousands).
    pub fn wire(&self) -> WireMessage<'_> {
        WireMessage {
            cancelled: self.cancelled.map(|t| t.format()),
            cancelled_by: self.cancelled_by.as_deref(),
            confirmed: self.confirmed.map(|t| t.format()),
            confirmed_by: self.confirmed_by.as_deref(),
            content: &self.content,
            created: self.created.format(),
            created_by: &self.created_by,
            internal: self.internal.as_deref(),
            message_type: WireType::of(self.message_type),
            modified: self.modified.format(),
            modified_by: &self.modified_by,
            receiver: &self.receiver,
            receiver_type: &self.receiver_type,
            related_message: self.related_message.as_deref(),
            retrieved: self.retrieved.map(|t| t.format()),
            sender: &self.sender,
            sender_type: &self.sender_type,
            uuid: &self.uuid,
        }
    }

    /// "Active": not confirmed, or a callback even when confirmed (a callback stays on the
    /// receiver's list until it is cancelled or done).
    pub fn is_active(&self) -> bool {
        self.confirmed.is_none() || self.message_type == MessageType::Callback
    }

    /// On the active-callback lists: a callback neither confirmed nor cancelled.
    pub fn is_open_callback(&self) -> bool {
        self.message_type == MessageType::Callback && self.confirmed.is_none() && self.cancelled.is_none()
    }
}

/// Why a message or a change to one is refused: the reference's words (its clients show them).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageRefusal {
    #[error("'{0}' is a required property")]
    Required(&'static str),
    #[error("{0}")]
    Schema(String),
    #[error("Property '{0}' not found in schema")]
    UnknownProperty(String),
    #[error("Property '{0}' must contain a valid value")]
    NoValue(String),
    #[error("Empty fields should not be sent, property '{0}' is empty")]
    Empty(String),
    #[error("{0} is not one of [0, 1, 2, 3, 5, 6, 7, 8, 9, 10] - 'message_type.value'")]
    UnknownType(i64),
    #[error(transparent)]
    Time(#[from] NotIso8601),
    #[error("Cannot set 'related_message' as '{0}' is an invalid value.")]
    NoRelatedMessage(String),
    #[error("Cannot set property related_message, circular reference to parent.")]
    CircularRelation,
    #[error("{{'{0}': ['Unknown field.']}}")]
    NotUpdatable(String),
    #[error("valid update parameters not found.")]
    NothingToUpdate,
}

impl MessageRefusal {
    /// Whether the reference refuses this in its schema layer (connexion's problem JSON, before
    /// any authorization) rather than in its own code (`{"message": ...}`).
    pub fn is_schema(&self) -> bool {
        matches!(self, Self::Required(_) | Self::Schema(_) | Self::UnknownType(_))
    }

    /// The text of the reference's `{"message": ...}`: what it raises as a `KeyError` comes
    /// out Python-quoted (`str(KeyError)` is the repr of its text).
    pub fn reference_text(&self) -> String {
        let text = self.to_string();
        match self {
            Self::Time(_) | Self::NotUpdatable(_) | Self::Required(_) | Self::Schema(_) | Self::UnknownType(_) => text,
            _ if text.contains('\'') && !text.contains('"') => format!("\"{text}\""),
            _ => format!("'{text}'"),
        }
    }
}

/// A message as a client asks for it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub sender: String,
    pub sender_type: String,
    pub receiver: String,
    pub receiver_type: String,
    pub content: String,
    pub message_type: MessageType,
    pub changes: Changes,
    pub internal: Option<String>,
}

/// The handshake fields a PATCH (or a new message) may set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub retrieved: Option<PolarisTime>,
    pub confirmed: Option<PolarisTime>,
    pub confirmed_by: Option<String>,
    pub related_message: Option<String>,
    pub cancelled: Option<PolarisTime>,
    pub cancelled_by: Option<String>,
}

const REQUIRED: [&str; 6] = ["sender", "sender_type", "receiver", "receiver_type", "content", "message_type"];
const UPDATABLE: [&str; 6] = ["retrieved", "confirmed", "confirmed_by", "related_message", "cancelled", "cancelled_by"];

impl Changes {
    /// The handshake fields of a body, each a non-empty string, timestamps read as the reference
    /// reads them. `related_message` is checked against the store by the caller.
    fn read(body: &Map<String, Value>) -> Result<Self, MessageRefusal> {
        let text = |k: &str| -> Result<Option<String>, MessageRefusal> {
            match body.get(k) {
                None => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Err(MessageRefusal::Schema(format!("'' is too short - '{k}'"))),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(MessageRefusal::Schema(format!("{} is not of type 'string' - '{k}'", python_repr(other)))),
            }
        };
        let time = |k: &str| -> Result<Option<PolarisTime>, MessageRefusal> { Ok(text(k)?.map(|s| PolarisTime::parse(&s)).transpose()?) };
        Ok(Self {
            retrieved: time("retrieved")?,
            confirmed: time("confirmed")?,
            confirmed_by: text("confirmed_by")?,
            related_message: text("related_message")?,
            cancelled: time("cancelled")?,
            cancelled_by: text("cancelled_by")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the changes to a message (nothing is ever cleared); `modified` is the caller's.
    pub fn apply(&self, message: &mut Message) {
        message.retrieved = self.retrieved.or(message.retrieved);
        message.confirmed = self.confirmed.or(message.confirmed);
        message.cancelled = self.cancelled.or(message.cancelled);
        for (new, old) in [
            (&self.confirmed_by, &mut message.confirmed_by),
            (&self.related_message, &mut message.related_message),
            (&self.cancelled_by, &mut message.cancelled_by),
        ] {
            if let Some(v) = new {
                *old = Some(v.clone());
            }
        }
    }
}

/// A JSON value as Python's `repr` would print it in the reference's schema errors.
fn python_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

/// Checks a new message's body (`POST /dhos/v{1,2}/message`) as the reference does: the
/// schema first (required properties, types, the type's value), then its own rules (no unknown
/// property, no empty value).
pub fn new_message(body: &Value) -> Result<NewMessage, MessageRefusal> {
    let Value::Object(body) = body else { return Err(MessageRefusal::Schema(format!("{} is not of type 'object'", python_repr(body)))) };
    for k in REQUIRED {
        if !body.contains_key(k) {
            return Err(MessageRefusal::Required(k));
        }
    }
    let message_type = match &body["message_type"] {
        Value::Object(t) => match t.get("value") {
            None => return Err(MessageRefusal::Schema("'value' is a required property - 'message_type'".into())),
            Some(Value::Number(n)) if n.is_i64() => {
                let v = n.as_i64().unwrap_or_default();
                MessageType::from_value(v).ok_or(MessageRefusal::UnknownType(v))?
            }
            Some(other) => return Err(MessageRefusal::Schema(format!("{} is not of type 'integer' - 'message_type.value'", python_repr(other)))),
        },
        other => return Err(MessageRefusal::Schema(format!("{} is not of type 'object' - 'message_type'", python_repr(other)))),
    };
    let mut strings = Vec::with_capacity(5);
    for k in ["sender", "sender_type", "receiver", "receiver_type", "content"] {
        match &body[k] {
            Value::String(s) => strings.push(s.clone()),
            other => return Err(MessageRefusal::Schema(format!("{} is not of type 'string' - '{k}'", python_repr(other)))),
        }
    }
    // The reference's own checks, in its order: unknown properties, then empty values.
    for k in body.keys() {
        if !REQUIRED.contains(&k.as_str()) && !UPDATABLE.contains(&k.as_str()) && k != "internal" {
            return Err(MessageRefusal::UnknownProperty(k.clone()));
        }
    }
    if let Some(k) = ["sender", "sender_type", "receiver", "receiver_type", "content"].into_iter().zip(&strings).find_map(|(k, s)| s.is_empty().then_some(k)) {
        return Err(MessageRefusal::NoValue(k.to_owned()));
    }
    for k in UPDATABLE.iter().chain(["internal"].iter()) {
        if body.get(*k).is_some_and(|v| v.as_str() == Some("")) {
            return Err(MessageRefusal::Empty((*k).to_owned()));
        }
    }
    let changes = Changes::read(body)?;
    let internal = match body.get("internal") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(MessageRefusal::Schema(format!("{} is not of type 'string' - 'internal'", python_repr(other)))),
    };
    let mut s = strings.into_iter();
    let mut next = || s.next().unwrap_or_default();
    Ok(NewMessage { sender: next(), sender_type: next(), receiver: next(), receiver_type: next(), content: next(), message_type, changes, internal })
}

/// Checks a PATCH body: only the handshake fields, at least one; `related_message` may not be
/// the message itself (its existence is checked against the store by the caller).
pub fn patch(message_uuid: &str, body: &Value) -> Result<Changes, MessageRefusal> {
    let Value::Object(body) = body else { return Err(MessageRefusal::Schema(format!("{} is not of type 'object'", python_repr(body)))) };
    let changes = Changes::read(body)?;
    if let Some(k) = body.keys().find(|k| !UPDATABLE.contains(&k.as_str())) {
        return Err(MessageRefusal::NotUpdatable(k.clone()));
    }
    if changes.is_empty() {
        return Err(MessageRefusal::NothingToUpdate);
    }
    if changes.related_message.as_deref() == Some(message_uuid) {
        return Err(MessageRefusal::CircularRelation);
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({"sender": "c-1", "sender_type": "clinician", "receiver": "p-1", "receiver_type": "patient",
               "content": "Please call me at your earliest convenience.", "message_type": {"value": 1}})
    }

    fn message(new: &NewMessage) -> Message {
        Message::from_new("m-1".into(), new.clone(), "c-1", PolarisTime::parse("2022-01-01T10:00:00.000Z").unwrap())
    }

    #[test]
    fn a_message_is_written_as_the_reference_writes_it() {
        let m = message(&new_message(&body()).unwrap());
        let j = m.to_json();
        let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["confirmed", "content", "created", "created_by", "message_type", "modified", "modified_by", "receiver", "receiver_type", "sender", "sender_type", "uuid"], "sorted, confirmed always there");
        assert_eq!(j["confirmed"], Value::Null);
        assert_eq!(j["message_type"]["value"], 1);
        assert_eq!(j["message_type"]["uuid"], "DHOS-MESSAGES-DOSAGE");
        assert_eq!(j["created"], "2022-01-01T10:00:00.000Z");
    }

    #[test]
    fn new_messages_are_checked_in_the_references_order_with_its_words() {
        let with = |k: &str, v: Value| {
            let mut b = body();
            b[k] = v;
            new_message(&b).unwrap_err().to_string()
        };
        assert_eq!(with("message_type", json!({"value": 4})), "4 is not one of [0, 1, 2, 3, 5, 6, 7, 8, 9, 10] - 'message_type.value'");
        assert_eq!(with("message_type", json!("")), "'' is not of type 'object' - 'message_type'");
        assert_eq!(with("message_type", json!({"value": "1"})), "'1' is not of type 'integer' - 'message_type.value'");
        assert_eq!(with("rubbish", json!("x")), "Property 'rubbish' not found in schema");
        assert_eq!(with("retrieved", json!("")), "Empty fields should not be sent, property 'retrieved' is empty");
        assert_eq!(with("content", json!("")), "Property 'content' must contain a valid value");
        assert_eq!(with("confirmed", json!("yesterday")), "yesterday does not match expected ISO8601 format");
        let mut missing = body();
        missing.as_object_mut().unwrap().remove("sender");
        assert_eq!(new_message(&missing).unwrap_err(), MessageRefusal::Required("sender"));
        let free_types = new_message(&{
            let mut b = body();
            b["receiver_type"] = json!("bad_user_type");
            b
        });
        assert!(free_types.is_ok(), "sender and receiver types are free text, as in the reference");
        for value in [0, 1, 2, 3, 5, 6, 7, 8, 9, 10] {
            assert_eq!(MessageType::from_value(value).map(MessageType::value), Some(value));
        }
        assert_eq!(MessageType::from_value(4), None);
    }

    #[test]
    fn a_patch_sets_only_the_handshake_and_never_clears_it() {
        assert_eq!(patch("m-1", &json!({})), Err(MessageRefusal::NothingToUpdate));
        assert_eq!(MessageRefusal::NothingToUpdate.to_string(), "valid update parameters not found.");
        for field in ["sender", "sender_type", "receiver", "receiver_type", "message_type", "content", "internal"] {
            assert_eq!(patch("m-1", &json!({field: "x"})), Err(MessageRefusal::NotUpdatable(field.into())), "{field}");
        }
        assert_eq!(MessageRefusal::NotUpdatable("content".into()).to_string(), "{'content': ['Unknown field.']}");
        assert_eq!(patch("m-1", &json!({"related_message": "m-1"})), Err(MessageRefusal::CircularRelation));
        assert_eq!(patch("m-1", &json!({"retrieved": null})).unwrap_err().to_string(), "None is not of type 'string' - 'retrieved'");
        assert_eq!(patch("m-1", &json!({"retrieved": ""})).unwrap_err().to_string(), "'' is too short - 'retrieved'");

        let mut m = message(&new_message(&body()).unwrap());
        let confirm = patch("m-1", &json!({"confirmed": "2018-02-12T09:44:40.456+03:00", "confirmed_by": "1234"})).unwrap();
        confirm.apply(&mut m);
        assert_eq!(m.to_json()["confirmed"], "2018-02-12T09:44:40.456+03:00", "echoed in its offset");
        assert_eq!(m.to_json()["confirmed_by"], "1234");
        assert!(!m.is_active(), "a confirmed general message leaves the active lists");
        patch("m-1", &json!({"retrieved": "2018-02-13T07:23:30.789Z"})).unwrap().apply(&mut m);
        assert!(m.confirmed.is_some() && m.retrieved.is_some(), "nothing cleared");
    }

    #[test]
    fn a_confirmed_callback_stays_active_but_leaves_the_callback_lists() {
        let mut b = body();
        b["message_type"] = json!({"value": 5});
        let mut callback = message(&new_message(&b).unwrap());
        assert!(callback.is_active() && callback.is_open_callback());
        patch("m-1", &json!({"confirmed": "2022-01-01T11:00:00.000Z"})).unwrap().apply(&mut callback);
        assert!(callback.is_active(), "a callback stays active when confirmed");
        assert!(!callback.is_open_callback());
        assert!(MessageType::RedAlert.is_alert() && !MessageType::ClearAlerts.is_alert());
    }
}
