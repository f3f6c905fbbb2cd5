//! The two-stage alert flow on the local platform, over real HTTP, with DynamoDB, SNS and SES
//! in the moto emulator and the platform's clock moved forward instead of waited for: a reading
//! raises an alert, the patient is asked, nobody answers, the flow escalates to the doctor and
//! nurse, a nurse acknowledges, the doctor resolves; a patient who answers (in the app, or
//! through the SMS's single-use link) is heard once; a device that stops reporting brings a grey
//! alert; an alert resolved before the sweep came by tells nobody.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vitalwire::access::Role;
use vitalwire_tests::{Api, LocalGateway};

/// Ward 7 (EMS by phone), doctor d-1 (SMS and email), nurse n-1 (SMS), P123's team and
/// settings (told by SMS), and a device of P123's with an API key; the device and the key.
async fn ward_with_patient(api: &Api<'_>) -> (String, String) {
    let admin = api.token(Role::Admin, None);
    let put = |path: String, body: Value| {
        let admin = admin.clone();
        async move {
            let (status, answer) = api.call(Method::PUT, &path, Some(&admin), Some(body)).await;
            assert!(status.is_success(), "{path}: {answer}");
        }
    };
    put("/admin/locations/ward-7".into(), json!({"name": "Ward 7", "kind": "ward", "ems": {"name": "Ambulance", "phone": "+441234567890"}})).await;
    put("/admin/clinicians/d-1".into(), json!({"name": "Dr One", "role": "doctor", "phone": "+447700900001", "email": "d1@example.org", "locationIds": ["ward-7"]})).await;
    put("/admin/clinicians/n-1".into(), json!({"name": "Nurse One", "role": "nurse", "phone": "+447700900002", "locationIds": ["ward-7"]})).await;
    put("/admin/patients/P123/care-team".into(), json!({"doctors": ["d-1"], "nurses": ["n-1"], "locationId": "ward-7"})).await;
    put("/patients/P123/settings".into(), json!({"channels": ["sms"], "phone": "+447700900099", "escalationTimeouts": {"lowMedium": 30, "medium": 15, "high": 5}})).await;
    let body = json!({"serialNumber": "FLOW-1", "manufacturer": "InHealth", "model": "Vitals Monitor"});
    let (status, device) = api.call(Method::POST, "/admin/devices", Some(&admin), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let thing = device["thingName"].as_str().unwrap().to_owned();
    let (status, _) = api.call(Method::PUT, &format!("/admin/devices/{thing}/patient"), Some(&admin), Some(json!({"patientId": "P123"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, key) = api.call(Method::POST, &format!("/admin/devices/{thing}/api-keys"), Some(&admin), Some(json!({"name": "k"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (thing, key["apiKey"].as_str().unwrap().to_owned())
}

/// Posts heart rate 131 and respiratory rate 25 (3 each: NEWS2 6, medium); the alert's id.
async fn raise_medium_alert(api: &Api<'_>, (thing, key): &(String, String)) -> String {
    let reading = json!({"device_id": thing, "timestamp": chrono::Utc::now().to_rfc3339(), "heart_rate": 131, "respiratory_rate": 25});
    let response = api.http.post(format!("{}/api/iot/vitals", api.gw.api_url)).bearer_auth(key).json(&reading).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["alerts_triggered"], 1, "{body}");
    let (_, listed) = api.call(Method::GET, "/patients/P123/alerts", Some(&api.token(Role::Admin, None)), None).await;
    listed["alerts"][0]["alertId"].as_str().unwrap().to_owned()
}

/// Moves the platform's clock and runs the sweep, as a minute of AWS's schedule would.
async fn advance(api: &Api<'_>, minutes: i64) -> Value {
    let (status, ran) = api.call(Method::POST, "/local/clock", None, Some(json!({"advanceMinutes": minutes}))).await;
    assert_eq!(status, StatusCode::OK, "{ran}");
    assert_eq!(ran["ran"]["alert-sweep"]["failed"], 0, "{ran}");
    ran
}

async fn history(api: &Api<'_>, alert: &str) -> Value {
    let (status, history) = api.call(Method::GET, &format!("/patients/P123/alerts/{alert}/history"), Some(&api.token(Role::Admin, None)), None).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    history
}

/// The outbox as (recipient, address, status), oldest first.
async fn outbox(api: &Api<'_>) -> Vec<(String, String, String)> {
    let (_, outbox) = api.call(Method::GET, "/local/outbox", None, None).await;
    let mut sent: Vec<&Value> = outbox["notifications"].as_array().unwrap().iter().collect();
    sent.sort_by_key(|n| n["deliveryId"].as_str().unwrap().to_owned());
    sent.iter().map(|n| (n["recipient"].as_str().unwrap().into(), n["address"].as_str().unwrap_or_default().into(), n["status"].as_str().unwrap().into())).collect()
}

fn told(recipient: &str, address: &str) -> (String, String, String) {
    (recipient.into(), address.into(), "sent".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_answers_so_the_flow_escalates_then_a_nurse_acknowledges_and_the_doctor_resolves() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let device = ward_with_patient(&api).await;
    let alert = raise_medium_alert(&api, &device).await;

    // The sweep starts the flow: the patient is asked in the app and by SMS; the ward, the
    // doctor and the nurse get an amber alert message.
    let ran = advance(&api, 0).await;
    assert_eq!(ran["ran"]["alert-sweep"]["advanced"], 1, "{ran}");
    let h = history(&api, &alert).await;
    assert_eq!((h["flow"]["stage"].as_str(), h["flow"]["severity"].as_str()), (Some("asking_patient"), Some("medium")), "{h}");
    let messages: Vec<(String, Value)> = h["notifications"].as_array().unwrap().iter().filter(|n| n["channel"] == "message").map(|n| (n["recipientId"].as_str().unwrap().to_owned(), n["messageType"].clone())).collect();
    assert_eq!(messages, [("P123".into(), json!(0)), ("ward-7".into(), json!(8)), ("d-1".into(), json!(8)), ("n-1".into(), json!(8))]);
    assert_eq!(outbox(&api).await, [told("patient", "+447700900099")]);
    let (_, raw) = api.call(Method::GET, "/local/outbox", None, None).await;
    let sms = &raw["notifications"][0];
    assert!(sms["providerMessageId"].as_str().is_some_and(|id| !id.is_empty()), "SNS's message id is kept: {sms}");
    assert!(["heart_rate", "131 /min", "score"].iter().all(|w| !sms["body"].as_str().unwrap().contains(w)), "no readings in an SMS unless the settings allow it");

    // The ward's inbox holds the amber alert: a platform clinician reads it naming their ward,
    // and is refused naming a ward they do not work at.
    let nurse = gw.auth().mint("n-1", Role::Clinician, None, 10).unwrap();
    let (status, _, inbox) = api.call_with(Method::GET, "/dhos/v1/receiver/ward-7/message", Some(&nurse), &[("x-location-ids", "ward-7")], None).await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    assert!(inbox.as_array().unwrap().iter().any(|m| m["message_type"]["value"] == 8), "{inbox}");
    let (status, _, refused) = api.call_with(Method::GET, "/dhos/v1/receiver/ward-9/message", Some(&nurse), &[("x-location-ids", "ward-9")], None).await;
    assert_eq!((status, refused), (StatusCode::FORBIDDEN, json!({"message": "Forbidden"})), "X-Location-Ids is checked against the clinician's record");

    // Fourteen minutes on, nothing; at fifteen, the medium alert escalates to doctor and nurse.
    advance(&api, 14).await;
    assert_eq!(outbox(&api).await.len(), 1);
    advance(&api, 1).await;
    let h = history(&api, &alert).await;
    assert_eq!(h["flow"]["stage"], "escalated");
    assert_eq!(
        outbox(&api).await,
        [told("patient", "+447700900099"), told("doctor", "+447700900001"), told("doctor", "d1@example.org"), told("nurse", "+447700900002")],
        "SMS through SNS, email through SES"
    );

    // The nurse's worklist has it, escalated; someone without a clinician record has none.
    let (status, worklist) = api.call(Method::GET, "/worklist", Some(&nurse), None).await;
    assert_eq!(status, StatusCode::OK, "{worklist}");
    assert_eq!((worklist["patients"].as_u64(), worklist["alerts"][0]["alertId"].as_str(), worklist["alerts"][0]["flow"]["stage"].as_str()), (Some(1), Some(alert.as_str()), Some("escalated")));
    let stranger = gw.auth().mint("d-9", Role::Clinician, None, 10).unwrap();
    let (status, _) = api.call(Method::GET, "/worklist", Some(&stranger), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The nurse acknowledges; the doctor cannot acknowledge it again; the doctor resolves.
    let doctor = gw.auth().mint("d-1", Role::Clinician, None, 10).unwrap();
    let path = |action: &str| format!("/patients/P123/alerts/{alert}/{action}");
    let (status, acked) = api.call(Method::POST, &path("acknowledge"), Some(&nurse), None).await;
    assert_eq!((status, acked["flow"]["stage"].as_str(), acked["flow"]["acknowledgedBy"].as_str()), (StatusCode::OK, Some("acknowledged"), Some("n-1")), "{acked}");
    let (status, again) = api.call(Method::POST, &path("acknowledge"), Some(&doctor), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let outsider = gw.auth().mint("d-9", Role::Clinician, None, 10).unwrap();
    let (status, _) = api.call(Method::POST, &path("resolve"), Some(&outsider), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "outside the care team");
    let (status, resolved) = api.call(Method::POST, &path("resolve"), Some(&doctor), None).await;
    assert_eq!((status, resolved["status"].as_str(), resolved["flow"]["stage"].as_str()), (StatusCode::OK, Some("closed"), Some("resolved")), "{resolved}");
    advance(&api, 0).await;

    // Every step is in the history, with who took it; the last one sent the clear-alerts message.
    let h = history(&api, &alert).await;
    let steps: Vec<(String, String, bool)> = h["steps"].as_array().unwrap().iter().map(|s| (s["event"].as_str().unwrap().into(), s["by"].as_str().unwrap().into(), s["delivered"].as_bool().unwrap())).collect();
    assert_eq!(
        steps,
        [
            ("raised".into(), "platform".into(), true),
            ("timed_out".into(), "platform".into(), true),
            ("acknowledged".into(), "n-1".into(), true),
            ("resolved".into(), "d-1".into(), true)
        ]
    );
    let clear = h["notifications"].as_array().unwrap().iter().filter(|n| n["messageType"] == 10 && n["status"] == "sent").count();
    assert_eq!(clear, 3, "the ward's, the doctor's and the nurse's inboxes");
    let (_, worklist) = api.call(Method::GET, "/worklist", Some(&nurse), None).await;
    assert_eq!(worklist["alerts"], json!([]), "resolved: off the worklist");
    let patient = gw.auth().mint("P123-sub", Role::Patient, Some("P123"), 10).unwrap();
    let (status, late) = api.call(Method::POST, &path("answer"), Some(&patient), Some(json!({"answer": "approve_all"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
    advance(&api, 120).await;
    assert_eq!(outbox(&api).await.len(), 4, "nothing after the resolution");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_answers_once_for_the_nurse_and_only_the_nurse_is_told() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let device = ward_with_patient(&api).await;
    let alert = raise_medium_alert(&api, &device).await;
    advance(&api, 0).await;
    let path = format!("/patients/P123/alerts/{alert}/answer");
    let patient = gw.auth().mint("P123-sub", Role::Patient, Some("P123"), 10).unwrap();
    let (status, bad) = api.call(Method::POST, &path, Some(&patient), Some(json!({"answer": "call_my_mum"}))).await;
    assert_eq!((status, bad["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("answer")), "{bad}");
    let other = gw.auth().mint("P9-sub", Role::Patient, Some("P9"), 10).unwrap();
    let (status, _) = api.call(Method::POST, &path, Some(&other), Some(json!({"answer": "decline"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another patient");
    let nurse = gw.auth().mint("n-1", Role::Clinician, None, 10).unwrap();
    let (status, _) = api.call(Method::POST, &path, Some(&nurse), Some(json!({"answer": "decline"}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the patient answers");
    let (status, answered) = api.call(Method::POST, &path, Some(&patient), Some(json!({"answer": "approve_nurse"}))).await;
    assert_eq!((status, answered["flow"]["stage"].as_str(), answered["step"]["answer"].as_str()), (StatusCode::OK, Some("answered"), Some("approve_nurse")), "{answered}");
    let (status, twice) = api.call(Method::POST, &path, Some(&patient), Some(json!({"answer": "approve_all"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{twice}");
    advance(&api, 0).await;
    assert_eq!(outbox(&api).await, [told("patient", "+447700900099"), told("nurse", "+447700900002")]);
    advance(&api, 60).await;
    assert_eq!(outbox(&api).await.len(), 2, "an answered medium alert does not escalate");

    // The worklist follows the team: the doctor sees P123 while named, not once taken off it.
    let doctor = gw.auth().mint("d-1", Role::Clinician, None, 10).unwrap();
    let (_, worklist) = api.call(Method::GET, "/worklist", Some(&doctor), None).await;
    assert_eq!((worklist["patients"].as_u64(), worklist["alerts"].as_array().map(Vec::len)), (Some(1), Some(1)), "{worklist}");
    let admin = api.token(Role::Admin, None);
    let (status, _) = api.call(Method::PUT, "/admin/clinicians/d-1", Some(&admin), Some(json!({"name": "Dr One", "role": "doctor"}))).await;
    assert_eq!(status, StatusCode::OK, "the doctor leaves the ward");
    let (status, _) = api.call(Method::PUT, "/admin/patients/P123/care-team", Some(&admin), Some(json!({"nurses": ["n-1"], "locationId": "ward-7"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (_, worklist) = api.call(Method::GET, "/worklist", Some(&doctor), None).await;
    assert_eq!((worklist["patients"].as_u64(), worklist["alerts"].as_array().map(Vec::len)), (Some(0), Some(0)), "{worklist}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sms_link_opens_a_page_that_changes_nothing_and_its_form_answers_once() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let device = ward_with_patient(&api).await;
    raise_medium_alert(&api, &device).await;
    advance(&api, 0).await;
    let (_, raw) = api.call(Method::GET, "/local/outbox", None, None).await;
    let sms = raw["notifications"][0]["body"].as_str().unwrap().to_owned();
    let link = sms.split_whitespace().find(|w| w.starts_with("http")).unwrap().to_owned();
    assert!(link.starts_with(&format!("{}/alerts/answer/", gw.api_url)), "{sms}");

    let http = reqwest::Client::new();
    for _ in 0..2 {
        // A mail scanner, then the patient: opening the link answers nothing.
        let page = http.get(&link).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()["cache-control"], "no-store");
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"value="approve_doctor""#) && !html.contains("heart_rate") && !html.contains("131 /min"), "the question, no readings: {html}");
    }
    let h = history(&api, &raise_id(&api).await).await;
    assert_eq!(h["flow"]["stage"], "asking_patient", "opening the link changed nothing");

    let bad = submit(&http, &link, "call_my_mum").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let answered = submit(&http, &link, "approve_doctor").await;
    assert_eq!(answered.status(), StatusCode::OK);
    assert!(answered.text().await.unwrap().contains("We are telling your doctor."));
    let again = submit(&http, &link, "approve_all").await;
    assert_eq!(again.status(), StatusCode::GONE, "single use");
    assert_eq!(http.get(&link).send().await.unwrap().status(), StatusCode::GONE);
    let unknown = http.get(format!("{}/alerts/answer/not-a-token", gw.api_url)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    advance(&api, 0).await;
    assert_eq!(outbox(&api).await, [told("patient", "+447700900099"), told("doctor", "+447700900001"), told("doctor", "d1@example.org")]);
    let h = history(&api, &raise_id(&api).await).await;
    let last = h["steps"].as_array().unwrap().last().unwrap();
    assert_eq!((last["event"].as_str(), last["answer"].as_str(), last["by"].as_str()), (Some("answered"), Some("approve_doctor"), Some("answer-link")));
}

/// The id of P123's newest alert.
async fn raise_id(api: &Api<'_>) -> String {
    let (_, listed) = api.call(Method::GET, "/patients/P123/alerts", Some(&api.token(Role::Admin, None)), None).await;
    listed["alerts"][0]["alertId"].as_str().unwrap().to_owned()
}

/// The page's form as a browser sends it.
async fn submit(http: &reqwest::Client, link: &str, answer: &str) -> reqwest::Response {
    http.post(link).header("content-type", "application/x-www-form-urlencoded").body(format!("answer={answer}")).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_reporting_brings_a_grey_alert_once_its_next_set_is_overdue() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let (thing, key) = ward_with_patient(&api).await;
    let monitoring = json!({"channels": ["sms"], "phone": "+447700900099", "monitoring": {"zero": 1, "low": 1, "lowMedium": 1, "medium": 1, "high": 0.5}});
    let (status, body) = api.call(Method::PUT, "/patients/P123/settings", Some(&api.token(Role::Admin, None)), Some(monitoring)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let reading = json!({"device_id": thing, "timestamp": chrono::Utc::now().to_rfc3339(), "heart_rate": 80, "respiratory_rate": 16});
    let response = api.http.post(format!("{}/api/iot/vitals", api.gw.api_url)).bearer_auth(&key).json(&reading).send().await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["alerts_triggered"], 0, "a normal set");

    let nurse = gw.auth().mint("n-1", Role::Clinician, None, 10).unwrap();
    let grey = || async {
        let (_, _, inbox) = api.call_with(Method::GET, "/dhos/v1/receiver/ward-7/message", Some(&nurse), &[("x-location-ids", "ward-7")], None).await;
        inbox.as_array().unwrap().iter().filter(|m| m["message_type"]["value"] == 9).count()
    };
    advance(&api, 15).await;
    assert_eq!(grey().await, 0, "the first check finds the patient's hour not yet up");
    advance(&api, 44).await;
    assert_eq!(grey().await, 0);
    advance(&api, 2).await;
    assert_eq!(grey().await, 1, "overdue: a grey alert in the ward's inbox");
    advance(&api, 120).await;
    assert_eq!(grey().await, 1, "once per overdue set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_resolved_before_the_sweep_came_by_tells_nobody_and_is_not_looked_at_again() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let device = ward_with_patient(&api).await;
    let alert = raise_medium_alert(&api, &device).await;
    let doctor = gw.auth().mint("d-1", Role::Clinician, None, 10).unwrap();
    let (status, resolved) = api.call(Method::POST, &format!("/patients/P123/alerts/{alert}/resolve"), Some(&doctor), None).await;
    assert_eq!((status, resolved["status"].as_str()), (StatusCode::OK, Some("closed")), "{resolved}");
    let ran = advance(&api, 0).await;
    assert_eq!(ran["ran"]["alert-sweep"]["advanced"], 1, "{ran}");
    let ran = advance(&api, 1).await;
    assert_eq!(ran["ran"]["alert-sweep"]["advanced"], 0, "nothing due any more: {ran}");
    assert!(outbox(&api).await.is_empty());
    assert_eq!(history(&api, &alert).await["flow"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurses_set_completes_the_devices_scores_and_its_concern_tells_the_doctor_and_nurse_at_once() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let (thing, key) = ward_with_patient(&api).await;
    // The device measured heart rate 95 (NEWS2 1: no alert) ten minutes ago.
    let at = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    let response = api.http.post(format!("{}/api/iot/vitals", api.gw.api_url)).bearer_auth(&key).json(&json!({"device_id": thing, "timestamp": at, "heart_rate": 95})).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["alerts_triggered"], 0, "{body}");

    // The nurse records what the device cannot measure, and a concern.
    let nurse = gw.auth().mint("n-1", Role::Clinician, None, 10).unwrap();
    let time = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let set = json!({"time": time, "respiratory_rate": 18, "temperature": 37.1, "systolic_blood_pressure": 124, "diastolic_blood_pressure": 78,
        "oxygen_saturation": 97, "o2_therapy": 0, "consciousness_acvpu": "A", "nurse_concern": "Pallor and sweating"});
    let (status, filed) = api.call(Method::POST, "/patients/P123/observation-sets", Some(&nurse), Some(set.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    assert_eq!(
        (filed["news2"]["overall_score_display"].as_str(), filed["news2"]["overall_severity"].as_str(), filed["news2"]["partial_set"].as_bool()),
        (Some("1C"), Some("high"), Some(false)),
        "the device's heart rate completes the set: {filed}"
    );
    assert_eq!((filed["earlierReadings"][0]["parameter"].as_str(), filed["earlierReadings"][0]["deviceId"].as_str(), filed["earlierReadings"][0]["value"].as_str()), (Some("heart_rate"), Some(thing.as_str()), Some("95")));
    let observations = filed["observations"].as_array().unwrap();
    assert_eq!(observations.len(), 8, "seven values (one blood-pressure panel) and the score");
    vitalwire_tests::assert_valid_fhir(&filed["observations"].to_string());
    let score = observations.last().unwrap();
    assert_eq!((score["code"]["coding"][0]["code"].as_str(), score["valueQuantity"]["value"].as_u64()), (Some("1104051000000101"), Some(1)));
    assert_eq!(score["derivedFrom"].as_array().unwrap().len(), 8, "the seven values and the device's heart rate");
    let alert = filed["alert"]["alertId"].as_str().unwrap().to_owned();
    assert_eq!((filed["alert"]["severity"].as_str(), filed["alertRaised"].as_bool()), (Some("high"), Some(true)));

    // A retry writes nothing and raises nothing; the set is the same set.
    let (status, again) = api.call(Method::POST, "/patients/P123/observation-sets", Some(&nurse), Some(set)).await;
    assert_eq!((status, again["setId"].clone(), again["alertRaised"].as_bool()), (StatusCode::OK, filed["setId"].clone(), Some(false)), "{again}");

    // High severity: the doctor and the nurse are told at once, without waiting for the patient.
    advance(&api, 0).await;
    let mut sent = outbox(&api).await;
    sent.sort();
    assert_eq!(sent, [told("doctor", "+447700900001"), told("doctor", "d1@example.org"), told("nurse", "+447700900002"), told("patient", "+447700900099")]);
    let h = history(&api, &alert).await;
    let red = h["notifications"].as_array().unwrap().iter().filter(|n| n["messageType"] == 7).count();
    assert_eq!(red, 3, "a red alert message in the ward's, the doctor's and the nurse's inboxes: {h}");

    // The patient reports their own vital signs, but not a clinician's assessment; the refusal
    // is kept for the operator.
    let patient = gw.auth().mint("P123-sub", Role::Patient, Some("P123"), 10).unwrap();
    let own = json!({"time": chrono::Utc::now().to_rfc3339(), "heart_rate": 88});
    let (status, reported) = api.call(Method::POST, "/patients/P123/observation-sets", Some(&patient), Some(own)).await;
    assert_eq!((status, reported["performer"].as_str()), (StatusCode::CREATED, Some("Patient/P123")), "{reported}");
    vitalwire_tests::assert_valid_fhir(&reported["observations"].to_string());
    let assessed = json!({"time": chrono::Utc::now().to_rfc3339(), "heart_rate": 88, "consciousness_acvpu": "A"});
    let (status, refused) = api.call(Method::POST, "/patients/P123/observation-sets", Some(&patient), Some(assessed)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (_, letters) = api.call(Method::GET, "/admin/dead-letters?source=observation-sets", Some(&api.token(Role::Admin, None)), None).await;
    assert_eq!(letters["deadLetters"][0]["reasonCode"], "CLINICIAN_ONLY", "{letters}");
    let outsider = gw.auth().mint("d-9", Role::Clinician, None, 10).unwrap();
    let (status, _) = api.call(Method::POST, "/patients/P123/observation-sets", Some(&outsider), Some(json!({"time": chrono::Utc::now().to_rfc3339(), "heart_rate": 70}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "outside the care team");
}
