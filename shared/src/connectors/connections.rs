//! Connections: a connector's named entry points, each with a primary and a secondary key
//! ([`super::keys`]). A connection exists only under an existing connector, and goes with it.

use std::future::Future;

use serde_json::{json, Value};

use super::keys::{self, KeyCipher, KeyPlace, KeySlot};
use crate::access::api_keys::KeyHasher;
use crate::StoreError;

/// One kept key: its keyed hash (to verify) and its ciphertext (to show again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub hash: String,
    pub ciphertext: Vec<u8>,
}

/// A connection and its two keys, never in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub connector: String,
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
    pub version: u64,
    pub primary: StoredKey,
    pub secondary: StoredKey,
}

impl Connection {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }

    /// What an admin sees (never a key: `listKeys` shows those).
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "connectorName": self.connector, "createdAt": self.created_at, "updatedAt": self.updated_at, "etag": self.etag()})
    }

    pub fn key(&self, slot: KeySlot) -> &StoredKey {
        match slot {
            KeySlot::Primary => &self.primary,
            KeySlot::Secondary => &self.secondary,
        }
    }

    /// Whether a presented secret is one of this connection's two keys (both compared in
    /// constant time, both always).
    pub fn accepts(&self, secret: &str, hasher: &KeyHasher) -> bool {
        let primary = hasher.verify(secret, &self.primary.hash);
        let secondary = hasher.verify(secret, &self.secondary.hash);
        primary | secondary
    }
}

/// A fresh key for a slot, kept as hash and ciphertext; the key itself to show once.
pub async fn new_key<C: KeyCipher>(connector: &str, connection: &str, slot: KeySlot, hasher: &KeyHasher, cipher: &C) -> Result<(String, StoredKey), StoreError> {
    let key = keys::generate(connection)?;
    let Some((_, secret)) = keys::split(&key) else {
        return Err(StoreError::new("generate a connection key", "a generated key did not parse"));
    };
    let hash = hasher.hash(secret);
    let ciphertext = cipher.encrypt(&key, KeyPlace { connector, connection, slot }).await?;
    Ok((key, StoredKey { hash, ciphertext }))
}

/// What writing a connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Done,
    /// Its connector does not exist (any more).
    NoConnector,
    /// The stored connection's version was not the expected one.
    Changed,
}

/// Where connections are kept (beside their connector).
pub trait ConnectionStore: Send + Sync {
    /// A connector's connections, by name.
    fn connections(&self, connector: &str) -> impl Future<Output = Result<Vec<Connection>, StoreError>> + Send;
    fn connection(&self, connector: &str, name: &str) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;
    /// Writes the connection if its connector exists and the stored connection still has
    /// version `expected` (`None`: there is none).
    fn put_connection(&self, connection: &Connection, expected: Option<u64>) -> impl Future<Output = Result<Written, StoreError>> + Send;
    /// Deletes a connection; false if there was none.
    fn delete_connection(&self, connector: &str, name: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::memory::MemoryCipher;

    #[tokio::test]
    async fn a_connection_accepts_both_its_keys_and_only_them() {
        let hasher = KeyHasher::new(b"pepper-pepper-pepper-pepper-pepper".to_vec());
        let (primary_key, primary) = new_key("ward-7", "gw-1", KeySlot::Primary, &hasher, &MemoryCipher).await.unwrap();
        let (secondary_key, secondary) = new_key("ward-7", "gw-1", KeySlot::Secondary, &hasher, &MemoryCipher).await.unwrap();
        let c = Connection { connector: "ward-7".into(), name: "gw-1".into(), created_at: String::new(), updated_at: String::new(), version: 1, primary, secondary };
        for key in [&primary_key, &secondary_key] {
            assert!(c.accepts(keys::split(key).unwrap().1, &hasher));
        }
        let other = keys::generate("gw-1").unwrap();
        assert!(!c.accepts(keys::split(&other).unwrap().1, &hasher));
        assert!(!serde_json::to_string(&c.to_json()).unwrap().contains(keys::split(&primary_key).unwrap().1), "no key in what admins see");
        let place = KeyPlace { connector: "ward-7", connection: "gw-1", slot: KeySlot::Primary };
        assert_eq!(MemoryCipher.decrypt(&c.primary.ciphertext, place).await.unwrap(), primary_key);
        let elsewhere = KeyPlace { slot: KeySlot::Secondary, ..place };
        assert!(MemoryCipher.decrypt(&c.primary.ciphertext, elsewhere).await.is_err(), "bound to its place");
    }
}
