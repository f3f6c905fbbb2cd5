//! The AWS IoT Device SDK v2 for JavaScript, and its own fleet-provisioning sample byte for byte
//! (`tests/js/`), against `vitalwire-local up` as a user runs it: the sample connects with the
//! claim certificate, creates keys and a certificate, and registers its thing. The sample takes
//! no CA and no port, so `up` serves MQTT on 8883 and the SDK's TLS trusts the local CA through
//! `SSL_CERT_FILE`; no line of the sample changes.

use std::process::Command;

use vitalwire_tests::LocalUp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sdks_fleet_provisioning_sample_provisions_a_registered_device_unchanged() {
    let up = LocalUp::start(Some(8883));
    let local = vitalwire_tests::function_binary("vitalwire-local");
    let admin = Command::new(&local).args(["--state-dir", up.state_dir.to_str().unwrap(), "token", "--role", "admin"]).output().unwrap();
    let admin = String::from_utf8(admin.stdout).unwrap().trim().to_owned();
    let registered = reqwest::Client::new()
        .post(format!("{}/admin/devices", up.api_url))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"serialNumber": "0077", "manufacturer": "Acme Medical", "model": "BP-200"}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);

    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js");
    let certs = up.state_dir.join("certs");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(&js)
            .env("SSL_CERT_FILE", certs.join("ca.pem"))
            .arg("dist/fleet_provisioning_basic.js")
            .args(["--endpoint", "localhost", "--client_id", "provision_0077", "--template_name", "DefaultProvisioningTemplate"])
            .arg("--cert")
            .arg(certs.join("claim.pem"))
            .arg("--key")
            .arg(certs.join("claim.key"))
            .args(["--template_parameters", r#"{"SerialNumber": "0077", "Manufacturer": "Acme Medical", "Name": "cuff", "Model": "BP-200"}"#])
            .output()
            .expect("node runs the compiled sample (scripts/dev-env.sh builds it)")
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("CreateKeysAndCertificate Response"), "{said}");
    assert!(said.contains(r#""thingName":"acme-medical-0077""#), "RegisterThing answered the thing: {said}");
    let step = up.wait_for("fleet provisioning: accepted").await;
    assert_eq!(step["fields"]["client_id"], "provision_0077");
}
