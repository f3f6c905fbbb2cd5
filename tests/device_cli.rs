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

/// The CLI says why the platform refused its connection: a client id the certificate's policy
/// does not allow, or a certificate the platform does not accept (closed before the CONNACK).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_why_a_connection_was_refused() {
    let gw = LocalGateway::start().await;
    let dir = gw.certs_dir.join("refused-workdir");
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    // The claim certificate posing as a device: its policy allows only provision_* client ids.
    std::fs::copy(gw.certs_dir.join("claim.pem"), dir.join("certs/acme-medical-7777.pem")).unwrap();
    std::fs::copy(gw.certs_dir.join("claim.key"), dir.join("certs/acme-medical-7777.key")).unwrap();
    let observation = |device: &str| {
        cli(&gw, &dir, &["upload-observation", "--deviceName", device, "--payloadValue", "97", "--unit", "%", "--code", "59408-5", "--codeSystem", "http://loinc.org"])
    };
    let out = observation("acme-medical-7777");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not authorized: the certificate's policy does not allow client id 'acme-medical-7777'"), "{said}");

    // A provisioned device whose certificate was switched off.
    register(&gw, "7002", DeviceStatus::Registered).await;
    let out = cli(&gw, &dir, &["provision", "--serialNumber", "7002", "--manufacturer", "Acme Medical"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pem = std::fs::read_to_string(dir.join("certs/acme-medical-7002.pem")).unwrap();
    let id = vitalwire_local::gateway::pki::certificate_id(&vitalwire_local::gateway::pki::pem_to_der(&pem).unwrap());
    assert!(gw.gateway.registry.set_status(&id, vitalwire_local::gateway::registry::CertificateStatus::Inactive));
    let out = observation("acme-medical-7002");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("closed before the CONNACK") && said.contains("inactive"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("certs/acme-medical-7002.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the device's private key is its owner's only");
}
