//! `connector-mqtt`: the MQTT front door of the connectors. IoT Core things publish device JSON
//! to `vitalwire/connectors/<connector>/devices/<thing>/messages` (the device policy lets a
//! thing publish only under its own name); the `VitalwireConnectorMessages` rule hands each
//! publish to this function, which wraps it in the connector envelope, with the thing name
//! where IoT Hub templates read the device (`SystemProperties.iothub-connection-device-id`),
//! and queues it in the device's FIFO group.
//!
//! IoT rules cannot send to a FIFO queue themselves (the SQS action does not support FIFO),
//! hence a function. The rule selects the payload base64-encoded, so that a payload that is not
//! JSON still arrives and is kept as a dead letter with its reason.

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::messages::{envelope, Sender, MAX_BODY_BYTES};
use super::queue::{MessageQueue, Queued};
use super::{name_ok, ConnectorStore};
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The rule's event: `SELECT encode(*, 'base64') AS payload, topic(3) AS connector, topic(5) AS
/// topicThing, clientid() AS thingName, timestamp() AS receivedAt, newuuid() AS messageId`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorPublish {
    pub payload: String,
    pub connector: String,
    pub topic_thing: String,
    /// The publisher's client id: its thing name (the policy allows no other).
    pub thing_name: String,
    /// Milliseconds since the epoch.
    pub received_at: i64,
    pub message_id: String,
}

/// What the function needs.
pub struct MqttDeps<S, Q, D> {
    pub store: S,
    pub queue: Q,
    pub dead_letters: D,
}

impl<S: FromWiring, Q: FromWiring, D: FromWiring> FromWiring for MqttDeps<S, Q, D> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { store: w.build()?, queue: w.build()?, dead_letters: w.build()? })
    }
}

/// What became of a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Queued(usize),
    /// Kept as a dead letter with this error type.
    Refused(&'static str),
}

/// Queues a publish's messages, or keeps it with the reason it was refused. `Err` when the
/// queue or the store failed (the rule's invocation is retried, then goes to its error action).
pub async fn handle<S: ConnectorStore, Q: MessageQueue, D: DeadLetterStore>(event: &ConnectorPublish, deps: &MqttDeps<S, Q, D>) -> Result<Value, StoreError> {
    let outcome = queue_publish(event, deps).await?;
    Ok(match outcome {
        Outcome::Queued(n) => json!({"accepted": n}),
        Outcome::Refused(code) => json!({"refused": code}),
    })
}

async fn queue_publish<S: ConnectorStore, Q: MessageQueue, D: DeadLetterStore>(event: &ConnectorPublish, deps: &MqttDeps<S, Q, D>) -> Result<Outcome, StoreError> {
    let received_at = chrono::DateTime::from_timestamp_millis(event.received_at).map(format_utc).unwrap_or_else(|| format_utc(chrono::Utc::now()));
    let bytes = base64::engine::general_purpose::STANDARD.decode(&event.payload).unwrap_or_else(|_| event.payload.clone().into_bytes());
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let connector = &event.connector;
    // A name that cannot be a connector's does not get a dead-letter partition of its own.
    let source = if name_ok(connector) { super::http::dead_letter_source(connector) } else { "connectors".to_owned() };
    let refuse = |code: &'static str, reason: String| {
        let letter = DeadLetter::refused(&source, Some(&event.thing_name), code, reason, raw.clone(), received_at.clone());
        async move {
            deps.dead_letters.record(&letter).await?;
            tracing::info!(source = %letter.source, reason_code = code, "connector publish refused");
            Ok(Outcome::Refused(code))
        }
    };
    if event.topic_thing != event.thing_name {
        return refuse("NOT_THIS_DEVICE", format!("thing {} published under another thing's topic", event.thing_name)).await;
    }
    let found = if name_ok(connector) { deps.store.get(connector).await? } else { None };
    let Some(found) = found else {
        return refuse("CONNECTOR_NOT_FOUND", format!("there is no connector {connector:?}: publish to vitalwire/connectors/<connector>/devices/<thing>/messages")).await;
    };
    if !found.enabled {
        return refuse("CONNECTOR_DISABLED", format!("connector {connector} is disabled")).await;
    }
    if bytes.len() > MAX_BODY_BYTES {
        return refuse("BODY_TOO_LARGE", format!("the payload is over {MAX_BODY_BYTES} bytes")).await;
    }
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return refuse("NOT_JSON", "the payload is not UTF-8 text".into()).await;
    };
    let messages = match crate::mapping::measurement::split_messages(text) {
        Ok(m) if !m.is_empty() => m,
        Ok(_) => return refuse("NO_MESSAGES", "the payload holds no message".into()).await,
        Err(e) => return refuse("NOT_JSON", e.to_string()).await,
    };
    let sender = Sender::Thing(&event.thing_name);
    let queued: Vec<Queued> = messages
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            let id = if i == 0 { event.message_id.clone() } else { format!("{}#{i}", event.message_id) };
            let message = envelope(connector, &sender, body, Map::new(), &received_at, &id);
            Queued { group: format!("{connector}/{}", event.thing_name), message_id: id, body: message.to_string() }
        })
        .collect();
    deps.queue.send(&queued).await?;
    Ok(Outcome::Queued(queued.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::memory::{MemoryConnectors, MemoryQueue};
    use crate::connectors::{Connector, IdentityResolutionType};
    use crate::dead_letters::memory::MemoryDeadLetters;

    fn deps(enabled: bool) -> MqttDeps<MemoryConnectors, MemoryQueue, MemoryDeadLetters> {
        let store = MemoryConnectors::default();
        let c = Connector { enabled, ..Connector::created("ward-7", IdentityResolutionType::Lookup, "") };
        store.connectors.lock().unwrap().insert("ward-7".into(), c);
        MqttDeps { store, queue: MemoryQueue::default(), dead_letters: MemoryDeadLetters::default() }
    }

    fn publish(connector: &str, topic_thing: &str, payload: &[u8]) -> ConnectorPublish {
        ConnectorPublish {
            payload: base64::engine::general_purpose::STANDARD.encode(payload),
            connector: connector.into(),
            topic_thing: topic_thing.into(),
            thing_name: "cuff-1".into(),
            received_at: 1_764_583_200_000,
            message_id: "u-1".into(),
        }
    }

    #[tokio::test]
    async fn a_things_publish_is_queued_in_its_group_with_the_thing_as_iot_hub_device() {
        let deps = deps(true);
        let answer = handle(&publish("ward-7", "cuff-1", b"[{\"hr\": 70}, {\"hr\": 71}]"), &deps).await.unwrap();
        assert_eq!(answer, json!({"accepted": 2}));
        let sent = deps.queue.0.lock().unwrap().clone();
        assert_eq!((sent[0].group.as_str(), sent[1].message_id.as_str()), ("ward-7/cuff-1", "u-1#1"));
        let e: Value = serde_json::from_str(&sent[0].body).unwrap();
        assert_eq!(e["SystemProperties"]["iothub-connection-device-id"], "cuff-1");
        assert_eq!(e["SystemProperties"]["iothub-enqueuedtime"], "2025-12-01T10:00:00.000Z");
        assert_eq!(e["Body"]["hr"], 70);
    }

    #[tokio::test]
    async fn refused_publishes_are_kept_with_their_reason() {
        let deps = deps(true);
        for (p, code) in [
            (publish("ward-7", "cuff-2", b"{}"), "NOT_THIS_DEVICE"),
            (publish("ward-9", "cuff-1", b"{}"), "CONNECTOR_NOT_FOUND"),
            (publish("a/b", "cuff-1", b"{}"), "CONNECTOR_NOT_FOUND"),
            (publish("ward-7", "cuff-1", b"{\"hr\": "), "NOT_JSON"),
        ] {
            assert_eq!(handle(&p, &deps).await.unwrap(), json!({"refused": code}));
        }
        let letters = deps.dead_letters.all();
        assert!(letters.iter().any(|l| l.source == "connectors" && l.reason_code == "CONNECTOR_NOT_FOUND"), "no partition for a name that is none");
        assert!(letters.iter().any(|l| l.raw_payload == "{\"hr\": "), "the raw payload, decoded");
        assert!(deps.queue.0.lock().unwrap().is_empty());
        deps.queue.fail_next();
        assert!(handle(&publish("ward-7", "cuff-1", b"{}"), &deps).await.is_err(), "the rule's invocation is retried");
        let disabled = self::deps(false);
        assert_eq!(handle(&publish("ward-7", "cuff-1", b"{}"), &disabled).await.unwrap(), json!({"refused": "CONNECTOR_DISABLED"}));
    }
}
