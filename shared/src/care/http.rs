//! Care-team routes:
//!
//! | route | function | roles |
//! |---|---|---|
//! | `PUT /admin/clinicians/{clinicianId}` | `admin-clinicians-put` | admin |
//! | `GET /admin/clinicians` | `admin-clinicians-list` | admin |
//! | `GET /admin/clinicians/{clinicianId}` | `admin-clinicians-get` | admin |
//! | `PUT /admin/locations/{locationId}` | `admin-locations-put` | admin |
//! | `GET /admin/locations` | `admin-locations-list` | admin |
//! | `GET /admin/locations/{locationId}` | `admin-locations-get` (with its members) | admin |
//! | `PUT /admin/patients/{patientId}/care-team` | `admin-care-team-put` | admin |
//! | `GET /admin/patients/{patientId}/care-team` | `admin-care-team-get` | admin |
//! | `PUT /patients/{patientId}/settings` | `patient-settings-put` | admin, a clinician of the patient's team |
//! | `GET /patients/{patientId}/settings` | `patient-settings-get` | admin, a clinician of the team, the patient |

use chrono::Utc;
use lambda_http::Request;
use serde_json::json;

use super::{check_team, unknown_location, valid_id, CareRefusal, CareStore, CareTeam, ClinicalSettings, Clinician, Location};
use crate::access::audit::{record_read, AuditLog};
use crate::access::{require, Principal, Role};
use crate::platform::http::{json_body, path_param, ApiError, Reply};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// What the care-team routes need: the store, and the audit log (settings are patient data).
pub struct CareDeps<S, L> {
    pub care: S,
    pub audit: L,
}

impl<S: FromWiring, L: FromWiring> FromWiring for CareDeps<S, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { care: w.build()?, audit: w.build()? })
    }
}

impl From<CareRefusal> for ApiError {
    fn from(refusal: CareRefusal) -> Self {
        match &refusal {
            CareRefusal::Invalid { field, message } => ApiError::bad(field, message.clone()),
            CareRefusal::UnknownClinician(_) | CareRefusal::WrongRole(..) => ApiError::bad("team", refusal.to_string()),
            CareRefusal::UnknownLocation(_) => ApiError::bad("locationId", refusal.to_string()),
        }
    }
}

fn id_param(request: &Request, name: &str) -> Result<String, ApiError> {
    let id = path_param(request, name)?;
    if valid_id(&id) {
        Ok(id)
    } else {
        Err(ApiError::bad(name, "1 to 128 letters, digits, '-', '_', '.', ':' or '@'"))
    }
}

fn json_of<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Store(StoreError::new("write the answer", e)))
}

fn reply<T: serde::Serialize>(status: u16, value: &T) -> Result<Reply, ApiError> {
    Ok((status, json_of(value)?))
}

/// `PUT /admin/clinicians/{clinicianId}`: a doctor or nurse (the id is their staff-pool
/// subject) and the locations they work at, each of which must exist.
pub async fn put_clinician<S: CareStore, L>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let id = id_param(&request, "clinicianId")?;
    let mut clinician: Clinician = json_body(&request)?;
    clinician.clinician_id = id.clone();
    clinician.check()?;
    if let Some(location) = unknown_location(&deps.care, &clinician.location_ids).await? {
        return Err(CareRefusal::UnknownLocation(location.clone()).into());
    }
    let previous = deps.care.clinician(&id).await?;
    deps.care.put_clinician(&clinician, previous.as_ref()).await?;
    reply(if previous.is_some() { 200 } else { 201 }, &clinician)
}

/// `GET /admin/clinicians`.
pub async fn list_clinicians<S: CareStore, L>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    Ok((200, json!({"clinicians": deps.care.clinicians().await?})))
}

/// `GET /admin/clinicians/{clinicianId}`.
pub async fn get_clinician<S: CareStore, L>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let id = id_param(&request, "clinicianId")?;
    let clinician = deps.care.clinician(&id).await?.ok_or_else(|| ApiError::NotFound(format!("no clinician {id}")))?;
    reply(200, &clinician)
}

/// `PUT /admin/locations/{locationId}`: a clinic or ward and its EMS contact.
pub async fn put_location<S: CareStore, L>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let id = id_param(&request, "locationId")?;
    let mut location: Location = json_body(&request)?;
    location.location_id = id.clone();
    if location.name.trim().is_empty() {
        return Err(ApiError::bad("name", "must not be empty"));
    }
    let existed = deps.care.location(&id).await?.is_some();
    deps.care.put_location(&location).await?;
    reply(if existed { 200 } else { 201 }, &location)
}

/// `GET /admin/locations`.
pub async fn list_locations<S: CareStore, L>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    Ok((200, json!({"locations": deps.care.locations().await?})))
}

/// `GET /admin/locations/{locationId}`: the location and the clinicians who work there.
pub async fn get_location<S: CareStore, L>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let id = id_param(&request, "locationId")?;
    let location = deps.care.location(&id).await?.ok_or_else(|| ApiError::NotFound(format!("no location {id}")))?;
    let mut body = json_of(&location)?;
    body["members"] = json!(deps.care.members(&id).await?);
    Ok((200, body))
}

/// `PUT /admin/patients/{patientId}/care-team`: the patient's doctors, nurses and location;
/// doctors must be doctors and nurses nurses.
pub async fn put_care_team<S: CareStore, L: AuditLog>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin])?;
    let patient = id_param(&request, "patientId")?;
    let mut team: CareTeam = json_body(&request)?;
    team.patient_id = patient.clone();
    check_team(&deps.care, &team).await??;
    deps.care.put_care_team(&team).await?;
    record_read(&deps.audit, &request, &who, &[patient.as_str()], 200).await?;
    reply(200, &team)
}

/// `GET /admin/patients/{patientId}/care-team` (an empty team when none was set).
pub async fn get_care_team<S: CareStore, L: AuditLog>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin])?;
    let patient = id_param(&request, "patientId")?;
    let team = deps.care.care_team(&patient).await?.unwrap_or_else(|| CareTeam { patient_id: patient.clone(), ..CareTeam::default() });
    record_read(&deps.audit, &request, &who, &[patient.as_str()], 200).await?;
    reply(200, &team)
}

/// Whether `who` may see (and, `write`, change) a patient's settings: whoever may read the
/// patient's data, but for changes not the patient. Others get 404, as for other patient data.
async fn may_reach<S: CareStore>(care: &S, who: &Principal, patient: &str, write: bool) -> Result<bool, ApiError> {
    Ok(!(write && who.role == Role::Patient) && super::may_read(care, who, patient).await?)
}

/// `PUT /patients/{patientId}/settings`: the patient's clinical settings. A changed SpO2 scale is
/// recorded as prescribed by the caller, now.
pub async fn put_settings<S: CareStore, L: AuditLog>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician])?;
    let patient = id_param(&request, "patientId")?;
    if !may_reach(&deps.care, &who, &patient, true).await? {
        record_read(&deps.audit, &request, &who, &[patient.as_str()], 404).await?;
        return Err(ApiError::NotFound(format!("no patient {patient} in your care")));
    }
    let mut settings: ClinicalSettings = json_body(&request)?;
    settings.patient_id = patient.clone();
    settings.check()?;
    let previous = deps.care.settings(&patient).await?;
    let previous_scale = previous.as_ref().and_then(|p| p.spo2.as_ref());
    if let Some(spo2) = settings.spo2.as_mut() {
        match previous_scale.filter(|p| p.scale == spo2.scale) {
            // The same scale: its prescription stands.
            Some(kept) => *spo2 = kept.clone(),
            None => {
                spo2.prescribed_by = who.subject.clone();
                spo2.prescribed_at = format_utc(Utc::now());
            }
        }
    }
    deps.care.put_settings(&settings).await?;
    record_read(&deps.audit, &request, &who, &[patient.as_str()], 200).await?;
    reply(200, &settings)
}

/// `GET /patients/{patientId}/settings` (the defaults when none were set).
pub async fn get_settings<S: CareStore, L: AuditLog>(request: Request, deps: &CareDeps<S, L>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?;
    let patient = id_param(&request, "patientId")?;
    if !may_reach(&deps.care, &who, &patient, false).await? {
        record_read(&deps.audit, &request, &who, &[patient.as_str()], 404).await?;
        return Err(ApiError::NotFound(format!("no patient {patient} in your care")));
    }
    let settings = deps.care.settings(&patient).await?.unwrap_or_else(|| ClinicalSettings { patient_id: patient.clone(), ..ClinicalSettings::default() });
    record_read(&deps.audit, &request, &who, &[patient.as_str()], 200).await?;
    reply(200, &settings)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::access::memory::MemoryAudit;
    use crate::care::memory::MemoryCare;
    use crate::platform::testing::{admin, answered, patient, Answered, ApiRequest};

    type Deps = CareDeps<MemoryCare, MemoryAudit>;

    fn deps() -> Deps {
        CareDeps { care: MemoryCare::default(), audit: MemoryAudit::default() }
    }

    fn clinician_as(sub: &str) -> Value {
        json!({"authenticated": true, "sub": sub, "role": "clinician"})
    }

    async fn call<F, Fut>(route: &str, params: &[(&str, &str)], caller: Value, body: Option<Value>, f: F) -> Answered
    where
        F: FnOnce(Request) -> Fut,
        Fut: std::future::Future<Output = Result<Reply, ApiError>>,
    {
        let mut request = ApiRequest::new(route).caller(caller);
        for (k, v) in params {
            request = request.path(k, v);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        answered(f(request.build()).await)
    }

    async fn ward_with_team(deps: &Deps) {
        let put = call("PUT /admin/locations/{locationId}", &[("locationId", "ward-7")], admin(), Some(json!({"name": "Ward 7", "kind": "ward", "ems": {"name": "Ambulance", "phone": "+441234567890"}})), |r| put_location(r, deps)).await;
        assert_eq!(put.status, 201, "{}", put.body);
        for (id, role) in [("d-1", "doctor"), ("n-1", "nurse")] {
            let body = json!({"name": id, "role": role, "phone": "+447700900123", "locationIds": ["ward-7"]});
            let made = call("PUT /admin/clinicians/{clinicianId}", &[("clinicianId", id)], admin(), Some(body), |r| put_clinician(r, deps)).await;
            assert_eq!(made.status, 201, "{}", made.body);
        }
        let team = call("PUT /admin/patients/{patientId}/care-team", &[("patientId", "p-1")], admin(), Some(json!({"doctors": ["d-1"], "nurses": ["n-1"]})), |r| put_care_team(r, deps)).await;
        assert_eq!(team.status, 200, "{}", team.body);
    }

    #[tokio::test]
    async fn an_admin_builds_a_ward_and_a_team_and_roles_and_places_are_checked() {
        let deps = deps();
        ward_with_team(&deps).await;
        let ward = call("GET /admin/locations/{locationId}", &[("locationId", "ward-7")], admin(), None, |r| get_location(r, &deps)).await;
        assert_eq!(ward.body["members"], json!(["d-1", "n-1"]));
        assert_eq!(ward.body["ems"]["phone"], "+441234567890");
        let swapped = call("PUT /admin/patients/{patientId}/care-team", &[("patientId", "p-1")], admin(), Some(json!({"doctors": ["n-1"]})), |r| put_care_team(r, &deps)).await;
        assert_eq!((swapped.status, swapped.body["error"]["message"].clone()), (400, json!("team: n-1 is a nurse, not a doctor")));
        let nowhere = call("PUT /admin/clinicians/{clinicianId}", &[("clinicianId", "n-2")], admin(), Some(json!({"name": "N", "role": "nurse", "locationIds": ["ward-9"]})), |r| put_clinician(r, &deps)).await;
        assert_eq!((nowhere.status, nowhere.body["error"]["field"].clone()), (400, json!("locationId")));
        let unknown_field = call("PUT /admin/clinicians/{clinicianId}", &[("clinicianId", "n-2")], admin(), Some(json!({"name": "N", "role": "nurse", "grade": 5})), |r| put_clinician(r, &deps)).await;
        assert_eq!(unknown_field.status, 400, "unknown fields are refused");
        let by_clinician = call("GET /admin/clinicians", &[], clinician_as("d-1"), None, |r| list_clinicians(r, &deps)).await;
        assert_eq!(by_clinician.status, 403);
    }

    /// A care store that is down: every call fails as DynamoDB's outage would.
    struct DownCare;

    fn down<T>() -> Result<T, crate::StoreError> {
        Err(crate::StoreError::new("read care team", "service unavailable"))
    }

    impl CareStore for DownCare {
        async fn clinician(&self, _: &str) -> Result<Option<Clinician>, crate::StoreError> { down() }
        async fn put_clinician(&self, _: &Clinician, _: Option<&Clinician>) -> Result<(), crate::StoreError> { down() }
        async fn clinicians(&self) -> Result<Vec<Clinician>, crate::StoreError> { down() }
        async fn location(&self, _: &str) -> Result<Option<Location>, crate::StoreError> { down() }
        async fn put_location(&self, _: &Location) -> Result<(), crate::StoreError> { down() }
        async fn locations(&self) -> Result<Vec<Location>, crate::StoreError> { down() }
        async fn members(&self, _: &str) -> Result<Vec<String>, crate::StoreError> { down() }
        async fn care_team(&self, _: &str) -> Result<Option<CareTeam>, crate::StoreError> { down() }
        async fn put_care_team(&self, _: &CareTeam) -> Result<(), crate::StoreError> { down() }
        async fn patients_of(&self, _: &str) -> Result<Vec<String>, crate::StoreError> { down() }
        async fn patients_at(&self, _: &str) -> Result<Vec<String>, crate::StoreError> { down() }
        async fn settings(&self, _: &str) -> Result<Option<ClinicalSettings>, crate::StoreError> { down() }
        async fn put_settings(&self, _: &ClinicalSettings) -> Result<(), crate::StoreError> { down() }
    }

    #[tokio::test]
    async fn a_store_outage_while_checking_a_team_is_a_503_not_a_refusal_of_the_body() {
        let deps = CareDeps { care: DownCare, audit: MemoryAudit::default() };
        let answer = call("PUT /admin/patients/{patientId}/care-team", &[("patientId", "p-1")], admin(), Some(json!({"doctors": ["d-1"]})), |r| put_care_team(r, &deps)).await;
        assert_eq!(answer.status, 503, "{}", answer.body);
        assert_eq!(answer.error_field(), None, "the body is not blamed");
    }

    #[tokio::test]
    async fn settings_are_the_teams_and_the_patients_and_a_new_spo2_scale_names_its_prescriber() {
        let deps = deps();
        ward_with_team(&deps).await;
        let body = json!({"spo2": {"scale": 2, "prescribedBy": "someone", "prescribedAt": "x"}, "channels": ["sms"], "phone": "+447700900001", "escalationTimeouts": {"lowMedium": 30, "medium": 15, "high": 5},
            "quietHours": {"start": "22:00:00", "end": "07:00:00", "timezone": "Europe/London"}});
        let put = call("PUT /patients/{patientId}/settings", &[("patientId", "p-1")], clinician_as("d-1"), Some(body.clone()), |r| put_settings(r, &deps)).await;
        assert_eq!(put.status, 200, "{}", put.body);
        assert_eq!(put.body["spo2"]["prescribedBy"], "d-1", "the caller prescribed it, whatever the body says");
        let outsider = call("PUT /patients/{patientId}/settings", &[("patientId", "p-1")], clinician_as("d-9"), Some(body), |r| put_settings(r, &deps)).await;
        assert_eq!(outsider.status, 404, "a clinician outside the team");
        let own = call("GET /patients/{patientId}/settings", &[("patientId", "p-1")], patient("p-1"), None, |r| get_settings(r, &deps)).await;
        assert_eq!((own.status, own.body["escalationTimeouts"]["high"].clone()), (200, json!(5)));
        let other = call("GET /patients/{patientId}/settings", &[("patientId", "p-1")], patient("p-2"), None, |r| get_settings(r, &deps)).await;
        assert_eq!(other.status, 404);
        let bad_zone = call("PUT /patients/{patientId}/settings", &[("patientId", "p-1")], admin(), Some(json!({"quietHours": {"start": "22:00:00", "end": "07:00:00", "timezone": "Mars/Olympus"}})), |r| put_settings(r, &deps)).await;
        assert_eq!(bad_zone.status, 400);
        assert!(deps.audit.0.lock().unwrap().iter().any(|r| r.patient_id == "p-1" && r.status == 404), "refusals are audited");
    }
}
