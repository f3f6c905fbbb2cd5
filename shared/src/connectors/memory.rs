//! Connectors in memory for unit tests, with the DynamoDB store's conditions: a write happens
//! only over the expected version (or where there is none), a delete only at the expected one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::connections::{Connection, ConnectionStore, Written};
use super::mappings::{MappingKind, MappingStore, StoredMapping};
use super::{Connector, ConnectorStore, Deleted};
use crate::StoreError;

#[derive(Default)]
pub struct MemoryConnectors {
    pub connectors: Mutex<BTreeMap<String, Connector>>,
    /// Items under each connector (connections, mappings), by connector name: what a delete
    /// must take with it.
    pub children: Mutex<BTreeMap<String, usize>>,
    /// By (connector, connection).
    pub connections: Mutex<BTreeMap<(String, String), Connection>>,
    /// By (connector, kind, version).
    pub mappings: Mutex<BTreeMap<(String, &'static str, u64), StoredMapping>>,
}

impl ConnectorStore for MemoryConnectors {
    async fn list(&self) -> Result<Vec<Connector>, StoreError> {
        Ok(self.connectors.lock().expect("lock").values().cloned().collect())
    }

    async fn get(&self, name: &str) -> Result<Option<Connector>, StoreError> {
        Ok(self.connectors.lock().expect("lock").get(name).cloned())
    }

    async fn put(&self, connector: &Connector, expected: Option<u64>) -> Result<bool, StoreError> {
        let mut all = self.connectors.lock().expect("lock");
        if all.get(&connector.name).map(|c| c.version) != expected {
            return Ok(false);
        }
        all.insert(connector.name.clone(), connector.clone());
        Ok(true)
    }

    async fn delete(&self, name: &str, expected: Option<u64>) -> Result<Deleted, StoreError> {
        let mut all = self.connectors.lock().expect("lock");
        match all.get(name) {
            None => Ok(Deleted::NotFound),
            Some(c) if expected.is_some_and(|v| v != c.version) => Ok(Deleted::Changed),
            Some(_) => {
                all.remove(name);
                let mut connections = self.connections.lock().expect("lock");
                let before = connections.len();
                connections.retain(|(c, _), _| c != name);
                let mut mappings = self.mappings.lock().expect("lock");
                let mappings_before = mappings.len();
                mappings.retain(|(c, _, _), _| c != name);
                let with = self.children.lock().expect("lock").remove(name).unwrap_or(0) + before - connections.len() + mappings_before - mappings.len();
                Ok(Deleted::Removed { with })
            }
        }
    }
}

impl ConnectionStore for MemoryConnectors {
    async fn connections(&self, connector: &str) -> Result<Vec<Connection>, StoreError> {
        Ok(self.connections.lock().expect("lock").values().filter(|c| c.connector == connector).cloned().collect())
    }

    async fn connection(&self, connector: &str, name: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self.connections.lock().expect("lock").get(&(connector.to_owned(), name.to_owned())).cloned())
    }

    async fn put_connection(&self, connection: &Connection, expected: Option<u64>) -> Result<Written, StoreError> {
        // The connector is checked under its own lock, as a transaction's condition check would.
        let connectors = self.connectors.lock().expect("lock");
        if !connectors.contains_key(&connection.connector) {
            return Ok(Written::NoConnector);
        }
        let mut all = self.connections.lock().expect("lock");
        let key = (connection.connector.clone(), connection.name.clone());
        if all.get(&key).map(|c| c.version) != expected {
            return Ok(Written::Changed);
        }
        all.insert(key, connection.clone());
        Ok(Written::Done)
    }

    async fn delete_connection(&self, connector: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self.connections.lock().expect("lock").remove(&(connector.to_owned(), name.to_owned())).is_some())
    }
}

impl MappingStore for MemoryConnectors {
    async fn mapping(&self, connector: &str, kind: MappingKind, version: Option<u64>) -> Result<Option<StoredMapping>, StoreError> {
        let all = self.mappings.lock().expect("lock");
        let mut versions = all.values().filter(|m| m.connector == connector && m.kind == kind);
        Ok(match version {
            Some(v) => versions.find(|m| m.version == v).cloned(),
            None => versions.max_by_key(|m| m.version).cloned(),
        })
    }

    async fn delete_mapping(&self, connector: &str, kind: MappingKind) -> Result<usize, StoreError> {
        let mut all = self.mappings.lock().expect("lock");
        let before = all.len();
        all.retain(|(c, k, _), _| !(c == connector && *k == kind.as_str()));
        Ok(before - all.len())
    }

    async fn put_mapping(&self, mapping: &StoredMapping) -> Result<Written, StoreError> {
        let connectors = self.connectors.lock().expect("lock");
        if !connectors.contains_key(&mapping.connector) {
            return Ok(Written::NoConnector);
        }
        let mut all = self.mappings.lock().expect("lock");
        let key = (mapping.connector.clone(), mapping.kind.as_str(), mapping.version);
        if all.contains_key(&key) {
            return Ok(Written::Changed);
        }
        all.insert(key, mapping.clone());
        Ok(Written::Done)
    }
}

/// A stand-in for KMS: a "ciphertext" opens only at the place it was made for.
#[derive(Default)]
pub struct MemoryCipher;

fn context(place: super::keys::KeyPlace<'_>) -> String {
    format!("{}/{}/{}:", place.connector, place.connection, place.slot.as_str())
}

impl super::keys::KeyCipher for MemoryCipher {
    async fn encrypt(&self, key: &str, place: super::keys::KeyPlace<'_>) -> Result<Vec<u8>, StoreError> {
        Ok(format!("{}{key}", context(place)).into_bytes().into_iter().rev().collect())
    }

    async fn decrypt(&self, ciphertext: &[u8], place: super::keys::KeyPlace<'_>) -> Result<String, StoreError> {
        let text = String::from_utf8(ciphertext.iter().rev().copied().collect()).map_err(|e| StoreError::new("decrypt", e))?;
        text.strip_prefix(&context(place)).map(str::to_owned).ok_or_else(|| StoreError::new("decrypt", "the ciphertext was made for another key"))
    }
}

/// A queue in memory: what was sent, in order.
#[derive(Default)]
pub struct MemoryQueue(pub Mutex<Vec<super::queue::Queued>>, pub std::sync::atomic::AtomicBool);

impl MemoryQueue {
    /// Makes the next send fail as an unreachable queue would.
    pub fn fail_next(&self) {
        self.1.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl super::queue::MessageQueue for MemoryQueue {
    async fn send(&self, messages: &[super::queue::Queued]) -> Result<(), StoreError> {
        if self.1.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::new("queue connector messages", "simulated outage"));
        }
        self.0.lock().expect("lock").extend_from_slice(messages);
        Ok(())
    }
}

/// The consumer over in-memory ports.
pub type MemoryConsumer = super::consumer::ConsumerDeps<
    MemoryConnectors,
    crate::devices::memory::MemoryDevices,
    crate::patients::memory::MemoryPatients,
    crate::patients::memory::MemoryEncounters,
    crate::observations::memory::MemoryObservations,
    crate::clinical::memory::MemoryAlerts,
    crate::dead_letters::memory::MemoryDeadLetters,
    crate::platform::metrics::MemoryMetrics,
>;

/// A consumer with connector `ward-7` (resolving identities by `mode`, with both mappings) and
/// one registered device, `acme-band-7`, ACTIVE for patient `pat-1`.
pub fn consumer(mode: super::IdentityResolutionType, device_mapping: &str, fhir_mapping: &str) -> MemoryConsumer {
    use super::mappings::{MappingKind, StoredMapping};
    let store = MemoryConnectors::default();
    store.connectors.lock().expect("lock").insert("ward-7".into(), Connector::created("ward-7", mode, ""));
    for (kind, text) in [(MappingKind::Device, device_mapping), (MappingKind::Fhir, fhir_mapping)] {
        let m = StoredMapping { connector: "ward-7".into(), kind, version: 1, text: text.into(), updated_at: String::new() };
        store.mappings.lock().expect("lock").insert(("ward-7".into(), kind.as_str(), 1), m);
    }
    let mut band = crate::devices::Device::registered("Acme", "band 7", "HR", "", "");
    band.status = crate::devices::DeviceStatus::Active;
    band.patient_id = Some("pat-1".into());
    super::consumer::ConsumerDeps {
        store,
        filing: crate::ingest::FilingDeps {
            devices: crate::devices::memory::MemoryDevices::with(vec![band]),
            observations: Default::default(),
            alerts: Default::default(),
            alert_settings: Default::default(),
            metrics: Default::default(),
        },
        patients: Default::default(),
        encounters: Default::default(),
        dead_letters: Default::default(),
        metrics: Default::default(),
    }
}
