//! Reading FHIR resources over the HTTP API.
//!
//! | route | function |
//! |---|---|
//! | `GET /devices/{thingName}/observations?limit=` | `device-observations` |
//! | `GET /devices/{thingName}/documents?limit=` | `device-documents` |
//!
//! Admins and clinicians may read any device's resources; a patient only those of a device
//! assigned to them, and about them. The answer is a FHIR R4 `Bundle` of type `searchset`,
//! newest first, with each resource exactly as stored.

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use crate::api::{limit_param, path_param, require, respond, ApiError};
use crate::auth::{Principal, Role};
use crate::devices::DeviceRegistry;
use crate::observations::ObservationStore;

/// What the FHIR read routes need.
pub struct FhirReadDeps<D, O> {
    pub devices: D,
    pub observations: O,
}

/// The caller, the device and the page size, once the caller may read the device's resources.
async fn readable_device<D: DeviceRegistry>(request: &Request, devices: &D) -> Result<(Principal, String, i32), ApiError> {
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
        return Err(ApiError::NotFound(format!("no device {thing}")));
    }
    Ok((caller, thing, limit))
}

fn searchset(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries})
}

/// `GET /devices/{thingName}/observations`
pub async fn device_observations<D: DeviceRegistry, O: ObservationStore>(request: Request, deps: &FhirReadDeps<D, O>) -> Response<Body> {
    respond(async {
        let (caller, thing, limit) = readable_device(&request, &deps.devices).await?;
        let found = deps.observations.for_device(&thing, limit).await?;
        let mut entries = Vec::with_capacity(found.len());
        for o in found {
            // A patient sees only their own readings, even from a device that changed hands.
            if caller.role == Role::Patient && Some(&o.patient_id) != caller.patient_id.as_ref() {
                continue;
            }
            let resource: Value = serde_json::from_str(&o.resource)
                .map_err(|e| ApiError::Store(crate::StoreError::new("read observation", e)))?;
            entries.push(json!({"fullUrl": full_url(&o.id), "resource": resource, "search": {"mode": "match"}}));
        }
        Ok((200, searchset(entries)))
    }
    .await)
}

/// What the document route needs.
pub struct DocumentReadDeps<D, U> {
    pub devices: D,
    pub uploads: U,
}

/// `GET /devices/{thingName}/documents`: the DocumentReferences of the device's uploaded files.
pub async fn device_documents<D: DeviceRegistry, U: crate::uploads::UploadRecordStore>(
    request: Request,
    deps: &DocumentReadDeps<D, U>,
) -> Response<Body> {
    respond(async {
        let (caller, thing, limit) = readable_device(&request, &deps.devices).await?;
        let mut entries = Vec::new();
        for text in deps.uploads.documents_for_device(&thing, limit).await? {
            let resource: Value =
                serde_json::from_str(&text).map_err(|e| ApiError::Store(crate::StoreError::new("read document", e)))?;
            // A patient sees only documents about them.
            let subject = resource["subject"]["reference"].as_str().map(|r| r.trim_start_matches("Patient/"));
            if caller.role == Role::Patient && subject != caller.patient_id.as_deref() {
                continue;
            }
            let id = resource["id"].as_str().unwrap_or_default().to_owned();
            entries.push(json!({"fullUrl": format!("DocumentReference/{id}"), "resource": resource, "search": {"mode": "match"}}));
        }
        Ok((200, searchset(entries)))
    }
    .await)
}

/// A Bundle entry's `fullUrl`: the 128-bit Observation id written as a `urn:uuid`.
fn full_url(id: &str) -> String {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("urn:uuid:{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..])
    } else {
        format!("Observation/{id}")
    }
}

/// The document route's AWS-backed dependencies, from the function's environment.
pub async fn aws_document_deps(
) -> Result<DocumentReadDeps<crate::devices::DynamoDeviceRegistry, crate::uploads::DynamoUploadStore>, crate::tables::MissingSetting> {
    let config = crate::aws::load_config().await;
    let dynamodb = crate::aws::dynamodb(&config);
    Ok(DocumentReadDeps {
        devices: crate::devices::DynamoDeviceRegistry::new(dynamodb.clone(), crate::tables::DEVICES.name_from_env()?),
        uploads: crate::uploads::DynamoUploadStore { client: dynamodb, table: crate::tables::UPLOADS.name_from_env()? },
    })
}

/// The AWS-backed dependencies, from the function's environment.
pub async fn aws_deps() -> Result<
    FhirReadDeps<crate::devices::DynamoDeviceRegistry, crate::observations::DynamoObservationStore>,
    crate::tables::MissingSetting,
> {
    let config = crate::aws::load_config().await;
    let dynamodb = crate::aws::dynamodb(&config);
    Ok(FhirReadDeps {
        devices: crate::devices::DynamoDeviceRegistry::new(dynamodb.clone(), crate::tables::DEVICES.name_from_env()?),
        observations: crate::observations::DynamoObservationStore::new(dynamodb, crate::tables::OBSERVATIONS.name_from_env()?),
    })
}
