//! The FHIR API over real HTTP (the local platform's HTTP API, the `authorizer`, the route
//! functions) on the moto emulator: searches on DynamoDB's indexes paged to their end, reads
//! with their versions, errors as OperationOutcomes, and every answer through the FHIR
//! validators.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;
use vitalwire::access::Role;
use vitalwire::fhir::vitals::VitalSign;
use vitalwire::fhir::Decimal;
use vitalwire::observations::{measured, DynamoObservationStore, Fingerprint, Measurement, ObservationStore, StoredObservation, Subject};
use vitalwire_tests::{assert_valid_fhir, Api, LocalGateway};

/// How many readings of each of two vital signs the patient has: a minute apart from
/// 2026-11-01T00:00Z, heart rate and body temperature alternating devices.
const PER_CODE: usize = 500;

fn at(minute: usize) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap().to_utc() + chrono::Duration::minutes(minute as i64);
    vitalwire::platform::time::format_utc(t)
}

/// Files the readings with the platform's own store, 100 to a transaction.
async fn seed(store: &DynamoObservationStore) {
    let mut all = Vec::new();
    for i in 0..PER_CODE {
        let effective = at(i);
        let device = if i % 2 == 0 { "cuff-1" } else { "cuff-2" };
        let subject = Subject { thing_name: device, patient_id: "pat-1", effective: &effective, identity: &effective, named_patient: false, issued: &effective };
        for (vital, value, unit) in [(VitalSign::HeartRate, format!("{}", 60 + i % 40), "bpm"), (VitalSign::BodyTemperature, format!("36.{}0", i % 10), "Cel")] {
            let ucum = vital.unit_for(unit).unwrap().ucum;
            let m = Measurement::vital(vital, Decimal::parse(&value).unwrap(), unit, ucum);
            let obs = measured(&m, &subject);
            all.push(StoredObservation::new(&obs, m.code_key(), effective.clone(), Fingerprint::WithTime).unwrap());
        }
    }
    for chunk in all.chunks(100) {
        assert!(store.insert_new_sets(&[chunk]).await.unwrap());
    }
}

async fn get(api: &Api<'_>, url: &str, token: Option<&str>) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = api.http.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap();
    assert_eq!(headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/fhir+json"), "{url}: {text}");
    (status, headers, serde_json::from_str(&text).unwrap())
}

/// Follows a search's `next` links to the end: each page's resources.
async fn every_page(api: &Api<'_>, first: &str, token: &str) -> Vec<Vec<Value>> {
    let mut url = first.to_owned();
    let mut pages = Vec::new();
    loop {
        let (status, _, bundle) = get(api, &url, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{bundle}");
        assert_eq!(bundle["type"], "searchset");
        pages.push(bundle["entry"].as_array().map_or(Vec::new(), |e| e.iter().map(|e| e["resource"].clone()).collect()));
        let next = bundle["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").and_then(|l| l["url"].as_str()).map(str::to_owned);
        match next {
            Some(n) => url = n,
            None => return pages,
        }
        assert!(pages.len() <= 2 * PER_CODE, "paging ends");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_search_and_page_a_patients_observations_on_the_indexes() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    seed(&gw.stack.deps::<DynamoObservationStore>("fhir-observation-search")).await;
    api.care_for("pat-1").await;
    let clinician = api.token(Role::Clinician, None);
    let base = format!("{}/fhir", gw.api_url);

    // The CapabilityStatement needs no token.
    let (status, _, statement) = get(&api, &format!("{base}/metadata"), None).await;
    assert_eq!((status, statement["resourceType"].as_str()), (StatusCode::OK, Some("CapabilityStatement")));
    assert_valid_fhir(&statement.to_string());

    // One code, paged to the end: every reading once, newest first, valid FHIR.
    let heart_rate = format!("{base}/Observation?patient=pat-1&code=http%3A%2F%2Floinc.org%7C8867-4&_count=200");
    let pages = every_page(&api, &heart_rate, &clinician).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [200, 200, 100]);
    let all: Vec<&Value> = pages.iter().flatten().collect();
    let times: Vec<&str> = all.iter().map(|o| o["effectiveDateTime"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]), "newest first");
    assert_eq!(all.iter().map(|o| o["id"].as_str().unwrap()).collect::<BTreeSet<_>>().len(), PER_CODE, "each once");
    assert_valid_fhir(&Value::Array(pages[2].clone()).to_string());

    // Two codes merged by date, a day's range, a device, a category: each on a key condition.
    let both = format!("{base}/Observation?subject=Patient/pat-1&code=http://loinc.org|8867-4,http://loinc.org|8310-5&date=ge2026-11-01T02:00Z&date=lt2026-11-01T03:00Z&_sort=date&_count=50");
    let hour: Vec<Value> = every_page(&api, &both, &clinician).await.concat();
    assert_eq!(hour.len(), 120, "60 minutes of two codes");
    assert_eq!(hour[0]["effectiveDateTime"], at(120));
    let device = format!("{base}/Observation?patient=pat-1&device=Device/cuff-2&category=vital-signs&date=2026-11-01T00:0{{m}}Z");
    let readings: Vec<Value> = every_page(&api, &device.replace("{m}", "1"), &clinician).await.concat();
    assert_eq!(readings.len(), 2, "one minute of cuff-2: its heart rate and temperature");
    let (_, _, counted) = get(&api, &format!("{base}/Observation?patient=pat-1&_summary=count"), Some(&clinician)).await;
    assert_eq!(counted["total"], 2 * PER_CODE);

    // A read by id: the same resource, with its version in ETag and meta.
    let first = all[0];
    let (status, headers, read) = get(&api, &format!("{base}/Observation/{}", first["id"].as_str().unwrap()), Some(&clinician)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&read, first);
    assert_eq!(headers["etag"].to_str().unwrap(), format!("W/\"{}\"", read["meta"]["versionId"].as_str().unwrap()));
    assert!(headers.contains_key("last-modified"));
    let temperature = hour.iter().find(|o| o["code"]["coding"][0]["code"] == "8310-5").unwrap();
    assert!(temperature["valueQuantity"]["value"].to_string().ends_with('0'), "36.x0 keeps its text: {}", temperature["valueQuantity"]);

    // $lastn: the latest of each code, for a chart.
    let (status, _, latest) = get(&api, &format!("{base}/Observation/$lastn?patient=pat-1&max=2"), Some(&clinician)).await;
    assert_eq!(status, StatusCode::OK, "{latest}");
    let latest: Vec<(&str, &str)> = latest["entry"].as_array().unwrap().iter().map(|e| (e["resource"]["code"]["coding"][0]["code"].as_str().unwrap(), e["resource"]["effectiveDateTime"].as_str().unwrap())).collect();
    let (last, before) = (at(PER_CODE - 1), at(PER_CODE - 2));
    assert_eq!(latest, [("8867-4", last.as_str()), ("8867-4", before.as_str()), ("8310-5", last.as_str()), ("8310-5", before.as_str())]);

    // The patient and a device of theirs, read as FHIR resources.
    let admin = api.token(Role::Admin, None);
    let (status, registered) = api.call(reqwest::Method::POST, "/admin/devices", Some(&admin), Some(serde_json::json!({"serialNumber": "C-1", "manufacturer": "Acme", "model": "BP-200"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let thing = registered["thingName"].as_str().unwrap();
    let (status, _) = api.call(reqwest::Method::PUT, &format!("/admin/devices/{thing}/patient"), Some(&admin), Some(serde_json::json!({"patientId": "pat-1"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, device) = get(&api, &format!("{base}/Device/{thing}"), Some(&clinician)).await;
    assert_eq!((status, device["patient"]["reference"].as_str()), (StatusCode::OK, Some("Patient/pat-1")), "{device}");
    assert!(headers.contains_key("etag") && headers.contains_key("last-modified"));
    let (status, _, patient) = get(&api, &format!("{base}/Patient/pat-1"), Some(&clinician)).await;
    assert_eq!((status, patient["id"].as_str()), (StatusCode::OK, Some("pat-1")));
    assert_valid_fhir(&Value::Array(vec![device, patient]).to_string());
    let (status, _, _) = get(&api, &format!("{base}/Patient/pat-9"), Some(&admin)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Refusals are OperationOutcomes naming what is wrong; another patient's data is a 403.
    let (status, _, outcome) = get(&api, &format!("{base}/Observation?patient=pat-1&date=ne2026"), Some(&clinician)).await;
    assert_eq!((status, outcome["resourceType"].as_str()), (StatusCode::BAD_REQUEST, Some("OperationOutcome")));
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().starts_with("date:"));
    assert_valid_fhir(&outcome.to_string());
    let (status, _, _) = get(&api, &format!("{base}/Observation?patient=pat-1"), Some(&api.token(Role::Patient, Some("pat-2")))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, mine) = get(&api, &format!("{base}/Observation?_count=1"), Some(&api.token(Role::Patient, Some("pat-1")))).await;
    assert_eq!((status, mine["entry"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)), "a patient's own, by default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhirpy_searches_and_pages_as_an_app_would() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    seed(&gw.stack.deps::<DynamoObservationStore>("fhir-observation-search")).await;
    let token = api.token(Role::Patient, Some("pat-1"));
    let out = std::process::Command::new(vitalwire_local::python())
        .arg(vitalwire_tests::repo_root().join("tests/fhirpy_search.py"))
        .args([format!("{}/fhir", gw.api_url), token, PER_CODE.to_string()])
        .output()
        .expect("python with fhirpy (scripts/dev-env.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "ok", "{stdout}{}", String::from_utf8_lossy(&out.stderr));
}
