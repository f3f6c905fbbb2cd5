//! The vitals REST API over real HTTP through the local platform: device API keys (create,
//! list, revoke; the authorizer), the seed's requests and client examples, validation, status
//! codes, rate limiting under concurrent requests, and the activity log.

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vitalwire::access::Role;
use vitalwire::platform::tables::{API_KEYS, OBSERVATIONS};
use vitalwire_tests::{Api, LocalGateway};

/// Registers a REST-only gateway device assigned to `P123`; its thing name.
async fn gateway_device(api: &Api<'_>, serial: &str) -> String {
    let admin = api.token(Role::Admin, None);
    let body = json!({"serialNumber": serial, "manufacturer": "InHealth", "model": "Blood Pressure Monitor", "displayName": "Smart BP Monitor"});
    let (status, device) = api.call(Method::POST, "/admin/devices", Some(&admin), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let thing = device["thingName"].as_str().unwrap().to_owned();
    let (status, _) = api.call(Method::PUT, &format!("/admin/devices/{thing}/patient"), Some(&admin), Some(json!({"patientId": "P123"}))).await;
    assert_eq!(status, StatusCode::OK);
    thing
}

async fn new_key(api: &Api<'_>, thing: &str, body: Value) -> Value {
    let admin = api.token(Role::Admin, None);
    let (status, key) = api.call(Method::POST, &format!("/admin/devices/{thing}/api-keys"), Some(&admin), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    key
}

fn seed_reading(thing: &str) -> Value {
    json!({
        "device_id": thing, "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75,
        "blood_pressure_systolic": 120, "blood_pressure_diastolic": 80, "temperature": 98.6,
        "temperature_unit": "F", "respiratory_rate": 16, "oxygen_saturation": 98.0, "glucose": 95.0,
        "weight": 150.0, "weight_unit": "lbs", "notes": "Morning reading", "signal_quality": 95, "battery_level": 80
    })
}

/// `POST`/`GET` with a key; status, headers and JSON body.
async fn with_key(api: &Api<'_>, method: Method, path: &str, key: &str, body: Option<&Value>) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = api.http.request(method, format!("{}{path}", api.gw.api_url)).header("authorization", format!("Bearer {key}"));
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    (status, headers, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_stored_hashed_and_file_the_seeds_reading_as_fhir() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = gateway_device(&api, "DEV001").await;
    let key = new_key(&api, &thing, json!({"name": "Primary API Key", "expiresInDays": 365})).await;
    let secret = key["apiKey"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("vwk_"));
    assert_eq!(key["permissions"], json!(["write_vitals", "read_status"]));
    assert_eq!(key["rateLimitPerMinute"], 60);

    // Only the hash is stored: the table never holds the key's text.
    let item = gw.stack.dynamodb.get_item().table_name(gw.stack.table(&API_KEYS)).key("keyId", AttributeValue::S(key["keyId"].as_str().unwrap().into())).send().await.unwrap();
    let item = format!("{:?}", item.item().unwrap());
    // `vwk_` + 16 hex characters + `_`, then the secret.
    assert!(!item.contains(&secret[21..]), "the secret is not stored");
    assert!(item.contains("secretHash"));
    let (_, listed) = api.call(Method::GET, &format!("/admin/devices/{thing}/api-keys"), Some(&api.token(Role::Admin, None)), None).await;
    assert_eq!(listed["apiKeys"].as_array().unwrap().len(), 1);
    assert!(listed["apiKeys"][0].get("apiKey").is_none() && listed["apiKeys"][0].get("secretHash").is_none(), "{listed}");

    let reading = seed_reading(&thing);
    let (status, headers, body) = with_key(&api, Method::POST, "/api/iot/vitals", &secret, Some(&reading)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["success"].as_bool(), body["message"].as_str()), (Some(true), Some("Vital signs received successfully")));
    assert_eq!((body["alerts_triggered"].as_u64(), body["timestamp"].as_str()), (Some(0), Some("2025-11-17T10:30:00Z")));
    let id = body["vital_sign_id"].as_str().unwrap().to_owned();
    assert_eq!(headers["x-ratelimit-limit"], "60");
    assert_eq!(headers["x-ratelimit-remaining"], "59");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 9, "six vitals, the blood-pressure panel, the battery, the grouping panel");

    // The grouping panel is the reading set; every Observation passes the FHIR validators.
    let table = gw.stack.table(&OBSERVATIONS);
    let scan = gw.stack.dynamodb.scan().table_name(&table).send().await.unwrap();
    let resources: Vec<Value> = scan.items().iter().map(|i| serde_json::from_str(i["resource"].as_s().unwrap()).unwrap()).collect();
    let group = resources.iter().find(|r| r["id"] == id.as_str()).expect("the reading set");
    assert_eq!(group["code"]["coding"][0]["code"], "85353-1");
    assert_eq!(group["hasMember"].as_array().unwrap().len(), 7);
    let temp = resources.iter().find(|r| r["code"]["coding"][0]["code"] == "8310-5").unwrap();
    assert_eq!((temp["valueQuantity"]["value"].to_string(), temp["valueQuantity"]["unit"].as_str()), ("98.6".to_owned(), Some("F")));
    assert_eq!(temp["subject"]["reference"], "Patient/P123");
    assert_eq!(temp["meta"]["tag"][0]["code"], "device");
    // The battery level is the device's battery charge (MDC 67996), not a member of the panel.
    let battery = resources.iter().find(|r| r["code"]["coding"][0]["code"] == "67996").expect("the battery charge");
    assert_eq!(battery["code"]["coding"][0]["system"], "urn:iso:std:iso:11073:10101");
    assert_eq!((battery["valueQuantity"]["value"].to_string(), battery["valueQuantity"]["code"].as_str()), ("80".to_owned(), Some("%")));
    assert_eq!(battery["effectiveDateTime"], "2025-11-17T10:30:00Z");
    let battery_ref = format!("Observation/{}", battery["id"].as_str().unwrap());
    assert!(!group["hasMember"].as_array().unwrap().iter().any(|m| m["reference"] == battery_ref.as_str()));
    vitalwire_tests::assert_valid_fhir(&Value::Array(resources.clone()).to_string());

    // Redelivery: the same reading is acknowledged and filed once.
    let (status, _, again) = with_key(&api, Method::POST, "/api/iot/vitals/", &secret, Some(&reading)).await;
    assert_eq!((status, again["vital_sign_id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{again}");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 9);
    // A different reading at the same time and device is a conflict, not an overwrite.
    let mut changed = reading.clone();
    changed["heart_rate"] = json!(76);
    let (status, _, conflict) = with_key(&api, Method::POST, "/api/iot/vitals", &secret, Some(&changed)).await;
    assert_eq!((status, conflict["success"].as_bool()), (StatusCode::CONFLICT, Some(false)), "{conflict}");

    let (status, _, device) = with_key(&api, Method::GET, "/api/iot/status/", &secret, None).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    assert_eq!(device["device_id"], thing.as_str());
    assert_eq!((device["device_name"].as_str(), device["device_type"].as_str()), (Some("Smart BP Monitor"), Some("Blood Pressure Monitor")));
    assert_eq!((device["is_active"].as_bool(), device["patient_assigned"].as_bool(), device["patient_id"].as_str()), (Some(true), Some(true), Some("P123")));
    assert_eq!((device["api_key_valid"].as_bool(), device["last_reading"].as_str()), (Some(true), Some("2025-11-17T10:30:00.000Z")));

    // Use is recorded on the key.
    let (_, listed) = api.call(Method::GET, &format!("/admin/devices/{thing}/api-keys"), Some(&api.token(Role::Admin, None)), None).await;
    assert!(listed["apiKeys"][0]["lastUsedAt"].is_string());
    assert_eq!(listed["apiKeys"][0]["dailyUse"][0]["requests"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_a_json_reason() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = gateway_device(&api, "DEV002").await;
    let other = gateway_device(&api, "DEV003").await;
    let key = new_key(&api, &thing, json!({"name": "k"})).await["apiKey"].as_str().unwrap().to_owned();
    let read_only = new_key(&api, &thing, json!({"name": "status only", "permissions": ["read_status"]})).await["apiKey"].as_str().unwrap().to_owned();
    let reading = seed_reading(&thing);

    // 401: missing (API Gateway itself), malformed, unknown, revoked, expired.
    let response = api.http.post(format!("{}/api/iot/vitals", gw.api_url)).json(&reading).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let unknown = format!("vwk_{}_{}", "0123456789abcdef", "A".repeat(43));
    for (bad, reason) in [("not-a-key", "malformed"), ("vwk_123_456", "malformed"), (unknown.as_str(), "unknown")] {
        let (status, _, body) = with_key(&api, Method::POST, "/api/iot/vitals", bad, Some(&reading)).await;
        assert_eq!((status, body["success"].as_bool()), (StatusCode::UNAUTHORIZED, Some(false)), "{bad}: {body}");
        assert!(body["error"].as_str().unwrap().contains(reason) || reason == "malformed", "{bad}: {body}");
    }
    let forged = format!("{}{}", &key[..21], "B".repeat(43));
    let (status, _, body) = with_key(&api, Method::GET, "/api/iot/status", &forged, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("the API key is unknown")), "a right id with a wrong secret");
    let doomed = new_key(&api, &thing, json!({"name": "to revoke"})).await;
    let admin = api.token(Role::Admin, None);
    let (status, revoked) = api.call(Method::DELETE, &format!("/admin/devices/{thing}/api-keys/{}", doomed["keyId"].as_str().unwrap()), Some(&admin), None).await;
    assert_eq!((status, revoked["active"].as_bool()), (StatusCode::OK, Some(false)));
    let (status, _, body) = with_key(&api, Method::GET, "/api/iot/status", doomed["apiKey"].as_str().unwrap(), None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("the API key has been revoked")));
    let (status, _) = api.call(Method::DELETE, &format!("/admin/devices/{other}/api-keys/{}", doomed["keyId"].as_str().unwrap()), Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a key is revoked through its own device only");
    let expiring = new_key(&api, &thing, json!({"name": "short", "expiresInDays": 1})).await;
    gw.stack
        .dynamodb
        .update_item()
        .table_name(gw.stack.table(&API_KEYS))
        .key("keyId", AttributeValue::S(expiring["keyId"].as_str().unwrap().into()))
        .update_expression("SET expiresAt = :past")
        .expression_attribute_values(":past", AttributeValue::S("2020-01-01T00:00:00.000Z".into()))
        .send()
        .await
        .unwrap();
    let (status, _, body) = with_key(&api, Method::GET, "/api/iot/status", expiring["apiKey"].as_str().unwrap(), None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("the API key has expired")));
    // A person's token is not a device key, and a device key opens no admin route.
    let (status, _, _) = with_key(&api, Method::GET, "/api/iot/status", &admin, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = api.call(Method::GET, "/admin/devices", Some(&key), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // 403: another device's id, a missing permission.
    let mut foreign = reading.clone();
    foreign["device_id"] = json!(other);
    let (status, _, body) = with_key(&api, Method::POST, "/api/iot/vitals", &key, Some(&foreign)).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::FORBIDDEN, Some("device_id")), "{body}");
    let (status, _, body) = with_key(&api, Method::POST, "/api/iot/vitals", &read_only, Some(&reading)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("write_vitals"));

    // 400: each problem named.
    for (body, field) in [
        (json!({"device_id": thing, "heart_rate": 75}), "timestamp"),
        (json!({"timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75}), "device_id"),
        (json!({"device_id": thing, "timestamp": "2025-11-17T10:30:00Z"}), "vital_signs"),
        (json!({"device_id": thing, "timestamp": "17/11/2025 10:30", "heart_rate": 75}), "timestamp"),
        (json!({"device_id": thing, "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 400}), "heart_rate"),
        (json!({"device_id": thing, "timestamp": "2025-11-17T10:30:00Z", "temperature": 37, "temperature_unit": "K"}), "temperature_unit"),
        (json!({"device_id": thing, "timestamp": "2025-11-17T10:30:00Z", "blood_pressure_systolic": 120}), "blood_pressure_diastolic"),
    ] {
        let (status, _, error) = with_key(&api, Method::POST, "/api/iot/vitals", &key, Some(&body)).await;
        assert_eq!((status, error["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {error}");
        assert_eq!(error["success"], false);
    }
    let (status, _, _) = with_key(&api, Method::POST, "/api/iot/vitals", &key, Some(&json!({"device_id": thing, "notes": "x".repeat(1_100_000)}))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // Every request of the device is in its activity log, newest first.
    let (status, log) = api.call(Method::GET, &format!("/admin/devices/{thing}/activity?limit=50"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let entries = log["activity"].as_array().unwrap();
    // The revoked and the expired key (their holder proved the secret: logged against them),
    // two 403s, seven 400s and the 413; unknown or malformed keys name no device and are kept
    // by the HTTP API's access log only.
    assert_eq!(entries.len(), 12, "{log}");
    let refused_keys: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e["status"] == 401)
        .map(|e| (e["error"].as_str().unwrap(), e["keyId"].as_str().unwrap_or("none")))
        .collect();
    assert_eq!(refused_keys.len(), 2, "{log}");
    assert!(refused_keys.iter().all(|(_, key)| key.len() == 16), "a known key is logged by its id: {refused_keys:?}");
    assert_eq!(refused_keys.iter().map(|(e, _)| *e).collect::<Vec<_>>(), ["the API key has expired", "the API key has been revoked"]);
    let times: Vec<&str> = entries.iter().map(|e| e["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let last = &entries[0];
    assert_eq!((last["status"].as_u64(), last["method"].as_str(), last["route"].as_str()), (Some(413), Some("POST"), Some("/api/iot/vitals")));
    assert!(last["keyId"].is_string() && last["sourceIp"].is_string() && last["latencyMs"].is_u64() && last["error"].is_string());
    assert!(last["userAgent"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_file_their_valid_readings_and_report_each_bad_one() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = gateway_device(&api, "DEV004").await;
    let key = new_key(&api, &thing, json!({"name": "k"})).await["apiKey"].as_str().unwrap().to_owned();
    let batch = json!({"device_id": thing, "readings": [
        {"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75, "blood_pressure_systolic": 120, "blood_pressure_diastolic": 80},
        {"timestamp": "2025-11-17T10:30:00Z", "heart_rate": 900},
        {"timestamp": "2025-11-17T11:00:00Z", "heart_rate": 78, "blood_pressure_systolic": 122, "blood_pressure_diastolic": 81},
    ]});
    let (status, _, body) = with_key(&api, Method::POST, "/api/iot/vitals/batch/", &key, Some(&batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["total_readings"].as_u64(), body["processed"].as_u64(), body["failed"].as_u64()), (Some(3), Some(2), Some(1)));
    assert_eq!(body["vitals_created"].as_array().unwrap().len(), 2);
    assert_eq!((body["errors"][0]["index"].as_u64(), body["errors"][0]["field"].as_str()), (Some(1), Some("heart_rate")));
    assert_eq!(body["success"], false, "not every reading was filed");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 6);

    let (status, _, body) = with_key(&api, Method::POST, "/api/iot/vitals/batch", &key, Some(&json!({"device_id": thing, "readings": []}))).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("readings")));
    let many: Vec<Value> = (0..101).map(|i| json!({"timestamp": format!("2025-11-17T09:{:02}:00Z", i % 60), "heart_rate": 70})).collect();
    let (status, _, _) = with_key(&api, Method::POST, "/api/iot/vitals/batch", &key, Some(&json!({"device_id": thing, "readings": many}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_readings_are_kept_with_their_reason_and_text_for_the_operator() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let thing = gateway_device(&api, "DEV009").await;
    let key = new_key(&api, &thing, json!({"name": "k"})).await["apiKey"].as_str().unwrap().to_owned();
    let bad = json!({"device_id": thing, "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 900});
    let (status, _, _) = with_key(&api, Method::POST, "/api/iot/vitals", &key, Some(&bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let batch = json!({"device_id": thing, "readings": [
        {"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75},
        {"timestamp": "2025-11-17T10:05:00Z", "oxygen_saturation": 20},
    ]});
    let (status, _, _) = with_key(&api, Method::POST, "/api/iot/vitals/batch", &key, Some(&batch)).await;
    assert_eq!(status, StatusCode::OK);

    let listed = |query: String| {
        let (api, admin) = (&api, &admin);
        async move {
            let (status, page) = api.call(Method::GET, &format!("/admin/dead-letters?{query}"), Some(admin), None).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["deadLetters"].as_array().unwrap().clone()
        }
    };
    let single = listed("source=iot-vitals".into()).await;
    assert_eq!(single.len(), 1, "{single:?}");
    assert_eq!((single[0]["reasonCode"].as_str(), single[0]["thingName"].as_str()), (Some("INVALID_READING"), Some(thing.as_str())));
    assert!(single[0]["reason"].as_str().unwrap().contains("physiological range"), "{}", single[0]);
    assert_eq!(serde_json::from_str::<Value>(single[0]["rawPayload"].as_str().unwrap()).unwrap(), bad, "the reading as sent");
    let from_batch = listed("source=iot-vitals-batch".into()).await;
    assert_eq!(from_batch.len(), 1, "only the bad reading of the batch");
    assert_eq!(serde_json::from_str::<Value>(from_batch[0]["rawPayload"].as_str().unwrap()).unwrap(), batch["readings"][1]);
    let of_device = listed(format!("thingName={thing}&limit=1")).await;
    assert_eq!(of_device.len(), 1, "paged");
    assert_eq!(listed(format!("thingName={thing}")).await.len(), 2, "the device's refused readings from every source");

    // A device that may not file at all is refused once for a batch, not once per reading.
    let (status, _) = api.call(Method::PUT, &format!("/admin/devices/{thing}/status"), Some(&admin), Some(json!({"status": "INACTIVE"}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = with_key(&api, Method::POST, "/api/iot/vitals/batch", &key, Some(&batch)).await;
    assert_eq!((status, body["success"].as_bool()), (StatusCode::FORBIDDEN, Some(false)), "{body}");
    assert!(body["error"].as_str().unwrap().contains("INACTIVE"), "{body}");
    let inactive: Vec<_> = listed("source=iot-vitals-batch".into()).await.into_iter().filter(|l| l["reasonCode"] == "DEVICE_NOT_ACTIVE").collect();
    assert_eq!(inactive.len(), 1);
    assert_eq!(serde_json::from_str::<Value>(inactive[0]["rawPayload"].as_str().unwrap()).unwrap(), batch, "the whole batch, once");

    // Each refusal is counted by its reason, under the function that refused it.
    let metrics = local_metrics(&api).await;
    assert_eq!(metric(&metrics, "Refusals", &[("Service", "iot-vitals"), ("Reason", "INVALID_READING")]), 1);
    assert_eq!(metric(&metrics, "Refusals", &[("Service", "iot-vitals-batch"), ("Reason", "INVALID_READING")]), 1);
    assert_eq!(metric(&metrics, "Refusals", &[("Service", "iot-vitals-batch"), ("Reason", "DEVICE_NOT_ACTIVE")]), 1);
    assert_eq!(metric(&metrics, "ReadingsFiled", &[("Service", "iot-vitals-batch")]), 1, "the batch's good reading");
    assert_eq!(metric(&metrics, "Invocations", &[("Service", "iot-vitals-batch")]), 2);
}

/// What the functions' metrics would be on CloudWatch: `GET /local/metrics`.
async fn local_metrics(api: &Api<'_>) -> Vec<Value> {
    let (status, listed) = api.call(Method::GET, "/local/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    listed["metrics"].as_array().unwrap().clone()
}

/// The sum of a metric over the dimension sets with these dimensions.
fn metric(metrics: &[Value], name: &str, dimensions: &[(&str, &str)]) -> u64 {
    metrics
        .iter()
        .filter(|m| m["metric"] == name && dimensions.iter().all(|(d, v)| m["dimensions"][d] == *v))
        .map(|m| m["sum"].as_u64().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_device_files_two_patients_measured_at_once_and_a_conflict_writes_nothing() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let body = json!({"serialNumber": "W1", "manufacturer": "InHealth", "model": "Ward", "mayNamePatient": true});
    let (status, device) = api.call(Method::POST, "/admin/devices", Some(&admin), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let thing = device["thingName"].as_str().unwrap().to_owned();
    let key = new_key(&api, &thing, json!({"name": "ward"})).await["apiKey"].as_str().unwrap().to_owned();
    let batch = json!({"device_id": thing, "readings": [
        {"patient_id": "P1", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75},
        {"patient_id": "P2", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 80},
    ]});
    let (status, _, answer) = with_key(&api, Method::POST, "/api/iot/vitals/batch", &key, Some(&batch)).await;
    assert_eq!((status, answer["processed"].as_u64()), (StatusCode::OK, Some(2)), "{answer}");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 4, "two heart rates and their panels");
    // Without a patient it names none: this device has no assigned patient.
    let (status, _, answer) = with_key(&api, Method::POST, "/api/iot/vitals", &key, Some(&json!({"device_id": thing, "timestamp": "2025-11-17T10:01:00Z", "heart_rate": 70}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    // The same instant and patient with one more vital sign: a different reading under the
    // same key. It is refused whole; its oxygen saturation is not filed alone.
    let more = json!({"device_id": thing, "patient_id": "P1", "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75, "oxygen_saturation": 97});
    let (status, _, answer) = with_key(&api, Method::POST, "/api/iot/vitals", &key, Some(&more)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 4, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_holds_under_concurrent_requests() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = gateway_device(&api, "DEV005").await;
    let key = new_key(&api, &thing, json!({"name": "slow", "rateLimitPerMinute": 5})).await["apiKey"].as_str().unwrap().to_owned();
    // Keep the burst inside one UTC minute.
    let second = chrono::Utc::now().timestamp() % 60;
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let (http, url, key) = (api.http.clone(), format!("{}/api/iot/status", gw.api_url), key.clone());
        requests.spawn(async move {
            let response = http.get(url).header("authorization", format!("Bearer {key}")).send().await.unwrap();
            let (status, headers) = (response.status(), response.headers().clone());
            (status, headers, response.json::<Value>().await.unwrap_or(Value::Null))
        });
    }
    let results = requests.join_all().await;
    let ok = results.iter().filter(|(s, _, _)| *s == StatusCode::OK).count();
    let limited: Vec<_> = results.iter().filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!((ok, limited.len()), (5, 7), "exactly the limit gets through");
    let (_, headers, body) = limited[0];
    assert_eq!(body["success"], false);
    let retry: i64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!((headers["x-ratelimit-limit"].to_str().unwrap(), headers["x-ratelimit-remaining"].to_str().unwrap()), ("5", "0"));
    let reset: i64 = headers["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert_eq!(reset % 60, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_curl_and_python_examples_work_as_written() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = gateway_device(&api, "DEV006").await;
    let key = new_key(&api, &thing, json!({"name": "Primary API Key"})).await["apiKey"].as_str().unwrap().to_owned();

    // The seed's "Test API Endpoint" curl command, with our URL, key and device.
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", "POST", &format!("{}/api/iot/vitals/", gw.api_url)])
        .args(["-H", &format!("Authorization: Bearer {key}"), "-H", "Content-Type: application/json"])
        .args(["-d", &format!(r#"{{
    "device_id": "{thing}",
    "timestamp": "2025-11-17T10:30:00Z",
    "heart_rate": 75,
    "blood_pressure_systolic": 120,
    "blood_pressure_diastolic": 80,
    "temperature": 98.6,
    "temperature_unit": "F"
  }}"#)])
        .output()
        .expect("curl");
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(body["success"], true, "{body}");

    // The seed's Python client, run as written.
    let out = std::process::Command::new(vitalwire_local::python())
        .arg(vitalwire_tests::repo_root().join("tests/seed_vitals_client.py"))
        .args([&key, &gw.api_url, &thing])
        .output()
        .expect("python with requests (scripts/dev-env.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or(Value::Null);
    assert_eq!(result["success"], true, "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(result["vital_sign_id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abnormal_vitals_raise_news2_and_glucose_alerts_once() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = gateway_device(&api, "DEV007").await;
    let key = new_key(&api, &thing, json!({"name": "k"})).await["apiKey"].as_str().unwrap().to_owned();
    let post = |body: Value| {
        let (api, key) = (&api, key.clone());
        async move {
            let (status, _, body) = with_key(api, Method::POST, "/api/iot/vitals", &key, Some(&body)).await;
            assert!(status.is_success(), "{body}");
            body["alerts_triggered"].as_u64().unwrap()
        }
    };
    let at = |minute: u32| format!("2025-11-17T10:{minute:02}:00Z");
    assert_eq!(post(json!({"device_id": thing, "timestamp": at(0), "heart_rate": 80, "temperature": 37.0, "temperature_unit": "C"})).await, 0, "normal");
    // A single parameter scoring 3 (heart rate 135): low-medium.
    assert_eq!(post(json!({"device_id": thing, "timestamp": at(5), "heart_rate": 135})).await, 1);
    // Still open at the same severity: not raised again.
    assert_eq!(post(json!({"device_id": thing, "timestamp": at(10), "heart_rate": 140})).await, 0);
    // The aggregate over the window: RR 26 (3) + HR 140 in the window (3) + SpO2 90 (3) + 102.5 °F (2) = 11, high.
    let high = json!({"device_id": thing, "timestamp": at(15), "respiratory_rate": 26, "oxygen_saturation": 90, "temperature": 102.5, "temperature_unit": "F"});
    assert_eq!(post(high.clone()).await, 1);
    let (status, _, again) = with_key(&api, Method::POST, "/api/iot/vitals", &key, Some(&high)).await;
    assert_eq!((status, again["alerts_triggered"].as_u64()), (StatusCode::OK, Some(0)), "a redelivered reading raises nothing");
    // Glucose thresholds.
    assert_eq!(post(json!({"device_id": thing, "timestamp": at(20), "glucose": 62})).await, 1);
    assert_eq!(post(json!({"device_id": thing, "timestamp": at(25), "glucose": 110})).await, 0);

    let clinician = api.token(Role::Clinician, None);
    let (status, _) = api.call(Method::GET, "/patients/P123/alerts", Some(&clinician), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not in the clinician's care yet");
    api.care_for("P123").await;
    let (status, listed) = api.call(Method::GET, "/patients/P123/alerts", Some(&clinician), None).await;
    assert_eq!(status, StatusCode::OK);
    let alerts = listed["alerts"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = alerts.iter().map(|a| (a["kind"].as_str().unwrap(), a["severity"].as_str().unwrap())).collect();
    assert_eq!(kinds.len(), 3, "{listed}");
    assert!(kinds.contains(&("news2", "low-medium")) && kinds.contains(&("news2", "high")) && kinds.contains(&("glucose_low", "medium")), "{kinds:?}");
    let high = alerts.iter().find(|a| a["severity"] == "high").unwrap();
    assert_eq!((high["score"].as_u64(), high["partialSet"].as_bool(), high["status"].as_str()), (Some(11), Some(true), Some("open")));
    assert_eq!(high["deviceId"], thing.as_str());
    let parameters: Vec<&str> = high["contributingReadings"].as_array().unwrap().iter().map(|c| c["parameter"].as_str().unwrap()).collect();
    assert_eq!(parameters, ["respiratory_rate", "oxygen_saturation", "heart_rate", "temperature"]);
    let temp = high["contributingReadings"].as_array().unwrap().iter().find(|c| c["parameter"] == "temperature").unwrap();
    assert_eq!((temp["value"].as_str(), temp["unit"].as_str(), temp["score"].as_u64()), (Some("102.5"), Some("[degF]"), Some(2)), "kept in the device's unit");
    let (status, _) = api.call(Method::GET, "/patients/P123/alerts", Some(&api.token(Role::Patient, Some("P999"))), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another patient's alerts stay hidden");

    // A clinician closes the high alert: the next abnormal set may raise one again.
    let high_id = high["alertId"].as_str().unwrap().to_owned();
    let close = format!("/patients/P123/alerts/{high_id}/close");
    let (status, _) = api.call(Method::POST, &close, Some(&api.token(Role::Patient, Some("P123"))), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "patients do not close alerts");
    let (status, closed) = api.call(Method::POST, &close, Some(&clinician), None).await;
    assert_eq!((status, closed["status"].as_str(), closed["closedBy"].as_str()), (StatusCode::OK, Some("closed"), Some("tester")), "{closed}");
    assert_eq!(post(json!({"device_id": thing, "timestamp": at(30), "respiratory_rate": 27, "heart_rate": 141})).await, 1, "raised again once closed");
    let (status, _) = api.call(Method::POST, "/patients/P123/alerts/nope/close", Some(&clinician), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // What an operator's dashboard shows: readings, the redelivery, alerts by severity.
    let metrics = local_metrics(&api).await;
    let vitals = ("Service", "iot-vitals");
    assert_eq!((metric(&metrics, "ReadingsFiled", &[vitals]), metric(&metrics, "DuplicateReadings", &[vitals])), (7, 1));
    assert_eq!(metric(&metrics, "AlertsRaised", &[vitals, ("Severity", "high")]), 2, "the aggregate, and again once closed");
    assert_eq!(metric(&metrics, "AlertsRaised", &[vitals, ("Severity", "low-medium")]), 1);
    assert_eq!(metric(&metrics, "AlertsRaised", &[vitals]), 4);
    assert_eq!((metric(&metrics, "Invocations", &[vitals]), metric(&metrics, "Errors", &[vitals])), (8, 0));
    let duration = metrics.iter().find(|m| m["metric"] == "Duration" && m["dimensions"]["Service"] == "iot-vitals").unwrap();
    assert_eq!((duration["unit"].as_str(), duration["samples"].as_u64()), (Some("Milliseconds"), Some(8)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_store_deduplicates_against_the_highest_alert_still_open() {
    use vitalwire::clinical::news2::Severity;
    use vitalwire::clinical::{Alert, AlertKind, AlertStatus, AlertStore, DynamoAlertStore};
    let stack = vitalwire_tests::TestStack::new().await;
    let store: DynamoAlertStore = stack.deps("patient-alerts");
    let alert = |id: &str, severity: Severity| Alert {
        alert_id: id.into(),
        patient_id: "P1".into(),
        device_id: "d".into(),
        kind: AlertKind::News2,
        score: Some(3),
        severity,
        partial: true,
        contributions: Vec::new(),
        set_at: format!("2025-11-17T10:00:0{}.000Z", id.len()),
        raised_at: "2025-11-17T10:00:10.000Z".into(),
        status: AlertStatus::Open,
        closed_at: None,
        closed_by: None,
    };
    assert!(store.raise(&alert("a", Severity::LowMedium)).await.unwrap());
    assert!(!store.raise(&alert("b", Severity::LowMedium)).await.unwrap(), "same severity open");
    assert!(store.raise(&alert("cc", Severity::High)).await.unwrap(), "higher than what is open");
    store.close("P1", "cc", "nurse", "2025-11-17T11:00:00.000Z").await.unwrap().unwrap();
    assert!(!store.raise(&alert("ddd", Severity::LowMedium)).await.unwrap(), "the low-medium alert is still open");
    let closed = store.close("P1", "a", "nurse", "2025-11-17T11:05:00.000Z").await.unwrap().unwrap();
    assert_eq!((closed.status, closed.closed_by.as_deref()), (AlertStatus::Closed, Some("nurse")));
    assert!(!store.raise(&alert("cc", Severity::High)).await.unwrap(), "a retried reading set does not raise its closed alert again");
    let republished = Alert { set_at: "2025-11-17T10:03:00.000Z".into(), ..alert("cc", Severity::High) };
    assert!(!store.raise(&republished).await.unwrap(), "nor a set re-published later without a device time (same id, later readingsAt)");
    assert!(store.raise(&alert("ddd", Severity::LowMedium)).await.unwrap(), "nothing open any more");
    assert!(store.close("P1", "nope", "nurse", "x").await.unwrap().is_none());
    let listed = store.for_patient("P1", 50, None).await.unwrap().items;
    assert_eq!(listed.len(), 3, "one record per alert id: {listed:?}");
    assert_eq!(listed.iter().filter(|a| a.status == AlertStatus::Open).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_alerts_are_paged_and_an_old_one_can_still_be_closed() {
    use vitalwire::clinical::news2::Severity;
    use vitalwire::clinical::{Alert, AlertKind, AlertStatus, AlertStore, DynamoAlertStore};
    let stack = vitalwire_tests::TestStack::new().await;
    let store: DynamoAlertStore = stack.deps("patient-alerts");
    for i in 0..7 {
        let alert = Alert {
            alert_id: format!("alert-{i}"),
            patient_id: "P2".into(),
            device_id: "d".into(),
            kind: if i % 2 == 0 { AlertKind::GlucoseLow } else { AlertKind::GlucoseHigh },
            score: None,
            severity: Severity::Medium,
            partial: false,
            contributions: Vec::new(),
            set_at: format!("2025-11-17T10:0{i}:00.000Z"),
            raised_at: format!("2025-11-17T10:0{i}:01.000Z"),
            status: AlertStatus::Open,
            closed_at: None,
            closed_by: None,
        };
        store.raise(&alert).await.unwrap();
        // Close each at once, so that the next of its kind is raised.
        store.close("P2", &alert.alert_id, "nurse", "2025-11-17T11:00:00.000Z").await.unwrap();
    }
    let (mut seen, mut next) = (Vec::new(), None);
    loop {
        let page = store.for_patient("P2", 3, next.as_deref()).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|a| a.alert_id));
        match page.next {
            Some(n) => next = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (0..7).rev().map(|i| format!("alert-{i}")).collect::<Vec<_>>(), "newest first, every page");
    let reopened = store.close("P2", "alert-0", "doctor", "2025-11-17T12:00:00.000Z").await.unwrap();
    assert!(reopened.is_some(), "the oldest alert is found beyond the first page");
}
