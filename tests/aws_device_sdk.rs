//! Device code written for AWS IoT Core, unchanged, against the local gateway: the AWS IoT
//! Device SDK v2 for Python provisions through its identity client (MQTT 3.1.1) and publishes a
//! measurement with its MQTT 5 client (`tests/aws_device_sdk.py`).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vitalwire::devices::{Device, DeviceRegistry, DeviceStatus, DynamoDeviceRegistry};
use vitalwire::tables::{DEVICES, OBSERVATIONS};
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
    DynamoDeviceRegistry::new(gw.stack.dynamodb.clone(), gw.stack.table(&DEVICES))
        .put(&Device {
            thing_name: "acme-medical-5001".into(),
            serial_number: "5001".into(),
            manufacturer: "Acme Medical".into(),
            model: "SDK-1".into(),
            display_name: String::new(),
            patient_id: Some("patient-5".into()),
            may_name_patient: false,
            status: DeviceStatus::Registered,
            certificate_id: None,
            created_at: String::new(),
            updated_at: String::new(),
        })
        .await
        .unwrap();

    let (ok, result, stderr) = run_sdk(&gw, "5001").await;
    assert!(ok, "SDK run failed: {result} {stderr}");
    assert_eq!(result["thingName"], "acme-medical-5001");
    let mut stored = 0;
    for _ in 0..50 {
        stored = gw.stack.count(&OBSERVATIONS).await;
        if stored > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stored, 1, "the SDK's measurement was filed");

    // An unregistered serial number: the SDK sees AWS's rejection shape.
    let (ok, result, _) = run_sdk(&gw, "5999").await;
    assert!(!ok);
    assert_eq!(result["step"], "RegisterThing");
    assert_eq!(result["rejected"]["statusCode"], 403);
    assert_eq!(result["rejected"]["errorCode"], "AccessDenied");
}
