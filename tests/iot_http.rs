//! The gateway's IoT HTTP APIs through the real AWS SDK clients, pointed at it only by the
//! standard per-service endpoint variables, as a deployed function's code would be.

use aws_sdk_iot::types::CertificateStatus;
use aws_sdk_iotdataplane::primitives::Blob;
use vitalwire_local::gateway::pki::{certificate_id, pem_to_der};
use vitalwire_tests::provisioning::provisioned_device;
use vitalwire_tests::{LocalGateway, MqttTestClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_reach_the_gateway_through_the_iot_sdks() {
    let gw = LocalGateway::start().await;
    // One test in this binary: the variables are process-wide.
    std::env::set_var("AWS_ENDPOINT_URL_IOT_DATA_PLANE", &gw.iot_endpoint);
    std::env::set_var("AWS_ENDPOINT_URL_IOT", &gw.iot_endpoint);
    let config = vitalwire::platform::aws::load_config().await;

    let (thing, cert, key) = provisioned_device(&gw, "0040").await;
    let mut device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    assert!(matches!(device.subscribe(&thing).await[0], rumqttc::SubscribeReasonCode::Success(_)));

    // Data plane: a function replies on the topic named like the thing.
    let data = aws_sdk_iotdataplane::Client::new(&config);
    data.publish().topic(&thing).qos(1).payload(Blob::new(br#"{"uploadUrl":"https://example.invalid/x"}"#.to_vec())).send().await.expect("Publish");
    let reply = device.message_on(&thing).await.expect("the device receives the reply");
    assert_eq!(reply["uploadUrl"], "https://example.invalid/x");
    let refused = data.publish().topic("a/+/wildcard").send().await;
    assert!(refused.is_err(), "a wildcard is not a topic name");

    // Control plane: deactivating the certificate drops the connection and bars reconnecting.
    let iot = aws_sdk_iot::Client::new(&config);
    let id = certificate_id(&pem_to_der(&cert).unwrap());
    let described = iot.describe_certificate().certificate_id(&id).send().await.expect("DescribeCertificate");
    assert_eq!(described.certificate_description().and_then(|d| d.status()), Some(&CertificateStatus::Active));
    iot.update_certificate().certificate_id(&id).new_status(CertificateStatus::Inactive).send().await.expect("UpdateCertificate");
    assert!(device.closed().await, "the live connection is closed");
    assert!(MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.is_err());
    let missing = iot.update_certificate().certificate_id("0".repeat(64)).new_status(CertificateStatus::Inactive).send().await;
    assert!(missing.unwrap_err().into_service_error().is_resource_not_found_exception());
}
