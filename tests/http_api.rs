//! The device admin API and the FHIR read route over real HTTP, through the local HTTP API
//! (template routes, API Gateway payload 2.0, the `authorizer` handler).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vitalwire::access::Role;
use vitalwire_tests::provisioning::{claim_client, create_keys, provision, provisioned_device};
use vitalwire_tests::{Api, LocalGateway, MqttTestClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_roles_are_enforced_with_json_errors() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let (status, body) = api.call(Method::GET, "/admin/devices", None, None).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"message": "Unauthorized"})));
    let (status, body) = api.call(Method::GET, "/admin/devices", Some("garbage"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    let expired = gw.auth().mint("old", Role::Admin, None, -5).unwrap();
    let (status, body) = api.call(Method::GET, "/admin/devices", Some(&expired), None).await;
    assert_eq!((status, body["error"]["message"].as_str()), (StatusCode::UNAUTHORIZED, Some("the token has expired")));
    // A token from another key is refused even with the right claims.
    let stranger = vitalwire_local::http_api::LocalAuth::load_or_create(&gw.certs_dir.join("other-auth")).unwrap();
    let (status, _) = api.call(Method::GET, "/admin/devices", Some(&stranger.mint("x", Role::Admin, None, 10).unwrap()), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for role in [Role::Clinician, Role::Patient] {
        let (status, body) = api.call(Method::GET, "/admin/devices", Some(&api.token(role, Some("p1"))), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role:?}");
        assert_eq!(body["error"]["code"], "FORBIDDEN");
    }
    let (status, _) = api.call(Method::GET, "/nowhere", Some(&api.token(Role::Admin, None)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_register_list_get_and_assign_devices() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let admin = Some(admin.as_str());
    let registration = json!({"serialNumber": "8001", "manufacturer": "Acme Medical", "model": "BP-200", "displayName": "Ward cuff"});
    let (status, device) = api.call(Method::POST, "/admin/devices", admin, Some(registration.clone())).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!((device["thingName"].as_str(), device["status"].as_str()), (Some("acme-medical-8001"), Some("REGISTERED")));
    let (status, body) = api.call(Method::POST, "/admin/devices", admin, Some(registration)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")));
    let (status, body) = api.call(Method::POST, "/admin/devices", admin, Some(json!({"serialNumber": " ", "manufacturer": "Acme"}))).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("serialNumber")));
    let (status, body) = api.call(Method::POST, "/admin/devices", admin, Some(json!({"serial": "1"}))).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("body")));
    api.call(Method::POST, "/admin/devices", admin, Some(json!({"serialNumber": "8002", "manufacturer": "Acme Medical"}))).await;

    // Paging: one at a time until there is no next page.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(n) => format!("/admin/devices?limit=1&next={n}"),
            None => "/admin/devices?limit=1".to_owned(),
        };
        let (status, page) = api.call(Method::GET, &path, admin, None).await;
        assert_eq!(status, StatusCode::OK);
        seen.extend(page["devices"].as_array().unwrap().iter().map(|d| d["thingName"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(n) => next = Some(n.to_owned()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["acme-medical-8001", "acme-medical-8002"]);
    let (status, _) = api.call(Method::GET, "/admin/devices?limit=0", admin, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, device) = api.call(Method::GET, "/admin/devices/acme-medical-8001", admin, None).await;
    assert_eq!((status, device["displayName"].as_str()), (StatusCode::OK, Some("Ward cuff")));
    let (status, _) = api.call(Method::GET, "/admin/devices/nope", admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, device) = api.call(Method::PUT, "/admin/devices/acme-medical-8001/patient", admin, Some(json!({"patientId": "p-1"}))).await;
    assert_eq!((status, device["patientId"].as_str()), (StatusCode::OK, Some("p-1")));
    let (status, body) = api.call(Method::PUT, "/admin/devices/acme-medical-8001/patient", admin, Some(json!({"patientId": "not valid!"}))).await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("patientId")));
    let (status, device) = api.call(Method::DELETE, "/admin/devices/acme-medical-8001/patient", admin, None).await;
    assert_eq!((status, device["patientId"].clone()), (StatusCode::OK, Value::Null));
    let (status, _) = api.call(Method::PUT, "/admin/devices/nope/patient", admin, Some(json!({"patientId": "p-1"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivating_a_device_makes_its_certificate_unusable() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let admin = Some(admin.as_str());
    let (thing, cert, key) = provisioned_device(&gw, "0070").await;
    let ca = gw.read("ca.pem");
    let mut live = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();

    let (status, device) = api.call(Method::PUT, &format!("/admin/devices/{thing}/status"), admin, Some(json!({"status": "INACTIVE"}))).await;
    assert_eq!((status, device["status"].as_str()), (StatusCode::OK, Some("INACTIVE")));
    assert!(live.closed().await, "the live connection is dropped");
    assert!(MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), &thing).await.is_err());

    let (status, _) = api.call(Method::PUT, &format!("/admin/devices/{thing}/status"), admin, Some(json!({"status": "ACTIVE"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), &thing).await.is_ok());

    let (status, _) = api.call(Method::PUT, &format!("/admin/devices/{thing}/status"), admin, Some(json!({"status": "BLOCKED"}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), &thing).await.is_err());
    let (status, body) = api.call(Method::PUT, &format!("/admin/devices/{thing}/status"), admin, Some(json!({"status": "ACTIVE"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")));
    let (status, _) = api.call(Method::PUT, &format!("/admin/devices/{thing}/status"), admin, Some(json!({"status": "REGISTERED"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A blocked device cannot provision itself again with a new certificate either.
    let mut claim = claim_client(&gw, "provision_again").await;
    let (_, _, token) = create_keys(&mut claim).await;
    assert_eq!(provision(&mut claim, &token, "0070").await.unwrap_err()["errorCode"], "AccessDenied");
    let (status, letters) = api.call(Method::GET, "/admin/dead-letters?source=provisioning-hook", admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(letters["deadLetters"][0]["reason"], format!("device '{thing}' is BLOCKED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_are_read_back_as_a_fhir_bundle_by_who_may_see_them() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let (thing, cert, key) = provisioned_device(&gw, "0080").await;
    let device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    device
        .publish("$aws/rules/FHIRIngest", json!({"value": "36.60", "unit": "Cel", "coding": [{"system": "http://loinc.org", "code": "8310-5"}]}).to_string())
        .await;
    assert_eq!(gw.stack.wait_for_count(&vitalwire::platform::tables::OBSERVATIONS, 1).await, 1);

    let path = format!("/devices/{thing}/observations");
    // A clinician reads them once the patient is in their care, and not before.
    let (status, _) = api.call(Method::GET, &path, Some(&api.token(Role::Clinician, None)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    api.care_for("patient-123").await;
    let (status, bundle) = api.call(Method::GET, &path, Some(&api.token(Role::Clinician, None)), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((bundle["resourceType"].as_str(), bundle["type"].as_str(), bundle["total"].as_u64()), (Some("Bundle"), Some("searchset"), Some(1)));
    let observation = &bundle["entry"][0]["resource"];
    assert_eq!(observation["code"]["coding"][0]["code"], "8310-5");
    assert_eq!(observation["subject"]["reference"], "Patient/patient-123");
    vitalwire_tests::assert_valid_fhir(&bundle.to_string());

    // The device's patient may read it; another patient learns nothing.
    let (status, _) = api.call(Method::GET, &path, Some(&api.token(Role::Patient, Some("patient-123"))), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.call(Method::GET, &path, Some(&api.token(Role::Patient, Some("someone-else"))), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.call(Method::GET, &path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Every read of the patient's data, and the refused attempt, is in the patient's audit log.
    let admin = api.token(Role::Admin, None);
    let (status, log) = api.call(Method::GET, "/admin/patients/patient-123/audit", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let mut seen: Vec<(String, u64)> = log["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == path.as_str())
        .map(|r| (r["role"].as_str().unwrap().to_owned(), r["status"].as_u64().unwrap()))
        .collect();
    seen.sort();
    assert_eq!(seen, [("clinician".to_owned(), 200), ("clinician".to_owned(), 404), ("patient".to_owned(), 200), ("patient".to_owned(), 404)]);
    assert!(log["audit"].as_array().unwrap().iter().any(|r| r["path"] == "/admin/patients/patient-123/care-team"), "setting the team is audited too");
    let (status, _) = api.call(Method::GET, "/admin/patients/patient-123/audit", Some(&api.token(Role::Clinician, None)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_register_firmware_and_upload_it_with_the_returned_url() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let admin = Some(admin.as_str());
    let image = b"firmware 2.1.0 for BP-200".to_vec();
    let sha256: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&image).iter().map(|b| format!("{b:02x}")).collect()
    };
    let registration = json!({"version": "2.1.0", "deviceModel": "BP-200", "sha256": sha256, "sizeBytes": image.len()});
    let (status, firmware) = api.call(Method::POST, "/admin/firmware", admin, Some(registration.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{firmware}");
    assert_eq!(firmware["firmwareId"], "bp-200-2.1.0");
    let url = firmware["uploadUrl"].as_str().expect("uploadUrl");
    assert!(url.contains("/firmware/bp-200/2.1.0/") && url.contains("X-Amz-Expires=900"), "{url}");
    let put = api.http.put(url).header("content-type", "application/octet-stream").body(image.clone()).send().await.unwrap();
    assert!(put.status().is_success());

    let (status, body) = api.call(Method::POST, "/admin/firmware", admin, Some(registration)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("CONFLICT")));
    let (status, body) = api
        .call(Method::POST, "/admin/firmware", admin, Some(json!({"version": "2.2.0", "deviceModel": "BP-200", "sha256": "abc", "sizeBytes": 1})))
        .await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("sha256")));
    let (status, body) = api
        .call(Method::POST, "/admin/firmware", admin, Some(json!({"version": "../x", "deviceModel": "BP-200", "sha256": sha256, "sizeBytes": 1})))
        .await;
    assert_eq!((status, body["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("version")));
    api.call(Method::POST, "/admin/firmware", admin, Some(json!({"version": "1.0.0", "deviceModel": "OX-10", "sha256": sha256, "sizeBytes": 3}))).await;

    let (status, list) = api.call(Method::GET, "/admin/firmware?deviceModel=BP-200", admin, None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = list["firmware"].as_array().unwrap().iter().map(|f| f["firmwareId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, ["bp-200-2.1.0"]);
    let (_, all) = api.call(Method::GET, "/admin/firmware", admin, None).await;
    assert_eq!(all["firmware"].as_array().unwrap().len(), 2);
    let (status, _) = api.call(Method::GET, "/admin/firmware", Some(&api.token(Role::Clinician, None)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
