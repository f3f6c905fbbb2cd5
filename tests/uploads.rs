//! `CreateFileUploadLink` end to end through the local platform: a device asks over MQTT, gets a
//! presigned S3 PUT on its own topic, and uploads with it; refusals come back on the topic.

use serde_json::json;
use vitalwire::tables::{DEAD_LETTERS, UPLOADS};
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
    let s3 = vitalwire::aws::s3(&gw.stack.config);
    let bucket = gw.stack.stack.bucket("UploadsBucket").unwrap();
    let listed = s3.list_objects_v2().bucket(bucket).prefix(format!("uploads/{thing}/")).send().await.unwrap();
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].ends_with("-ecg-strip.pdf"));
    assert_eq!(gw.stack.count(&UPLOADS).await, 1, "the pending upload is recorded");

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
    assert_eq!(gw.stack.wait_for_count(&DEAD_LETTERS, 3).await, 3, "each refusal is kept");
}
