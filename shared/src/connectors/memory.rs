//! Connectors in memory for unit tests, with the DynamoDB store's conditions: a write happens
//! only over the expected version (or where there is none), a delete only at the expected one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Connector, ConnectorStore, Deleted};
use crate::StoreError;

#[derive(Default)]
pub struct MemoryConnectors {
    pub connectors: Mutex<BTreeMap<String, Connector>>,
    /// Items under each connector (connections, mappings), by connector name: what a delete
    /// must take with it.
    pub children: Mutex<BTreeMap<String, usize>>,
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
                let with = self.children.lock().expect("lock").remove(name).unwrap_or(0);
                Ok(Deleted::Removed { with })
            }
        }
    }
}
