//! Patient routes: encounters an operator registers for a patient.

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Encounter, EncounterStatus, EncounterStore};
use crate::access::{require, Role};
use crate::fhir::is_valid_id;
use crate::mapping::observation::hash_id;
use crate::platform::http::{json_body, path_param, ApiError, Reply};
use crate::platform::time::format_utc;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Registration {
    identifier: String,
    #[serde(default)]
    status: Option<String>,
}

fn encounter_json(e: &Encounter) -> Value {
    json!({"id": e.id, "identifier": e.identifier, "patientId": e.patient_id, "status": e.status.as_str(), "createdAt": e.created_at})
}

/// `POST /admin/patients/{patientId}/encounters` with `{"identifier", "status"?}`: registers
/// an encounter under the identifier devices send (1-128 printable characters), `in-progress`
/// unless said. 201, or 200 with the one registered before for the same patient; 409 when the
/// identifier is another patient's.
pub async fn register_encounter<E: EncounterStore>(request: lambda_http::Request, store: &E) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let patient_id = path_param(&request, "patientId")?;
    if !is_valid_id(&patient_id) {
        return Err(ApiError::bad("patientId", "must be a FHIR id (1-64 letters, digits, '-' or '.')"));
    }
    let r: Registration = json_body(&request)?;
    let identifier = r.identifier.trim();
    if identifier.is_empty() || identifier.len() > 128 || !identifier.chars().all(|c| !c.is_control()) {
        return Err(ApiError::bad("identifier", "1 to 128 characters, no control characters"));
    }
    let status = match r.status.as_deref() {
        None => EncounterStatus::InProgress,
        Some(s) => EncounterStatus::named(s).ok_or_else(|| ApiError::bad("status", "one of planned, in-progress, finished, cancelled"))?,
    };
    let encounter = Encounter { id: hash_id("", identifier), identifier: identifier.to_owned(), patient_id, status, created_at: format_utc(Utc::now()) };
    if store.create(&encounter).await? {
        return Ok((201, encounter_json(&encounter)));
    }
    match store.get(&encounter.id).await? {
        Some(existing) if existing.patient_id == encounter.patient_id => Ok((200, encounter_json(&existing))),
        Some(_) => Err(ApiError::Conflict(format!("encounter {identifier:?} is another patient's"))),
        None => Err(ApiError::Conflict(format!("encounter {identifier:?} changed while it was registered: try again"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patients::memory::MemoryEncounters;
    use crate::platform::testing::{admin, answered, clinician, ApiRequest};

    fn register(patient: &str, body: Value) -> lambda_http::Request {
        ApiRequest::new("POST /admin/patients/{patientId}/encounters").path("patientId", patient).json(body).caller(admin()).build()
    }

    #[tokio::test]
    async fn an_encounter_is_registered_once_for_its_patient() {
        let store = MemoryEncounters::default();
        let created = answered(register_encounter(register("pat-1", json!({"identifier": "visit-42"})), &store).await);
        assert_eq!((created.status, created.body["status"].as_str()), (201, Some("in-progress")));
        assert_eq!(created.body["id"], hash_id("", "visit-42"));
        assert_eq!(answered(register_encounter(register("pat-1", json!({"identifier": "visit-42"})), &store).await).status, 200);
        assert_eq!(answered(register_encounter(register("pat-2", json!({"identifier": "visit-42"})), &store).await).status, 409);
        let bad = answered(register_encounter(register("pat-1", json!({"identifier": "v", "status": "open"})), &store).await);
        assert_eq!((bad.status, bad.error_field()), (400, Some("status")));
        let as_clinician = ApiRequest::new("POST /admin/patients/{patientId}/encounters").path("patientId", "pat-1").json(json!({"identifier": "x"})).caller(clinician()).build();
        assert_eq!(answered(register_encounter(as_clinician, &store).await).status, 403);
        assert_eq!(store.0.lock().unwrap().len(), 1);
    }
}
