//! `GET /devices/{thingName}/observations?limit=` (`device-observations`): a device's
//! Observations as a FHIR R4 `Bundle` of type `searchset`, newest first, each exactly as stored.
//!
//! Admins may read any device's; a clinician those of a device whose patient is in their care,
//! and only about patients in their care; a patient only those of a device assigned to them,
//! and about them. Every answer is audited ([`crate::access::audit`]) per patient whose
//! data it shows, and a refused attempt against the device's patient.

use lambda_http::Request;
use serde_json::{json, Value};

use super::ObservationStore;
use crate::access::audit::{record_read, AuditLog};
use crate::access::{require, Role};
use crate::care::{CareStore, ReadScope};
use crate::devices::DeviceRegistry;
use crate::platform::http::{limit_param, path_param, ApiError};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// What the device read routes need: the registry and the care teams (who may read), the
/// store of what is read, and the audit log.
pub struct DeviceReadDeps<D, S, L, C> {
    pub devices: D,
    pub store: S,
    pub audit: L,
    pub care: C,
}

impl<D: FromWiring, S: FromWiring, L: FromWiring, C: FromWiring> FromWiring for DeviceReadDeps<D, S, L, C> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { devices: w.build()?, store: w.build()?, audit: w.build()?, care: w.build()? })
    }
}

/// Who reads (with the patients they may read), the device and the page size, once the caller
/// may read the device's resources; a refused attempt is audited against the device's patient.
pub async fn readable_device<'a, D: DeviceRegistry, L: AuditLog, C: CareStore>(
    request: &Request,
    devices: &D,
    audit: &L,
    care: &'a C,
) -> Result<(ReadScope<'a, C>, String, i32), ApiError> {
    let mut scope = ReadScope::new(care, require(request, &[Role::Admin, Role::Clinician, Role::Patient])?);
    let thing = path_param(request, "thingName")?;
    let limit = limit_param(request, 50, 200)?;
    let device = devices.get(&thing).await?;
    // A patient, or a clinician, learns nothing about devices of patients not theirs, not even
    // that they exist.
    let visible = match (&device, scope.who().role) {
        (None, _) => false,
        (Some(_), Role::Admin) => true,
        (Some(d), Role::Clinician | Role::Patient) => match &d.patient_id {
            Some(patient) => scope.allows(patient).await?,
            None => false,
        },
    };
    if !visible {
        let patient: Vec<String> = device.and_then(|d| d.patient_id).into_iter().collect();
        record_read(audit, request, scope.who(), &patient, 404).await?;
        return Err(ApiError::NotFound(format!("no device {thing}")));
    }
    Ok((scope, thing, limit))
}

/// A FHIR `searchset` Bundle of the entries.
pub fn searchset(entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": "searchset", "total": entries.len(), "entry": entries})
}

/// A `searchset` Bundle whose resources are stored JSON embedded as they are kept: parsing
/// them into a `Value` would turn `72.50` into `72.5`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RawSearchset<'a> {
    resource_type: &'static str,
    r#type: &'static str,
    total: usize,
    entry: Vec<RawEntry<'a>>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry<'a> {
    full_url: String,
    resource: &'a serde_json::value::RawValue,
    search: Value,
}

/// `GET /devices/{thingName}/observations`
pub async fn device_observations<D: DeviceRegistry, O: ObservationStore, L: AuditLog, C: CareStore>(
    request: Request,
    deps: &DeviceReadDeps<D, O, L, C>,
) -> Result<lambda_http::Response<lambda_http::Body>, ApiError> {
    let (mut scope, thing, limit) = readable_device(&request, &deps.devices, &deps.audit, &deps.care).await?;
    // Only readings of patients the caller may read, even from a device that changed hands.
    let mut found = Vec::new();
    for o in deps.store.for_device(&thing, limit).await? {
        if scope.allows(&o.patient_id).await? {
            found.push(o);
        }
    }
    let mut entry = Vec::with_capacity(found.len());
    for o in &found {
        let resource = serde_json::from_str(&o.resource).map_err(|e| ApiError::Store(StoreError::new("read observation", e)))?;
        entry.push(RawEntry { full_url: full_url(&o.id), resource, search: json!({"mode": "match"}) });
    }
    let patients: Vec<&str> = found.iter().map(|o| o.patient_id.as_str()).collect();
    record_read(&deps.audit, &request, scope.who(), &patients, 200).await?;
    let bundle = RawSearchset { resource_type: "Bundle", r#type: "searchset", total: entry.len(), entry };
    let text = serde_json::to_string(&bundle).map_err(|e| ApiError::Store(StoreError::new("write the bundle", e)))?;
    Ok(crate::platform::http::json_text_response(200, text, &[]))
}

/// A Bundle entry's `fullUrl`: the 128-bit Observation id written as a `urn:uuid`.
fn full_url(id: &str) -> String {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("urn:uuid:{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..])
    } else {
        format!("Observation/{id}")
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, SecondsFormat, Utc};

    use super::*;
    use crate::access::audit::AuditRecord;
    use crate::access::memory::MemoryAudit;
    use crate::care::memory::MemoryCare;
    use crate::clinical::memory::MemoryAlerts;
    use crate::clinical::AlertSettings;
    use crate::devices::memory::MemoryDevices;
    use crate::devices::{Device, DeviceStatus};
    use crate::ingest::{readings, Filing, FilingDeps};
    use crate::observations::memory::MemoryObservations;
    use crate::observations::StoredObservation;
    use crate::platform::testing::{self, answered, Answered, ApiRequest};

    type Deps = DeviceReadDeps<MemoryDevices, MemoryObservations, MemoryAudit, MemoryCare>;

    /// acme-1 took a reading for pat-1, then was handed to pat-2 and took one for them; acme-2
    /// has no patient; acme-3 is pat-3's and took nothing.
    async fn deps() -> Deps {
        let device = |serial: &str, patient: Option<&str>| {
            let mut d = Device::registered("Acme", serial, "BP-200", "", "2026-11-01T00:00:00.000Z");
            d.status = DeviceStatus::Active;
            d.patient_id = patient.map(Into::into);
            d
        };
        let filing = FilingDeps {
            devices: MemoryDevices::with(vec![device("1", Some("pat-1")), device("2", None), device("3", Some("pat-3"))]),
            observations: MemoryObservations::default(),
            alerts: MemoryAlerts::default(),
            alert_settings: AlertSettings::default(),
            metrics: Default::default(),
        };
        let file = |minutes_ago: i64| {
            let at = (Utc::now() - Duration::minutes(minutes_ago)).to_rfc3339_opts(SecondsFormat::Secs, true);
            readings::parse(&json!({"device_id": "acme-1", "timestamp": at, "heart_rate": 72}).to_string(), None, Utc::now()).unwrap().reading
        };
        Filing::new(&filing).file(&file(20)).await.unwrap().unwrap();
        filing.devices.set_patient("acme-1", Some("pat-2"), "2026-11-02T00:00:00.000Z").await.unwrap().unwrap();
        Filing::new(&filing).file(&file(10)).await.unwrap().unwrap();
        let care = MemoryCare::looking_after("clinician-sub", &["pat-1", "pat-2", "pat-3"]);
        DeviceReadDeps { devices: filing.devices, store: filing.observations, audit: MemoryAudit::default(), care }
    }

    fn read(thing: &str, caller: Value) -> ApiRequest {
        ApiRequest::new("GET /devices/{thingName}/observations").path("thingName", thing).caller(caller)
    }

    /// The patient of each entry, in the Bundle's order.
    fn patients_of(answer: &Answered) -> Vec<String> {
        answer.body["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["subject"]["reference"].as_str().unwrap().trim_start_matches("Patient/").to_owned())
            .collect()
    }

    /// The audit log as (patient, subject, status).
    fn audited(deps: &Deps) -> Vec<(String, String, u16)> {
        deps.audit.all().into_iter().map(|r: AuditRecord| (r.patient_id, r.subject, r.status)).collect()
    }

    #[tokio::test]
    async fn resources_are_answered_byte_for_byte_as_stored() {
        let deps = deps().await;
        let resource = r#"{"resourceType":"Observation","id":"t-1","status":"final","valueQuantity":{"value":36.60,"unit":"Cel"}}"#;
        let stored = StoredObservation {
            id: "t-1".into(),
            patient_id: "pat-3".into(),
            device_id: "acme-3".into(),
            code_key: "http://loinc.org|8310-5".into(),
            effective_at: "2026-11-22T10:00:00.000Z".into(),
            content_hash: "h".into(),
            resource: resource.into(),
        };
        deps.store.insert_set(&[stored]).await.unwrap();
        let response = crate::platform::http::HttpAnswer::into_response(device_observations(read("acme-3", testing::clinician()).build(), &deps).await);
        let lambda_http::Body::Text(text) = response.body() else { panic!("a text body") };
        assert!(text.contains(resource), "36.60 must not become 36.6: {text}");
    }

    #[tokio::test]
    async fn a_clinician_reads_every_observation_of_a_device_as_stored_newest_first() {
        let deps = deps().await;
        let answer = answered(device_observations(read("acme-1", testing::clinician()).build(), &deps).await);
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!((answer.body["resourceType"].as_str(), answer.body["type"].as_str()), (Some("Bundle"), Some("searchset")));
        let stored = deps.store.for_device("acme-1", 50).await.unwrap();
        assert_eq!(stored.len(), 4, "a heart rate and its panel per reading");
        assert_eq!(answer.body["total"], json!(stored.len()));
        for (entry, o) in answer.body["entry"].as_array().unwrap().iter().zip(&stored) {
            assert_eq!(entry["resource"], serde_json::from_str::<Value>(&o.resource).unwrap(), "exactly as stored");
            assert_eq!(entry["fullUrl"], json!(full_url(&o.id)));
            assert!(entry["fullUrl"].as_str().unwrap().starts_with("urn:uuid:"));
        }
        assert_eq!(patients_of(&answer), ["pat-2", "pat-2", "pat-1", "pat-1"], "newest first");
        let mut records = audited(&deps);
        records.sort();
        assert_eq!(
            records,
            [("pat-1".into(), "clinician-sub".into(), 200), ("pat-2".into(), "clinician-sub".into(), 200)],
            "one record per patient shown"
        );
        let one = answered(device_observations(read("acme-1", testing::clinician()).query("limit", "1").build(), &deps).await);
        assert_eq!(patients_of(&one), ["pat-2"]);
        let bad = answered(device_observations(read("acme-1", testing::clinician()).query("limit", "0").build(), &deps).await);
        assert_eq!((bad.status, bad.error_field()), (400, Some("limit")));
    }

    #[tokio::test]
    async fn the_devices_patient_reads_only_their_own_observations() {
        let deps = deps().await;
        let answer = answered(device_observations(read("acme-1", testing::patient("pat-2")).build(), &deps).await);
        assert_eq!(answer.status, 200);
        assert_eq!(patients_of(&answer), ["pat-2", "pat-2"], "not the former patient's");
        assert_eq!(answer.body["total"], json!(2));
        assert_eq!(audited(&deps), [("pat-2".into(), "pat-2-sub".into(), 200)]);
    }

    #[tokio::test]
    async fn another_patient_learns_nothing_and_the_attempt_is_audited_against_the_devices_patient() {
        let deps = deps().await;
        for (thing, reader) in [("acme-1", "pat-1"), ("acme-3", "pat-1"), ("acme-2", "pat-1"), ("acme-9", "pat-1")] {
            let answer = answered(device_observations(read(thing, testing::patient(reader)).build(), &deps).await);
            assert_eq!((answer.status, answer.error_code()), (404, Some("NOT_FOUND")), "{thing}");
            assert_eq!(answer.body["error"]["message"], json!(format!("no device {thing}")), "as if it did not exist");
        }
        assert_eq!(
            audited(&deps),
            [("pat-2".into(), "pat-1-sub".into(), 404), ("pat-3".into(), "pat-1-sub".into(), 404)],
            "the former patient's and a stranger's attempts; a device without a patient or none at all concerns no one"
        );
        let unknown = answered(device_observations(read("acme-9", testing::clinician()).build(), &deps).await);
        assert_eq!(unknown.status, 404);
        let anonymous = answered(device_observations(read("acme-1", json!({})).build(), &deps).await);
        assert_eq!(anonymous.status, 401);
        assert_eq!(deps.audit.all().len(), 2);
    }

    #[tokio::test]
    async fn a_clinician_reads_only_the_readings_of_patients_in_their_care() {
        let mut deps = deps().await;
        deps.care = MemoryCare::looking_after("clinician-sub", &["pat-2"]);
        let answer = answered(device_observations(read("acme-1", testing::clinician()).build(), &deps).await);
        assert_eq!(patients_of(&answer), ["pat-2", "pat-2"], "not the former patient, who is not in their care");
        deps.care = MemoryCare::looking_after("clinician-sub", &["pat-1"]);
        let outside = answered(device_observations(read("acme-1", testing::clinician()).build(), &deps).await);
        assert_eq!(outside.status, 404, "the device's patient is not in their care");
        let admin = answered(device_observations(read("acme-1", testing::admin()).build(), &deps).await);
        assert_eq!(patients_of(&admin).len(), 4, "an admin reads all");
    }

    /// An audit log that cannot be written.
    struct UnavailableAudit;

    impl AuditLog for UnavailableAudit {
        async fn record(&self, _: &AuditRecord) -> Result<(), StoreError> {
            Err(StoreError::new("record audit", "simulated throttling"))
        }
        async fn for_patient(&self, _: &str, _: i32, _: Option<&str>) -> Result<(Vec<AuditRecord>, Option<String>), StoreError> {
            Err(StoreError::new("list audit records", "simulated throttling"))
        }
    }

    #[tokio::test]
    async fn a_read_that_cannot_be_audited_shows_nothing() {
        let filed = deps().await;
        let deps = DeviceReadDeps { devices: filed.devices, store: filed.store, audit: UnavailableAudit, care: filed.care };
        let answer = answered(device_observations(read("acme-1", testing::clinician()).build(), &deps).await);
        assert_eq!((answer.status, answer.error_code()), (503, Some("UNAVAILABLE")));
        assert_eq!(answer.body.get("entry"), None);
    }
}
