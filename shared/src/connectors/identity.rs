//! Identity resolution over the platform's own registries: the IoMT connector looks devices
//! and patients up in its FHIR server; a Vitalwire connector looks them up in the device
//! registry and the patient records.
//!
//! - A device identifier without a system is first a thing name: a device registered on the
//!   platform (and assigned a patient) is found as it is, so IoT Core things and registered
//!   devices need nothing more. Otherwise, and for identifiers with a system, the device is the
//!   one a connector created, whose thing name is the identifier's hash (`hash_id(system,
//!   value)`, the connector's deterministic id).
//! - A patient identifier finds the patient record created from it (`hash_id("", value)`).
//! - Created devices and patients are written only where their id is free, so concurrent
//!   messages of one new device make one Device and one Patient.
//! - An encounter identifier finds the encounter an operator registered under it
//!   (`POST /admin/patients/{patientId}/encounters`).

use crate::devices::{Device, DeviceRegistry, DeviceStatus};
use crate::mapping::identity::{IdentityRegistry, RegisteredDevice, RegistryError};
use crate::mapping::observation::hash_id;
use crate::patients::{EncounterStore, Patient, PatientStore};
use crate::StoreError;

/// The identity registry a connector's messages are resolved in.
pub struct PlatformIdentities<'a, D, P, E> {
    pub devices: &'a D,
    pub patients: &'a P,
    pub encounters: &'a E,
    /// Who creates: `connector/<name>`.
    pub creator: &'a str,
    /// When (`time::format_utc`).
    pub at: &'a str,
}

fn failed(e: StoreError) -> RegistryError {
    RegistryError(e.to_string())
}

fn registered(d: &Device) -> RegisteredDevice {
    RegisteredDevice { id: d.thing_name.clone(), patient_reference: d.patient_id.as_ref().map(|p| format!("Patient/{p}")) }
}

impl<D: DeviceRegistry, P: PatientStore, E: EncounterStore> IdentityRegistry for PlatformIdentities<'_, D, P, E> {
    async fn device(&self, system: Option<&str>, value: &str) -> Result<Option<RegisteredDevice>, RegistryError> {
        if value.is_empty() {
            return Ok(None);
        }
        if system.is_none() {
            if let Some(d) = self.devices.get(value).await.map_err(failed)? {
                return Ok(Some(registered(&d)));
            }
        }
        let created = self.devices.get(&hash_id(system.unwrap_or(""), value)).await.map_err(failed)?;
        Ok(created.as_ref().map(registered))
    }

    async fn patient(&self, identifier: &str) -> Result<Option<String>, RegistryError> {
        Ok(self.patients.get(&hash_id("", identifier)).await.map_err(failed)?.map(|p| p.id))
    }

    async fn encounter(&self, identifier: &str) -> Result<Option<String>, RegistryError> {
        Ok(self.encounters.get(&hash_id("", identifier)).await.map_err(failed)?.map(|e| e.id))
    }

    async fn create_patient(&self, id: &str, identifier: &str) -> Result<String, RegistryError> {
        let patient = Patient { id: id.to_owned(), identifier: identifier.to_owned(), created_by: self.creator.to_owned(), created_at: self.at.to_owned() };
        // Created or already there: either way, that id.
        self.patients.create(&patient).await.map_err(failed)?;
        Ok(id.to_owned())
    }

    async fn create_device(&self, id: &str, _system: Option<&str>, value: &str, patient_id: &str) -> Result<RegisteredDevice, RegistryError> {
        let mut device = Device::registered("", value, "", &format!("{value} (created by {})", self.creator), self.at);
        device.thing_name = id.to_owned();
        device.status = DeviceStatus::Active;
        device.patient_id = Some(patient_id.to_owned());
        if self.devices.create(&device).await.map_err(failed)? {
            return Ok(registered(&device));
        }
        let existing = self.devices.get(id).await.map_err(failed)?.ok_or_else(|| RegistryError(format!("device {id} was created and is gone")))?;
        if existing.patient_id.is_some() {
            return Ok(registered(&existing));
        }
        let linked = self.devices.set_patient(id, Some(patient_id), self.at).await.map_err(failed)?;
        Ok(registered(linked.as_ref().unwrap_or(&existing)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::memory::MemoryDevices;
    use crate::mapping::identity::{resolve, IdentityError, IdentityMode, MeasuredIdentity};
    use crate::patients::memory::{MemoryEncounters, MemoryPatients};
    use crate::patients::{Encounter, EncounterStatus};

    fn measured<'a>(device: &'a str, patient: Option<&'a str>) -> MeasuredIdentity<'a> {
        MeasuredIdentity { device_id: device, patient_id: patient, encounter_id: None }
    }

    #[tokio::test]
    async fn registered_devices_are_found_by_thing_name_and_new_ones_created_once() {
        let mut cuff = Device::registered("Acme", "1", "BP", "", "");
        cuff.patient_id = Some("pat-1".into());
        let devices = MemoryDevices::with(vec![cuff]);
        let patients = MemoryPatients::default();
        let encounters = MemoryEncounters::default();
        let registry = PlatformIdentities { devices: &devices, patients: &patients, encounters: &encounters, creator: "connector/ward-7", at: "2026-12-01T10:00:00.000Z" };

        let ids = resolve(&registry, IdentityMode::Lookup, None, measured("acme-1", Some("ignored"))).await.unwrap();
        assert_eq!((ids.device.as_str(), ids.patient.as_str()), ("acme-1", "pat-1"), "Lookup: the device's assigned patient");
        let unknown = resolve(&registry, IdentityMode::Lookup, None, measured("band-9", Some("mrn-9"))).await.unwrap_err();
        assert_eq!(unknown, IdentityError::DeviceNotFound("band-9".into()));

        let created = resolve(&registry, IdentityMode::Create, None, measured("band-9", Some("mrn-9"))).await.unwrap();
        assert_eq!(created.device, hash_id("", "band-9"));
        assert_eq!(created.patient, hash_id("", "mrn-9"));
        let device = devices.get(&created.device).await.unwrap().unwrap();
        assert_eq!((device.status, device.patient_id.as_deref(), device.serial_number.as_str()), (DeviceStatus::Active, Some(created.patient.as_str()), "band-9"));
        assert_eq!(patients.get(&created.patient).await.unwrap().unwrap().identifier, "mrn-9");

        // The next message finds them, in either mode, and nothing is created twice.
        let again = resolve(&registry, IdentityMode::Create, None, measured("band-9", Some("mrn-9"))).await.unwrap();
        assert_eq!(again, created);
        assert_eq!(resolve(&registry, IdentityMode::Lookup, None, measured("band-9", None)).await.unwrap(), created);
        assert_eq!((devices.list(10, None).await.unwrap().0.len(), patients.0.lock().unwrap().len()), (2, 1));
        let lookup_with_encounter = resolve(&registry, IdentityMode::LookupWithEncounter, None, measured("band-9", None)).await.unwrap_err();
        assert_eq!(lookup_with_encounter, IdentityError::EncounterIdNotDefined);
        let in_visit = MeasuredIdentity { device_id: "acme-1", patient_id: None, encounter_id: Some("visit-42") };
        let unregistered = resolve(&registry, IdentityMode::LookupWithEncounter, None, in_visit).await.unwrap_err();
        assert_eq!(unregistered, IdentityError::EncounterNotFound("visit-42".into()));
        let visit = Encounter { id: hash_id("", "visit-42"), identifier: "visit-42".into(), patient_id: "pat-1".into(), status: EncounterStatus::InProgress, created_at: String::new() };
        encounters.0.lock().unwrap().insert(visit.id.clone(), visit.clone());
        let found = resolve(&registry, IdentityMode::LookupWithEncounter, None, in_visit).await.unwrap();
        assert_eq!(found.encounter, Some(visit.id));
    }
}
