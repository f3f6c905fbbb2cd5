//! Fleet provisioning steps over MQTT, as a device does them, for the gateway tests.

use serde_json::{json, Value};
use vitalwire::devices::{Device, DeviceRegistry, DeviceStatus, DynamoDeviceRegistry};
use vitalwire::platform::tables::DEVICES;

use crate::{LocalGateway, MqttTestClient};

pub const CREATE: &str = "$aws/certificates/create/json";
pub const PROVISION: &str = "$aws/provisioning-templates/DefaultProvisioningTemplate/provision/json";

/// Registers a device of "Acme Medical" as an operator would, assigned to `patient-123`.
pub async fn register(gw: &LocalGateway, serial: &str, status: DeviceStatus) {
    let mut device = Device::registered("Acme Medical", serial, "BP-200", "cuff", "2026-11-01T00:00:00.000Z");
    device.status = status;
    device.patient_id = Some("patient-123".into());
    DynamoDeviceRegistry::new(gw.stack.dynamodb.clone(), gw.stack.table(&DEVICES)).put(&device).await.unwrap();
}

/// Connects with the claim certificate and subscribes to the provisioning replies.
pub async fn claim_client(gw: &LocalGateway, client_id: &str) -> MqttTestClient {
    let mut c = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), &gw.read("claim.pem"), &gw.read("claim.key"), client_id)
        .await
        .expect("claim certificate connects");
    for topic in [CREATE, PROVISION] {
        for suffix in ["accepted", "rejected"] {
            let codes = c.subscribe(&format!("{topic}/{suffix}")).await;
            assert!(matches!(codes[0], rumqttc::SubscribeReasonCode::Success(_)), "{topic}/{suffix}");
        }
    }
    c
}

/// Creates keys and a certificate; returns (certificate pem, key pem, token).
pub async fn create_keys(c: &mut MqttTestClient) -> (String, String, String) {
    c.publish(CREATE, "{}").await;
    let accepted = c.message_on(&format!("{CREATE}/accepted")).await.expect("certificate created");
    let s = |k: &str| accepted[k].as_str().unwrap().to_owned();
    assert_eq!(s("certificateId").len(), 64);
    (s("certificatePem"), s("privateKey"), s("certificateOwnershipToken"))
}

/// `RegisterThing` with the ownership token; the accepted or rejected reply.
pub async fn provision(c: &mut MqttTestClient, token: &str, serial: &str) -> Result<Value, Value> {
    let request = json!({
        "certificateOwnershipToken": token,
        "parameters": {"SerialNumber": serial, "Manufacturer": "Acme Medical", "Name": "cuff", "Model": "BP-200"}
    });
    c.publish(PROVISION, request.to_string()).await;
    loop {
        match c.next().await.expect("a provisioning reply") {
            rumqttc::Packet::Publish(p) if p.topic.ends_with("/accepted") => return Ok(serde_json::from_slice(&p.payload).unwrap()),
            rumqttc::Packet::Publish(p) if p.topic.ends_with("/rejected") => return Err(serde_json::from_slice(&p.payload).unwrap()),
            _ => continue,
        }
    }
}

/// Registers and provisions a device; (thing name, certificate PEM, key PEM).
pub async fn provisioned_device(gw: &LocalGateway, serial: &str) -> (String, String, String) {
    register(gw, serial, DeviceStatus::Registered).await;
    let mut claim = claim_client(gw, &format!("provision_{serial}")).await;
    let (cert, key, token) = create_keys(&mut claim).await;
    let thing = provision(&mut claim, &token, serial).await.expect("provisioned")["thingName"].as_str().unwrap().to_owned();
    (thing, cert, key)
}

