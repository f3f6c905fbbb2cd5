//! `GET /devices/{thingName}/observations?limit=` (`device-observations`): a device's
//! Observations as a FHIR R4 `Bundle` of type `searchset`, newest first, each exactly as stored.
//!
//! Admins and clinicians may read any device's; a patient only those of a device assigned to
//! them, and about them. Every answer is audited ([`crate::access::audit`]) per patient whose
//! data it shows, and a refused attempt against the device's patient.

use lambda_http::Request;
use serde_json::{json, Value};

use super::ObservationStore;
use crate::access::audit::{record_read, AuditLog};
use crate::access::{require, Principal, Role};
use crate::devices::DeviceRegistry;
use crate::platform::http::{limit_param, path_param, ApiError, Reply};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// What the device read routes need: the registry (who may read), the store of what is read,
/// and the audit log.
pub struct DeviceReadDeps<D, S, L> {
    pub devices: D,
    pub store: S,
    pub audit: L,
}

impl<D: FromWiring, S: FromWiring, L: FromWiring> FromWiring for DeviceReadDeps<D, S, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { devices: w.build()?, store: w.build()?, audit: w.build()? })
    }
}

/// The caller, the device and the page size, once the caller may read the device's resources;
/// a refused attempt is audited against the device's patient.
pub async fn readable_device<D: DeviceRegistry, L: AuditLog>(request: &Request, devices: &D, audit: &L) -> Result<(Principal, String, i32), ApiError> {
    let caller = require(request, &[Role::Admin, Role::Clinician, Role::Patient])?;
    let thing = path_param(request, "thingName")?;
    let limit = limit_param(request, 50, 200)?;
    let device = devices.get(&thing).await?;
    // A patient learns nothing about devices that are not theirs, not even that they exist.
    let visible = match (&device, caller.role) {
        (None, _) => false,
        (Some(_), Role::Admin | Role::Clinician) => true,
        (Some(d), Role::Patient) => d.patient_id.is_some() && d.patient_id == caller.patient_id,
    };
    if !visible {
        let patient: Vec<String> = device.and_then(|d| d.patient_id).into_iter().collect();
        record_read(audit, request, &caller, &patient, 404).await?;
        return Err(ApiError::NotFound(format!("no device {thing}")));
    }
    Ok((caller, thing, limit))
}

/// A FHIR `searchset` Bundle of the entries.
pub fn searchset(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries})
}

/// `GET /devices/{thingName}/observations`
pub async fn device_observations<D: DeviceRegistry, O: ObservationStore, L: AuditLog>(
    request: Request,
    deps: &DeviceReadDeps<D, O, L>,
) -> Result<Reply, ApiError> {
    let (caller, thing, limit) = readable_device(&request, &deps.devices, &deps.audit).await?;
    let mut found = deps.store.for_device(&thing, limit).await?;
    // A patient sees only their own readings, even from a device that changed hands.
    found.retain(|o| caller.role != Role::Patient || Some(&o.patient_id) == caller.patient_id.as_ref());
    let mut entries = Vec::with_capacity(found.len());
    for o in &found {
        let resource: Value = serde_json::from_str(&o.resource).map_err(|e| ApiError::Store(StoreError::new("read observation", e)))?;
        entries.push(json!({"fullUrl": full_url(&o.id), "resource": resource, "search": {"mode": "match"}}));
    }
    let patients: Vec<&str> = found.iter().map(|o| o.patient_id.as_str()).collect();
    record_read(&deps.audit, &request, &caller, &patients, 200).await?;
    Ok((200, searchset(entries)))
}

/// A Bundle entry's `fullUrl`: the 128-bit Observation id written as a `urn:uuid`.
fn full_url(id: &str) -> String {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("urn:uuid:{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..])
    } else {
        format!("Observation/{id}")
    }
}
