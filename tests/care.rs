//! Care teams over real HTTP on the local platform, kept in DynamoDB (the moto emulator): an
//! admin builds a ward, its doctor and nurse and a patient's team; a location's members follow
//! clinicians who move; the team's clinician sets the patient's settings, an outsider cannot.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vitalwire::access::Role;
use vitalwire_tests::LocalGateway;

async fn send(gw: &LocalGateway, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    vitalwire_tests::Api::new(gw).call(method, path, Some(token), body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_builds_a_ward_and_a_team_and_only_the_team_sets_the_patients_settings() {
    let gw = LocalGateway::start().await;
    let admin = gw.auth().mint("ops", Role::Admin, None, 10).unwrap();
    for (id, kind) in [("ward-7", "ward"), ("clinic-1", "clinic")] {
        let (status, body) = send(&gw, &admin, Method::PUT, &format!("/admin/locations/{id}"), Some(json!({"name": id, "kind": kind, "ems": {"name": "Ambulance", "phone": "+441234567890"}}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for (id, role) in [("d-1", "doctor"), ("n-1", "nurse")] {
        let (status, body) = send(&gw, &admin, Method::PUT, &format!("/admin/clinicians/{id}"), Some(json!({"name": id, "role": role, "locationIds": ["ward-7"]}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, ward) = send(&gw, &admin, Method::GET, "/admin/locations/ward-7", None).await;
    assert_eq!(ward["members"], json!(["d-1", "n-1"]));
    // The nurse moves to the clinic: the ward's members follow.
    let (status, _) = send(&gw, &admin, Method::PUT, "/admin/clinicians/n-1", Some(json!({"name": "n-1", "role": "nurse", "locationIds": ["clinic-1"]}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, ward) = send(&gw, &admin, Method::GET, "/admin/locations/ward-7", None).await;
    assert_eq!(ward["members"], json!(["d-1"]));
    let (_, clinic) = send(&gw, &admin, Method::GET, "/admin/locations/clinic-1", None).await;
    assert_eq!(clinic["members"], json!(["n-1"]));
    let (_, listed) = send(&gw, &admin, Method::GET, "/admin/clinicians", None).await;
    assert_eq!(listed["clinicians"].as_array().map(Vec::len), Some(2));

    let (status, body) = send(&gw, &admin, Method::PUT, "/admin/patients/p-1/care-team", Some(json!({"doctors": ["n-1"]}))).await;
    assert_eq!((status, body["error"]["field"].clone()), (StatusCode::BAD_REQUEST, json!("team")), "a nurse is no doctor");
    let (status, _) = send(&gw, &admin, Method::PUT, "/admin/patients/p-1/care-team", Some(json!({"doctors": ["d-1"], "nurses": ["n-1"], "locationId": "ward-7"}))).await;
    assert_eq!(status, StatusCode::OK);

    let doctor = gw.auth().mint("d-1", Role::Clinician, None, 10).unwrap();
    let outsider = gw.auth().mint("d-9", Role::Clinician, None, 10).unwrap();
    let settings = json!({"spo2": {"scale": 2}, "escalationTimeouts": {"lowMedium": 30, "medium": 15, "high": 5}, "channels": ["sms"], "phone": "+447700900001",
        "quietHours": {"start": "22:00:00", "end": "07:00:00", "timezone": "Europe/London"}});
    let (status, body) = send(&gw, &doctor, Method::PUT, "/patients/p-1/settings", Some(settings.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["spo2"]["prescribedBy"], "d-1");
    let (status, _) = send(&gw, &outsider, Method::PUT, "/patients/p-1/settings", Some(settings)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "outside the care team");
    let patient = gw.auth().mint("p-1-sub", Role::Patient, Some("p-1"), 10).unwrap();
    let (status, own) = send(&gw, &patient, Method::GET, "/patients/p-1/settings", None).await;
    assert_eq!((status, own["quietHours"]["timezone"].clone()), (StatusCode::OK, json!("Europe/London")));
    let (status, _) = send(&gw, &patient, Method::PUT, "/patients/p-1/settings", Some(json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a patient does not set their own clinical settings");
}
