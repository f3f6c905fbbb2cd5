//! `CreateFileUploadLink` end to end through the local platform: a device asks over MQTT, gets a
//! presigned S3 PUT on its own topic, and uploads with it; refusals come back on the topic.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use sha2::Digest;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::files::registration::RegistrationDeps;
use vitalwire::files::S3ObjectReader;
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

    // Apps read it back as FHIR: clinicians and the device's patient, nobody else.
    let api = vitalwire_tests::Api::new(&gw);
    let path = format!("/devices/{thing}/documents");
    let (status, bundle) = api.call(reqwest::Method::GET, &path, Some(&api.token(vitalwire::access::Role::Clinician, None)), None).await;
    assert_eq!((status.as_u16(), bundle["resourceType"].as_str(), bundle["total"].as_u64()), (200, Some("Bundle"), Some(1)), "{bundle}");
    assert_eq!(bundle["entry"][0]["resource"], document);
    let (status, own) = api.call(reqwest::Method::GET, &path, Some(&api.token(vitalwire::access::Role::Patient, Some("patient-123"))), None).await;
    assert_eq!((status.as_u16(), own["total"].as_u64()), (200, Some(1)));
    let (status, _) = api.call(reqwest::Method::GET, &path, Some(&api.token(vitalwire::access::Role::Patient, Some("patient-999"))), None).await;
    assert_eq!(status.as_u16(), 404, "another patient learns nothing");

    // Redelivery changes nothing.
    let event: aws_lambda_events::s3::S3Event =
        serde_json::from_value(vitalwire_local::s3_events::object_created_event(bucket, keys[0], None, 19, "x", chrono::Utc::now())).unwrap();
    let again = vitalwire::files::registration::handle(&event, &registration_deps(&gw)).await.unwrap();
    assert_eq!(again, [vitalwire::files::registration::Registration::AlreadyRegistered { key: keys[0].to_owned() }]);

    // An object nobody asked a link for is flagged, not registered.
    s3.put_object().bucket(bucket).key(format!("uploads/{thing}/sneaky file.bin")).body(b"x".to_vec().into()).send().await.unwrap();
    let event: aws_lambda_events::s3::S3Event =
        serde_json::from_value(vitalwire_local::s3_events::object_created_event(bucket, &format!("uploads/{thing}/sneaky file.bin"), None, 1, "y", chrono::Utc::now())).unwrap();
    let flagged = vitalwire::files::registration::handle(&event, &registration_deps(&gw)).await.unwrap();
    assert_eq!(flagged, [vitalwire::files::registration::Registration::Unrequested { key: format!("uploads/{thing}/sneaky file.bin") }]);

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
    assert!(gw.stack.wait_for_count(&DEAD_LETTERS, 4).await >= 4, "each refusal and the unrequested object are kept");
}

fn hex_sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn registration_deps(gw: &LocalGateway) -> RegistrationDeps<DynamoUploadStore, S3ObjectReader, DynamoDeviceRegistry, DynamoDeadLetterStore> {
    gw.stack.deps("upload-registered")
}
