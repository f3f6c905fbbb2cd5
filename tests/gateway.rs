//! The local IoT gateway over real TLS MQTT with a real MQTT client: fleet provisioning by
//! claim, policies, Basic Ingest into DynamoDB.

use std::time::Duration;

use serde_json::{json, Value};
use vitalwire::devices::{DeviceRegistry, DeviceStatus, DynamoDeviceRegistry};
use vitalwire::platform::tables::{DEVICES, OBSERVATIONS};
use vitalwire_local::gateway::registry::CertificateStatus;
use vitalwire_tests::provisioning::{claim_client, create_keys, provision, provisioned_device, register};
use vitalwire_tests::{app_certificate, LocalGateway, MqttTestClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_provisions_by_claim_and_its_measurement_becomes_an_observation() {
    let gw = LocalGateway::start().await;
    register(&gw, "0001", DeviceStatus::Registered).await;
    let mut claim = claim_client(&gw, "provision_0001").await;
    let (cert, key, token) = create_keys(&mut claim).await;
    let accepted = provision(&mut claim, &token, "0001").await.expect("provisioned");
    assert_eq!(accepted, json!({"thingName": "acme-medical-0001", "deviceConfiguration": {}}));

    let device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), "acme-medical-0001")
        .await
        .expect("the new certificate connects as its thing");
    // A number literal with a trailing zero: its precision must survive the gateway.
    let measurement = r#"{"value": 72.50, "unit": "bpm", "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]}"#;
    device.publish("$aws/rules/FHIRIngest", measurement).await;
    let stored = gw.stack.wait_for_count(&OBSERVATIONS, 1).await;
    assert_eq!(stored, 1, "the FHIRIngest rule filed the measurement");
    let out = gw.stack.dynamodb.scan().table_name(gw.stack.table(&OBSERVATIONS)).send().await.unwrap();
    let stored = out.items()[0]["resource"].as_s().unwrap();
    assert!(stored.contains(r#""value":72.50"#), "the device's value text is kept: {stored}");
    let resource: Value = serde_json::from_str(stored).unwrap();
    assert_eq!(resource["device"]["reference"], "Device/acme-medical-0001", "identified by its client id");
    assert_eq!(resource["subject"]["reference"], "Patient/patient-123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_readings_without_a_device_time_loses_none_and_a_republished_message_is_one() {
    use vitalwire::platform::tables::DEAD_LETTERS;
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0070").await;
    let device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    let heart_rate = |value: u32| format!(r#"{{"value": {value}, "unit": "bpm", "coding": [{{"system": "http://loinc.org", "code": "8867-4"}}]}}"#);
    // Five different heart rates back to back over one connection, none with a device time:
    // they may share a receipt millisecond, and are five readings all the same.
    for value in [70, 71, 72, 73, 74] {
        device.publish("$aws/rules/FHIRIngest", heart_rate(value)).await;
    }
    assert_eq!(gw.stack.wait_for_count(&OBSERVATIONS, 5).await, 5, "every reading filed");
    // A device that names its messages has a re-publish (after a lost PUBACK) recognised.
    let named = r#"{"value": 80, "unit": "bpm", "coding": [{"system": "http://loinc.org", "code": "8867-4"}], "messageId": "hr-0070-42"}"#;
    device.publish("$aws/rules/FHIRIngest", named).await;
    assert_eq!(gw.stack.wait_for_count(&OBSERVATIONS, 6).await, 6);
    tokio::time::sleep(Duration::from_millis(50)).await;
    device.publish("$aws/rules/FHIRIngest", named).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 6, "the re-published message is the same reading");
    assert_eq!(gw.stack.count(&DEAD_LETTERS).await, 0, "and nothing was refused");
}

/// `IngestPath=queue`: the same rule, topic and payloads; the rule queues each message in
/// `IngestQueue` and `fhir-ingest-queue` files the batches; a refusal is a dead letter there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_queued_path_measurements_are_filed_in_batches_and_refusals_kept() {
    use vitalwire::platform::tables::DEAD_LETTERS;
    let gw = LocalGateway::start_with_parameters(&[("IngestPath", "queue")]).await;
    let (thing, cert, key) = provisioned_device(&gw, "0071").await;
    let device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    let heart_rate = |value: u32| format!(r#"{{"value": {value}, "unit": "bpm", "coding": [{{"system": "http://loinc.org", "code": "8867-4"}}]}}"#);
    for value in [70, 71, 72, 73, 74] {
        device.publish("$aws/rules/FHIRIngest", heart_rate(value)).await;
    }
    device.publish("$aws/rules/FHIRIngest", r#"{"value": "x", "unit": "bpm", "coding": [{"system": "http://loinc.org", "code": "8867-4"}]}"#).await;
    assert_eq!(gw.stack.wait_for_count(&OBSERVATIONS, 5).await, 5, "every reading filed");
    assert_eq!(gw.stack.wait_for_count(&DEAD_LETTERS, 1).await, 1, "the bad one kept for the operator");
    let (queued, direct) = (("Service", "fhir-ingest-queue"), ("Service", "fhir-ingest"));
    assert_eq!(gw.wait_for_metric("ReadingsFiled", &[queued], 5).await, 5);
    assert_eq!(gw.wait_for_metric("Refusals", &[queued, ("Reason", "INVALID_VALUE")], 1).await, 1);
    assert_eq!(gw.metrics().sum("Invocations", &[direct]), 0, "the rule no longer invokes fhir-ingest");
    // (How many batches the six messages made depends on the timing of SQS's polls.)
    assert!((1..=6).contains(&gw.metrics().sum("Invocations", &[queued])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_provisioning_gets_aws_style_rejections() {
    let gw = LocalGateway::start().await;
    register(&gw, "0002", DeviceStatus::Blocked).await;
    register(&gw, "0003", DeviceStatus::Registered).await;
    let mut claim = claim_client(&gw, "provision_x").await;

    let (_, _, token) = create_keys(&mut claim).await;
    let unknown = provision(&mut claim, &token, "9999").await.unwrap_err();
    assert_eq!(unknown["statusCode"], 403);
    assert_eq!(unknown["errorCode"], "AccessDenied");

    let (_, _, token) = create_keys(&mut claim).await;
    let blocked = provision(&mut claim, &token, "0002").await.unwrap_err();
    assert_eq!(blocked["errorCode"], "AccessDenied");

    let (_, _, token) = create_keys(&mut claim).await;
    provision(&mut claim, &token, "0003").await.expect("first use");
    let reused = provision(&mut claim, &token, "0003").await.unwrap_err();
    assert_eq!(reused["statusCode"], 400);
    assert_eq!(reused["errorMessage"], "the certificate ownership token was already used");

    let bogus = provision(&mut claim, "not-a-token", "0003").await.unwrap_err();
    assert_eq!(bogus["errorCode"], "InvalidCertificateOwnershipToken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_ownership_token_is_refused() {
    let gw = LocalGateway::start_with(Some(Duration::from_millis(200))).await;
    register(&gw, "0004", DeviceStatus::Registered).await;
    let mut claim = claim_client(&gw, "provision_y").await;
    let (_, _, token) = create_keys(&mut claim).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = provision(&mut claim, &token, "0004").await.unwrap_err();
    assert_eq!(expired["errorMessage"], "the certificate ownership token has expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_acts_only_as_its_own_thing() {
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0010").await;
    let ca = gw.read("ca.pem");

    // Connecting under another thing's name is refused (the thing is not attached).
    let other = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "acme-medical-0011").await;
    assert!(other.is_err(), "connected as another thing");

    let mut me = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    assert!(matches!(me.subscribe(&thing).await[0], rumqttc::SubscribeReasonCode::Success(_)));
    assert_eq!(me.subscribe("acme-medical-0011").await[0], rumqttc::SubscribeReasonCode::Failure);
    assert_eq!(me.subscribe("$aws/rules/FHIRIngest").await[0], rumqttc::SubscribeReasonCode::Failure);
    assert_eq!(me.subscribe("#").await[0], rumqttc::SubscribeReasonCode::Failure);
    // Publishing outside its policy closes an MQTT 3.1.1 connection, as AWS IoT Core does.
    me.publish("$aws/things/acme-medical-0011/jobs/get", "{}").await;
    assert!(me.closed().await, "publishing as another thing must close the connection");

    // The claim certificate may not leave the provisioning topics either.
    let mut claim = MqttTestClient::connect(gw.port, &ca, &gw.read("claim.pem"), &gw.read("claim.key"), "provision_z").await.unwrap();
    assert_eq!(claim.subscribe(&thing).await[0], rumqttc::SubscribeReasonCode::Failure);
    claim.publish("$aws/rules/FHIRIngest", "{}").await;
    assert!(claim.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_certificate_cannot_take_a_devices_client_id() {
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0012").await;
    let ca = gw.read("ca.pem");
    let mut device = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    assert!(matches!(device.subscribe(&thing).await[0], rumqttc::SubscribeReasonCode::Success(_)));
    // Anyone holding the fleet-wide claim certificate, connecting as the device, is refused at
    // CONNECT, so the device's own connection (one per client id) stays up.
    let (claim_cert, claim_key) = (gw.read("claim.pem"), gw.read("claim.key"));
    for client_id in [thing.as_str(), "acme-medical-9999", "provision-0012", "test-1234"] {
        let taken = MqttTestClient::connect(gw.port, &ca, &claim_cert, &claim_key, client_id).await;
        assert!(taken.is_err(), "the claim certificate connected as {client_id}");
    }
    assert!(device.subscribe(&format!("$aws/things/{thing}/jobs/notify")).await.iter().all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))), "the device was not kicked off");
    // Only the provisioning prefix, which no thing name can take, connects.
    assert!(MqttTestClient::connect(gw.port, &ca, &claim_cert, &claim_key, "provision_0012").await.is_ok());
    assert!(vitalwire::devices::Device::thing_name_for("Provision", "_x").starts_with("provision-"), "thing names never hold '_'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_and_unknown_certificates_cannot_connect() {
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0020").await;
    let ca = gw.read("ca.pem");
    let der = vitalwire_local::gateway::pki::pem_to_der(&cert).unwrap();
    let id = vitalwire_local::gateway::pki::certificate_id(&der);
    assert!(gw.gateway.registry.set_status(&id, CertificateStatus::Inactive));
    assert!(MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), &thing).await.is_err());
    assert!(gw.gateway.registry.set_status(&id, CertificateStatus::Active));
    assert!(MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), &thing).await.is_ok());

    // A certificate the gateway never issued (another CA) fails the TLS handshake.
    let stranger = LocalGateway::start().await;
    let result = MqttTestClient::connect(gw.port, &ca, &stranger.read("claim.pem"), &stranger.read("claim.key"), "x").await;
    assert!(result.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_devices_provision_concurrently_each_with_its_own_certificate() {
    let gw = std::sync::Arc::new(LocalGateway::start().await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let gw = gw.clone();
        tasks.spawn(async move { provisioned_device(&gw, &format!("3{i:03}")).await });
    }
    let results = tasks.join_all().await;
    let mut things: Vec<_> = results.iter().map(|(t, _, _)| t.clone()).collect();
    let mut certs: Vec<_> = results.iter().map(|(_, c, _)| c.clone()).collect();
    things.sort();
    things.dedup();
    certs.sort();
    certs.dedup();
    assert_eq!((things.len(), certs.len()), (20, 20));
    let registry = DynamoDeviceRegistry::new(gw.stack.dynamodb.clone(), gw.stack.table(&DEVICES));
    for (thing, cert, _) in &results {
        let id = vitalwire_local::gateway::pki::certificate_id(&vitalwire_local::gateway::pki::pem_to_der(cert).unwrap());
        assert_eq!(registry.get(thing).await.unwrap().unwrap().certificate_id.as_deref(), Some(id.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_keeping_its_own_key_provisions_from_a_csr() {
    let gw = LocalGateway::start().await;
    register(&gw, "0050", DeviceStatus::Registered).await;
    let mut claim = claim_client(&gw, "provision_csr").await;
    let topic = "$aws/certificates/create-from-csr/json";
    for suffix in ["accepted", "rejected"] {
        assert!(matches!(claim.subscribe(&format!("{topic}/{suffix}")).await[0], rumqttc::SubscribeReasonCode::Success(_)));
    }
    // The private key never leaves the device.
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap().serialize_request(&key).unwrap().pem().unwrap();
    claim.publish(topic, json!({"certificateSigningRequest": csr}).to_string()).await;
    let accepted = claim.message_on(&format!("{topic}/accepted")).await.expect("certificate from CSR");
    assert!(accepted.get("privateKey").is_none());
    let cert = accepted["certificatePem"].as_str().unwrap().to_owned();
    let token = accepted["certificateOwnershipToken"].as_str().unwrap().to_owned();
    let thing = provision(&mut claim, &token, "0050").await.expect("provisioned")["thingName"].as_str().unwrap().to_owned();
    let device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.serialize_pem().as_bytes(), &thing).await;
    assert!(device.is_ok(), "{:?}", device.err());

    claim.publish(topic, json!({"certificateSigningRequest": "not a CSR"}).to_string()).await;
    let rejected = claim.message_on(&format!("{topic}/rejected")).await.expect("rejection");
    assert_eq!(rejected["statusCode"], 400);
    assert_eq!(rejected["errorCode"], "InvalidCsr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_clients_get_a_not_authorized_puback_instead_of_a_disconnect() {
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event};
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0060").await;
    let (client, mut events) = AsyncClient::new(mqtt5_options(&gw, &thing, &cert, &key), 10);
    client.publish("$aws/things/someone-else/jobs/get", QoS::AtLeastOnce, false, "{}").await.unwrap();
    client.publish("$aws/rules/FHIRIngest", QoS::AtLeastOnce, false, "{}").await.unwrap();
    let mut reasons = Vec::new();
    while reasons.len() < 2 {
        if let Event::Incoming(Packet::PubAck(ack)) = tokio::time::timeout(Duration::from_secs(10), events.poll()).await.expect("no PUBACK").expect("connection") {
            reasons.push(ack.reason);
        }
    }
    assert_eq!(reasons, [PubAckReason::NotAuthorized, PubAckReason::Success], "the connection stays open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_after_one_and_a_half_keep_alives() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, TlsConfiguration, Transport};
    // AWS raises keep-alives under 30 s to 30; this gateway goes down to 1 s so the test is short.
    let gw = LocalGateway::start_with_short_keep_alives().await;
    let connect = |client_id: &str| {
        let mut options = MqttOptions::new(client_id, "localhost", gw.port);
        options.set_keep_alive(Duration::from_secs(1));
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: gw.read("ca.pem"),
            alpn: None,
            client_auth: Some((gw.read("claim.pem"), gw.read("claim.key"))),
        }));
        AsyncClient::new(options, 10)
    };
    // A client that keeps polling sends PINGREQs and stays connected past the limit.
    let (_alive, mut alive_events) = connect("provision_alive");
    let (_silent, mut silent_events) = connect("provision_silent");
    for events in [&mut alive_events, &mut silent_events] {
        assert!(matches!(events.poll().await, Ok(Event::Incoming(Packet::ConnAck(_)))));
    }
    let mut pongs = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    while tokio::time::Instant::now() < until {
        if let Ok(Ok(Event::Incoming(Packet::PingResp))) = tokio::time::timeout_at(until, alive_events.poll()).await {
            pongs += 1;
        }
    }
    assert!(pongs >= 1, "the polling client was answered");
    // The silent one (never polled, so it never pinged) was dropped meanwhile.
    let mut closed = false;
    for _ in 0..5 {
        match tokio::time::timeout(Duration::from_secs(2), silent_events.poll()).await {
            Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(Event::Incoming(Packet::PingResp))) => break,
            _ => continue,
        }
    }
    assert!(closed, "a client silent for 1.5 keep-alive periods must be disconnected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_topics_fan_out_to_matching_subscribers() {
    let gw = LocalGateway::start().await;
    // An application certificate with a broad policy (devices may not use ordinary topics).
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let (cert, key, ca) = (cert.as_bytes(), key.as_bytes(), gw.read("ca.pem"));
    let mut one_level = MqttTestClient::connect(gw.port, &ca, cert, key, "sub-plus").await.unwrap();
    let mut multi_level = MqttTestClient::connect(gw.port, &ca, cert, key, "sub-hash").await.unwrap();
    let mut other = MqttTestClient::connect(gw.port, &ca, cert, key, "sub-other").await.unwrap();
    let publisher = MqttTestClient::connect(gw.port, &ca, cert, key, "pub").await.unwrap();
    assert!(matches!(one_level.subscribe("ward/+/spo2").await[0], rumqttc::SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce)));
    assert!(matches!(multi_level.subscribe("ward/#").await[0], rumqttc::SubscribeReasonCode::Success(_)));
    assert!(matches!(other.subscribe("lab/#").await[0], rumqttc::SubscribeReasonCode::Success(_)));

    publisher.publish("ward/bed-7/spo2", r#"{"v":97}"#).await;
    publisher.client.publish("ward/bed-7/hr", rumqttc::QoS::AtMostOnce, false, r#"{"v":72}"#).await.unwrap();
    assert_eq!(one_level.message_on("ward/bed-7/spo2").await, Some(json!({"v": 97})));
    assert_eq!(multi_level.message_on("ward/bed-7/spo2").await, Some(json!({"v": 97})));
    assert_eq!(multi_level.message_on("ward/bed-7/hr").await, Some(json!({"v": 72})), "QoS 0 is delivered too");
    // No message for a filter that does not match, nor a second copy of the spo2 reading.
    publisher.publish("lab/marker", "{}").await;
    assert_eq!(other.message_on("lab/marker").await, Some(json!({})), "the first message 'other' sees is its own topic's");
    assert_eq!(one_level.topics_within(Duration::from_millis(300)).await, Vec::<String>::new(), "ward/+/spo2 does not match ward/bed-7/hr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_whose_register_thing_failed_after_the_hook_can_provision_again() {

    let gw = LocalGateway::start().await;
    register(&gw, "0060", DeviceStatus::Registered).await;
    let mut claim = claim_client(&gw, "provision_0060").await;
    // The first attempt: the hook bound certificate A, then RegisterThing failed, so A never
    // became ACTIVE (it is still PENDING_ACTIVATION in IoT). That was a while ago.
    claim.publish(vitalwire_tests::provisioning::CREATE, "{}").await;
    let first = claim.message_on(&format!("{}/accepted", vitalwire_tests::provisioning::CREATE)).await.unwrap();
    let stuck = first["certificateId"].as_str().unwrap().to_owned();
    let registry: DynamoDeviceRegistry = gw.stack.deps("provisioning-hook");
    let mut device = registry.get("acme-medical-0060").await.unwrap().unwrap();
    device.certificate_id = Some(stuck.clone());
    device.certificate_bound_at = Some(vitalwire::platform::time::format_utc(chrono::Utc::now() - chrono::Duration::minutes(10)));
    device.status = DeviceStatus::Active;
    registry.put(&device).await.unwrap();

    // The retry, with a new certificate, is allowed and the new certificate connects.
    let (cert, key, token) = create_keys(&mut claim).await;
    let thing = provision(&mut claim, &token, "0060").await.expect("provisioned again")["thingName"].as_str().unwrap().to_owned();
    let bound = registry.get(&thing).await.unwrap().unwrap().certificate_id.unwrap();
    assert_ne!(bound, stuck, "the stuck certificate was replaced");
    assert!(MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.is_ok());

    // Now its certificate is ACTIVE: nobody replaces it, however long ago it was bound.
    let mut device = registry.get(&thing).await.unwrap().unwrap();
    device.certificate_bound_at = Some(vitalwire::platform::time::format_utc(chrono::Utc::now() - chrono::Duration::hours(5)));
    registry.put(&device).await.unwrap();
    let (_, _, token) = create_keys(&mut claim).await;
    let refused = provision(&mut claim, &token, "0060").await.unwrap_err();
    assert_eq!(refused["statusCode"], 403, "{refused}");
    assert_eq!(registry.get(&thing).await.unwrap().unwrap().certificate_id.unwrap(), bound);
}

/// Device code that publishes a request and subscribes to its reply only once the request's
/// PUBACK came back (correct against AWS, whose reply takes tens of milliseconds) gets the
/// reply, every time: the gateway answers after AWS's latency, not before the SUBSCRIBE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_subscribes_to_the_reply_after_its_request_is_acknowledged_gets_it() {
    let gw = LocalGateway::start().await;
    for attempt in 0..5 {
        let mut c = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), &gw.read("claim.pem"), &gw.read("claim.key"), &format!("provision_late_{attempt}"))
            .await
            .expect("claim certificate connects");
        c.publish(vitalwire_tests::provisioning::CREATE, "{}").await;
        loop {
            match c.next().await.expect("the PUBACK") {
                rumqttc::Packet::PubAck(_) => break,
                _ => continue,
            }
        }
        let accepted = format!("{}/accepted", vitalwire_tests::provisioning::CREATE);
        assert!(matches!(c.subscribe(&accepted).await[0], rumqttc::SubscribeReasonCode::Success(_)));
        let reply = c.message_on(&accepted).await;
        assert!(reply.is_some_and(|r| r["certificateOwnershipToken"].is_string()), "attempt {attempt}: the reply came after the SUBSCRIBE");
    }
}

/// Device shadows over MQTT, as device code uses them for settings an operator pushes: the
/// operator sets `desired` over the data-plane HTTP API, the device hears the delta, reports,
/// and reads the document; a stale version is refused; another device's shadow is off limits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_follows_its_shadow_over_mqtt_and_an_operator_sets_it_over_http() {
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0050").await;
    let mut device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await.unwrap();
    let shadow = format!("$aws/things/{thing}/shadow");
    for suffix in ["update/delta", "update/accepted", "update/rejected", "get/accepted", "get/rejected", "name/settings/update/delta"] {
        let codes = device.subscribe(&format!("{shadow}/{suffix}")).await;
        assert!(matches!(codes[0], rumqttc::SubscribeReasonCode::Success(_)), "{suffix}: {codes:?}");
    }
    // No shadow yet.
    device.publish(&format!("{shadow}/get"), r#"{"clientToken": "g-1"}"#).await;
    let missing = device.message_on(&format!("{shadow}/get/rejected")).await.unwrap();
    assert_eq!((missing["code"].as_u64(), missing["clientToken"].as_str()), (Some(404), Some("g-1")));

    // The operator pushes a measurement interval through the data plane, as a function would.
    let config = vitalwire::platform::aws::load_config().await;
    let data = aws_sdk_iotdataplane::Client::from_conf(aws_sdk_iotdataplane::config::Builder::from(&config).endpoint_url(&gw.iot_endpoint).build());
    let desired = br#"{"state": {"desired": {"measurementIntervalSeconds": 300, "temperatureUnit": "Cel"}}}"#;
    data.update_thing_shadow().thing_name(&thing).payload(aws_sdk_iotdataplane::primitives::Blob::new(desired.to_vec())).send().await.expect("UpdateThingShadow");
    let delta = device.message_on(&format!("{shadow}/update/delta")).await.expect("the device hears the delta");
    assert_eq!(delta["state"], json!({"measurementIntervalSeconds": 300, "temperatureUnit": "Cel"}));
    assert_eq!(delta["version"], 1);

    // The device applies and reports; the delta is gone from the document.
    device.publish(&format!("{shadow}/update"), r#"{"state": {"reported": {"measurementIntervalSeconds": 300, "temperatureUnit": "Cel"}}, "clientToken": "u-1", "version": 1}"#).await;
    let accepted = device.message_on(&format!("{shadow}/update/accepted")).await.unwrap();
    assert_eq!((accepted["version"].as_i64(), accepted["clientToken"].as_str()), (Some(2), Some("u-1")));
    device.publish(&format!("{shadow}/get"), "{}").await;
    let document = device.message_on(&format!("{shadow}/get/accepted")).await.unwrap();
    assert_eq!(document["state"]["reported"]["measurementIntervalSeconds"], 300);
    assert!(document["state"].get("delta").is_none(), "{document}");
    device.publish(&format!("{shadow}/update"), r#"{"state": {"reported": {"measurementIntervalSeconds": 60}}, "version": 1}"#).await;
    let stale = device.message_on(&format!("{shadow}/update/rejected")).await.unwrap();
    assert_eq!((stale["code"].as_u64(), stale["message"].as_str()), (Some(409), Some("Version conflict")));

    // A named shadow is its own; the data plane reads and lists it.
    data.update_thing_shadow().thing_name(&thing).shadow_name("settings").payload(aws_sdk_iotdataplane::primitives::Blob::new(br#"{"state": {"desired": {"alarmVolume": 3}}}"#.to_vec())).send().await.unwrap();
    let named_delta = device.message_on(&format!("{shadow}/name/settings/update/delta")).await.unwrap();
    assert_eq!(named_delta["state"]["alarmVolume"], 3);
    let listed = data.list_named_shadows_for_thing().thing_name(&thing).send().await.expect("ListNamedShadowsForThing");
    assert_eq!(listed.results(), ["settings".to_owned()]);
    let read = data.get_thing_shadow().thing_name(&thing).send().await.expect("GetThingShadow");
    let read: Value = serde_json::from_slice(read.payload().unwrap().as_ref()).unwrap();
    assert_eq!(read["version"], 2);

    // Another device may not touch this shadow: the policy refuses the subscription.
    let (other, other_cert, other_key) = provisioned_device(&gw, "0051").await;
    let mut intruder = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), other_cert.as_bytes(), other_key.as_bytes(), &other).await.unwrap();
    let codes = intruder.subscribe(&format!("{shadow}/get/accepted")).await;
    assert!(matches!(codes[0], rumqttc::SubscribeReasonCode::Failure), "{codes:?}");
    data.delete_thing_shadow().thing_name(&thing).send().await.expect("DeleteThingShadow");
    let gone = data.get_thing_shadow().thing_name(&thing).send().await.unwrap_err();
    assert!(gone.into_service_error().is_resource_not_found_exception());
}

/// Retained messages reach later subscriptions to their topic with the retain flag (not wildcard
/// ones: AWS differs from MQTT there), an empty one removes them, and retaining needs
/// `iot:RetainPublish`; a last will the client may not publish refuses its connection; a will is
/// published when a client drops, not when it disconnects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_and_last_wills_behave_as_on_aws() {
    let gw = LocalGateway::start().await;
    let ca = gw.read("ca.pem");
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let connect = |id: &'static str| MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), id);

    let publisher = connect("ward-display").await.unwrap();
    publisher.publish_retained("ward/7/status", "open").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // AWS sends a retained message only to a filter naming its topic, not to a wildcard.
    let mut wildcard = connect("wildcard-subscriber").await.unwrap();
    wildcard.subscribe("ward/+/status").await;
    assert!(wildcard.topics_within(Duration::from_millis(500)).await.is_empty(), "no retained message for a wildcard");
    let mut late = connect("late-subscriber").await.unwrap();
    late.subscribe("ward/7/status").await;
    assert_eq!(late.publish_on("ward/7/status").await, Some((b"open".to_vec(), true)), "the retained message, flagged");
    publisher.publish("ward/7/status", "busy").await;
    assert_eq!(late.publish_on("ward/7/status").await, Some((b"busy".to_vec(), false)), "a live message is not flagged");
    publisher.publish_retained("ward/7/status", "").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut later = connect("later-subscriber").await.unwrap();
    later.subscribe("ward/7/status").await;
    assert!(later.topics_within(Duration::from_millis(500)).await.is_empty(), "an empty retained message removed it");

    // Without iot:RetainPublish a retained publish is refused (MQTT 3.1.1: the connection closes).
    let (plain_cert, plain_key) = app_certificate(&gw, "NoRetainPolicy", json!({"Statement": [{"Effect": "Allow", "Action": ["iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"], "Resource": "*"}]}));
    let mut plain = MqttTestClient::connect(gw.port, &ca, plain_cert.as_bytes(), plain_key.as_bytes(), "no-retain").await.unwrap();
    plain.publish_retained("ward/8/status", "open").await;
    assert!(plain.closed().await, "a retained publish without iot:RetainPublish");

    // A will the client may not publish refuses its connection.
    let secret_will = |options: &mut rumqttc::MqttOptions| {
        options.set_last_will(rumqttc::LastWill::new("ward/7/secret", "x", rumqttc::QoS::AtLeastOnce, true));
    };
    let refused = MqttTestClient::connect_with(gw.port, &ca, plain_cert.as_bytes(), plain_key.as_bytes(), "retained-will", secret_will).await;
    assert!(refused.is_err(), "a retained will without iot:RetainPublish");

    // A last will: published when the client drops, not after a clean DISCONNECT.
    let will = |options: &mut rumqttc::MqttOptions| {
        options.set_last_will(rumqttc::LastWill::new("ward/7/presence", "offline", rumqttc::QoS::AtLeastOnce, false));
    };
    let mut watcher = connect("presence-watcher").await.unwrap();
    watcher.subscribe("ward/7/presence").await;
    let clean = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "monitor-clean", will).await.unwrap();
    clean.client.disconnect().await.unwrap();
    assert!(watcher.topics_within(Duration::from_millis(500)).await.is_empty(), "a clean DISCONNECT discards the will");
    let dropped = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "monitor-dropped", will).await.unwrap();
    dropped.drop_connection();
    assert_eq!(watcher.publish_on("ward/7/presence").await, Some((b"offline".to_vec(), false)), "the will of a dropped client");
}

/// An MQTT 5 client's options: mutual TLS to the gateway with `cert` and `key`.
fn mqtt5_options(gw: &LocalGateway, client_id: &str, cert: &str, key: &str) -> rumqttc::v5::MqttOptions {
    let mut options = rumqttc::v5::MqttOptions::new(client_id, "localhost", gw.port);
    options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Simple {
        ca: gw.read("ca.pem"),
        alpn: None,
        client_auth: Some((cert.as_bytes().to_vec(), key.as_bytes().to_vec())),
    }));
    options
}

/// The next event of an MQTT 5 client, within ten seconds.
async fn mqtt5_next(events: &mut rumqttc::v5::EventLoop) -> Result<rumqttc::v5::Event, rumqttc::v5::ConnectionError> {
    tokio::time::timeout(Duration::from_secs(10), events.poll()).await.expect("an event")
}

/// An MQTT 5 client learns in the CONNACK what AWS IoT Core offers, uses topic aliases, and is told with a DISCONNECT reason when it breaks a
/// topic limit; MQTT 3.1.1 clients breaking AWS's limits are disconnected, as on AWS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_clients_get_awss_connack_properties_topic_aliases_and_limits() {
    use rumqttc::v5::mqttbytes::v5::{DisconnectReasonCode, Packet, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event};
    let gw = LocalGateway::start().await;
    let ca = gw.read("ca.pem");
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let mut options = mqtt5_options(&gw, "mqtt5-app", &cert, &key);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_session_expiry_interval(Some(3600));
    let (client, mut events) = AsyncClient::new(options, 10);
    let Ok(Event::Incoming(Packet::ConnAck(ack))) = mqtt5_next(&mut events).await else { panic!("no CONNACK") };
    let p = ack.properties.expect("CONNACK properties");
    assert_eq!((p.max_qos, p.retain_available, p.topic_alias_max, p.receive_max), (Some(1), Some(1), Some(8), Some(100)));
    assert_eq!((p.wildcard_subscription_available, p.subscription_identifiers_available, p.shared_subscription_available), (Some(1), Some(0), Some(1)));
    assert_eq!(p.max_packet_size, Some(146 * 1024));
    assert_eq!(p.server_keep_alive, Some(30), "AWS raises a keep-alive under 30 s");
    assert_eq!(p.session_expiry_interval, Some(3600), "the session is kept an hour, AWS's default maximum");
    // The client's requests go out while its event loop is polled; its end says why.
    let (ended, why) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        loop {
            if let Err(e) = events.poll().await {
                let _ = ended.send(e);
                return;
            }
        }
    });

    // Topic aliases: set with the topic, then used alone.
    let mut watcher = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "alias-watcher").await.unwrap();
    watcher.subscribe("ward/7/bed/3/spo2").await;
    let alias = || PublishProperties { topic_alias: Some(1), ..Default::default() };
    client.publish_with_properties("ward/7/bed/3/spo2", QoS::AtLeastOnce, false, "97", alias()).await.unwrap();
    client.publish_with_properties("", QoS::AtLeastOnce, false, "96", alias()).await.unwrap();
    assert_eq!(watcher.publish_on("ward/7/bed/3/spo2").await.map(|m| m.0), Some(b"97".to_vec()));
    assert_eq!(watcher.publish_on("ward/7/bed/3/spo2").await.map(|m| m.0), Some(b"96".to_vec()), "the alias stands for the topic");

    // A topic over 7 slashes: MQTT 5 is told why, then disconnected.
    client.publish("a/b/c/d/e/f/g/h/i", QoS::AtLeastOnce, false, "x").await.unwrap();
    // rumqttc ends its event loop with the server's DISCONNECT and its reason.
    let end = tokio::time::timeout(Duration::from_secs(10), why).await.expect("the connection ends").unwrap();
    let reason = match end {
        rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::ServerDisconnect { reason_code, .. }) => Some(reason_code),
        other => panic!("ended without a DISCONNECT: {other:?}"),
    };
    assert_eq!(reason, Some(DisconnectReasonCode::TopicNameInvalid));

    // MQTT 3.1.1: over 8 filters in one SUBSCRIBE, or a payload over 128 KB, closes the connection.
    let mut many = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "many-filters").await.unwrap();
    let filters: Vec<rumqttc::SubscribeFilter> = (0..9).map(|i| rumqttc::SubscribeFilter::new(format!("ward/{i}"), rumqttc::QoS::AtLeastOnce)).collect();
    many.client.subscribe_many(filters).await.unwrap();
    assert!(many.closed().await, "nine filters in one SUBSCRIBE");
    let mut big = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "big-payload", |o| {
        o.set_max_packet_size(512 * 1024, 512 * 1024);
    })
    .await
    .unwrap();
    big.publish("ward/7/waveform", vec![b'x'; 129 * 1024]).await;
    assert!(big.closed().await, "a payload over 128 KB");
    let ok = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "within-limits", |o| {
        o.set_max_packet_size(512 * 1024, 512 * 1024);
    })
    .await
    .unwrap();
    let mut wide = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "waveform-watcher", |o| {
        o.set_max_packet_size(512 * 1024, 512 * 1024);
    })
    .await
    .unwrap();
    wide.subscribe("ward/7/waveform").await;
    ok.publish("ward/7/waveform", vec![b'x'; 128 * 1024]).await;
    assert_eq!(wide.publish_on("ward/7/waveform").await.map(|m| m.0.len()), Some(128 * 1024), "128 KB exactly is allowed");
}

/// A persistent session (MQTT 3.1.1 without Clean Session) keeps its subscriptions and catches
/// QoS 1 messages while its client is away; a clean start ends it. A shared subscription hands
/// each message to one member of its group, while ordinary subscribers get every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_sessions_and_shared_subscriptions_behave_as_on_aws() {
    let gw = LocalGateway::start().await;
    let ca = gw.read("ca.pem");
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let persistent = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    let session_present = |c: &MqttTestClient| c.session_present;
    let station = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "nurse-station", persistent).await.unwrap();
    assert!(!session_present(&station), "a new session");
    let mut station = station;
    station.subscribe("ward/7/alerts").await;
    station.client.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let publisher = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "monitor").await.unwrap();
    publisher.publish("ward/7/alerts", "bed 3: NEWS2 7").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut back = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "nurse-station", persistent).await.unwrap();
    assert!(session_present(&back), "the session was kept");
    assert_eq!(back.publish_on("ward/7/alerts").await.map(|m| m.0), Some(b"bed 3: NEWS2 7".to_vec()), "caught while away, no new SUBSCRIBE");
    back.client.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let clean = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "nurse-station").await.unwrap();
    assert!(!session_present(&clean), "a clean start ends the session");

    // Shared subscriptions: two members take turns; an ordinary subscriber gets both messages.
    let mut first = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "worker-1").await.unwrap();
    let mut second = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "worker-2").await.unwrap();
    let mut audit = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "audit").await.unwrap();
    for worker in [&mut first, &mut second] {
        assert!(matches!(worker.subscribe("$share/workers/ward/+/jobs").await[0], rumqttc::SubscribeReasonCode::Success(_)));
    }
    audit.subscribe("ward/+/jobs").await;
    publisher.publish("ward/7/jobs", "one").await;
    publisher.publish("ward/7/jobs", "two").await;
    let (a, b) = (first.topics_within(Duration::from_millis(700)).await, second.topics_within(Duration::from_millis(200)).await);
    assert_eq!((a.len(), b.len()), (1, 1), "one message each: {a:?} {b:?}");
    assert_eq!(audit.topics_within(Duration::from_millis(200)).await.len(), 2);
}

/// AWS IoT Core ignores QoS 2 (no PUBREC, no SUBACK, nothing delivered, the connection kept),
/// and tells an MQTT 5 client whose client id a newer connection took why it is disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_2_is_ignored_and_a_taken_over_mqtt5_client_hears_why() {
    let gw = LocalGateway::start().await;
    let ca = gw.read("ca.pem");
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let mut watcher = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "qos-watcher").await.unwrap();
    watcher.subscribe("ward/7/qos").await;
    let mut sender = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "qos-sender").await.unwrap();
    sender.client.publish("ward/7/qos", rumqttc::QoS::ExactlyOnce, false, "two").await.unwrap();
    sender.publish("ward/7/qos", "one").await;
    assert_eq!(watcher.publish_on("ward/7/qos").await.map(|m| m.0), Some(b"one".to_vec()), "only the QoS 1 message");
    sender.client.subscribe("ward/7/other", rumqttc::QoS::ExactlyOnce).await.unwrap();
    let packets = sender.topics_within(Duration::from_millis(500)).await;
    assert!(packets.is_empty(), "no SUBACK carries a publish: {packets:?}");
    sender.publish("ward/7/qos", "still").await;
    assert_eq!(watcher.publish_on("ward/7/qos").await.map(|m| m.0), Some(b"still".to_vec()), "the QoS 2 sender's connection was kept");

    // Takeover: the older MQTT 5 connection gets DISCONNECT 0x8E.
    use rumqttc::v5::AsyncClient;
    let options = || mqtt5_options(&gw, "shared-id", &cert, &key);
    let (_first, mut first_events) = AsyncClient::new(options(), 10);
    mqtt5_next(&mut first_events).await.expect("the first connects");
    let (_second, mut second_events) = AsyncClient::new(options(), 10);
    mqtt5_next(&mut second_events).await.expect("the second connects");
    let end = loop {
        match mqtt5_next(&mut first_events).await {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(end, rumqttc::v5::ConnectionError::MqttState(rumqttc::v5::StateError::ServerDisconnect { reason_code: rumqttc::v5::mqttbytes::v5::DisconnectReasonCode::SessionTakenOver, .. })),
        "{end:?}"
    );
}

/// MQTT 5 message expiry: a retained message that expired is not sent to a new subscription,
/// and one that has not carries the seconds it has left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_are_not_delivered_and_others_carry_their_time_left() {
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event};
    let gw = LocalGateway::start().await;
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let options = |id: &str| mqtt5_options(&gw, id, &cert, &key);
    let (publisher, mut publisher_events) = AsyncClient::new(options("expiring-publisher"), 10);
    mqtt5_next(&mut publisher_events).await.expect("connected");
    tokio::spawn(async move { while publisher_events.poll().await.is_ok() {} });
    let expiring = |seconds| PublishProperties { message_expiry_interval: Some(seconds), ..Default::default() };
    publisher.publish_with_properties("ward/7/short", QoS::AtLeastOnce, true, "soon gone", expiring(1)).await.unwrap();
    publisher.publish_with_properties("ward/7/long", QoS::AtLeastOnce, true, "still here", expiring(600)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;

    let (subscriber, mut events) = AsyncClient::new(options("expiry-reader"), 10);
    mqtt5_next(&mut events).await.expect("connected");
    subscriber.subscribe("ward/7/short", QoS::AtLeastOnce).await.unwrap();
    subscriber.subscribe("ward/7/long", QoS::AtLeastOnce).await.unwrap();
    let mut received = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok(event)) = tokio::time::timeout_at(until, events.poll()).await {
        if let Event::Incoming(Packet::Publish(p)) = event {
            received.push((String::from_utf8_lossy(&p.topic).into_owned(), p.properties.and_then(|props| props.message_expiry_interval)));
        }
    }
    assert_eq!(received.len(), 1, "{received:?}");
    let (topic, left) = &received[0];
    assert_eq!(topic, "ward/7/long", "the expired one is gone");
    assert!(left.is_some_and(|l| (590..600).contains(&l)), "the time it has left: {left:?}");
}

/// A QoS 1 message the client received but never acknowledged is sent again when its
/// persistent session resumes (AWS keeps unacknowledged QoS 1 messages for the session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_message_is_sent_again_when_the_persistent_session_resumes() {
    let gw = LocalGateway::start().await;
    let ca = gw.read("ca.pem");
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let forgetful = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
        o.set_manual_acks(true);
    };
    let mut station = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "forgetful-station", forgetful).await.unwrap();
    station.subscribe("ward/7/alerts").await;
    let publisher = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "alerting").await.unwrap();
    publisher.publish("ward/7/alerts", "bed 3: NEWS2 7").await;
    assert!(station.publish_on("ward/7/alerts").await.is_some(), "received, not acknowledged");
    station.drop_connection();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut back = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "forgetful-station", |o| {
        o.set_clean_session(false);
    })
    .await
    .unwrap();
    assert!(back.session_present);
    assert_eq!(back.publish_on("ward/7/alerts").await.map(|m| m.0), Some(b"bed 3: NEWS2 7".to_vec()), "sent again");
    back.client.disconnect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut again = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "forgetful-station", |o| {
        o.set_clean_session(false);
    })
    .await
    .unwrap();
    assert!(again.topics_within(Duration::from_millis(500)).await.is_empty(), "acknowledged this time: not sent a third time");
}

/// AWS's flow control: a client with 100 QoS 1 messages unacknowledged gets no more until it
/// acknowledges (the rest wait, nothing is lost); and a connection publishing over 100 messages
/// a second has the excess discarded, which an MQTT 5 client hears in its PUBACK (0x97).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_messages_hold_back_the_rest_and_publishes_over_the_rate_are_discarded() {
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event};
    let gw = LocalGateway::start().await;
    let ca = gw.read("ca.pem");
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));

    let mut slow = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "slow-reader", |o| {
        o.set_manual_acks(true);
    })
    .await
    .unwrap();
    slow.subscribe("ward/7/flow").await;
    for n in 0..105 {
        gw.gateway.deliver("ward/7/flow", bytes::Bytes::from(n.to_string()), 1, None);
    }
    let held = slow.publishes_within(Duration::from_millis(1500)).await;
    assert_eq!(held.len(), 100, "AWS's in-flight quota");
    slow.client.ack(&held[0]).await.unwrap();
    let next = slow.publish_on("ward/7/flow").await.expect("one more after an acknowledgement");
    assert_eq!(next.0, b"100");

    let mut watcher = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "rate-watcher").await.unwrap();
    watcher.subscribe("ward/7/rate").await;
    let (client, mut events) = AsyncClient::new(mqtt5_options(&gw, "chatty-publisher", &cert, &key), 200);
    mqtt5_next(&mut events).await.expect("connected");
    for n in 0..110 {
        client.publish("ward/7/rate", QoS::AtLeastOnce, false, n.to_string()).await.unwrap();
    }
    let (mut accepted, mut discarded) = (0, 0);
    while accepted + discarded < 110 {
        if let Ok(Event::Incoming(Packet::PubAck(ack))) = mqtt5_next(&mut events).await {
            match ack.reason {
                PubAckReason::Success => accepted += 1,
                PubAckReason::QuotaExceeded => discarded += 1,
                other => panic!("unexpected PUBACK {other:?}"),
            }
        }
    }
    assert!(discarded >= 10 && accepted <= 100, "{accepted} accepted, {discarded} discarded");
    let delivered = watcher.topics_within(Duration::from_millis(1500)).await.len();
    assert_eq!(delivered, accepted, "only what was accepted is delivered");
}

/// A shared subscription group whose members are all away with persistent sessions keeps QoS 1
/// messages for the group, and the first member back takes them (AWS queues per group); and a
/// will's own Message Expiry Interval applies to it once published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_groups_keep_messages_for_absent_members_and_a_will_expires() {
    let gw = LocalGateway::start().await;
    let ca = gw.read("ca.pem");
    let (cert, key) = app_certificate(&gw, "AppPolicy", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let persistent = |o: &mut rumqttc::MqttOptions| {
        o.set_clean_session(false);
    };
    for worker in ["worker-a", "worker-b"] {
        let mut member = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), worker, persistent).await.unwrap();
        member.subscribe("$share/workers/ward/+/jobs").await;
        member.client.disconnect().await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let publisher = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "job-source").await.unwrap();
    publisher.publish("ward/7/jobs", "one").await;
    publisher.publish("ward/8/jobs", "two").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut first_back = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "worker-b", persistent).await.unwrap();
    assert!(first_back.session_present);
    assert_eq!(first_back.topics_within(Duration::from_millis(800)).await, ["ward/7/jobs", "ward/8/jobs"], "both, in order");
    let mut second_back = MqttTestClient::connect_with(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "worker-a", persistent).await.unwrap();
    assert!(second_back.topics_within(Duration::from_millis(500)).await.is_empty(), "each message went to one member");

    // Wills: one retained with a 1 s expiry is gone 2 s later; one without expiry stays.
    use rumqttc::v5::mqttbytes::v5::{LastWill, LastWillProperties};
    use rumqttc::v5::mqttbytes::QoS;
    let expiring = LastWillProperties {
        delay_interval: None,
        payload_format_indicator: None,
        message_expiry_interval: Some(1),
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    for (client_id, topic, properties) in [("short-will", "ward/7/short-will", Some(expiring)), ("long-will", "ward/7/long-will", None)] {
        let mut options = mqtt5_options(&gw, client_id, &cert, &key);
        options.set_last_will(LastWill::new(topic, "gone", QoS::AtLeastOnce, true, properties));
        let (_client, mut events) = rumqttc::v5::AsyncClient::new(options, 10);
        mqtt5_next(&mut events).await.expect("connected");
        drop(events);
    }
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let mut reader = MqttTestClient::connect(gw.port, &ca, cert.as_bytes(), key.as_bytes(), "will-reader").await.unwrap();
    reader.subscribe("ward/7/short-will").await;
    reader.subscribe("ward/7/long-will").await;
    assert_eq!(reader.topics_within(Duration::from_millis(800)).await, ["ward/7/long-will"], "the expired will is gone");
}
