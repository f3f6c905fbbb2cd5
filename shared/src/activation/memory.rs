//! Activations, ward tablets and clinicians' login records in memory, with the DynamoDB
//! store's conditions: every write only over the version it was made from (a new record only
//! where none is); opening and completing change the activation and the holder's credential
//! together or not at all.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::clinicians::{ClinicianLogin, ClinicianLoginStore};
use super::devices::{DeviceFilter, EntryDevice, EntryDeviceStore};
use super::{Activation, ActivationStore, Credential, Holder};
use crate::StoreError;

#[derive(Debug, Default)]
pub struct MemoryActivations {
    pub activations: Mutex<BTreeMap<String, Activation>>,
    pub credentials: Mutex<BTreeMap<Holder, Credential>>,
    pub devices: Mutex<BTreeMap<String, EntryDevice>>,
    pub clinicians: Mutex<BTreeMap<String, ClinicianLogin>>,
    pub guesses: Mutex<BTreeMap<String, u64>>,
}

/// Whether `new` may be written over what is kept (its version is the next one).
fn next<T>(kept: Option<&T>, version: u64, of: impl Fn(&T) -> u64) -> bool {
    kept.map_or(0, of) + 1 == version
}

/// Writes `value` at `key` if its version is the next one.
fn put_next<T: Clone>(map: &Mutex<BTreeMap<String, T>>, key: &str, value: &T, version: u64, of: impl Fn(&T) -> u64) -> bool {
    let mut map = map.lock().expect("lock");
    if !next(map.get(key), version, of) {
        return false;
    }
    map.insert(key.to_owned(), value.clone());
    true
}

impl ActivationStore for MemoryActivations {
    async fn activation(&self, code_key: &str) -> Result<Option<Activation>, StoreError> {
        Ok(self.activations.lock().expect("lock").get(code_key).cloned())
    }

    async fn credential(&self, holder: &Holder) -> Result<Option<Credential>, StoreError> {
        Ok(self.credentials.lock().expect("lock").get(holder).cloned())
    }

    async fn open(&self, activation: &Activation, replaced: Option<&str>, credential: &Credential) -> Result<bool, StoreError> {
        let (mut activations, mut credentials) = (self.activations.lock().expect("lock"), self.credentials.lock().expect("lock"));
        let credential_ok = next(credentials.get(&credential.holder), credential.version, |c| c.version);
        if !credential_ok || activations.contains_key(&activation.code_key) {
            return Ok(false);
        }
        if let Some(old) = replaced {
            if activations.get(old).is_some_and(|a| a.completed.is_none()) {
                activations.remove(old);
            }
        }
        activations.insert(activation.code_key.clone(), activation.clone());
        credentials.insert(credential.holder.clone(), credential.clone());
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

    async fn complete(&self, activation: &Activation, credential: &Credential) -> Result<bool, StoreError> {
        let (mut activations, mut credentials) = (self.activations.lock().expect("lock"), self.credentials.lock().expect("lock"));
        let activation_ok = activations.contains_key(&activation.code_key) && next(activations.get(&activation.code_key), activation.version, |a| a.version);
        if !activation_ok || !next(credentials.get(&credential.holder), credential.version, |c| c.version) {
            return Ok(false);
        }
        activations.insert(activation.code_key.clone(), activation.clone());
        credentials.insert(credential.holder.clone(), credential.clone());
        Ok(true)
    }

    async fn completed_of(&self, patient_id: &str) -> Result<Vec<Activation>, StoreError> {
        let holder = Holder::Patient(patient_id.to_owned());
        let mut done: Vec<Activation> = self.activations.lock().expect("lock").values().filter(|a| a.holder == holder && a.completed.is_some()).cloned().collect();
        done.sort_by_key(|a| std::cmp::Reverse(a.completed));
        Ok(done)
    }

    async fn device_guesses(&self, hour: &str) -> Result<u64, StoreError> {
        Ok(self.guesses.lock().expect("lock").get(hour).copied().unwrap_or(0))
    }

    async fn count_device_guess(&self, hour: &str) -> Result<(), StoreError> {
        *self.guesses.lock().expect("lock").entry(hour.to_owned()).or_default() += 1;
        Ok(())
    }

    async fn drop_all(&self) -> Result<usize, StoreError> {
        let mut dropped = 0;
        dropped += std::mem::take(&mut *self.activations.lock().expect("lock")).len();
        dropped += std::mem::take(&mut *self.credentials.lock().expect("lock")).len();
        dropped += std::mem::take(&mut *self.devices.lock().expect("lock")).len();
        dropped += std::mem::take(&mut *self.clinicians.lock().expect("lock")).len();
        dropped += std::mem::take(&mut *self.guesses.lock().expect("lock")).len();
        Ok(dropped)
    }
}

impl EntryDeviceStore for MemoryActivations {
    async fn device(&self, uuid: &str) -> Result<Option<EntryDevice>, StoreError> {
        Ok(self.devices.lock().expect("lock").get(uuid).cloned())
    }

    async fn put_device(&self, device: &EntryDevice) -> Result<bool, StoreError> {
        Ok(put_next(&self.devices, &device.uuid, device, device.version, |d| d.version))
    }

    async fn devices(&self, filter: &DeviceFilter) -> Result<Vec<EntryDevice>, StoreError> {
        Ok(self.devices.lock().expect("lock").values().filter(|d| filter.admits(d)).cloned().collect())
    }
}

impl ClinicianLoginStore for MemoryActivations {
    async fn clinician(&self, clinician_id: &str) -> Result<Option<ClinicianLogin>, StoreError> {
        Ok(self.clinicians.lock().expect("lock").get(clinician_id).cloned())
    }

    async fn put_clinician(&self, login: &ClinicianLogin) -> Result<bool, StoreError> {
        Ok(put_next(&self.clinicians, &login.clinician_id, login, login.version, |c| c.version))
    }

    async fn by_identifier(&self, send_entry_identifier: &str) -> Result<Option<ClinicianLogin>, StoreError> {
        Ok(self.clinicians.lock().expect("lock").values().find(|c| c.send_entry_identifier.as_deref() == Some(send_entry_identifier)).cloned())
    }
}
