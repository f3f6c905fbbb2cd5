//! Device code written for AWS IoT Core, unchanged, against the local gateway: the AWS IoT
//! Device SDK v2 for Python provisions through its identity client (MQTT 3.1.1) and publishes a
//! measurement with its MQTT 5 client (`tests/aws_device_sdk.py`).

use std::process::Command;

use serde_json::Value;
use vitalwire::devices::DeviceStatus;
use vitalwire::platform::tables::OBSERVATIONS;
use vitalwire_tests::provisioning::register;
use vitalwire_tests::{repo_root, LocalGateway};

async fn run_sdk(gw: &LocalGateway, serial: &str) -> (bool, Value, String) {
    let certs = gw.certs_dir.display().to_string();
    let out = Command::new(vitalwire_local::python())
        .arg(repo_root().join("tests/aws_device_sdk.py"))
        .args(["--port", &gw.port.to_string(), "--ca", &format!("{certs}/ca.pem")])
        .args(["--claim-cert", &format!("{certs}/claim.pem"), "--claim-key", &format!("{certs}/claim.key")])
        .args(["--serial", serial])
        .output()
        .expect("python with awsiotsdk (scripts/dev-env.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("null");
    (out.status.success(), serde_json::from_str(last).unwrap_or(Value::Null), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_iot_device_sdk_provisions_and_publishes_unchanged() {
    let gw = LocalGateway::start().await;
    register(&gw, "5001", DeviceStatus::Registered).await;

    let (ok, result, stderr) = run_sdk(&gw, "5001").await;
    assert!(ok, "SDK run failed: {result} {stderr}");
    assert_eq!(result["thingName"], "acme-medical-5001");
    let stored = gw.stack.wait_for_count(&OBSERVATIONS, 1).await;
    assert_eq!(stored, 1, "the SDK's measurement was filed");

    // An unregistered serial number: the SDK sees AWS's rejection shape.
    let (ok, result, _) = run_sdk(&gw, "5999").await;
    assert!(!ok);
    assert_eq!(result["step"], "RegisterThing");
    assert_eq!(result["rejected"]["statusCode"], 403);
    assert_eq!(result["rejected"]["errorCode"], "AccessDenied");
}

/// MQTT 5 session expiry as the Python SDK's MQTT 5 client uses it: a DISCONNECT that leaves
/// the session's expiry alone keeps the session (the client rejoins it), one that sets it to 0
/// ends it; and a will (with its own Message Expiry Interval) is never published after a
/// DISCONNECT (`tests/aws_device_sdk_sessions.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdks_mqtt5_client_keeps_or_ends_its_session_by_its_disconnect() {
    let gw = LocalGateway::start().await;
    let (cert, key) = vitalwire_tests::app_certificate(&gw, "SessionApp", serde_json::json!({"Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}));
    let mut watcher = vitalwire_tests::MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), "will-watcher").await.unwrap();
    watcher.subscribe("ward/7/lost").await;
    let (cert_path, key_path) = (gw.certs_dir.join("session-app.pem"), gw.certs_dir.join("session-app.key"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let out = Command::new(vitalwire_local::python())
        .arg(repo_root().join("tests/aws_device_sdk_sessions.py"))
        .args(["--port", &gw.port.to_string()])
        .arg("--ca")
        .arg(gw.certs_dir.join("ca.pem"))
        .arg("--cert")
        .arg(&cert_path)
        .arg("--key")
        .arg(&key_path)
        .output()
        .expect("python with awsiotsdk (scripts/dev-env.sh installs it)");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(said.lines().last().unwrap()).unwrap();
    assert_eq!(seen, serde_json::json!({"first": false, "kept": true, "afterZero": false}));
    assert!(watcher.topics_within(std::time::Duration::from_millis(500)).await.is_empty(), "no will after a DISCONNECT");
}
