//! The FHIR routes: `GET /fhir/metadata` (no token), the Observation search and `$lastn`, and
//! reads of Observation, Patient, Device and DocumentReference.
//!
//! Who reads what: an admin any patient's data; a clinician their care teams' patients'; a
//! patient their own. A read or search about a patient the caller may not read is a 403; a
//! device search shows only the readings of patients the caller may read. Every answer with a
//! patient's data, and every refused attempt, is audited before it is given.

use lambda_http::{Body, Request, Response};
use serde_json::value::RawValue;

use super::search::{self, ObservationSearch};
use super::{capability_statement, content_version, device_resource, patient_resource, version_id, with_version, Cursor, FhirError, StreamState, FHIR_JSON};
use crate::access::audit::{record_read, AuditLog};
use crate::access::{require, Role};
use crate::care::{CareStore, ReadScope};
use crate::devices::DeviceRegistry;
use crate::files::UploadRecordStore;
use crate::observations::{Along, ObservationStore, SearchPage, StoredObservation};
use crate::patients::PatientStore;
use crate::platform::http::{json_text_response_for, path_param, text_response, HttpAnswer};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

impl HttpAnswer for Result<Response<Body>, FhirError> {
    fn into_response(self) -> Response<Body> {
        self.unwrap_or_else(FhirError::into_response)
    }
}

/// What a FHIR route over one store needs: the store (Observations, devices or uploads), the
/// care teams (who may read) and the audit log.
pub struct FhirReadDeps<S, L, C> {
    pub store: S,
    pub audit: L,
    pub care: C,
}

impl<S: FromWiring, L: FromWiring, C: FromWiring> FromWiring for FhirReadDeps<S, L, C> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { store: w.build()?, audit: w.build()?, care: w.build()? })
    }
}

/// The API's base URL as the client called it (`https://<api>/fhir`; locally `http://...`).
fn base_url(request: &Request) -> String {
    let uri = request.uri();
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) => format!("{scheme}://{authority}/fhir"),
        _ => "/fhir".to_owned(),
    }
}

/// The query's parameters in the order given, repeated ones included.
fn query_pairs(request: &Request) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).into_owned().collect()
}

fn fhir_json(request: &Request, body: String, headers: &[(&'static str, String)]) -> Response<Body> {
    json_text_response_for(request, 200, FHIR_JSON, body, headers)
}

/// `GET /fhir/metadata`: the CapabilityStatement (no token: clients read it before signing in).
pub async fn metadata(request: Request, _: &()) -> Response<Body> {
    let statement = capability_statement(&base_url(&request), env!("CARGO_PKG_VERSION"));
    text_response(200, FHIR_JSON, statement.to_string(), &[])
}

/// A stored Observation as answered: `meta.versionId` and `meta.lastUpdated` (when it was
/// filed, its `issued`) set.
fn versioned(o: &StoredObservation) -> Result<String, StoreError> {
    with_version(&o.resource, &version_id(&o.content_hash), issued(o)?.as_deref()).map_err(|e| StoreError::new("read observation", e))
}

/// When the platform filed a stored Observation: its `issued`, the resource's `lastUpdated`.
fn issued(o: &StoredObservation) -> Result<Option<String>, StoreError> {
    Ok(serde_json::from_str::<IssuedOnly>(&o.resource).map_err(|e| StoreError::new("read observation", e))?.issued)
}

#[derive(serde::Deserialize)]
struct IssuedOnly {
    issued: Option<String>,
}

/// An instant as an HTTP date (`Last-Modified`).
fn http_date(instant: &str) -> Option<String> {
    crate::platform::time::parse_with_offset(instant).map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

/// `GET /fhir/Observation/{id}`, and `GET /fhir/Observation/$lastn` (no id holds a `$`).
pub async fn read_observation<O: ObservationStore, L: AuditLog, C: CareStore>(
    request: Request,
    deps: &FhirReadDeps<O, L, C>,
) -> Result<Response<Body>, FhirError> {
    let mut scope = ReadScope::new(&deps.care, require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?);
    let id = path_param(&request, "id")?;
    if id == "$lastn" {
        return lastn(&request, deps, scope).await;
    }
    let id = fhir_id(id)?;
    let Some(o) = deps.store.get(&id).await? else {
        return Err(FhirError::NotFound(format!("Observation/{id} is not known")));
    };
    let issued = issued(&o)?;
    let read = Read { what: format!("Observation/{id}"), patient: Some(&o.patient_id), json: &o.resource, version: version_id(&o.content_hash), last_updated: issued.as_deref() };
    answer_read(&request, &deps.audit, &mut scope, read).await
}

/// A resource read by id, about a patient (or none: then only an admin reads it).
struct Read<'a> {
    what: String,
    patient: Option<&'a str>,
    json: &'a str,
    version: String,
    last_updated: Option<&'a str>,
}

/// The resource, versioned, once the caller may read its patient (403 otherwise); audited
/// either way.
async fn answer_read<L: AuditLog, C: CareStore>(request: &Request, audit: &L, scope: &mut ReadScope<'_, C>, read: Read<'_>) -> Result<Response<Body>, FhirError> {
    let patients: Vec<&str> = read.patient.into_iter().collect();
    let allowed = match read.patient {
        Some(patient) => scope.allows(patient).await?,
        None => scope.who().role == Role::Admin,
    };
    if !allowed {
        record_read(audit, request, scope.who(), &patients, 403).await?;
        return Err(FhirError::Forbidden(format!("{} is about a patient whose data you may not read", read.what)));
    }
    let json = with_version(read.json, &read.version, read.last_updated).map_err(|e| StoreError::new("read resource", e))?;
    record_read(audit, request, scope.who(), &patients, 200).await?;
    let mut headers = vec![("etag", format!("W/\"{}\"", read.version))];
    if let Some(date) = read.last_updated.and_then(http_date) {
        headers.push(("last-modified", date));
    }
    Ok(fhir_json(request, json, &headers))
}

/// The id of a read, checked to be a FHIR id.
fn read_id(request: &Request) -> Result<String, FhirError> {
    fhir_id(path_param(request, "id")?)
}

fn fhir_id(id: String) -> Result<String, FhirError> {
    if crate::fhir::is_valid_id(&id) {
        Ok(id)
    } else {
        Err(FhirError::bad("id", format!("{id:?} is not a FHIR id")))
    }
}

/// What the Patient read needs: the patient records, the Observations (whether an id has any
/// data), the care teams and the audit log.
pub struct FhirPatientDeps<P, O, L, C> {
    pub patients: P,
    pub observations: O,
    pub audit: L,
    pub care: C,
}

impl<P: FromWiring, O: FromWiring, L: FromWiring, C: FromWiring> FromWiring for FhirPatientDeps<P, O, L, C> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { patients: w.build()?, observations: w.build()?, audit: w.build()?, care: w.build()? })
    }
}

/// `GET /fhir/Patient/{id}`: a patient the platform knows (a record, a care team, or readings).
pub async fn read_patient<P: PatientStore, O: ObservationStore, L: AuditLog, C: CareStore>(
    request: Request,
    deps: &FhirPatientDeps<P, O, L, C>,
) -> Result<Response<Body>, FhirError> {
    let mut scope = ReadScope::new(&deps.care, require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?);
    let id = read_id(&request)?;
    let record = deps.patients.get(&id).await?;
    // Only an admin may ask about any id; for the others, may they read it is the question.
    if scope.who().role == Role::Admin && record.is_none() && deps.care.care_team(&id).await?.is_none() {
        let along = Along::Patient(id.clone());
        let any = SearchPage { along: &along, from: None, to: None, newest_first: true, after: None, limit: 1 };
        if deps.observations.search_page(&any).await?.0.is_empty() {
            return Err(FhirError::NotFound(format!("Patient/{id} is not known")));
        }
    }
    let json = patient_resource(&id, record.as_ref()).to_string();
    let read = Read { what: format!("Patient/{id}"), patient: Some(&id), version: content_version(&json), json: &json, last_updated: record.as_ref().map(|r| r.created_at.as_str()) };
    answer_read(&request, &deps.audit, &mut scope, read).await
}

/// `GET /fhir/Device/{id}`: a registered device (its thing name), read by an admin or by those
/// who may read its patient.
pub async fn read_device<D: DeviceRegistry, L: AuditLog, C: CareStore>(request: Request, deps: &FhirReadDeps<D, L, C>) -> Result<Response<Body>, FhirError> {
    let mut scope = ReadScope::new(&deps.care, require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?);
    // Thing names are device ids here, and may hold `:` and `_`, which FHIR ids do not.
    let id = path_param(&request, "id")?;
    let Some(device) = deps.store.get(&id).await? else {
        return Err(FhirError::NotFound(format!("Device/{id} is not known")));
    };
    let json = device_resource(&device).to_string();
    let read = Read { what: format!("Device/{id}"), patient: device.patient_id.as_deref(), version: content_version(&json), json: &json, last_updated: Some(&device.updated_at) };
    answer_read(&request, &deps.audit, &mut scope, read).await
}

/// The members of a stored DocumentReference a read needs.
#[derive(serde::Deserialize)]
struct DocumentFacts {
    subject: Option<crate::fhir::Reference>,
    date: Option<String>,
}

/// `GET /fhir/DocumentReference/{id}`: a file a device uploaded, once registered.
pub async fn read_document<U: UploadRecordStore, L: AuditLog, C: CareStore>(
    request: Request,
    deps: &FhirReadDeps<U, L, C>,
) -> Result<Response<Body>, FhirError> {
    let mut scope = ReadScope::new(&deps.care, require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?);
    let id = read_id(&request)?;
    let Some(json) = deps.store.document(&id).await? else {
        return Err(FhirError::NotFound(format!("DocumentReference/{id} is not known")));
    };
    let facts: DocumentFacts = serde_json::from_str(&json).map_err(|e| StoreError::new("read document", e))?;
    let patient = facts.subject.as_ref().and_then(|s| s.reference.strip_prefix("Patient/"));
    let read = Read { what: format!("DocumentReference/{id}"), patient, version: content_version(&json), json: &json, last_updated: facts.date.as_deref() };
    answer_read(&request, &deps.audit, &mut scope, read).await
}

/// `GET /fhir/Observation/$lastn?patient=&code=&category=&max=`
async fn lastn<O: ObservationStore, L: AuditLog, C: CareStore>(
    request: &Request,
    deps: &FhirReadDeps<O, L, C>,
    mut scope: ReadScope<'_, C>,
) -> Result<Response<Body>, FhirError> {
    let pairs = query_pairs(request);
    let mut ask = search::LastN::parse(&pairs)?;
    if scope.who().role == Role::Patient && ask.patient.is_none() {
        ask.patient.clone_from(&scope.who().patient_id);
    }
    let Some(patient) = ask.patient.clone() else {
        return Err(FhirError::bad("patient", "$lastn needs patient (or subject)"));
    };
    readable_patient(request, &deps.audit, &mut scope, &patient).await?;
    let found = search::lastn(&deps.store, &patient, &ask).await?;
    let base = base_url(request);
    let entry = entries(&base, &found)?;
    record_read(&deps.audit, request, scope.who(), &[&patient], 200).await?;
    let self_url = format!("{base}/Observation/$lastn?{}", form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish());
    let bundle = Bundle { resource_type: "Bundle", r#type: "searchset", total: Some(entry.len()), link: vec![Link { relation: "self", url: self_url }], entry };
    Ok(fhir_json(request, to_json(&bundle)?, &[]))
}

/// A 403, audited against the patient, unless the caller may read the patient a search is about.
async fn readable_patient<L: AuditLog, C: CareStore>(request: &Request, audit: &L, scope: &mut ReadScope<'_, C>, patient: &str) -> Result<(), FhirError> {
    if scope.allows(patient).await? {
        return Ok(());
    }
    record_read(audit, request, scope.who(), &[patient], 403).await?;
    Err(FhirError::Forbidden(format!("Patient/{patient} is not a patient whose data you may read")))
}

/// The Bundle entries of stored Observations, each with its version.
fn entries(base: &str, found: &[StoredObservation]) -> Result<Vec<Entry>, StoreError> {
    found
        .iter()
        .map(|o| {
            let resource = RawValue::from_string(versioned(o)?).map_err(|e| StoreError::new("read observation", e))?;
            Ok(Entry { full_url: format!("{base}/Observation/{}", o.id), resource, search: EntrySearch { mode: "match" } })
        })
        .collect()
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Bundle {
    resource_type: &'static str,
    r#type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<usize>,
    link: Vec<Link>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entry: Vec<Entry>,
}

#[derive(serde::Serialize)]
struct Link {
    relation: &'static str,
    url: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    full_url: String,
    /// The stored JSON as kept (a decimal's text untouched), with its version.
    resource: Box<RawValue>,
    search: EntrySearch,
}

#[derive(serde::Serialize)]
struct EntrySearch {
    mode: &'static str,
}

/// The URL of this search with another cursor (none: the first page).
fn search_url(base: &str, pairs: &[(String, String)], cursor: Option<&str>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(name, _)| name != "_cursor") {
        query.append_pair(name, value);
    }
    if let Some(cursor) = cursor {
        query.append_pair("_cursor", cursor);
    }
    format!("{base}/Observation?{}", query.finish())
}

/// `GET /fhir/Observation`
pub async fn search_observations<O: ObservationStore, L: AuditLog, C: CareStore>(
    request: Request,
    deps: &FhirReadDeps<O, L, C>,
) -> Result<Response<Body>, FhirError> {
    let who = require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?;
    let pairs = query_pairs(&request);
    let mut search = ObservationSearch::parse(&pairs)?;
    // A patient's app may leave out whose data: theirs.
    if who.role == Role::Patient && search.patient.is_none() && search.device.is_none() {
        search.patient.clone_from(&who.patient_id);
    }
    let mut scope = ReadScope::new(&deps.care, who);
    if let Some(patient) = &search.patient {
        readable_patient(&request, &deps.audit, &mut scope, patient).await?;
    }
    let plan = search::plan(&search)?;
    let base = base_url(&request);
    // Only a device search can find readings of patients the caller may not read.
    let everyone = search.patient.is_some() || scope.who().role == Role::Admin;
    let about: Vec<String> = search.patient.iter().cloned().collect();
    if search.summary_count {
        let total = total(&deps.store, &plan, &mut scope, everyone).await?;
        record_read(&deps.audit, &request, scope.who(), &about, 200).await?;
        let bundle = Bundle { resource_type: "Bundle", r#type: "searchset", total: Some(total), link: vec![Link { relation: "self", url: search_url(&base, &pairs, None) }], entry: Vec::new() };
        return Ok(fhir_json(&request, to_json(&bundle)?, &[]));
    }
    let states = match &search.cursor {
        Some(text) => Cursor::decode(text, &search.digest, plan.streams.len())?.streams,
        None => vec![StreamState::Start; plan.streams.len()],
    };
    let page = search::page(&deps.store, &plan, &states, search.newest_first, search.count).await?;
    let mut shown = Vec::with_capacity(page.found.len());
    for o in page.found {
        if everyone || scope.allows(&o.patient_id).await? {
            shown.push(o);
        }
    }
    let entry = entries(&base, &shown)?;
    let mut patients = about;
    patients.extend(shown.iter().map(|o| o.patient_id.clone()));
    record_read(&deps.audit, &request, scope.who(), &patients, 200).await?;
    let mut link = vec![Link { relation: "self", url: search_url(&base, &pairs, search.cursor.as_deref()) }];
    if let Some(streams) = page.next.as_ref() {
        let cursor = Cursor { search: search.digest.clone(), streams: streams.clone() };
        link.push(Link { relation: "next", url: search_url(&base, &pairs, Some(&cursor.encode())) });
    }
    // The total is known when the first page holds everything; counted when asked for.
    let total = if search.cursor.is_none() && page.next.is_none() {
        Some(entry.len())
    } else if search.total_wanted {
        Some(total(&deps.store, &plan, &mut scope, everyone).await?)
    } else {
        None
    };
    let bundle = Bundle { resource_type: "Bundle", r#type: "searchset", total, link, entry };
    Ok(fhir_json(&request, to_json(&bundle)?, &[]))
}

/// How many Observations the search finds that the caller may read.
async fn total<O: ObservationStore, C: CareStore>(store: &O, plan: &search::Plan, scope: &mut ReadScope<'_, C>, everyone: bool) -> Result<usize, StoreError> {
    if everyone {
        return search::count(store, plan).await;
    }
    let mut states = vec![StreamState::Start; plan.streams.len()];
    let mut total = 0;
    loop {
        let page = search::page(store, plan, &states, true, super::MAX_COUNT).await?;
        for o in &page.found {
            total += usize::from(scope.allows(&o.patient_id).await?);
        }
        match page.next {
            Some(next) => states = next,
            None => return Ok(total),
        }
    }
}

fn to_json(bundle: &Bundle) -> Result<String, StoreError> {
    serde_json::to_string(bundle).map_err(|e| StoreError::new("write the bundle", e))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::access::memory::MemoryAudit;
    use crate::care::memory::MemoryCare;
    use crate::clinical::memory::MemoryAlerts;
    use crate::clinical::AlertSettings;
    use crate::devices::memory::MemoryDevices;
    use crate::devices::{Device, DeviceStatus};
    use crate::ingest::{readings, Filing, FilingDeps};
    use crate::observations::memory::MemoryObservations;
    use crate::platform::testing::{self, answered, Answered, ApiRequest};

    type Deps = FhirReadDeps<MemoryObservations, MemoryAudit, MemoryCare>;

    /// Five heart-rate readings of pat-1 by acme-1, a minute apart (each filed with its
    /// vital-signs panel), and one of pat-2 by acme-2; the clinician looks after pat-1.
    async fn deps() -> Deps {
        let device = |serial: &str, patient: &str| {
            let mut d = Device::registered("Acme", serial, "BP-200", "", "2026-11-01T00:00:00.000Z");
            d.status = DeviceStatus::Active;
            d.patient_id = Some(patient.into());
            d
        };
        let filing = FilingDeps {
            devices: MemoryDevices::with(vec![device("1", "pat-1"), device("2", "pat-2")]),
            observations: MemoryObservations::default(),
            alerts: MemoryAlerts::default(),
            alert_settings: AlertSettings::default(),
            metrics: Default::default(),
        };
        let now = chrono::Utc::now();
        for (device, minute, rate) in [("acme-1", 1, 61), ("acme-1", 2, 62), ("acme-1", 3, 63), ("acme-1", 4, 64), ("acme-1", 5, 65), ("acme-2", 3, 90)] {
            let body = json!({"device_id": device, "timestamp": format!("2026-11-22T10:0{minute}:00Z"), "heart_rate": rate}).to_string();
            Filing::new(&filing).file(&readings::parse(&body, None, now).unwrap().reading).await.unwrap().unwrap();
        }
        Deps { store: filing.observations, audit: MemoryAudit::default(), care: MemoryCare::looking_after("clinician-sub", &["pat-1"]) }
    }

    fn search(caller: Value, query: &[(&str, &str)]) -> ApiRequest {
        query.iter().fold(ApiRequest::new("GET /fhir/Observation").caller(caller), |r, (n, v)| r.query(n, v))
    }

    async fn run(deps: &Deps, request: ApiRequest) -> Answered {
        answered(search_observations(request.build(), deps).await)
    }

    /// The request a client makes of a link: its query, as given.
    fn follow(url: &str, caller: Value) -> ApiRequest {
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(path, "https://api.example.test/fhir/Observation");
        form_urlencoded::parse(query.as_bytes()).fold(ApiRequest::new("GET /fhir/Observation").caller(caller), |r, (n, v)| r.query(&n, &v))
    }

    fn link<'a>(answer: &'a Answered, relation: &str) -> Option<&'a str> {
        answer.body["link"].as_array().unwrap().iter().find(|l| l["relation"] == relation).and_then(|l| l["url"].as_str())
    }

    fn values(answer: &Answered) -> Vec<i64> {
        answer.body["entry"].as_array().map_or(Vec::new(), |e| e.iter().map(|e| e["resource"]["valueQuantity"]["value"].as_i64().unwrap()).collect())
    }

    fn outcome(answer: &Answered) -> (u16, &str, &str) {
        assert_eq!(answer.header("content-type"), Some(FHIR_JSON));
        assert_eq!(answer.body["resourceType"], "OperationOutcome", "{}", answer.body);
        (answer.status, answer.body["issue"][0]["code"].as_str().unwrap(), answer.body["issue"][0]["diagnostics"].as_str().unwrap())
    }

    #[tokio::test]
    async fn a_search_pages_through_next_links_and_each_entry_reads_back_by_id() {
        let deps = deps().await;
        let heart_rate = [("patient", "Patient/pat-1"), ("code", "http://loinc.org|8867-4"), ("_count", "2")];
        let mut answer = run(&deps, search(testing::clinician(), &heart_rate)).await;
        let mut pages = Vec::new();
        loop {
            assert_eq!((answer.status, answer.header("content-type")), (200, Some(FHIR_JSON)), "{}", answer.body);
            assert_eq!((answer.body["resourceType"].as_str(), answer.body["type"].as_str()), (Some("Bundle"), Some("searchset")));
            pages.push(values(&answer));
            let Some(next) = link(&answer, "next") else { break };
            assert!(answer.body.get("total").is_none(), "not known while there are more pages");
            answer = run(&deps, follow(next, testing::clinician())).await;
        }
        assert_eq!(pages, [vec![65, 64], vec![63, 62], vec![61]], "newest first, each once");
        let counted = run(&deps, search(testing::clinician(), &[heart_rate[0], heart_rate[1], heart_rate[2], ("_total", "accurate")])).await;
        assert_eq!((counted.body["total"].as_u64(), values(&counted).len()), (Some(5), 2), "counted when asked for");
        let all = run(&deps, search(testing::clinician(), &[("subject", "pat-1"), ("code", "8867-4"), ("_sort", "date")])).await;
        assert_eq!(values(&all), [61, 62, 63, 64, 65]);
        assert_eq!(all.body["total"], 5, "one page holds them all");
        let entry = &all.body["entry"][0];
        let id = entry["resource"]["id"].as_str().unwrap();
        assert_eq!(entry["fullUrl"], format!("https://api.example.test/fhir/Observation/{id}"));
        assert_eq!(entry["search"]["mode"], "match");
        let version = entry["resource"]["meta"]["versionId"].as_str().unwrap();
        assert_eq!(entry["resource"]["meta"]["lastUpdated"], entry["resource"]["issued"]);
        let read = answered(read_observation(ApiRequest::new("GET /fhir/Observation/{id}").path("id", id).caller(testing::patient("pat-1")).build(), &deps).await);
        assert_eq!(read.status, 200);
        assert_eq!(read.body, entry["resource"], "the same resource, read or found");
        assert_eq!(read.header("etag"), Some(format!("W/\"{version}\"").as_str()));
        assert!(read.header("last-modified").unwrap().ends_with(" GMT"));
        // The panels are Observations of the patient too; every code when none is asked.
        let count = run(&deps, search(testing::admin(), &[("patient", "pat-1"), ("_summary", "count")])).await;
        assert_eq!((count.body["total"].as_u64(), count.body.get("entry")), (Some(10), None));
        let audited: Vec<(String, u16)> = deps.audit.all().into_iter().map(|r| (r.patient_id, r.status)).collect();
        assert_eq!(audited, vec![("pat-1".to_owned(), 200); 7], "every answer about pat-1, none about pat-2");
    }

    #[tokio::test]
    async fn callers_find_and_read_only_their_patients_data() {
        let deps = deps().await;
        let mine = run(&deps, search(testing::patient("pat-1"), &[("code", "http://loinc.org|8867-4")])).await;
        assert_eq!(values(&mine), [65, 64, 63, 62, 61], "a patient's search is of their own data");
        for (caller, query) in [
            (testing::patient("pat-1"), [("patient", "pat-2")]),
            (testing::clinician(), [("patient", "pat-2")]),
        ] {
            let refused = run(&deps, search(caller, &query)).await;
            let (status, code, says) = outcome(&refused);
            assert_eq!((status, code), (403, "forbidden"));
            assert!(says.contains("Patient/pat-2"), "{says}");
        }
        let by_device = run(&deps, search(testing::clinician(), &[("device", "acme-2")])).await;
        assert_eq!((by_device.status, values(&by_device)), (200, vec![]), "another patient's device shows nothing");
        let admin = run(&deps, search(testing::admin(), &[("device", "Device/acme-2"), ("code", "8867-4")])).await;
        assert_eq!(values(&admin), [90]);
        let theirs = deps.store.search_page(&crate::observations::SearchPage { along: &crate::observations::Along::Patient("pat-2".into()), from: None, to: None, newest_first: true, after: None, limit: 1 }).await.unwrap().0;
        let read = |caller: Value| ApiRequest::new("GET /fhir/Observation/{id}").path("id", &theirs[0].id).caller(caller).build();
        let refused = answered(read_observation(read(testing::patient("pat-1")), &deps).await);
        assert_eq!(outcome(&refused).0, 403);
        assert_eq!(answered(read_observation(read(testing::admin()), &deps).await).status, 200);
        let anonymous = run(&deps, search(json!({}), &[("patient", "pat-1")])).await;
        assert_eq!(outcome(&anonymous).1, "login");
        let refusals: Vec<(String, String, u16)> =
            deps.audit.all().into_iter().filter(|r| r.status == 403).map(|r| (r.patient_id, r.subject, r.status)).collect();
        assert_eq!(
            refusals,
            [("pat-2".into(), "pat-1-sub".into(), 403), ("pat-2".into(), "clinician-sub".into(), 403), ("pat-2".into(), "pat-1-sub".into(), 403)],
            "each refused attempt, against the patient it was about"
        );
    }

    #[tokio::test]
    async fn bad_parameters_unknown_ids_and_foreign_cursors_are_named() {
        let deps = deps().await;
        let unknown_parameter = run(&deps, search(testing::admin(), &[("patient", "pat-1"), ("colour", "red")])).await;
        let (status, code, says) = outcome(&unknown_parameter);
        assert_eq!((status, code), (400, "invalid"));
        assert!(says.starts_with("colour: is not a supported parameter"), "{says}");
        let first = run(&deps, search(testing::admin(), &[("patient", "pat-1"), ("code", "8867-4"), ("_count", "1")])).await;
        let next = link(&first, "next").unwrap();
        let cursor = form_urlencoded::parse(next.split_once('?').unwrap().1.as_bytes()).find(|(n, _)| n == "_cursor").unwrap().1.into_owned();
        let elsewhere = run(&deps, search(testing::admin(), &[("patient", "pat-2"), ("code", "8867-4"), ("_cursor", &cursor)])).await;
        assert!(outcome(&elsewhere).2.starts_with("_cursor:"), "a cursor of another search");
        let unknown = answered(read_observation(ApiRequest::new("GET /fhir/Observation/{id}").path("id", "0123abcd").caller(testing::admin()).build(), &deps).await);
        assert_eq!(outcome(&unknown).0, 404);
        let bad_id = answered(read_observation(ApiRequest::new("GET /fhir/Observation/{id}").path("id", "a_b").caller(testing::admin()).build(), &deps).await);
        assert_eq!(outcome(&bad_id).0, 400);
    }

    #[tokio::test]
    async fn lastn_answers_a_patients_latest_vital_signs() {
        let deps = deps().await;
        let lastn = |caller: Value, query: &[(&str, &str)]| {
            let request = query.iter().fold(ApiRequest::new("GET /fhir/Observation/{id}").path("id", "$lastn").caller(caller), |r, (n, v)| r.query(n, v));
            read_observation(request.build(), &deps)
        };
        let latest = answered(lastn(testing::patient("pat-1"), &[]).await);
        assert_eq!(latest.status, 200, "{}", latest.body);
        assert_eq!(values(&latest), [65], "the latest heart rate; panels are not vital signs of their own");
        assert_eq!(latest.body["total"], 1);
        let two = answered(lastn(testing::clinician(), &[("patient", "pat-1"), ("code", "http://loinc.org|8867-4"), ("max", "2")]).await);
        assert_eq!(values(&two), [65, 64]);
        let refused = answered(lastn(testing::clinician(), &[("patient", "pat-2")]).await);
        assert_eq!(outcome(&refused).0, 403);
        let unnamed = answered(lastn(testing::admin(), &[]).await);
        assert_eq!(outcome(&unnamed).0, 400);
    }

    #[tokio::test]
    async fn patients_devices_and_documents_are_read_by_those_who_may_read_their_patient() {
        use crate::files::{PendingUpload, UploadStore};
        use crate::patients::memory::MemoryPatients;
        let filed = deps().await;
        let read = |route: &str, id: &str, caller: Value| ApiRequest::new(route).path("id", id).caller(caller).build();
        let status = |a: &Answered| a.status;

        // Patients: pat-1 has readings and a care team; pat-2 readings only; nobody nothing.
        let patients = MemoryPatients::default();
        patients.create(&crate::patients::Patient { id: "pat-1".into(), identifier: "MRN-1".into(), created_by: "connector/ward".into(), created_at: "2026-11-20T08:00:00.000Z".into() }).await.unwrap();
        let deps = FhirPatientDeps { patients, observations: filed.store, audit: MemoryAudit::default(), care: MemoryCare::looking_after("clinician-sub", &["pat-1"]) };
        let patient = |id: &str, caller: Value| read_patient(read("GET /fhir/Patient/{id}", id, caller), &deps);
        let own = answered(patient("pat-1", testing::patient("pat-1")).await);
        assert_eq!((own.status, own.body["resourceType"].as_str(), own.body["identifier"][0]["value"].as_str()), (200, Some("Patient"), Some("MRN-1")));
        assert_eq!(own.body["meta"]["lastUpdated"], "2026-11-20T08:00:00.000Z");
        assert_eq!(own.header("etag"), Some(format!("W/\"{}\"", own.body["meta"]["versionId"].as_str().unwrap()).as_str()));
        assert_eq!(status(&answered(patient("pat-1", testing::clinician()).await)), 200);
        assert_eq!(outcome(&answered(patient("pat-2", testing::clinician()).await)).0, 403);
        assert_eq!(outcome(&answered(patient("pat-2", testing::patient("pat-1")).await)).0, 403);
        let by_admin = answered(patient("pat-2", testing::admin()).await);
        assert_eq!((by_admin.status, by_admin.body.get("identifier")), (200, None), "known by its readings, an id only");
        assert_eq!(outcome(&answered(patient("nobody", testing::admin()).await)).0, 404);

        // Devices: read by an admin, or by those who may read the device's patient.
        let device = |serial: &str, patient: Option<&str>| {
            let mut d = Device::registered("Acme", serial, "BP-200", "Ward cuff", "2026-11-01T00:00:00.000Z");
            d.status = DeviceStatus::Active;
            d.patient_id = patient.map(Into::into);
            d
        };
        let deps = FhirReadDeps { store: MemoryDevices::with(vec![device("1", Some("pat-1")), device("9", None)]), audit: MemoryAudit::default(), care: MemoryCare::looking_after("clinician-sub", &["pat-1"]) };
        let device_read = |id: &str, caller: Value| read_device(read("GET /fhir/Device/{id}", id, caller), &deps);
        let cuff = answered(device_read("acme-1", testing::patient("pat-1")).await);
        assert_eq!(cuff.status, 200, "{}", cuff.body);
        assert_eq!((cuff.body["status"].as_str(), cuff.body["serialNumber"].as_str(), cuff.body["patient"]["reference"].as_str()), (Some("active"), Some("1"), Some("Patient/pat-1")));
        assert_eq!(cuff.body["deviceName"][0], json!({"name": "Ward cuff", "type": "user-friendly-name"}));
        assert_eq!(outcome(&answered(device_read("acme-1", testing::patient("pat-2")).await)).0, 403);
        assert_eq!(outcome(&answered(device_read("acme-9", testing::clinician()).await)).0, 403, "a device of no patient: admins only");
        assert_eq!(status(&answered(device_read("acme-9", testing::admin()).await)), 200);
        assert_eq!(outcome(&answered(device_read("acme-7", testing::admin()).await)).0, 404);

        // DocumentReferences: found by id once registered.
        let uploads = crate::files::memory::MemoryUploads::default();
        let key = "uploads/acme-1/2026/report.pdf";
        uploads.record_pending(&PendingUpload { object_key: key.into(), thing_name: "acme-1".into(), file_name: "report.pdf".into(), content_type: "application/pdf".into(), declared_size: None, requested_at: "2026-11-22T10:00:00.000Z".into(), expires_at: "2026-11-22T10:15:00.000Z".into() }).await.unwrap();
        let id = crate::files::registration::document_id(key);
        let document = json!({"resourceType": "DocumentReference", "id": id, "status": "current", "date": "2026-11-22T10:01:00.000Z", "subject": {"reference": "Patient/pat-1"}, "content": [{"attachment": {"contentType": "application/pdf"}}]});
        let facts = crate::files::registration::ObjectFacts { size: 3, sha256: "00".into(), sha1_base64: "AA==".into() };
        let deps = FhirReadDeps { store: uploads, audit: MemoryAudit::default(), care: MemoryCare::looking_after("clinician-sub", &["pat-1"]) };
        let document_read = |id: String, caller: Value| read_document(read("GET /fhir/DocumentReference/{id}", &id, caller), &deps);
        assert_eq!(outcome(&answered(document_read(id.clone(), testing::admin()).await)).0, 404, "not registered yet");
        deps.store.complete(key, Some("v1"), &facts, &document.to_string()).await.unwrap();
        let found = answered(document_read(id.clone(), testing::clinician()).await);
        assert_eq!((found.status, found.body["id"].as_str()), (200, Some(id.as_str())));
        assert_eq!(found.body["meta"]["lastUpdated"], "2026-11-22T10:01:00.000Z");
        assert_eq!(outcome(&answered(document_read(id.clone(), testing::patient("pat-2")).await)).0, 403);
        assert_eq!(deps.audit.all().iter().map(|r| (r.patient_id.as_str(), r.status)).collect::<Vec<_>>(), [("pat-1", 200), ("pat-1", 403)]);
    }

    #[tokio::test]
    async fn the_capability_statement_says_what_is_served() {
        let answer = answered(metadata(ApiRequest::new("GET /fhir/metadata").build(), &()).await);
        assert_eq!((answer.status, answer.header("content-type")), (200, Some(FHIR_JSON)));
        assert_eq!(answer.body["fhirVersion"], "4.0.1");
        assert_eq!(answer.body["implementation"]["url"], "https://api.example.test/fhir");
        let resources = answer.body["rest"][0]["resource"].as_array().unwrap();
        assert_eq!(resources.iter().map(|r| r["type"].as_str().unwrap()).collect::<Vec<_>>(), ["Observation", "Patient", "Device", "DocumentReference"]);
        let params: Vec<&str> = resources[0]["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        // Each declared parameter is one the search reads.
        for name in &params {
            let value = if name.contains("date") || name.starts_with("_last") { "ge2026" } else { "x" };
            let mut query = vec![((*name).to_owned(), value.to_owned())];
            if !matches!(*name, "patient" | "subject") {
                query.push(("patient".to_owned(), "p-1".to_owned()));
            }
            assert!(search::ObservationSearch::parse(&query).is_ok(), "{name}");
        }
        assert_eq!(params, ["patient", "subject", "code", "category", "date", "device", "_lastUpdated"]);
    }
}
