//! The data plane's front door (issue 11, in progress): who may send a connector messages, and
//! the envelope each message travels in, as the IoMT connector's device mappings expect it.
//!
//! HTTPS callers present a connection key as `Authorization: SharedAccessKey <key>` (either of
//! the connection's two keys; the connector must be enabled). Every message becomes
//! `{"Body", "Properties", "SystemProperties"}`: `Properties` from the request's
//! `x-vitalwire-property-<name>` headers, `SystemProperties` with the connector, the
//! connection (HTTPS) or the thing name as IoT Hub's `iothub-connection-device-id` (MQTT), the
//! enqueued time as IoT Hub's `iothub-enqueuedtime`, and the message id (the sender's own
//! `x-vitalwire-message-id`, so a retried request is one message, or a fresh one).

use serde_json::{json, Map, Value};

use super::connections::{Connection, ConnectionStore};
use super::keys;
use super::{Connector, ConnectorStore};
use crate::access::secrets::PepperSource;
use crate::StoreError;

/// Largest body of messages one request may carry.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The header prefix that becomes a message property (`x-vitalwire-property-unit: bpm` →
/// `Properties.unit`).
pub const PROPERTY_HEADER: &str = "x-vitalwire-property-";

/// Why a caller may not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("send a connection key as `Authorization: SharedAccessKey <key>`")]
    Missing,
    #[error("the connection key is malformed")]
    Malformed,
    #[error("the connection key is not a key of this connector")]
    Unknown,
    #[error("the connector is disabled")]
    Disabled,
}

/// The key of an `Authorization` header.
pub fn presented_key(authorization: Option<&str>) -> Result<&str, KeyRefusal> {
    let value = authorization.map(str::trim).ok_or(KeyRefusal::Missing)?;
    let (scheme, key) = value.split_once(' ').ok_or(KeyRefusal::Missing)?;
    if !scheme.eq_ignore_ascii_case("SharedAccessKey") {
        return Err(KeyRefusal::Missing);
    }
    Ok(key.trim())
}

/// The connector and connection a key opens, or why it opens nothing. An unknown connector,
/// connection or secret all answer `Unknown`: a caller learns nothing about which names exist.
pub async fn authenticate<S: ConnectorStore + ConnectionStore, P: PepperSource>(
    connector: &str,
    key: &str,
    store: &S,
    pepper: &P,
) -> Result<Result<(Connector, Connection), KeyRefusal>, StoreError> {
    let Some((connection, secret)) = keys::split(key) else { return Ok(Err(KeyRefusal::Malformed)) };
    let Some(found) = store.connection(connector, connection).await? else { return Ok(Err(KeyRefusal::Unknown)) };
    if !found.accepts(secret, pepper.hasher().await?) {
        return Ok(Err(KeyRefusal::Unknown));
    }
    // The connector is read after the key: deleting it stops its keys at once.
    let Some(owner) = store.get(connector).await? else { return Ok(Err(KeyRefusal::Unknown)) };
    if !owner.enabled {
        return Ok(Err(KeyRefusal::Disabled));
    }
    Ok(Ok((owner, found)))
}

/// The header a gateway names the device of its messages with (HTTPS): it becomes
/// `SystemProperties.iothub-connection-device-id`, where IoT Hub templates read the device.
pub const DEVICE_HEADER: &str = "x-vitalwire-device-id";

/// How a message arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender<'a> {
    /// HTTPS, with a connection's key, for the device the sender named (if it did).
    Connection { name: &'a str, device: Option<&'a str> },
    /// MQTT, as an IoT Core thing.
    Thing(&'a str),
}

/// A message in the connector's envelope.
pub fn envelope(connector: &str, sender: &Sender<'_>, body: Value, properties: Map<String, Value>, enqueued_at: &str, message_id: &str) -> Value {
    let mut system = Map::new();
    system.insert("x-vitalwire-connector".into(), json!(connector));
    let device = match sender {
        Sender::Connection { name, device } => {
            system.insert("x-vitalwire-connection".into(), json!(name));
            *device
        }
        Sender::Thing(thing) => Some(*thing),
    };
    if let Some(device) = device {
        // Where IoT Hub puts the device: templates written for IoT Hub run unchanged.
        system.insert("iothub-connection-device-id".into(), json!(device));
    }
    system.insert("iothub-enqueuedtime".into(), json!(enqueued_at));
    system.insert("message-id".into(), json!(message_id));
    json!({"Body": body, "Properties": properties, "SystemProperties": system})
}

/// A message's id when its sender gives none: random. Not derived from the content: two
/// readings with the same body (a device that leaves the time to the enqueued time) are two
/// messages. A sender that retries gives its own id (`x-vitalwire-message-id`), and the queue
/// drops the repeat; the Observations are deterministic besides.
pub fn fresh_message_id() -> Result<String, StoreError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| StoreError::new("make a message id", e))?;
    Ok(hex::encode(id))
}

/// A sender's own message id: 1 to 128 printable ASCII characters.
pub fn given_message_id(header: Option<&str>) -> Option<&str> {
    header.map(str::trim).filter(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
}

/// The message properties of a request's headers.
pub fn properties<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Map<String, Value> {
    headers
        .into_iter()
        .filter_map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let property = name.strip_prefix(PROPERTY_HEADER)?;
            (!property.is_empty()).then(|| (property.to_owned(), json!(value)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::api_keys::KeyHasher;
    use crate::connectors::connections::{new_key, Connection};
    use crate::connectors::keys::KeySlot;
    use crate::connectors::memory::{MemoryCipher, MemoryConnectors};
    use crate::connectors::IdentityResolutionType;

    async fn store_with_key(enabled: bool) -> (MemoryConnectors, KeyHasher, String) {
        let hasher = KeyHasher::new(b"pepper-pepper-pepper-pepper-pepper".to_vec());
        let store = MemoryConnectors::default();
        let connector = Connector { enabled, ..Connector::created("ward-7", IdentityResolutionType::Lookup, "") };
        store.connectors.lock().unwrap().insert("ward-7".into(), connector);
        let (key, primary) = new_key("ward-7", "gw-1", KeySlot::Primary, &hasher, &MemoryCipher).await.unwrap();
        let (_, secondary) = new_key("ward-7", "gw-1", KeySlot::Secondary, &hasher, &MemoryCipher).await.unwrap();
        let c = Connection { connector: "ward-7".into(), name: "gw-1".into(), created_at: String::new(), updated_at: String::new(), version: 1, primary, secondary };
        store.connections.lock().unwrap().insert(("ward-7".into(), "gw-1".into()), c);
        (store, hasher, key)
    }

    #[tokio::test]
    async fn a_key_opens_its_own_enabled_connector_only() {
        let (store, hasher, key) = store_with_key(true).await;
        let (connector, connection) = authenticate("ward-7", &key, &store, &hasher).await.unwrap().unwrap();
        assert_eq!((connector.name.as_str(), connection.name.as_str()), ("ward-7", "gw-1"));
        assert_eq!(authenticate("ward-8", &key, &store, &hasher).await.unwrap().unwrap_err(), KeyRefusal::Unknown, "another connector");
        let forged = keys::generate("gw-1").unwrap();
        assert_eq!(authenticate("ward-7", &forged, &store, &hasher).await.unwrap().unwrap_err(), KeyRefusal::Unknown);
        assert_eq!(authenticate("ward-7", "vwc_nope", &store, &hasher).await.unwrap().unwrap_err(), KeyRefusal::Malformed);
        let (disabled, hasher, key) = store_with_key(false).await;
        assert_eq!(authenticate("ward-7", &key, &disabled, &hasher).await.unwrap().unwrap_err(), KeyRefusal::Disabled);
        disabled.connectors.lock().unwrap().clear();
        assert_eq!(authenticate("ward-7", &key, &disabled, &hasher).await.unwrap().unwrap_err(), KeyRefusal::Unknown, "a deleted connector's keys stop");
    }

    #[test]
    fn the_authorization_header_names_the_scheme() {
        assert_eq!(presented_key(Some("SharedAccessKey vwc_a")), Ok("vwc_a"));
        assert_eq!(presented_key(Some("sharedaccesskey  vwc_a ")), Ok("vwc_a"));
        for bad in [None, Some(""), Some("Bearer vwc_a"), Some("vwc_a")] {
            assert_eq!(presented_key(bad), Err(KeyRefusal::Missing), "{bad:?}");
        }
    }

    #[test]
    fn messages_travel_in_the_iot_hub_shaped_envelope() {
        let props = properties([("X-Vitalwire-Property-Unit", "bpm"), ("content-type", "application/json"), ("x-vitalwire-property-", "x")]);
        assert_eq!(props, Map::from_iter([("unit".to_owned(), json!("bpm"))]));
        let by_thing = envelope("ward-7", &Sender::Thing("cuff-1"), json!({"hr": 70}), props, "2024-05-01T10:00:00Z", "m-1");
        assert_eq!(by_thing["SystemProperties"]["iothub-connection-device-id"], "cuff-1");
        assert_eq!(by_thing["SystemProperties"]["iothub-enqueuedtime"], "2024-05-01T10:00:00Z");
        assert_eq!((by_thing["SystemProperties"]["message-id"].as_str(), by_thing["Properties"]["unit"].as_str()), (Some("m-1"), Some("bpm")));
        let by_key = envelope("ward-7", &Sender::Connection { name: "gw-1", device: None }, json!({"hr": 70}), Map::new(), "2024-05-01T10:00:05Z", "m-2");
        assert_eq!(by_key["SystemProperties"]["x-vitalwire-connection"], "gw-1");
        assert!(by_key["SystemProperties"].get("iothub-connection-device-id").is_none());
        let for_device = envelope("ward-7", &Sender::Connection { name: "gw-1", device: Some("cuff-2") }, json!({}), Map::new(), "2024-05-01T10:00:05Z", "m-3");
        assert_eq!(for_device["SystemProperties"]["iothub-connection-device-id"], "cuff-2", "a gateway names its device");
        assert_ne!(fresh_message_id().unwrap(), fresh_message_id().unwrap(), "the same body twice is two messages");
        assert_eq!(given_message_id(Some(" retry-42 ")), Some("retry-42"));
        for bad in [None, Some(""), Some("with space"), Some("é")] {
            assert_eq!(given_message_id(bad), None, "{bad:?}");
        }
    }
}
