//! SEND Entry devices: the ward tablets (or apps) that clinicians sign in on, as the Polaris
//! activation API keeps them (`models/device.py`): a location, a description and whether it
//! may still sign in. Not the platform's measuring devices, which live in the devices table.

use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::platform::time::format_utc;
use crate::StoreError;

/// A ward tablet's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDevice {
    pub uuid: String,
    pub location_id: String,
    pub description: String,
    /// An inactive device keeps its activation but gets no JWT.
    pub active: bool,
    pub created: DateTime<Utc>,
    pub created_by: String,
    pub modified: DateTime<Utc>,
    pub modified_by: String,
    /// Counts writes from 1: a change is written only over the version it was made from.
    pub version: u64,
}

impl EntryDevice {
    /// The reference's `<dev>` body, keys sorted.
    pub fn to_json(&self) -> Value {
        json!({
            "active": self.active, "created": format_utc(self.created), "created_by": self.created_by, "description": self.description,
            "location_id": self.location_id, "modified": format_utc(self.modified), "modified_by": self.modified_by, "uuid": self.uuid,
        })
    }
}

/// Which devices a listing wants: active or not, and optionally only at these locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFilter {
    pub active: bool,
    pub locations: Option<Vec<String>>,
}

impl DeviceFilter {
    pub fn admits(&self, d: &EntryDevice) -> bool {
        d.active == self.active && self.locations.as_ref().is_none_or(|ls| ls.contains(&d.location_id))
    }
}

/// Where device records are kept.
pub trait EntryDeviceStore: Send + Sync {
    fn device(&self, uuid: &str) -> impl Future<Output = Result<Option<EntryDevice>, StoreError>> + Send;
    /// Writes `device` over its previous version (a new one when its version is 1). False if
    /// it changed meanwhile, or, for a new one, if its uuid is taken.
    fn put_device(&self, device: &EntryDevice) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The devices `filter` admits, in no particular order (the reference has none).
    fn devices(&self, filter: &DeviceFilter) -> impl Future<Output = Result<Vec<EntryDevice>, StoreError>> + Send;
}
