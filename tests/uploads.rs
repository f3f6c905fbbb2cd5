//! `CreateFileUploadLink` end to end through the local platform: a device asks over MQTT, gets a
//! presigned S3 PUT on its own topic, and uploads with it; refusals come back on the topic.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use sha2::Digest;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::files::registration::RegistrationDeps;
use vitalwire::files::S3UploadedObjects;
use vitalwire::files::DynamoUploadStore;
use vitalwire::platform::tables::{DEAD_LETTERS, UPLOADS};
use vitalwire_tests::provisioning::provisioned_device;
use vitalwire_tests::{LocalGateway, MqttTestClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_gets_an_upload_link_on_its_topic_and_uploads_with_it() {
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0090").await;
    let mut device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    assert!(matches!(device.subscribe(&thing).await[0], rumqttc::SubscribeReasonCode::Success(_)));

    device.publish("$aws/rules/CreateFileUploadLink", json!({"fileName": "ecg-strip.pdf", "contentType": "application/pdf"}).to_string()).await;
    let reply = device.message_on(&thing).await.expect("a reply on the thing's topic");
    let url = reply["uploadUrl"].as_str().expect("uploadUrl").to_owned();
    assert!(url.contains(&format!("/uploads/{thing}/")), "under the device's own prefix: {url}");
    assert!(url.contains("X-Amz-Expires=900"), "valid 15 minutes: {url}");
    assert!(url.contains("content-type"), "bound to the content type: {url}");

    let put = reqwest::Client::new()
        .put(&url)
        .header("content-type", "application/pdf")
        .body(b"%PDF-1.7 test strip".to_vec())
        .send()
        .await
        .expect("PUT");
    assert!(put.status().is_success(), "{}", put.status());
    let s3 = vitalwire::platform::aws::s3(&gw.stack.config);
    let bucket = gw.stack.stack.bucket("DeviceFilesBucket").unwrap();
    let listed = s3.list_objects_v2().bucket(bucket).prefix(format!("uploads/{thing}/")).send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].ends_with("-ecg-strip.pdf"));
    assert_eq!(gw.stack.count(&UPLOADS).await, 1, "the upload is recorded");

    // The ObjectCreated event completes the upload and files a DocumentReference.
    let table = gw.stack.table(&UPLOADS);
    let mut item = None;
    for _ in 0..50 {
        let out = gw.stack.dynamodb.get_item().table_name(&table).key("objectKey", AttributeValue::S(keys[0].to_owned())).send().await.unwrap();
        if out.item().and_then(|i| i.get("status")).and_then(|s| s.as_s().ok()).is_some_and(|s| s == "COMPLETED") {
            item = out.item;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let item = item.expect("the upload was registered");
    assert_eq!(item["sizeBytes"].as_n().unwrap(), "19");
    assert_eq!(item["sha256"].as_s().unwrap(), &hex_sha256(b"%PDF-1.7 test strip"));
    let document: serde_json::Value = serde_json::from_str(item["documentReference"].as_s().unwrap()).unwrap();
    assert_eq!(document["resourceType"], "DocumentReference");
    assert_eq!(document["author"][0]["reference"], format!("Device/{thing}"));
    assert_eq!(document["subject"]["reference"], "Patient/patient-123");
    assert_eq!(document["content"][0]["attachment"]["contentType"], "application/pdf");
    assert_eq!(document["content"][0]["attachment"]["size"], 19);
    vitalwire_tests::assert_valid_fhir(&document.to_string());

    // Apps read it back as FHIR: the patient's care team and the device's patient, nobody else.
    let api = vitalwire_tests::Api::new(&gw);
    let path = format!("/devices/{thing}/documents");
    api.care_for("patient-123").await;
    let (status, bundle) = api.call(reqwest::Method::GET, &path, Some(&api.token(vitalwire::access::Role::Clinician, None)), None).await;
    assert_eq!((status.as_u16(), bundle["resourceType"].as_str(), bundle["total"].as_u64()), (200, Some("Bundle"), Some(1)), "{bundle}");
    assert_eq!(bundle["entry"][0]["resource"], document);
    let (status, own) = api.call(reqwest::Method::GET, &path, Some(&api.token(vitalwire::access::Role::Patient, Some("patient-123"))), None).await;
    assert_eq!((status.as_u16(), own["total"].as_u64()), (200, Some(1)));
    let (status, _) = api.call(reqwest::Method::GET, &path, Some(&api.token(vitalwire::access::Role::Patient, Some("patient-999"))), None).await;
    assert_eq!(status.as_u16(), 404, "another patient learns nothing");
    // And by id through the FHIR API (the uploads' document index), with its version.
    let (status, read) = api.call(reqwest::Method::GET, &format!("/fhir/DocumentReference/{}", document["id"].as_str().unwrap()), Some(&api.token(vitalwire::access::Role::Clinician, None)), None).await;
    assert_eq!(status.as_u16(), 200, "{read}");
    assert_eq!((read["id"].clone(), read["content"].clone(), read["meta"]["lastUpdated"].clone()), (document["id"].clone(), document["content"].clone(), document["date"].clone()));
    vitalwire_tests::assert_valid_fhir(&read.to_string());

    // Redelivery changes nothing.
    let registered_version = item["versionId"].as_s().expect("the registered version").to_owned();
    assert_eq!(document["identifier"][1]["value"], registered_version.as_str());
    let event = created_event(bucket, keys[0], Some(&registered_version), 19);
    let again = vitalwire::files::registration::handle(&event, &registration_deps(&gw)).await.unwrap();
    assert_eq!(again, [vitalwire::files::registration::Registration::AlreadyRegistered { key: keys[0].to_owned() }]);

    // The link used again after registration: the new version is refused and set aside, and
    // the object behind the DocumentReference stays the registered one.
    let put = reqwest::Client::new().put(&url).header("content-type", "application/pdf").body(b"%PDF-1.7 forged".to_vec()).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let letter = wait_for_dead_letter(&gw, "OVERWRITE_REFUSED").await;
    assert!(letter["reason"].as_s().unwrap().contains(&format!("refused/{}/", keys[0])), "{letter:?}");
    let current = s3.get_object().bucket(bucket).key(keys[0]).send().await.unwrap();
    assert_eq!(current.version_id(), Some(registered_version.as_str()));
    assert_eq!(current.body.collect().await.unwrap().into_bytes().as_ref(), b"%PDF-1.7 test strip");
    let aside = s3.list_objects_v2().bucket(bucket).prefix(format!("refused/{}/", keys[0])).send().await.unwrap();
    let aside_key = aside.contents()[0].key().unwrap().to_owned();
    let kept = s3.get_object().bucket(bucket).key(&aside_key).send().await.unwrap();
    assert_eq!(kept.body.collect().await.unwrap().into_bytes().as_ref(), b"%PDF-1.7 forged", "the refused bytes are kept");

    // An object nobody asked a link for is flagged, not registered.
    s3.put_object().bucket(bucket).key(format!("uploads/{thing}/sneaky file.bin")).body(b"x".to_vec().into()).send().await.unwrap();
    let event = created_event(bucket, &format!("uploads/{thing}/sneaky file.bin"), None, 1);
    let flagged = vitalwire::files::registration::handle(&event, &registration_deps(&gw)).await.unwrap();
    assert_eq!(
        flagged,
        [vitalwire::files::registration::Registration::Refused { key: format!("uploads/{thing}/sneaky file.bin"), reason_code: "UNREQUESTED_UPLOAD" }]
    );

    for (request, code) in [
        (json!({"fileName": "../../etc/passwd", "contentType": "application/pdf"}), "INVALID_FILE_NAME"),
        (json!({"fileName": "run.sh", "contentType": "application/x-sh"}), "INVALID_CONTENT_TYPE"),
        (json!({"fileName": "x.png"}), "INVALID_REQUEST"),
    ] {
        device.publish("$aws/rules/CreateFileUploadLink", request.to_string()).await;
        let refusal = device.message_on(&thing).await.expect("a refusal on the thing's topic");
        assert_eq!(refusal["error"]["code"], code, "{request}");
        assert!(refusal["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(gw.stack.wait_for_count(&DEAD_LETTERS, 5).await >= 5, "each refusal, the overwrite and the unrequested object are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_for_an_announced_size_takes_that_size_and_big_files_are_refused_unread() {
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0091").await;
    let mut device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    device.subscribe(&thing).await;

    let body = b"0123456789abcdef".to_vec();
    device
        .publish("$aws/rules/CreateFileUploadLink", json!({"fileName": "trace.bin", "contentType": "application/octet-stream", "fileSize": body.len()}).to_string())
        .await;
    let reply = device.message_on(&thing).await.expect("a reply");
    let url = reqwest::Url::parse(reply["uploadUrl"].as_str().expect("uploadUrl")).unwrap();
    let signed = url.query_pairs().find(|(k, _)| k == "X-Amz-SignedHeaders").map(|(_, v)| v.into_owned()).unwrap();
    assert_eq!(signed.split(';').collect::<Vec<_>>(), ["content-length", "content-type", "host"], "the size is signed: {url}");

    device
        .publish("$aws/rules/CreateFileUploadLink", json!({"fileName": "huge.bin", "contentType": "application/octet-stream", "fileSize": 200u64 << 20}).to_string())
        .await;
    let refusal = device.message_on(&thing).await.expect("a refusal");
    assert_eq!(refusal["error"]["code"], "FILE_TOO_LARGE", "{refusal}");

    // The DynamoDB store counts the links given in the last hour, less a redelivered request.
    let uploads: DynamoUploadStore = gw.stack.deps("upload-link");
    let hour_ago = vitalwire::platform::time::format_utc(chrono::Utc::now() - chrono::Duration::hours(1));
    use vitalwire::files::UploadStore;
    assert_eq!(uploads.links_since(&thing, &hour_ago, "none", 20).await.unwrap(), 1);
    let given = gw.stack.dynamodb.scan().table_name(gw.stack.table(&UPLOADS)).send().await.unwrap();
    let object_key = given.items()[0]["objectKey"].as_s().unwrap().clone();
    assert_eq!(uploads.links_since(&thing, &hour_ago, &object_key, 20).await.unwrap(), 0);
    assert_eq!(uploads.links_since(&thing, "2999-01-01T00:00:00.000Z", "none", 20).await.unwrap(), 0);

    // An object over the cap is refused from its length without hashing it, and kept.
    let s3 = vitalwire::platform::aws::s3(&gw.stack.config);
    let bucket = gw.stack.stack.bucket("DeviceFilesBucket").unwrap();
    let put = s3.put_object().bucket(bucket).key(&object_key).body(body.clone().into()).send().await.unwrap();
    let mut deps = registration_deps(&gw);
    deps.max_bytes = 8;
    // The event claims a small size; the object's length is what counts.
    let outcome = vitalwire::files::registration::handle(&created_event(bucket, &object_key, put.version_id(), 4), &deps).await.unwrap();
    assert_eq!(outcome, [vitalwire::files::registration::Registration::Refused { key: object_key.clone(), reason_code: "FILE_TOO_LARGE" }]);
    assert!(s3.head_object().bucket(bucket).key(&object_key).send().await.is_ok(), "kept for the operator");
}

fn created_event(bucket: &str, key: &str, version: Option<&str>, size: i64) -> aws_lambda_events::s3::S3Event {
    serde_json::from_value(vitalwire_local::s3_events::object_created_event(bucket, key, version, size, "x", chrono::Utc::now())).unwrap()
}

async fn wait_for_dead_letter(gw: &LocalGateway, code: &str) -> std::collections::HashMap<String, AttributeValue> {
    for _ in 0..100 {
        let all = gw.stack.dynamodb.scan().table_name(gw.stack.table(&DEAD_LETTERS)).send().await.unwrap();
        if let Some(letter) = all.items().iter().find(|i| i.get("reasonCode").and_then(|c| c.as_s().ok()).is_some_and(|c| c == code)) {
            return letter.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no {code} dead letter");
}

fn hex_sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn registration_deps(gw: &LocalGateway) -> RegistrationDeps<DynamoUploadStore, S3UploadedObjects, DynamoDeviceRegistry, DynamoDeadLetterStore> {
    gw.stack.deps("upload-registered")
}
