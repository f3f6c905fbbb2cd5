//! Plain MQTT clients nobody here wrote, unchanged, against the local IoT gateway: Eclipse
//! Mosquitto's `mosquitto_pub` and `mosquitto_sub` (Debian's `mosquitto-clients`, which
//! `scripts/dev-env.sh` installs), over mutual TLS, MQTT 3.1.1 and 5.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::json;
use vitalwire::platform::tables::OBSERVATIONS;
use vitalwire_tests::provisioning::provisioned_device;
use vitalwire_tests::{app_certificate, LocalGateway};

/// A certificate and key written where the mosquitto clients read them.
struct Credentials {
    cert: PathBuf,
    key: PathBuf,
}

fn credentials(gw: &LocalGateway, name: &str, cert: &str, key: &str) -> Credentials {
    let dir = gw.certs_dir.join("mosquitto");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key).unwrap();
    Credentials { cert: cert_path, key: key_path }
}

/// A mosquitto client command connecting to the gateway as `client_id` with `who`'s certificate.
fn mosquitto(program: &str, gw: &LocalGateway, who: &Credentials, client_id: &str, version: &str) -> Command {
    let mut command = Command::new(program);
    let ca: &Path = &gw.certs_dir.join("ca.pem");
    command
        .args(["-h", "localhost", "-p", &gw.port.to_string(), "--cafile"])
        .arg(ca)
        .arg("--cert")
        .arg(&who.cert)
        .arg("--key")
        .arg(&who.key)
        .args(["-i", client_id, "-V", version, "-q", "1"]);
    command
}

fn run(mut command: Command) -> Output {
    command.output().expect("mosquitto-clients are installed (scripts/dev-env.sh)")
}

/// Waits for a background `mosquitto_sub` to end (it exits after its `-C` messages).
fn finished(mut child: Child) -> Output {
    for _ in 0..100 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    panic!("mosquitto_sub did not finish: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_publish_a_measurement_receive_a_reply_and_a_retained_message() {
    let gw = LocalGateway::start().await;
    let (thing, cert, key) = provisioned_device(&gw, "0070").await;
    let device = credentials(&gw, &thing, &cert, &key);

    // MQTT 5 mosquitto_pub files a measurement through the Basic Ingest rule.
    let measurement = json!({"value": 98, "unit": "%", "coding": [{"system": "http://loinc.org", "code": "59408-5", "display": "SpO2"}]});
    let mut publish = mosquitto("mosquitto_pub", &gw, &device, &thing, "mqttv5");
    publish.args(["-t", "$aws/rules/FHIRIngest", "-m", &measurement.to_string()]);
    let out = run(publish);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(gw.stack.wait_for_count(&OBSERVATIONS, 1).await, 1, "the measurement was filed");

    // MQTT 3.1.1 mosquitto_sub on the device's own topic gets what a function publishes there.
    let mut subscribe = mosquitto("mosquitto_sub", &gw, &device, &thing, "mqttv311");
    subscribe.args(["-t", &thing, "-C", "1", "-W", "15"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let listening = subscribe.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    gw.gateway.deliver(&thing, bytes::Bytes::from_static(br#"{"uploadUrl":"https://example.invalid/x"}"#), 1, None);
    let out = finished(listening);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"{"uploadUrl":"https://example.invalid/x"}"#);

    // The device policy refuses another topic: mosquitto_sub is told in the SUBACK.
    let mut other = mosquitto("mosquitto_sub", &gw, &device, &thing, "mqttv311");
    other.args(["-t", "someone-else", "-C", "1", "-W", "3"]);
    let out = run(other);
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("denied"), "mosquitto_sub reports the refused subscription: {said} ({:?})", out.status);

    // Retained messages, with an application certificate that may retain.
    let (app_cert, app_key) = app_certificate(&gw, "RetainApp", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let app = credentials(&gw, "app", &app_cert, &app_key);
    let mut retain = mosquitto("mosquitto_pub", &gw, &app, "ward-display", "mqttv311");
    retain.args(["-t", "ward/7/status", "-m", "open", "-r"]);
    assert!(run(retain).status.success());
    let mut read = mosquitto("mosquitto_sub", &gw, &app, "ward-reader", "mqttv5");
    read.args(["-t", "ward/7/status", "-C", "1", "-W", "10", "-v"]);
    let out = run(read);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ward/7/status open");
}

/// MQTT 5 lets a normal DISCONNECT leave out its reason code (remaining length 0), and
/// mosquitto's clients send exactly that: the gateway takes it as a clean end and drops the
/// client's last will, as AWS IoT Core does, rather than calling it malformed and publishing
/// the will as if the client had vanished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_mqtt5_disconnect_from_mosquitto_is_clean_and_discards_the_will() {
    let gw = LocalGateway::start().await;
    let (cert, key) = app_certificate(&gw, "WillApp", json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let app = credentials(&gw, "will-app", &cert, &key);
    let mut watcher = vitalwire_tests::MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), "watcher").await.unwrap();
    watcher.subscribe("ward/#").await;

    for version in ["mqttv5", "mqttv311"] {
        let mut publish = mosquitto("mosquitto_pub", &gw, &app, "bedside", version);
        publish.args(["-t", "ward/7/reading", "-m", version, "--will-topic", "ward/7/lost", "--will-payload", "gone"]);
        let out = run(publish);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let after = watcher.topics_within(Duration::from_millis(1500)).await;
    assert_eq!(after.iter().filter(|t| *t == "ward/7/reading").count(), 2, "both readings arrived: {after:?}");
    assert!(!after.iter().any(|t| t == "ward/7/lost"), "no will after a clean DISCONNECT: {after:?}");
}
