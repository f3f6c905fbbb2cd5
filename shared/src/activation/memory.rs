//! Activations in memory, with the DynamoDB store's conditions: every write only over the
//! version it was made from; opening and completing change the activation and the patient's
//! credential together or not at all.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Activation, ActivationStore, PatientCredential};
use crate::StoreError;

#[derive(Debug, Default)]
pub struct MemoryActivations {
    pub activations: Mutex<BTreeMap<String, Activation>>,
    pub credentials: Mutex<BTreeMap<String, PatientCredential>>,
}

/// Whether `new` may be written over what is kept (its version is the next one).
fn next<T>(kept: Option<&T>, version: u64, of: impl Fn(&T) -> u64) -> bool {
    kept.map_or(0, of) + 1 == version
}

impl ActivationStore for MemoryActivations {
    async fn activation(&self, code_key: &str) -> Result<Option<Activation>, StoreError> {
        Ok(self.activations.lock().expect("lock").get(code_key).cloned())
    }

    async fn credential(&self, patient_id: &str) -> Result<Option<PatientCredential>, StoreError> {
        Ok(self.credentials.lock().expect("lock").get(patient_id).cloned())
    }

    async fn open(&self, activation: &Activation, replaced: Option<&str>, credential: &PatientCredential) -> Result<bool, StoreError> {
        let (mut activations, mut credentials) = (self.activations.lock().expect("lock"), self.credentials.lock().expect("lock"));
        let credential_ok = next(credentials.get(&credential.patient_id), credential.version, |c| c.version);
        if !credential_ok || activations.contains_key(&activation.code_key) {
            return Ok(false);
        }
        if let Some(old) = replaced {
            if activations.get(old).is_some_and(|a| a.completed.is_none()) {
                activations.remove(old);
            }
        }
        activations.insert(activation.code_key.clone(), activation.clone());
        credentials.insert(credential.patient_id.clone(), credential.clone());
        Ok(true)
    }

    async fn update(&self, activation: &Activation) -> Result<bool, StoreError> {
        let mut activations = self.activations.lock().expect("lock");
        if !activations.contains_key(&activation.code_key) || !next(activations.get(&activation.code_key), activation.version, |a| a.version) {
            return Ok(false);
        }
        activations.insert(activation.code_key.clone(), activation.clone());
        Ok(true)
    }

    async fn complete(&self, activation: &Activation, credential: &PatientCredential) -> Result<bool, StoreError> {
        let (mut activations, mut credentials) = (self.activations.lock().expect("lock"), self.credentials.lock().expect("lock"));
        let activation_ok = activations.contains_key(&activation.code_key) && next(activations.get(&activation.code_key), activation.version, |a| a.version);
        if !activation_ok || !next(credentials.get(&credential.patient_id), credential.version, |c| c.version) {
            return Ok(false);
        }
        activations.insert(activation.code_key.clone(), activation.clone());
        credentials.insert(credential.patient_id.clone(), credential.clone());
        Ok(true)
    }

    async fn completed_of(&self, patient_id: &str) -> Result<Vec<Activation>, StoreError> {
        let mut done: Vec<Activation> = self.activations.lock().expect("lock").values().filter(|a| a.patient_id == patient_id && a.completed.is_some()).cloned().collect();
        done.sort_by_key(|a| std::cmp::Reverse(a.completed));
        Ok(done)
    }
}
