//! Devices: what an operator registered and what the platform knows of each thing; which
//! device may file readings for which patient ([`admit`]); fleet provisioning's hook
//! ([`provisioning`]); the device admin routes ([`http`]).

mod dynamodb;
pub mod http;
mod iot;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod provisioning;

use std::future::Future;

pub use dynamodb::DynamoDeviceRegistry;
pub use iot::IotCertificateControl;

use crate::StoreError;

/// Where a device is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    /// Registered by an operator, not provisioned yet.
    Registered,
    /// Provisioned and allowed to send data.
    Active,
    /// Switched off by an operator; its certificate is inactive.
    Inactive,
    /// Refused for good (lost, stolen, recalled).
    Blocked,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Registered => "REGISTERED",
            DeviceStatus::Active => "ACTIVE",
            DeviceStatus::Inactive => "INACTIVE",
            DeviceStatus::Blocked => "BLOCKED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Registered, Self::Active, Self::Inactive, Self::Blocked].into_iter().find(|s| s.as_str() == text)
    }
}

/// A device as the registry keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// The IoT thing name, which is also the MQTT client id and the FHIR Device id.
    pub thing_name: String,
    pub serial_number: String,
    pub manufacturer: String,
    pub model: String,
    pub display_name: String,
    /// The patient whose readings this device takes, if assigned.
    pub patient_id: Option<String>,
    /// Whether the device may name the patient per reading (a shared clinic device).
    pub may_name_patient: bool,
    pub status: DeviceStatus,
    pub certificate_id: Option<String>,
    /// When the provisioning hook bound `certificate_id`.
    pub certificate_bound_at: Option<String>,
    /// The firmware the device last reported installing (a succeeded firmware deployment).
    pub firmware: Option<InstalledFirmware>,
    pub created_at: String,
    pub updated_at: String,
}

impl Device {
    /// A device as an operator registers it: named `thing_name_for(manufacturer, serial)`,
    /// `REGISTERED`, no patient and no certificate yet.
    pub fn registered(manufacturer: &str, serial_number: &str, model: &str, display_name: &str, at: &str) -> Self {
        Self {
            thing_name: Self::thing_name_for(manufacturer, serial_number),
            serial_number: serial_number.trim().to_owned(),
            manufacturer: manufacturer.trim().to_owned(),
            model: model.to_owned(),
            display_name: display_name.to_owned(),
            patient_id: None,
            may_name_patient: false,
            status: DeviceStatus::Registered,
            certificate_id: None,
            certificate_bound_at: None,
            firmware: None,
            created_at: at.to_owned(),
            updated_at: at.to_owned(),
        }
    }

    /// The key of the `bySerialNumber` index: one serial number per manufacturer.
    pub fn serial_key(manufacturer: &str, serial_number: &str) -> String {
        format!("{}#{}", manufacturer.trim().to_lowercase(), serial_number.trim())
    }

    /// The thing name a device gets: `<manufacturer>-<serial>`, lower case, every run of
    /// characters outside `[a-z0-9]` folded to one `-` (valid as an IoT thing name, an MQTT
    /// client id and a FHIR id), at most 64 characters.
    pub fn thing_name_for(manufacturer: &str, serial_number: &str) -> String {
        slug(&format!("{manufacturer}-{serial_number}"))
    }
}

/// Firmware a device runs, as its last succeeded deployment left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledFirmware {
    pub firmware_id: String,
    pub version: String,
    /// The deployment that installed it.
    pub deployment_id: String,
    pub installed_at: String,
}

/// Lower case, every run of characters outside `[a-z0-9]` folded to one `-`, no `-` at either
/// end, at most 64 characters: safe as a thing name, MQTT client id, FHIR id and S3 key part.
pub fn slug(text: &str) -> String {
    let mut name = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(64);
    while name.ends_with('-') {
        name.pop();
    }
    name
}

/// What binding a certificate to a device did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateBinding {
    /// The device now uses this certificate (or already did).
    Bound,
    /// The device is provisioned with another certificate.
    TakenBy(String),
    /// The device cannot be provisioned in its current status.
    NotProvisionable(DeviceStatus),
    /// The device no longer exists.
    Missing,
}

/// The device registry port.
pub trait DeviceRegistry: Send + Sync {
    /// The device with this thing name, if registered.
    fn get(&self, thing_name: &str) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// Creates or replaces a device record.
    fn put(&self, device: &Device) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Creates a device record unless its thing name is taken; false when it is.
    fn create(&self, device: &Device) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A page of devices in the store's order (a scan: not sorted), after the cursor `after`;
    /// and the next cursor (a full page has one, even when nothing follows).
    fn list(
        &self,
        limit: i32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<(Vec<Device>, Option<String>), StoreError>> + Send;

    /// Sets or clears the assigned patient; the updated device, or `None` if it does not exist.
    fn set_patient(
        &self,
        thing_name: &str,
        patient_id: Option<&str>,
        at: &str,
    ) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// Makes a REGISTERED device ACTIVE (it got credentials other than a certificate: an API
    /// key); a device in any other status is left as it is. The device as it is now, or `None`
    /// if it does not exist.
    fn activate_registered(&self, thing_name: &str, at: &str) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// Sets the status, in one conditional write, unless the device is BLOCKED (blocking is
    /// final, also against a change racing it): the device as it is now (unchanged when
    /// blocked), or `None` if it does not exist.
    fn set_status(
        &self,
        thing_name: &str,
        status: DeviceStatus,
        at: &str,
    ) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// The device registered with this manufacturer and serial number (`bySerialNumber`).
    fn find_by_serial(
        &self,
        manufacturer: &str,
        serial_number: &str,
    ) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// Records that the device uses this certificate and is active, unless it is bound to
    /// another certificate (other than `replacing`, a bound certificate that never became
    /// usable) or is blocked or inactive; atomic, so two concurrent claims of one device cannot
    /// both win.
    fn bind_certificate(
        &self,
        thing_name: &str,
        certificate_id: &str,
        replacing: Option<&str>,
        at: &str,
    ) -> impl Future<Output = Result<CertificateBinding, StoreError>> + Send;

    /// Records the firmware a device now runs; false if the device does not exist.
    fn set_firmware(
        &self,
        thing_name: &str,
        firmware: &InstalledFirmware,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Device certificates in the IoT registry.
pub trait CertificateControl: Send + Sync {
    /// Switches a certificate on or off (`UpdateCertificate`), so a deactivated or blocked
    /// device can no longer connect.
    fn set_active(&self, certificate_id: &str, active: bool) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Whether the certificate is ACTIVE (`DescribeCertificate`); false when it does not exist.
    fn is_active(&self, certificate_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Whether a device in this status may be given a certificate.
pub fn provisionable(status: DeviceStatus) -> bool {
    matches!(status, DeviceStatus::Registered | DeviceStatus::Active)
}

/// A device allowed to file readings, and the patient they are for.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub device: Device,
    pub patient_id: String,
}

/// Why a device may not file a reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionRefusal {
    #[error("device '{0}' is not registered")]
    UnknownDevice(String),
    #[error("device '{thing}' is {status}, not ACTIVE", status = .status.as_str())]
    NotActive { thing: String, status: DeviceStatus },
    #[error("device '{0}' may not name a patient other than its assigned one")]
    PatientNotAllowed(String),
    #[error("device '{0}' has no assigned patient and the reading names none")]
    NoPatient(String),
}

impl AdmissionRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            AdmissionRefusal::UnknownDevice(_) => "UNKNOWN_DEVICE",
            AdmissionRefusal::NotActive { .. } => "DEVICE_NOT_ACTIVE",
            AdmissionRefusal::PatientNotAllowed(_) => "PATIENT_NOT_ALLOWED",
            AdmissionRefusal::NoPatient(_) => "NO_PATIENT",
        }
    }
}

/// Whether `thing` may file readings at all: it exists and is ACTIVE (see [`admit`]).
pub fn admit_device(device: Option<Device>, thing: &str) -> Result<Device, AdmissionRefusal> {
    let device = device.ok_or_else(|| AdmissionRefusal::UnknownDevice(thing.to_owned()))?;
    if device.status != DeviceStatus::Active {
        return Err(AdmissionRefusal::NotActive { thing: thing.to_owned(), status: device.status });
    }
    Ok(device)
}

/// Whether `thing` may file a reading, and for which patient: the one rule for every path
/// (MQTT, the vitals API, the inbox, connectors).
///
/// Only an ACTIVE device files readings: a device becomes ACTIVE when it gets credentials (its
/// certificate through fleet provisioning, or an API key), and stops when an operator
/// deactivates or blocks it. The patient is the device's assigned one; a reading may name a
/// patient only when it names that one, or when the device may name patients (a shared
/// clinic device).
pub fn admit(device: Option<Device>, thing: &str, named_patient: Option<&str>) -> Result<Admitted, AdmissionRefusal> {
    let device = admit_device(device, thing)?;
    let patient_id = match (named_patient, &device.patient_id) {
        (Some(named), _) if device.may_name_patient => named.to_owned(),
        (Some(named), Some(assigned)) if named == assigned => named.to_owned(),
        (Some(_), _) => return Err(AdmissionRefusal::PatientNotAllowed(thing.to_owned())),
        (None, Some(assigned)) => assigned.clone(),
        (None, None) => return Err(AdmissionRefusal::NoPatient(thing.to_owned())),
    };
    Ok(Admitted { device, patient_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(status: DeviceStatus, patient: Option<&str>, may_name: bool) -> Device {
        let mut d = Device::registered("Acme", "1", "BP", "", "");
        d.status = status;
        d.patient_id = patient.map(Into::into);
        d.may_name_patient = may_name;
        d
    }

    #[test]
    fn only_active_devices_file_readings_for_their_patient() {
        let thing = "acme-1";
        for status in [DeviceStatus::Registered, DeviceStatus::Inactive, DeviceStatus::Blocked] {
            let refused = admit(Some(device(status, Some("p1"), false)), thing, None).unwrap_err();
            assert_eq!(refused, AdmissionRefusal::NotActive { thing: thing.into(), status });
        }
        assert_eq!(admit(None, thing, None).unwrap_err().code(), "UNKNOWN_DEVICE");
        let home = device(DeviceStatus::Active, Some("p1"), false);
        assert_eq!(admit(Some(home.clone()), thing, None).unwrap().patient_id, "p1");
        assert_eq!(admit(Some(home.clone()), thing, Some("p1")).unwrap().patient_id, "p1");
        assert_eq!(admit(Some(home), thing, Some("p2")).unwrap_err().code(), "PATIENT_NOT_ALLOWED");
        let clinic = device(DeviceStatus::Active, None, true);
        assert_eq!(admit(Some(clinic.clone()), thing, Some("p2")).unwrap().patient_id, "p2");
        assert_eq!(admit(Some(clinic), thing, None).unwrap_err().code(), "NO_PATIENT");
        assert_eq!(admit(Some(device(DeviceStatus::Active, None, false)), thing, None).unwrap_err().code(), "NO_PATIENT");
    }

    #[test]
    fn thing_names_are_normalized() {
        assert_eq!(Device::thing_name_for("Acme Medical", "SN 0001"), "acme-medical-sn-0001");
        assert_eq!(Device::thing_name_for("  ACME__Médical!! ", "0001/B"), "acme-m-dical-0001-b");
        assert_eq!(Device::thing_name_for("a", &"9".repeat(100)).len(), 64);
        assert_eq!(Device::thing_name_for("x", "--"), "x");
    }
}
