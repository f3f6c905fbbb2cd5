//! In-memory ports for fast unit tests of handler logic. Never the only test of an adapter.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::dead_letters::{DeadLetter, DeadLetterPage, DeadLetterStore};
use crate::devices::{provisionable, CertificateBinding, Device, DeviceRegistry, DeviceStatus, InstalledFirmware};
use crate::observations::{Inserted, ObservationStore, StoredObservation};
use crate::StoreError;

#[derive(Default)]
pub struct MemoryDevices(Mutex<BTreeMap<String, Device>>);

impl MemoryDevices {
    pub fn with(devices: Vec<Device>) -> Self {
        Self(Mutex::new(devices.into_iter().map(|d| (d.thing_name.clone(), d)).collect()))
    }
}

impl DeviceRegistry for MemoryDevices {
    async fn get(&self, thing_name: &str) -> Result<Option<Device>, StoreError> {
        Ok(self.0.lock().expect("lock").get(thing_name).cloned())
    }

    async fn put(&self, device: &Device) -> Result<(), StoreError> {
        self.0.lock().expect("lock").insert(device.thing_name.clone(), device.clone());
        Ok(())
    }

    async fn create(&self, device: &Device) -> Result<bool, StoreError> {
        let mut devices = self.0.lock().expect("lock");
        if devices.contains_key(&device.thing_name) {
            return Ok(false);
        }
        devices.insert(device.thing_name.clone(), device.clone());
        Ok(true)
    }

    async fn list(&self, limit: i32, after: Option<&str>) -> Result<(Vec<Device>, Option<String>), StoreError> {
        let devices = self.0.lock().expect("lock");
        let limit = usize::try_from(limit).unwrap_or(0);
        let mut page: Vec<Device> = devices.values().filter(|d| after.is_none_or(|a| d.thing_name.as_str() > a)).cloned().collect();
        let more = page.len() > limit;
        page.truncate(limit);
        let next = more.then(|| page.last().map(|d| d.thing_name.clone())).flatten();
        Ok((page, next))
    }

    async fn set_patient(&self, thing_name: &str, patient_id: Option<&str>, at: &str) -> Result<Option<Device>, StoreError> {
        Ok(self.0.lock().expect("lock").get_mut(thing_name).map(|d| {
            d.patient_id = patient_id.map(str::to_owned);
            d.updated_at = at.to_owned();
            d.clone()
        }))
    }

    async fn set_status(&self, thing_name: &str, status: DeviceStatus, at: &str) -> Result<Option<Device>, StoreError> {
        Ok(self.0.lock().expect("lock").get_mut(thing_name).map(|d| {
            d.status = status;
            d.updated_at = at.to_owned();
            d.clone()
        }))
    }

    async fn find_by_serial(&self, manufacturer: &str, serial_number: &str) -> Result<Option<Device>, StoreError> {
        let key = Device::serial_key(manufacturer, serial_number);
        Ok(self
            .0
            .lock()
            .expect("lock")
            .values()
            .find(|d| Device::serial_key(&d.manufacturer, &d.serial_number) == key)
            .cloned())
    }

    async fn bind_certificate(&self, thing_name: &str, certificate_id: &str, at: &str) -> Result<CertificateBinding, StoreError> {
        let mut devices = self.0.lock().expect("lock");
        let Some(d) = devices.get_mut(thing_name) else { return Ok(CertificateBinding::Missing) };
        if !provisionable(d.status) {
            return Ok(CertificateBinding::NotProvisionable(d.status));
        }
        match &d.certificate_id {
            Some(other) if other != certificate_id => Ok(CertificateBinding::TakenBy(other.clone())),
            _ => {
                d.certificate_id = Some(certificate_id.to_owned());
                d.status = DeviceStatus::Active;
                d.updated_at = at.to_owned();
                Ok(CertificateBinding::Bound)
            }
        }
    }

    async fn set_firmware(&self, thing_name: &str, firmware: &InstalledFirmware) -> Result<bool, StoreError> {
        Ok(self.0.lock().expect("lock").get_mut(thing_name).map(|d| d.firmware = Some(firmware.clone())).is_some())
    }
}

#[derive(Default)]
pub struct MemoryObservations {
    items: Mutex<BTreeMap<String, StoredObservation>>,
    fail_next: AtomicBool,
}

impl MemoryObservations {
    pub fn len(&self) -> usize {
        self.items.lock().expect("lock").len()
    }

    pub fn get_sync(&self, id: &str) -> Option<StoredObservation> {
        self.items.lock().expect("lock").get(id).cloned()
    }

    /// Makes the next insert fail as a throttled or unreachable table would.
    pub fn fail_next(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }
}

impl ObservationStore for MemoryObservations {
    async fn insert(&self, obs: &StoredObservation) -> Result<Inserted, StoreError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::new("insert observation", "simulated throttling"));
        }
        let mut items = self.items.lock().expect("lock");
        if let Some(existing) = items.get(&obs.id) {
            return Ok(Inserted::AlreadyExists { content_hash: existing.content_hash.clone() });
        }
        items.insert(obs.id.clone(), obs.clone());
        Ok(Inserted::New)
    }

    async fn get(&self, id: &str) -> Result<Option<StoredObservation>, StoreError> {
        Ok(self.get_sync(id))
    }

    async fn for_patient_code(
        &self,
        patient_id: &str,
        code_key: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<StoredObservation>, StoreError> {
        let mut found: Vec<_> = self
            .items
            .lock()
            .expect("lock")
            .values()
            .filter(|o| o.patient_id == patient_id && o.code_key == code_key)
            .filter(|o| (from..=to).contains(&o.effective_at.as_str()))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.effective_at.cmp(&b.effective_at));
        Ok(found)
    }

    async fn for_device(&self, device_id: &str, limit: i32) -> Result<Vec<StoredObservation>, StoreError> {
        let mut found: Vec<_> =
            self.items.lock().expect("lock").values().filter(|o| o.device_id == device_id).cloned().collect();
        found.sort_by(|a, b| b.effective_at.cmp(&a.effective_at));
        found.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(found)
    }
}

#[derive(Default)]
pub struct MemoryDeadLetters(Mutex<BTreeMap<(String, String), DeadLetter>>);

impl MemoryDeadLetters {
    pub fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }

    pub fn all(&self) -> Vec<DeadLetter> {
        self.0.lock().expect("lock").values().cloned().collect()
    }
}

impl DeadLetterStore for MemoryDeadLetters {
    async fn record(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let key = (letter.source.clone(), format!("{}#{}", letter.received_at, letter.id));
        self.0.lock().expect("lock").entry(key).or_insert_with(|| letter.clone());
        Ok(())
    }

    async fn list(&self, source: &str, limit: i32, after: Option<&str>) -> Result<DeadLetterPage, StoreError> {
        let all = self.0.lock().expect("lock");
        let mut items: Vec<_> = all
            .iter()
            .rev()
            .filter(|((s, k), _)| s == source && after.is_none_or(|a| k.as_str() < a))
            .map(|(_, l)| l.clone())
            .collect();
        let limit = usize::try_from(limit).unwrap_or(0);
        let next = (items.len() > limit).then(|| {
            items.truncate(limit);
            items.last().map(|l| format!("{}#{}", l.received_at, l.id))
        });
        Ok(DeadLetterPage { items, next: next.flatten() })
    }
}

/// Alerts in memory, de-duplicated as the DynamoDB store does: per patient and kind, while one
/// of the same or higher severity is open.
#[derive(Default)]
pub struct MemoryAlerts(Mutex<Vec<crate::alerts::Alert>>);

impl MemoryAlerts {
    pub fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }
}

impl crate::alerts::AlertStore for MemoryAlerts {
    async fn raise(&self, alert: &crate::alerts::Alert) -> Result<bool, StoreError> {
        let mut alerts = self.0.lock().expect("lock");
        let open = alerts
            .iter()
            .any(|a| a.patient_id == alert.patient_id && a.kind == alert.kind && a.status == "open" && a.severity >= alert.severity);
        if open || alerts.iter().any(|a| a.alert_id == alert.alert_id) {
            return Ok(false);
        }
        alerts.push(alert.clone());
        Ok(true)
    }

    async fn for_patient(&self, patient_id: &str) -> Result<Vec<crate::alerts::Alert>, StoreError> {
        Ok(self.0.lock().expect("lock").iter().rev().filter(|a| a.patient_id == patient_id).cloned().collect())
    }

    async fn close(&self, patient_id: &str, alert_id: &str, closed_by: &str, at: &str) -> Result<Option<crate::alerts::Alert>, StoreError> {
        Ok(self.0.lock().expect("lock").iter_mut().find(|a| a.patient_id == patient_id && a.alert_id == alert_id).map(|a| {
            if a.status != "closed" {
                a.status = "closed".into();
                a.closed_at = Some(at.to_owned());
                a.closed_by = Some(closed_by.to_owned());
            }
            a.clone()
        }))
    }
}
