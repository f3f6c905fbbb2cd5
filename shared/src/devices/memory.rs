//! The device registry in memory for unit tests, with the DynamoDB adapter's conditions: a
//! thing name is created once, updates need the device to exist, a certificate binds only to a
//! provisionable device without another certificate.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{provisionable, CertificateBinding, Device, DeviceRegistry, DeviceStatus, InstalledFirmware};
use crate::StoreError;

/// Clones share one registry (a test can change it behind a handler's back).
#[derive(Default, Clone)]
pub struct MemoryDevices(Arc<Mutex<BTreeMap<String, Device>>>);

impl MemoryDevices {
    pub fn with(devices: Vec<Device>) -> Self {
        Self(Arc::new(Mutex::new(devices.into_iter().map(|d| (d.thing_name.clone(), d)).collect())))
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
        // As a DynamoDB scan does: a full page has a cursor, even when nothing follows it.
        let more = page.len() >= limit && limit > 0;
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

    async fn activate_registered(&self, thing_name: &str, at: &str) -> Result<Option<Device>, StoreError> {
        Ok(self.0.lock().expect("lock").get_mut(thing_name).map(|d| {
            if d.status == DeviceStatus::Registered {
                d.status = DeviceStatus::Active;
                d.updated_at = at.to_owned();
            }
            d.clone()
        }))
    }

    async fn set_status(&self, thing_name: &str, status: DeviceStatus, at: &str) -> Result<Option<Device>, StoreError> {
        Ok(self.0.lock().expect("lock").get_mut(thing_name).map(|d| {
            // As the DynamoDB adapter's condition: blocking is final.
            if d.status != DeviceStatus::Blocked || status == DeviceStatus::Blocked {
                d.status = status;
                d.updated_at = at.to_owned();
            }
            d.clone()
        }))
    }

    async fn find_by_serial(&self, manufacturer: &str, serial_number: &str) -> Result<Option<Device>, StoreError> {
        let key = Device::serial_key(manufacturer, serial_number);
        let devices = self.0.lock().expect("lock");
        let found: Vec<&Device> = devices.values().filter(|d| Device::serial_key(&d.manufacturer, &d.serial_number) == key).collect();
        // As the DynamoDB adapter, which reads two index items to tell.
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            _ => Err(StoreError::new("find device by serial number", "two devices share a serial number")),
        }
    }

    async fn bind_certificate(
        &self,
        thing_name: &str,
        certificate_id: &str,
        replacing: Option<&str>,
        at: &str,
    ) -> Result<CertificateBinding, StoreError> {
        let mut devices = self.0.lock().expect("lock");
        let Some(d) = devices.get_mut(thing_name) else { return Ok(CertificateBinding::Missing) };
        if !provisionable(d.status) {
            return Ok(CertificateBinding::NotProvisionable(d.status));
        }
        match &d.certificate_id {
            Some(other) if other != certificate_id && Some(other.as_str()) != replacing => Ok(CertificateBinding::TakenBy(other.clone())),
            _ => {
                if replacing.is_some() || d.certificate_bound_at.is_none() {
                    d.certificate_bound_at = Some(at.to_owned());
                }
                d.certificate_id = Some(certificate_id.to_owned());
                d.status = DeviceStatus::Active;
                d.updated_at = at.to_owned();
                Ok(CertificateBinding::Bound)
            }
        }
    }

    async fn set_firmware(&self, thing_name: &str, firmware: &InstalledFirmware) -> Result<bool, StoreError> {
        Ok(self
            .0
            .lock()
            .expect("lock")
            .get_mut(thing_name)
            .map(|d| {
                d.firmware = Some(firmware.clone());
                d.updated_at = firmware.installed_at.clone();
            })
            .is_some())
    }
}

/// Certificates in memory: their ids and whether each is active.
#[derive(Default)]
pub struct MemoryCertificates(pub Mutex<BTreeMap<String, bool>>);

impl MemoryCertificates {
    pub fn with(certificates: &[(&str, bool)]) -> Self {
        Self(Mutex::new(certificates.iter().map(|(id, active)| ((*id).to_owned(), *active)).collect()))
    }
}

impl super::CertificateControl for MemoryCertificates {
    async fn set_active(&self, certificate_id: &str, active: bool) -> Result<(), StoreError> {
        match self.0.lock().expect("lock").get_mut(certificate_id) {
            Some(a) => {
                *a = active;
                Ok(())
            }
            None => Err(StoreError::new("update certificate", "ResourceNotFoundException")),
        }
    }

    async fn is_active(&self, certificate_id: &str) -> Result<bool, StoreError> {
        Ok(self.0.lock().expect("lock").get(certificate_id).copied().unwrap_or(false))
    }
}
