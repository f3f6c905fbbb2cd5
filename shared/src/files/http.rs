//! `GET /devices/{thingName}/documents?limit=` (`device-documents`): the FHIR
//! `DocumentReference`s of a device's uploaded files as a `searchset` Bundle, newest first.
//! Who may read them is decided as for the device's Observations.

use lambda_http::Request;
use serde_json::{json, Value};

use super::UploadRecordStore;
use crate::access::audit::{record_read, AuditLog};
use crate::access::Role;
use crate::devices::DeviceRegistry;
use crate::observations::http::{readable_device, searchset, DeviceReadDeps};
use crate::platform::http::{ApiError, Reply};
use crate::StoreError;

/// `GET /devices/{thingName}/documents`
pub async fn device_documents<D: DeviceRegistry, U: UploadRecordStore, L: AuditLog>(
    request: Request,
    deps: &DeviceReadDeps<D, U, L>,
) -> Result<Reply, ApiError> {
    let (caller, thing, limit) = readable_device(&request, &deps.devices, &deps.audit).await?;
    let mut entries = Vec::new();
    let mut patients = Vec::new();
    for text in deps.store.documents_for_device(&thing, limit).await? {
        let resource: Value = serde_json::from_str(&text).map_err(|e| ApiError::Store(StoreError::new("read document", e)))?;
        // A patient sees only documents about them.
        let subject = resource["subject"]["reference"].as_str().map(|r| r.trim_start_matches("Patient/").to_owned());
        if caller.role == Role::Patient && subject.as_deref() != caller.patient_id.as_deref() {
            continue;
        }
        patients.extend(subject);
        let id = resource["id"].as_str().unwrap_or_default().to_owned();
        entries.push(json!({"fullUrl": format!("DocumentReference/{id}"), "resource": resource, "search": {"mode": "match"}}));
    }
    record_read(&deps.audit, &request, &caller, &patients, 200).await?;
    Ok((200, searchset(entries)))
}
