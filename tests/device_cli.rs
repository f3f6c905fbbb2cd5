//! The `vitalwire-device` CLI against the local gateway: provision with the claim certificate,
//! upload an observation, and clear failures.

use vitalwire::devices::DeviceStatus;
use vitalwire::platform::tables::OBSERVATIONS;
use vitalwire_tests::provisioning::register;
use vitalwire_tests::{device_cli as cli, LocalGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_then_upload_an_observation_with_the_cli() {
    let gw = LocalGateway::start().await;
    register(&gw, "7001", DeviceStatus::Registered).await;
    let dir = gw.certs_dir.join("device-workdir");
    std::fs::create_dir_all(&dir).unwrap();

    let out = cli(&gw, &dir, &["provision", "--serialNumber", "7001", "--manufacturer", "Acme Medical", "--name", "ox", "--model", "OX-10"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Provisioned as thing acme-medical-7001"));
    assert!(dir.join("certs/acme-medical-7001.pem").exists() && dir.join("certs/acme-medical-7001.key").exists());

    let out = cli(
        &gw,
        &dir,
        &["upload-observation", "--deviceName", "acme-medical-7001", "--payloadValue", "97", "--unit", "%",
          "--code", "59408-5", "--codeSystem", "http://loinc.org", "--codeDisplay", "SpO2"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored = gw.stack.wait_for_count(&OBSERVATIONS, 1).await;
    assert_eq!(stored, 1);

    // A file, through an upload link.
    std::fs::write(dir.join("strip.pdf"), b"%PDF-1.7").unwrap();
    let out = cli(&gw, &dir, &["upload-file", "--deviceName", "acme-medical-7001", "--fileName", "strip.pdf", "--filePath", "strip.pdf"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Uploaded strip.pdf"));
    let listed = vitalwire::platform::aws::s3(&gw.stack.config)
        .list_objects_v2()
        .bucket(gw.stack.stack.bucket("DeviceFilesBucket").unwrap())
        .prefix("uploads/acme-medical-7001/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1);
    let out = cli(&gw, &dir, &["upload-file", "--deviceName", "acme-medical-7001", "--fileName", "../x.pdf", "--filePath", "strip.pdf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upload link refused: INVALID_FILE_NAME"), "{}", String::from_utf8_lossy(&out.stderr));

    // Unknown serial: non-zero exit and the platform's reason.
    let out = cli(&gw, &dir, &["provision", "--serialNumber", "0000", "--manufacturer", "Acme Medical"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RegisterThing rejected: 403 AccessDenied"), "{}", String::from_utf8_lossy(&out.stderr));

    // A device name it has no certificate for.
    let out = cli(&gw, &dir, &["upload-observation", "--deviceName", "nobody", "--payloadValue", "1", "--unit", "%",
        "--code", "x", "--codeSystem", "urn:x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody.pem"));
}
