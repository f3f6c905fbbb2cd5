//! Identity resolution: which Device, Patient and Encounter a group of measurements belongs
//! to, in the connector's three modes (`ResourceIdentityServiceType`):
//!
//! - **Lookup**: the device by its identifier (under the default device identifier system, if
//!   set); its patient is required; the measurement's patient id is ignored; an encounter
//!   id, when given, must be found;
//! - **LookupWithEncounter**: Lookup, and the encounter id is required;
//! - **Create**: Lookup, and when the device or its patient is not found, the patient (by the
//!   measurement's patient id) and the device are created with ids derived from their
//!   identifiers, through the registry's create-if-absent, so two workers creating the same
//!   patient at once converge on one record (the connector's issue #188, fixed the same way).
//!
//! The registry is a port; the platform's device registry implements it (issue 11), and
//! [`MemoryRegistry`] here serves tests and the mapping debugger.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use super::observation::{hash_id, ResourceIds};

/// The connector's resolution modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    Lookup,
    LookupWithEncounter,
    Create,
}

impl IdentityMode {
    /// The mode's name as the connector's settings spell it, ignoring case.
    pub fn named(name: &str) -> Option<Self> {
        [("Lookup", Self::Lookup), ("LookupWithEncounter", Self::LookupWithEncounter), ("Create", Self::Create)]
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, m)| m)
    }
}

/// A registered device: its FHIR id and its patient reference as stored (`Patient/{id}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredDevice {
    pub id: String,
    pub patient_reference: Option<String>,
}

/// What identity resolution needs from a registry of devices, patients and encounters.
pub trait IdentityRegistry: Send + Sync {
    /// The device with this identifier (system, value).
    fn device(&self, system: Option<&str>, value: &str) -> impl Future<Output = Result<Option<RegisteredDevice>, RegistryError>> + Send;
    /// The id of the patient with this identifier value.
    fn patient(&self, identifier: &str) -> impl Future<Output = Result<Option<String>, RegistryError>> + Send;
    /// The id of the encounter with this identifier value.
    fn encounter(&self, identifier: &str) -> impl Future<Output = Result<Option<String>, RegistryError>> + Send;
    /// Creates the patient unless one with this id exists; either way, that patient's id.
    fn create_patient(&self, id: &str, identifier: &str) -> impl Future<Output = Result<String, RegistryError>> + Send;
    /// Creates the device linked to the patient unless one with this id exists, and links an
    /// existing device that has no patient; the device as it is afterwards (still linked to
    /// another patient, if it was).
    fn create_device(&self, id: &str, system: Option<&str>, value: &str, patient_id: &str) -> impl Future<Output = Result<RegisteredDevice, RegistryError>> + Send;
}

/// The registry could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the identity registry failed: {0}")]
pub struct RegistryError(pub String);

/// Why measurements could not be tied to a device and patient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("No Device found with identifier {0:?}: register the device (Lookup mode) or use Create mode")]
    DeviceNotFound(String),
    #[error("The Device with identifier {0:?} has no Patient (or its reference is not Patient/<id>)")]
    PatientNotFound(String),
    #[error("No Encounter found with identifier {0:?}")]
    EncounterNotFound(String),
    #[error("The measurement has no PatientId: Create mode needs one to create the Patient")]
    PatientIdNotDefined,
    #[error("The measurement has no EncounterId: LookupWithEncounter mode needs one")]
    EncounterIdNotDefined,
    #[error("The Device with identifier {device:?} belongs to another Patient than {patient:?}")]
    PatientDeviceMismatch { device: String, patient: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The identifiers a group of measurements carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasuredIdentity<'a> {
    pub device_id: &'a str,
    pub patient_id: Option<&'a str>,
    pub encounter_id: Option<&'a str>,
}

fn given(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.trim().is_empty())
}

/// Resolves the FHIR ids of a group's device, patient and encounter.
pub async fn resolve<R: IdentityRegistry>(
    registry: &R,
    mode: IdentityMode,
    device_system: Option<&str>,
    m: MeasuredIdentity<'_>,
) -> Result<ResourceIds, IdentityError> {
    let looked_up = lookup(registry, device_system, m).await;
    let ids = match (mode, looked_up) {
        (IdentityMode::Create, Err(IdentityError::DeviceNotFound(_) | IdentityError::PatientNotFound(_))) => {
            let patient = given(m.patient_id).ok_or(IdentityError::PatientIdNotDefined)?;
            let patient_id = match registry.patient(patient).await? {
                Some(id) => id,
                None => registry.create_patient(&hash_id("", patient), patient).await?,
            };
            let system = device_system.filter(|s| !s.trim().is_empty());
            let device = registry.create_device(&hash_id(system.unwrap_or(""), m.device_id), system, m.device_id, &patient_id).await?;
            if patient_of(&device) != Some(patient_id.as_str()) {
                return Err(IdentityError::PatientDeviceMismatch { device: m.device_id.to_owned(), patient: patient.to_owned() });
            }
            // The connector does not resolve the encounter on the create path.
            ResourceIds { device: device.id, patient: patient_id, encounter: None }
        }
        (_, found) => found?,
    };
    if mode == IdentityMode::LookupWithEncounter && ids.encounter.is_none() {
        return Err(IdentityError::EncounterIdNotDefined);
    }
    Ok(ids)
}

async fn lookup<R: IdentityRegistry>(registry: &R, device_system: Option<&str>, m: MeasuredIdentity<'_>) -> Result<ResourceIds, IdentityError> {
    let system = device_system.filter(|s| !s.trim().is_empty());
    let device = registry.device(system, m.device_id).await?.ok_or_else(|| IdentityError::DeviceNotFound(m.device_id.to_owned()))?;
    let patient = patient_of(&device).ok_or_else(|| IdentityError::PatientNotFound(m.device_id.to_owned()))?.to_owned();
    let encounter = match given(m.encounter_id) {
        Some(e) => Some(registry.encounter(e).await?.ok_or_else(|| IdentityError::EncounterNotFound(e.to_owned()))?),
        None => None,
    };
    Ok(ResourceIds { device: device.id, patient, encounter })
}

/// The patient id of a device's `Patient/{id}` reference (the connector's `GetId`: the id must
/// be of `[A-Za-z0-9_.\-~#]`).
fn patient_of(device: &RegisteredDevice) -> Option<&str> {
    let id = device.patient_reference.as_deref()?.strip_prefix("Patient/")?;
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-~#".contains(&b))).then_some(id)
}

/// An in-memory registry with the conditions a real one enforces: create-if-absent by id, one
/// device per identifier, an existing link never overwritten.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    state: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    /// By id: identifier (system, value) and the device.
    devices: HashMap<String, ((Option<String>, String), RegisteredDevice)>,
    /// Identifier value → id.
    patients: HashMap<String, String>,
    encounters: HashMap<String, String>,
}

impl MemoryRegistry {
    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> Result<T, RegistryError> {
        let mut state = self.state.lock().map_err(|_| RegistryError("the registry lock is poisoned".into()))?;
        Ok(f(&mut state))
    }

    /// Registers a device (id, identifier) linked to a patient reference, as an operator would.
    pub fn register_device(&self, id: &str, system: Option<&str>, value: &str, patient_reference: Option<&str>) -> Result<(), RegistryError> {
        self.with(|r| {
            let device = RegisteredDevice { id: id.to_owned(), patient_reference: patient_reference.map(str::to_owned) };
            r.devices.insert(id.to_owned(), ((system.map(str::to_owned), value.to_owned()), device));
        })
    }

    pub fn register_patient(&self, id: &str, identifier: &str) -> Result<(), RegistryError> {
        self.with(|r| {
            r.patients.insert(identifier.to_owned(), id.to_owned());
        })
    }

    pub fn register_encounter(&self, id: &str, identifier: &str) -> Result<(), RegistryError> {
        self.with(|r| {
            r.encounters.insert(identifier.to_owned(), id.to_owned());
        })
    }

    /// How many devices and patients there are.
    pub fn counts(&self) -> Result<(usize, usize), RegistryError> {
        self.with(|r| (r.devices.len(), r.patients.len()))
    }
}

impl IdentityRegistry for MemoryRegistry {
    async fn device(&self, system: Option<&str>, value: &str) -> Result<Option<RegisteredDevice>, RegistryError> {
        self.with(|r| {
            // Without a system, any device with that identifier value (a FHIR token search `value`).
            r.devices.values().find(|((s, v), _)| v == value && (system.is_none() || s.as_deref() == system)).map(|(_, d)| d.clone())
        })
    }

    async fn patient(&self, identifier: &str) -> Result<Option<String>, RegistryError> {
        self.with(|r| r.patients.get(identifier).cloned())
    }

    async fn encounter(&self, identifier: &str) -> Result<Option<String>, RegistryError> {
        self.with(|r| r.encounters.get(identifier).cloned())
    }

    async fn create_patient(&self, id: &str, identifier: &str) -> Result<String, RegistryError> {
        self.with(|r| r.patients.entry(identifier.to_owned()).or_insert_with(|| id.to_owned()).clone())
    }

    async fn create_device(&self, id: &str, system: Option<&str>, value: &str, patient_id: &str) -> Result<RegisteredDevice, RegistryError> {
        self.with(|r| {
            let reference = format!("Patient/{patient_id}");
            let entry = r.devices.entry(id.to_owned()).or_insert_with(|| {
                ((system.map(str::to_owned), value.to_owned()), RegisteredDevice { id: id.to_owned(), patient_reference: None })
            });
            if entry.1.patient_reference.is_none() {
                entry.1.patient_reference = Some(reference);
            }
            entry.1.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured<'a>(device: &'a str, patient: Option<&'a str>, encounter: Option<&'a str>) -> MeasuredIdentity<'a> {
        MeasuredIdentity { device_id: device, patient_id: patient, encounter_id: encounter }
    }

    #[tokio::test]
    async fn lookup_takes_the_patient_from_the_device_and_needs_it() {
        let r = MemoryRegistry::default();
        r.register_device("dev-1", Some("urn:serial"), "cuff-1", Some("Patient/pat-1")).unwrap();
        r.register_device("dev-2", None, "cuff-2", None).unwrap();
        r.register_device("dev-3", None, "cuff-3", Some("Patient/bad id")).unwrap();
        r.register_encounter("enc-1", "visit-1").unwrap();
        let ids = resolve(&r, IdentityMode::Lookup, Some("urn:serial"), measured("cuff-1", Some("ignored"), Some("visit-1"))).await.unwrap();
        assert_eq!(ids, ResourceIds { device: "dev-1".into(), patient: "pat-1".into(), encounter: Some("enc-1".into()) });
        let no_system = resolve(&r, IdentityMode::Lookup, None, measured("cuff-1", None, None)).await.unwrap();
        assert_eq!(no_system.device, "dev-1", "without a default system any identifier system matches");
        let wrong_system = resolve(&r, IdentityMode::Lookup, Some("urn:other"), measured("cuff-1", None, None)).await.unwrap_err();
        assert_eq!(wrong_system, IdentityError::DeviceNotFound("cuff-1".into()));
        for device in ["cuff-2", "cuff-3"] {
            assert_eq!(resolve(&r, IdentityMode::Lookup, None, measured(device, None, None)).await.unwrap_err(), IdentityError::PatientNotFound(device.into()));
        }
        let no_encounter = resolve(&r, IdentityMode::Lookup, None, measured("cuff-1", None, Some("visit-9"))).await.unwrap_err();
        assert_eq!(no_encounter, IdentityError::EncounterNotFound("visit-9".into()));
        let required = resolve(&r, IdentityMode::LookupWithEncounter, None, measured("cuff-1", None, Some(" "))).await.unwrap_err();
        assert_eq!(required, IdentityError::EncounterIdNotDefined);
        assert!(resolve(&r, IdentityMode::LookupWithEncounter, None, measured("cuff-1", None, Some("visit-1"))).await.is_ok());
    }

    #[tokio::test]
    async fn create_makes_patient_and_device_once_with_ids_from_their_identifiers() {
        let r = MemoryRegistry::default();
        let ids = resolve(&r, IdentityMode::Create, Some("urn:serial"), measured("cuff-1", Some("mrn-7"), None)).await.unwrap();
        assert_eq!(ids.patient, hash_id("", "mrn-7"));
        assert_eq!(ids.device, hash_id("urn:serial", "cuff-1"));
        let again = resolve(&r, IdentityMode::Create, Some("urn:serial"), measured("cuff-1", Some("mrn-7"), None)).await.unwrap();
        assert_eq!(again, ids);
        // A second device of the same new patient, resolved at the same time (issue #188).
        let (a, b) = tokio::join!(
            resolve(&r, IdentityMode::Create, None, measured("scale-1", Some("mrn-8"), None)),
            resolve(&r, IdentityMode::Create, None, measured("watch-1", Some("mrn-8"), None)),
        );
        assert_eq!(a.unwrap().patient, b.unwrap().patient);
        assert_eq!(r.counts().unwrap(), (3, 2), "three devices, two patients, nothing twice");
        let mismatch = resolve(&r, IdentityMode::Create, None, measured("scale-1", Some("mrn-9"), None)).await;
        assert!(mismatch.is_ok(), "Lookup finds scale-1 with its patient first; the measurement's patient id is not consulted");
        r.register_device(&hash_id("", "orphan"), None, "orphan", None).unwrap();
        let linked = resolve(&r, IdentityMode::Create, None, measured("orphan", Some("mrn-7"), None)).await.unwrap();
        assert_eq!(linked.patient, hash_id("", "mrn-7"), "a device without a patient is linked");
        for blank in [None, Some(""), Some(" ")] {
            let refused = resolve(&r, IdentityMode::Create, None, measured("new-device", blank, None)).await.unwrap_err();
            assert_eq!(refused, IdentityError::PatientIdNotDefined);
        }
        assert_eq!(IdentityMode::named("lookupwithencounter"), Some(IdentityMode::LookupWithEncounter));
    }

    #[tokio::test]
    async fn create_refuses_a_device_that_belongs_to_another_patient() {
        let r = MemoryRegistry::default();
        // Found by Lookup only through its identifier system; under another system Create
        // reaches the same derived id and finds it linked elsewhere.
        r.register_device(&hash_id("", "cuff-9"), Some("urn:old"), "cuff-9", Some("Patient/bad id")).unwrap();
        let refused = resolve(&r, IdentityMode::Create, None, measured("cuff-9", Some("mrn-1"), None)).await.unwrap_err();
        assert_eq!(refused, IdentityError::PatientDeviceMismatch { device: "cuff-9".into(), patient: "mrn-1".into() });
    }
}
