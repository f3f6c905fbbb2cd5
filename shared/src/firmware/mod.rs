//! Firmware: images an operator registers (version, device model, SHA-256, size, uploaded with a
//! presigned PUT under `firmware/<model>/<version>/` of the device-files bucket), deployments
//! of an image to devices as IoT Jobs ([`deployments`]), and the job-execution events that
//! record each device's progress ([`job_events`]). Routes in [`http`].

use std::future::Future;

pub mod deployments;
mod dynamodb;
pub mod http;
mod iot;
pub mod job_events;
#[cfg(test)]
pub(crate) mod memory;

use serde_json::{json, Value};

pub use dynamodb::{DynamoDeploymentStore, DynamoFirmwareStore};
pub use iot::IotJobControl;

use crate::StoreError;

/// Largest firmware image accepted.
pub const MAX_FIRMWARE_BYTES: u64 = 512 * 1024 * 1024;

/// A registered firmware image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirmwareImage {
    pub firmware_id: String,
    pub version: String,
    pub device_model: String,
    pub sha256: String,
    pub size_bytes: u64,
    pub object_key: String,
    pub created_at: String,
}

impl FirmwareImage {
    pub fn to_json(&self) -> Value {
        json!({
            "firmwareId": self.firmware_id, "version": self.version, "deviceModel": self.device_model,
            "sha256": self.sha256, "sizeBytes": self.size_bytes, "objectKey": self.object_key, "createdAt": self.created_at,
        })
    }
}

/// Where firmware images are recorded.
pub trait FirmwareStore: Send + Sync {
    /// Records an image unless its id is taken; false when it is.
    fn create(&self, image: &FirmwareImage) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The image with this id.
    fn get(&self, firmware_id: &str) -> impl Future<Output = Result<Option<FirmwareImage>, StoreError>> + Send;
    /// Every image, or those of one device model.
    fn list(&self, device_model: Option<&str>) -> impl Future<Output = Result<Vec<FirmwareImage>, StoreError>> + Send;
}
