//! Patient records in memory for unit tests, created once by id as the DynamoDB adapter does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Encounter, EncounterStore, Patient, PatientStore};
use crate::StoreError;

/// Clones share one store.
#[derive(Debug, Default, Clone)]
pub struct MemoryPatients(pub Arc<Mutex<BTreeMap<String, Patient>>>);

impl PatientStore for MemoryPatients {
    async fn get(&self, id: &str) -> Result<Option<Patient>, StoreError> {
        Ok(self.0.lock().expect("lock").get(id).cloned())
    }

    async fn create(&self, patient: &Patient) -> Result<bool, StoreError> {
        let mut patients = self.0.lock().expect("lock");
        if patients.contains_key(&patient.id) {
            return Ok(false);
        }
        patients.insert(patient.id.clone(), patient.clone());
        Ok(true)
    }
}

/// Encounters in memory, created once by id.
#[derive(Debug, Default, Clone)]
pub struct MemoryEncounters(pub Arc<Mutex<BTreeMap<String, Encounter>>>);

impl EncounterStore for MemoryEncounters {
    async fn get(&self, id: &str) -> Result<Option<Encounter>, StoreError> {
        Ok(self.0.lock().expect("lock").get(id).cloned())
    }

    async fn create(&self, e: &Encounter) -> Result<bool, StoreError> {
        let mut all = self.0.lock().expect("lock");
        if all.contains_key(&e.id) {
            return Ok(false);
        }
        all.insert(e.id.clone(), e.clone());
        Ok(true)
    }
}
