//! Devices: what an operator registered and what the platform knows of each thing.

mod dynamodb;

use std::future::Future;

pub use dynamodb::DynamoDeviceRegistry;

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
    pub created_at: String,
    pub updated_at: String,
}

impl Device {
    /// The key of the `bySerialNumber` index: one serial number per manufacturer.
    pub fn serial_key(manufacturer: &str, serial_number: &str) -> String {
        format!("{}#{}", manufacturer.trim().to_lowercase(), serial_number.trim())
    }
}

/// The device registry port.
pub trait DeviceRegistry: Send + Sync {
    /// The device with this thing name, if registered.
    fn get(&self, thing_name: &str) -> impl Future<Output = Result<Option<Device>, StoreError>> + Send;

    /// Creates or replaces a device record.
    fn put(&self, device: &Device) -> impl Future<Output = Result<(), StoreError>> + Send;
}
