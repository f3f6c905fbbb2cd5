//! Reading FHIR resources over the HTTP API.
//!
//! | route | function |
//! |---|---|
//! | `GET /devices/{thingName}/observations?limit=` | `device-observations` |
//!
//! Admins and clinicians may read any device's Observations; a patient only those of a device
//! assigned to them. The answer is a FHIR R4 `Bundle` of type `searchset`, newest first, with
//! each Observation exactly as stored.

use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use crate::api::{limit_param, path_param, require, respond, ApiError};
use crate::auth::Role;
use crate::devices::DeviceRegistry;
use crate::observations::ObservationStore;

/// What the FHIR read routes need.
pub struct FhirReadDeps<D, O> {
    pub devices: D,
    pub observations: O,
}

/// `GET /devices/{thingName}/observations`
pub async fn device_observations<D: DeviceRegistry, O: ObservationStore>(request: Request, deps: &FhirReadDeps<D, O>) -> Response<Body> {
    respond(async {
        let caller = require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?;
        let thing = path_param(&request, "thingName")?;
        let limit = limit_param(&request, 50, 200)?;
        let device = deps.devices.get(&thing).await?;
        // A patient learns nothing about devices that are not theirs, not even that they exist.
        let visible = match (&device, caller.role) {
            (None, _) => false,
            (Some(_), Role::Admin | Role::Clinician) => true,
            (Some(d), Role::Patient) => d.patient_id.is_some() && d.patient_id == caller.patient_id,
        };
        if !visible {
            return Err(ApiError::NotFound(format!("no device {thing}")));
        }
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
        Ok((200, json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries})))
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
