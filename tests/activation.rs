//! The Polaris activation API over real HTTP on the local platform, activations kept in
//! DynamoDB (the moto emulator): a clinician activates a patient, the patient's app exchanges
//! the code and OTP once for an authorisation code, and that for patient JWTs the messages API
//! accepts; ten wrong OTPs lock an activation, an expired one is refused like an unknown one.
//! A ward tablet is registered, activated with its 9-digit code and signs a clinician in, as
//! the reference's `device_activation.feature` and `clinician.feature` go.

use reqwest::StatusCode;
use serde_json::{json, Value};
use vitalwire::platform::tables::ACTIVATIONS;
use vitalwire_tests::LocalGateway;

async fn send(gw: &LocalGateway, method: reqwest::Method, path: &str, token: Option<&str>, headers: &[(&str, &str)], body: Option<Value>) -> (StatusCode, Value) {
    let (status, _, body) = vitalwire_tests::Api::new(gw).call_with(method, path, token, headers, body).await;
    (status, body)
}

/// Activates patient `p` as a Polaris clinician: the code and the OTP.
async fn activate(gw: &LocalGateway, patient: &str) -> (String, String) {
    let clinician = gw.polaris().mint(&[("clinician_id", "c-1")], "read:gdm_activation write:gdm_activation", 10).unwrap();
    let (status, body) = send(gw, reqwest::Method::POST, &format!("/dhos/v1/patient/{patient}/activation"), Some(&clinician), &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body["activation_code"].as_str().unwrap().to_owned(), body["otp"].as_str().unwrap().to_owned())
}

async fn exchange(gw: &LocalGateway, code: &str, otp: &str) -> (StatusCode, Value) {
    send(gw, reqwest::Method::POST, &format!("/dhos/v1/activation/{code}"), None, &[], Some(json!({"otp": otp}))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_app_activates_once_and_its_jwts_reach_its_messages() {
    let gw = LocalGateway::start().await;
    let (code, otp) = activate(&gw, "p-1").await;
    let (status, body) = exchange(&gw, &code, &otp).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["patient_id"], "p-1");
    let authorisation = body["authorisation_code"].as_str().unwrap().to_owned();
    assert_eq!(exchange(&gw, &code, &otp).await, (StatusCode::NOT_FOUND, json!({"message": "Could not find relevant activation"})), "single use");

    let (status, body) = send(&gw, reqwest::Method::GET, "/dhos/v1/patient/p-1/jwt", None, &[("x-authorisation-code", &authorisation)], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jwt = body["jwt"].as_str().unwrap().to_owned();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::HS512);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS512);
    validation.set_audience(&[&gw.polaris().issuer]);
    validation.set_issuer(&[&gw.polaris().issuer]);
    let claims = jsonwebtoken::decode::<Value>(&jwt, &jsonwebtoken::DecodingKey::from_secret(gw.polaris().key.as_bytes()), &validation).unwrap().claims;
    assert_eq!(claims["metadata"], json!({"patient_id": "p-1"}));
    let lifetime = claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((890..=900).contains(&lifetime), "900 s: {lifetime}");
    assert!(claims["scope"].as_str().unwrap().split(' ').any(|s| s == "read:gdm_message"));
    // The patient's JWT is accepted by the messages API as that patient, and only as them.
    let (status, _) = send(&gw, reqwest::Method::GET, "/dhos/v1/sender_or_receiver/p-1/message", Some(&jwt), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&gw, reqwest::Method::GET, "/dhos/v1/sender_or_receiver/p-2/message", Some(&jwt), &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = send(&gw, reqwest::Method::GET, "/dhos/v1/patient/p-1/jwt", None, &[("x-authorisation-code", "NOTTHECODE")], None).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"message": "Invalid combination of patient_id and code"})));

    // The clinician sees the completed activation.
    let clinician = gw.polaris().mint(&[("clinician_id", "c-1")], "read:gdm_activation", 10).unwrap();
    let (_, listed) = send(&gw, reqwest::Method::GET, "/dhos/v1/patient/p-1/activation", Some(&clinician), &[], None).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, _) = send(&gw, reqwest::Method::GET, "/dhos/v1/patient/p-1/activation", Some(&jwt), &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a patient token has no read:gdm_activation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_otps_lock_and_expiry_refuses_each_with_the_same_404() {
    let gw = LocalGateway::start().await;
    let (code, otp) = activate(&gw, "p-3").await;
    let wrong = if otp == "aaaa" { "bbbb" } else { "aaaa" };
    for _ in 0..10 {
        assert_eq!(exchange(&gw, &code, wrong).await.0, StatusCode::NOT_FOUND);
    }
    assert_eq!(exchange(&gw, &code, &otp).await, (StatusCode::NOT_FOUND, json!({"message": "Could not find relevant activation"})), "locked");

    // An activation past the end of its fifth day: moved back in the table, then refused.
    let (code, otp) = activate(&gw, "p-4").await;
    let table = gw.stack.table(&ACTIVATIONS);
    let scan = gw.stack.dynamodb.scan().table_name(&table).send().await.unwrap();
    let open = scan.items().iter().find(|i| i.get("patientId").and_then(|v| v.as_s().ok()).map(String::as_str) == Some("p-4")).unwrap();
    gw.stack
        .dynamodb
        .update_item()
        .table_name(&table)
        .key("pk", open["pk"].clone())
        .update_expression("SET expires = :past")
        .expression_attribute_values(":past", aws_sdk_dynamodb::types::AttributeValue::S("2020-01-06T23:59:59.000Z".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(exchange(&gw, &code, &otp).await.0, StatusCode::NOT_FOUND, "expired");
    // Asked again: a new code and OTP, good again.
    let (new_code, new_otp) = activate(&gw, "p-4").await;
    assert_eq!(exchange(&gw, &new_code, &new_otp).await.0, StatusCode::OK);
    let stored = gw.stack.dynamodb.scan().table_name(&table).send().await.unwrap();
    let text = format!("{:?}", stored.items());
    assert!(!text.contains(&new_code) && !text.contains(&new_otp), "codes and OTPs are kept only hashed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ward_tablet_is_activated_and_signs_clinicians_in_until_either_is_turned_off() {
    use reqwest::Method;
    let gw = LocalGateway::start().await;
    // The reference's integration tests' system token.
    let system = gw.polaris().mint(&[("system_id", "integration-tests")], "write:gdm_activation write:send_device write:send_clinician read:send_device", 10).unwrap();
    let (status, device) = send(&gw, Method::POST, "/dhos/v1/device", Some(&system), &[], Some(json!({"location_id": "L1", "description": "Ward 7 tablet"}))).await;
    assert_eq!(status, StatusCode::OK, "{device}");
    let device_id = device["uuid"].as_str().unwrap().to_owned();
    assert_eq!((device["active"].clone(), device["created_by"].clone()), (json!(true), json!("integration-tests")));
    let (status, moved) = send(&gw, Method::PATCH, &format!("/dhos/v1/device/{device_id}"), Some(&system), &[], Some(json!({"location_id": "L2"}))).await;
    assert_eq!((status, moved["location_id"].clone()), (StatusCode::OK, json!("L2")));
    let (_, listed) = send(&gw, Method::GET, "/dhos/v1/device?location_id=L2,L9", Some(&system), &[], None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let (_, listed) = send(&gw, Method::GET, "/dhos/v1/device?location_id=L1", Some(&system), &[], None).await;
    assert_eq!(listed, json!([]));

    let (status, issued) = send(&gw, Method::POST, &format!("/dhos/v1/device/{device_id}/activation"), Some(&system), &[], None).await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    let code = issued["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 9);
    let (status, activated) = send(&gw, Method::POST, &format!("/dhos/v1/activation/{code}?type=send_entry"), None, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{activated}");
    assert_eq!(activated["device_id"], device_id.as_str());
    let authorisation = activated["authorisation_code"].as_str().unwrap().to_owned();
    let (status, _) = send(&gw, Method::POST, &format!("/dhos/v1/activation/{code}?type=send_entry"), None, &[], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "single use");
    let (status, _) = send(&gw, Method::POST, &format!("/dhos/v1/activation/{code}"), None, &[], Some(json!({"otp": "abcd"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a device code is no patient code");

    let (status, body) = send(&gw, Method::GET, &format!("/dhos/v1/device/{device_id}/jwt"), None, &[("x-authorisation-code", &authorisation)], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let device_jwt = body["jwt"].as_str().unwrap().to_owned();

    let clinician = json!({"clinician_id": "c-7", "login_active": true, "products": ["SEND"], "groups": ["SEND Clinician"], "send_entry_identifier": "666123"});
    let (status, body) = send(&gw, Method::POST, "/dhos/v1/clinician", Some(&system), &[], Some(clinician)).await;
    assert_eq!((status, body), (StatusCode::CREATED, Value::Null));
    let (status, body) = send(&gw, Method::GET, "/dhos/v1/clinician/jwt?send_entry_identifier=666123", Some(&device_jwt), &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS512);
    validation.set_audience(&[&gw.polaris().issuer]);
    let key = jsonwebtoken::DecodingKey::from_secret(gw.polaris().key.as_bytes());
    let claims = jsonwebtoken::decode::<Value>(body["jwt"].as_str().unwrap(), &key, &validation).unwrap().claims;
    assert_eq!(claims["metadata"], json!({"clinician_id": "c-7", "referring_device_id": device_id}));
    let lifetime = claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
    assert!((890..=900).contains(&lifetime), "900 s: {lifetime}");
    let (status, body) = send(&gw, Method::GET, "/dhos/v1/clinician/jwt?send_entry_identifier=000", Some(&device_jwt), &[], None).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, json!({"message": "Invalid clinician identifier"})));
    let (status, _) = send(&gw, Method::GET, "/dhos/v1/clinician/jwt?send_entry_identifier=666123", Some(&system), &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a system token is no tablet");

    // The clinician's login turned off: refused (clinician.feature).
    let off = json!({"login_active": false, "products": ["send"], "groups": ["send clinician"], "send_entry_identifier": "666123"});
    let (status, _) = send(&gw, Method::PATCH, "/dhos/v1/clinician/c-7", Some(&system), &[], Some(off)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(&gw, Method::GET, "/dhos/v1/clinician/jwt?send_entry_identifier=666123", Some(&device_jwt), &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The tablet turned off: it keeps its activation but gets no JWT (device_activation.feature).
    let (status, _) = send(&gw, Method::PATCH, &format!("/dhos/v1/device/{device_id}"), Some(&system), &[], Some(json!({"active": false}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(&gw, Method::GET, &format!("/dhos/v1/device/{device_id}/jwt"), None, &[("x-authorisation-code", &authorisation)], None).await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, json!({"message": "Forbidden"})));
    let (_, listed) = send(&gw, Method::GET, "/dhos/v1/device?active=false", Some(&system), &[], None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    // /drop_data drops the activation service's records too, as the reference's does.
    let (status, body) = send(&gw, Method::POST, "/drop_data", Some(&system), &[], None).await;
    assert_eq!((status, body["complete"].clone()), (StatusCode::OK, json!(true)));
    let (status, _) = send(&gw, Method::GET, &format!("/dhos/v1/device/{device_id}"), Some(&system), &[], None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rs256_issuer_signs_with_its_rsa_key_publishes_it_and_accepts_nothing_else() {
    let gw = LocalGateway::start_polaris_rs256().await;
    let (code, otp) = activate(&gw, "p-rs").await;
    let (_, body) = exchange(&gw, &code, &otp).await;
    let authorisation = body["authorisation_code"].as_str().unwrap().to_owned();
    let (status, body) = send(&gw, reqwest::Method::GET, "/dhos/v1/patient/p-rs/jwt", None, &[("x-authorisation-code", &authorisation)], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let jwt = body["jwt"].as_str().unwrap().to_owned();
    let header = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);

    // The published keys verify it, by its kid; they hold no private part.
    let (status, jwks) = send(&gw, reqwest::Method::GET, "/.well-known/jwks.json", None, &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(jwks["keys"][0].get("d").is_none() && jwks["keys"][0].get("p").is_none(), "{jwks}");
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).expect("the token's key is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&gw.polaris().issuer]);
    let claims = jsonwebtoken::decode::<Value>(&jwt, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap().claims;
    assert_eq!(claims["metadata"], json!({"patient_id": "p-rs"}));

    // The authorizer verifies it with the published keys: the patient reads their messages.
    let (status, _) = send(&gw, reqwest::Method::GET, "/dhos/v1/sender_or_receiver/p-rs/message", Some(&jwt), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    // An HS512 token naming the RS256 issuer is refused, even signed with the stack's HS key.
    let hs = vitalwire::access::polaris::sign(gw.polaris().key.as_bytes(), &gw.polaris().issuer, &[("patient_id", "p-rs")], "read:gdm_message", chrono::Duration::minutes(5)).unwrap();
    let (status, _) = send(&gw, reqwest::Method::GET, "/dhos/v1/sender_or_receiver/p-rs/message", Some(&hs), &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs512_issuer_publishes_no_keys() {
    let gw = LocalGateway::start().await;
    let (status, jwks) = send(&gw, reqwest::Method::GET, "/.well-known/jwks.json", None, &[], None).await;
    assert_eq!((status, jwks), (StatusCode::OK, json!({"keys": []})), "a shared key is never published");
}
