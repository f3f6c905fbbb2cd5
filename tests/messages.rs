//! The messages store (issue 12) against DynamoDB (the moto emulator): create once, read,
//! change only over the version read, and list a party's messages newest first through every
//! DynamoDB page.

use serde_json::json;
use vitalwire::messages::{new_message, patch, DynamoMessageStore, Message, MessageStore, PolarisTime};
use vitalwire::platform::tables::MESSAGES;
use vitalwire_tests::TestStack;

fn message(uuid: &str, sender: &str, receiver: &str, at: &str, content: String) -> Message {
    let new = new_message(&json!({"sender": sender, "sender_type": "clinician", "receiver": receiver, "receiver_type": "patient",
        "content": content, "message_type": {"value": 5}})).unwrap();
    Message::from_new(uuid.into(), new, sender, PolarisTime::parse(at).unwrap())
}

#[tokio::test]
async fn messages_are_kept_changed_over_their_version_and_listed_newest_first_across_pages() {
    let t = TestStack::new().await;
    let store = DynamoMessageStore::new(t.dynamodb.clone(), t.table(&MESSAGES));
    let first = message("m-1", "c-1", "p-1", "2022-01-01T10:00:00.000+01:00", "Please call me.".into());
    assert!(store.create(&first).await.unwrap());
    assert!(!store.create(&first).await.unwrap(), "a uuid is created once");
    let read = store.get("m-1").await.unwrap().unwrap();
    assert_eq!(read, first);
    assert_eq!(read.to_json(), first.to_json(), "the JSON survives the store, offsets included");

    let mut confirmed = read.clone();
    patch("m-1", &json!({"confirmed": "2022-01-01T11:00:00.123456+03:00", "confirmed_by": "1234"})).unwrap().apply(&mut confirmed);
    confirmed.version += 1;
    assert!(store.update(&confirmed).await.unwrap());
    assert!(!store.update(&confirmed).await.unwrap(), "a change made from an older version is refused");
    let now = store.get("m-1").await.unwrap().unwrap();
    assert_eq!(now.to_json()["confirmed"], "2022-01-01T11:00:00.123+03:00");
    assert!(now.is_active() && !now.is_open_callback(), "a confirmed callback stays active");

    // Enough content to spread one sender's messages over several 1 MB DynamoDB pages.
    let big = "x".repeat(20_000);
    for i in 0..60 {
        let m = message(&format!("n-{i:02}"), "c-2", "p-2", &format!("2022-02-01T10:{:02}:00.000Z", i), big.clone());
        assert!(store.create(&m).await.unwrap());
    }
    let sent = store.sent_by("c-2").await.unwrap();
    assert_eq!(sent.len(), 60, "every page");
    assert_eq!((sent[0].uuid.as_str(), sent[59].uuid.as_str()), ("n-59", "n-00"), "newest first");
    assert_eq!(store.received_by("p-2").await.unwrap().len(), 60);
    assert_eq!(store.received_by("p-1").await.unwrap().iter().map(|m| m.uuid.as_str()).collect::<Vec<_>>(), ["m-1"]);
    assert!(store.sent_by("nobody").await.unwrap().is_empty());

    // A long content is kept deflated and comes back exactly, characters and all.
    let long: String = (0..400).map(|i| format!("Dose {i}: 2 × 5 mg — take with food. ")).collect();
    assert!(store.create(&message("long", "c-3", "p-3", "2022-03-01T10:00:00.000Z", long.clone())).await.unwrap());
    assert_eq!(store.get("long").await.unwrap().unwrap().content, long);
    let raw = t.dynamodb.get_item().table_name(t.table(&MESSAGES)).key("uuid", aws_sdk_dynamodb::types::AttributeValue::S("long".into())).send().await.unwrap();
    let stored = raw.item.unwrap();
    assert!(!stored.contains_key("content") && stored["contentDeflate"].as_b().unwrap().as_ref().len() < long.len() / 4, "kept deflated");
}

// ---------------------------------------------------------------- the Polaris routes over real HTTP

use reqwest::{Method, StatusCode};
use serde_json::Value;
use vitalwire_tests::LocalGateway;

/// The scopes the reference's integration tests give their callers (`docker-compose.yml`).
const CLINICIAN_SCOPE: &str = "read:gdm_message read:gdm_patient read:gdm_patient_all write:gdm_message";
const PATIENT_SCOPE: &str = "read:gdm_message read:gdm_patient write:gdm_message write:gdm_message_all";
const SYSTEM_SCOPE: &str = "read:gdm_message read:gdm_message_all read:gdm_patient read:gdm_patient_all write:gdm_message write:gdm_message_all";

/// A Polaris client: a reqwest client with one caller's token.
struct PolarisClient<'a> {
    gw: &'a LocalGateway,
    http: reqwest::Client,
    token: Option<String>,
    locations: Option<&'a str>,
}

/// What the client got: status, headers, and the body as JSON (`null` when empty).
struct Reply {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl<'a> PolarisClient<'a> {
    fn new(gw: &'a LocalGateway, ids: &[(&str, &str)], scope: &str) -> Self {
        Self { gw, http: reqwest::Client::new(), token: Some(gw.polaris().mint(ids, scope, 10).unwrap()), locations: None }
    }

    fn with_token(gw: &'a LocalGateway, token: Option<String>) -> Self {
        Self { gw, http: reqwest::Client::new(), token, locations: None }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.gw.api_url));
        if let Some(t) = &self.token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        if let Some(l) = self.locations {
            request = request.header("x-location-ids", l);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await.expect("HTTP");
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        Reply { status, headers, body: if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) } }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    async fn uuids(&self, path: &str) -> Vec<String> {
        let reply = self.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        reply.body.as_array().unwrap().iter().map(|m| m["uuid"].as_str().unwrap().to_owned()).collect()
    }
}

fn request(sender: (&str, &str), receiver: (&str, &str), value: i64, content: &str) -> Value {
    json!({"sender": sender.0, "sender_type": sender.1, "receiver": receiver.0, "receiver_type": receiver.1, "content": content, "message_type": {"value": value}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polaris_clients_send_receive_and_confirm_messages_as_against_polaris() {
    let gw = LocalGateway::start().await;
    let (clinician_id, patient_id) = ("4c4f1d24-2952-4d4e-b1d1-3637e33cc161", "5c4f1d24-2952-4d4e-b1d1-3637e33cc161");
    let clinician = PolarisClient::new(&gw, &[("clinician_id", clinician_id)], CLINICIAN_SCOPE);
    let patient = PolarisClient::new(&gw, &[("patient_id", patient_id)], PATIENT_SCOPE);
    let system = PolarisClient::new(&gw, &[("system_id", "dhos-robot")], SYSTEM_SCOPE);

    // send_receive.feature: clinician to patient with v1 and v2, clear alerts with v2.
    let v1 = clinician.send(Method::POST, "/dhos/v1/message", Some(request((clinician_id, "clinician"), (patient_id, "patient"), 2, "Less sugar, please."))).await;
    assert_eq!(v1.status, StatusCode::OK, "{}", v1.body);
    assert_eq!(v1.headers.get("deprecation").unwrap(), "true");
    assert_eq!((v1.body["sender"].as_str(), v1.body["receiver"].as_str(), v1.body["content"].as_str()), (Some(clinician_id), Some(patient_id), Some("Less sugar, please.")));
    let dietary = v1.body["uuid"].as_str().unwrap().to_owned();
    let clear = clinician.send(Method::POST, "/dhos/v2/message", Some(request((clinician_id, "clinician"), (patient_id, "patient"), 10, "All clear."))).await;
    assert_eq!(clear.status, StatusCode::OK);
    assert_eq!(clear.body["message_type"], json!({"value": 10, "uuid": "DHOS-MESSAGES-CLEAR-ALERTS", "created": "2018-02-16T16:03:26.092Z", "created_by": "sys", "modified": "2018-02-16T16:03:26.092Z", "modified_by": "sys"}));
    // The message reads back byte for byte as it was answered, through every listing.
    let read = patient.get(&format!("/dhos/v1/message/{dietary}")).await;
    assert_eq!(read.body, v1.body);
    assert!(clinician.uuids(&format!("/dhos/v1/sender/{clinician_id}/message")).await.contains(&dietary));
    assert!(patient.uuids(&format!("/dhos/v1/receiver/{patient_id}/message")).await.contains(&dietary));
    assert_eq!(clinician.uuids(&format!("/dhos/v1/sender/{clinician_id}/receiver/{patient_id}/message")).await.len(), 2);
    assert!(patient.uuids(&format!("/dhos/v1/sender_or_receiver/{patient_id}/message")).await.contains(&dietary));

    // callbacks.feature: a patient's callback to the clinician.
    let callback = patient.send(Method::POST, "/dhos/v2/message", Some(request((patient_id, "patient"), (clinician_id, "clinician"), 5, "Please call me."))).await;
    assert_eq!(callback.status, StatusCode::OK, "{}", callback.body);
    let callback = callback.body["uuid"].as_str().unwrap().to_owned();
    let open = clinician.send(Method::POST, "/dhos/v1/active/callback/message", Some(json!([patient_id]))).await;
    assert_eq!(open.body[patient_id]["uuid"], json!(callback), "keyed by patient id");
    assert_eq!(clinician.uuids(&format!("/dhos/v1/receiver/{clinician_id}/active/callback/message")).await, std::slice::from_ref(&callback));
    let confirmed = clinician.send(Method::PATCH, &format!("/dhos/v1/message/{callback}"), Some(json!({"confirmed": "2022-01-01T101500.123456Z"}))).await;
    assert_eq!((confirmed.status, confirmed.body["confirmed"].as_str()), (StatusCode::OK, Some("2022-01-01T10:15:00.123Z")), "basic time accepted, written extended");
    assert_eq!(clinician.send(Method::POST, "/dhos/v1/active/callback/message", Some(json!([patient_id]))).await.body, json!({}), "confirmed: off the callback list");
    assert_eq!(clinician.uuids(&format!("/dhos/v1/receiver/{clinician_id}/active/message")).await, std::slice::from_ref(&callback), "a confirmed callback stays active");
    // The patient confirms the general message: off their active list, still in their listing.
    assert!(patient.uuids(&format!("/dhos/v1/receiver/{patient_id}/active/message")).await.contains(&dietary));
    let seen = patient.send(Method::PATCH, &format!("/dhos/v1/message/{dietary}"), Some(json!({"confirmed": "2022-01-01T10:00:00.000+01:00", "confirmed_by": patient_id}))).await;
    assert_eq!(seen.body["confirmed"], "2022-01-01T10:00:00.000+01:00");
    assert!(!patient.uuids(&format!("/dhos/v1/receiver/{patient_id}/active/message")).await.contains(&dietary));
    assert!(system.uuids(&format!("/dhos/v1/receiver/{patient_id}/message")).await.contains(&dietary));
    // A wrong receiver type: there for the system, invisible to the patient.
    let odd = system.send(Method::POST, "/dhos/v2/message", Some(request((clinician_id, "clinician"), (patient_id, "bad_user_type"), 0, "odd"))).await;
    let odd = odd.body["uuid"].as_str().unwrap().to_owned();
    assert!(system.uuids(&format!("/dhos/v1/receiver/{patient_id}/message")).await.contains(&odd));
    assert!(!patient.uuids(&format!("/dhos/v1/receiver/{patient_id}/message")).await.contains(&odd));
    // Red alerts never reach the patient's own listing; a clinician sees them.
    let red = system.send(Method::POST, "/dhos/v2/message", Some(request((clinician_id, "clinician"), (patient_id, "patient"), 7, "NEWS2 7"))).await;
    let red = red.body["uuid"].as_str().unwrap().to_owned();
    assert!(!patient.uuids(&format!("/dhos/v1/sender_or_receiver/{patient_id}/message")).await.contains(&red));
    assert!(clinician.uuids(&format!("/dhos/v1/sender_or_receiver/{patient_id}/message")).await.contains(&red));

    // Isolation and scopes.
    let other_patient = PolarisClient::new(&gw, &[("patient_id", "another-patient")], PATIENT_SCOPE.replace(" write:gdm_message_all", "").as_str());
    assert_eq!(other_patient.get(&format!("/dhos/v1/message/{dietary}")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(other_patient.get(&format!("/dhos/v1/sender_or_receiver/{patient_id}/message")).await.body, json!({"message": "Forbidden"}));
    let no_read = PolarisClient::new(&gw, &[("clinician_id", clinician_id)], "write:gdm_message");
    assert_eq!(no_read.get(&format!("/dhos/v1/receiver/{clinician_id}/message")).await.status, StatusCode::FORBIDDEN);
    // Every read of a patient's messages is audited under their id.
    let audit = gw.stack.count(&vitalwire::platform::tables::AUDIT).await;
    assert!(audit >= 10, "{audit} audit records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_as_polaris_checks_them_and_monitoring_needs_none() {
    let gw = LocalGateway::start().await;
    let path = "/dhos/v1/sender_or_receiver/p-1/message";
    let claims = |iss: &str, exp: i64| json!({"metadata": {"patient_id": "p-1"}, "iss": iss, "aud": gw.polaris().issuer, "scope": "read:gdm_message", "exp": chrono::Utc::now().timestamp() + exp});
    let sign = |alg: jsonwebtoken::Algorithm, claims: Value, key: &[u8]| jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap();
    let key = gw.polaris().key.as_bytes().to_vec();
    let issuer = gw.polaris().issuer.clone();
    let good = sign(jsonwebtoken::Algorithm::HS512, claims(&issuer, 600), &key);
    assert_eq!(PolarisClient::with_token(&gw, Some(good.clone())).get(path).await.status, StatusCode::OK);
    let forbidden = [
        ("expired", sign(jsonwebtoken::Algorithm::HS512, claims(&issuer, -600), &key)),
        ("wrong issuer", sign(jsonwebtoken::Algorithm::HS512, claims("http://elsewhere/", 600), &key)),
        ("wrong algorithm", sign(jsonwebtoken::Algorithm::HS256, claims(&issuer, 600), &key)),
        ("wrong key", sign(jsonwebtoken::Algorithm::HS512, claims(&issuer, 600), b"not-the-key-not-the-key-not-the-key!")),
        ("tampered", {
            let other = sign(jsonwebtoken::Algorithm::HS512, json!({"metadata": {"system_id": "dhos-robot"}, "iss": issuer, "aud": issuer, "scope": "read:gdm_message_all", "exp": 9_999_999_999i64}), b"x");
            let mut parts: Vec<&str> = good.split('.').collect();
            parts[1] = other.split('.').nth(1).unwrap();
            parts.join(".")
        }),
        ("not a JWT", "not-a-token".to_owned()),
    ];
    for (why, token) in forbidden {
        let reply = PolarisClient::with_token(&gw, Some(token)).get(path).await;
        assert_eq!((reply.status, &reply.body), (StatusCode::FORBIDDEN, &json!({"message": "Forbidden"})), "{why}");
    }
    assert_eq!(PolarisClient::with_token(&gw, None).get(path).await.status, StatusCode::UNAUTHORIZED, "no token");
    // A platform admin token reaches every message, as the `_all` scopes do.
    let admin = gw.auth().mint("ops", vitalwire::access::Role::Admin, None, 10).unwrap();
    assert_eq!(PolarisClient::with_token(&gw, Some(admin)).get(path).await.status, StatusCode::OK);
    // A query parameter is not in the reference's spec.
    let extra = PolarisClient::with_token(&gw, Some(good)).get(&format!("{path}?limit=5")).await;
    assert_eq!((extra.status, extra.body["detail"].as_str()), (StatusCode::BAD_REQUEST, Some("Extra query parameter(s) limit not in spec")));

    // The local key is kept in the state dir (the same after a restart) and is the one the
    // functions read from the stack's secret.
    let kept = std::fs::read_to_string(gw.certs_dir.parent().unwrap().join("auth/polaris-hs512.key")).unwrap();
    assert_eq!(kept, gw.polaris().key);

    let running = PolarisClient::with_token(&gw, None).get("/running").await;
    assert_eq!((running.status, &running.body), (StatusCode::OK, &json!({"running": true})));
    let version = PolarisClient::with_token(&gw, None).get("/version").await;
    assert!(version.body["circle"].is_string() && version.body["hash"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_messages_all_come_back_from_one_listing_and_drop_data_empties_the_store() {
    let gw = LocalGateway::start().await;
    let system = PolarisClient::new(&gw, &[("system_id", "dhos-robot")], SYSTEM_SCOPE);
    let clinician = PolarisClient::new(&gw, &[("clinician_id", "c-perf")], CLINICIAN_SCOPE);
    // More than one DynamoDB page of one party's messages (1 MB: some 3 000 of these).
    let content = "x".repeat(400);
    for _ in 0..8 {
        let chunk: Vec<Value> = (0..500).map(|_| request(("c-perf", "clinician"), ("p-perf", "patient"), 0, &content)).collect();
        let seeded = system.send(Method::POST, "/create_messages", Some(Value::Array(chunk))).await;
        assert_eq!((seeded.status, &seeded.body), (StatusCode::CREATED, &Value::Null));
    }
    assert_eq!(clinician.uuids("/dhos/v1/sender_or_receiver/p-perf/message").await.len(), 4000, "every message, no page cap");
    assert_eq!(clinician.uuids("/dhos/v1/sender_or_receiver/c-perf/message").await.len(), 4000);
    assert_eq!(clinician.send(Method::POST, "/drop_data", None).await.status, StatusCode::FORBIDDEN, "a system token only");
    let dropped = system.send(Method::POST, "/drop_data", None).await;
    assert_eq!(dropped.body["complete"], true);
    assert!(clinician.uuids("/dhos/v1/sender_or_receiver/p-perf/message").await.is_empty());
}
