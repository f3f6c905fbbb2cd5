//! `vitalwire-local up` as a user runs it (the real binary, its own emulator): it says what it
//! is doing (JSON log lines with `--log-format json`: connections and refusals with their
//! reasons, HTTP API requests by route, never a patient's id or value), keeps its keys readable
//! by their owner only, and answers an oversized body in API Gateway's JSON.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;
use vitalwire_tests::{LocalUp as Up, MqttTestClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_logs_what_it_does_keeps_its_keys_private_and_answers_oversized_bodies_in_json() {
    vitalwire_local::gateway::install_default_provider();
    let up = Up::start(None);
    let certs = up.state_dir.join("certs");
    let read = |name: &str| std::fs::read(certs.join(name)).unwrap();

    // The claim certificate with a device's client id: refused, and the log says why.
    let refused = MqttTestClient::connect(up.mqtt_port, &read("ca.pem"), &read("claim.pem"), &read("claim.key"), "acme-medical-0001").await;
    assert!(refused.is_err(), "the claim certificate may not act as a device");
    let line = up.wait_for("connection refused (not authorized)").await;
    assert!(line["fields"]["message"].as_str().unwrap().contains("do not allow iot:Connect with this client id"), "{line}");
    assert_eq!(line["fields"]["client_id"], "acme-medical-0001");
    // A provisioning request: taken, answered, and logged as a step.
    let mut claim = MqttTestClient::connect(up.mqtt_port, &read("ca.pem"), &read("claim.pem"), &read("claim.key"), "provision_0001").await.unwrap();
    claim.subscribe("$aws/certificates/create/json/accepted").await;
    claim.publish("$aws/certificates/create/json", "{}").await;
    assert!(claim.message_on("$aws/certificates/create/json/accepted").await.is_some());
    let step = up.wait_for("fleet provisioning: accepted").await;
    assert_eq!(step["fields"]["operation"], "CreateKeysAndCertificate");

    // HTTP API requests are logged by route: the patient's id in the path is not.
    let http = reqwest::Client::new();
    let answer = http.get(format!("{}/patients/P-SECRET-42/alerts", up.api_url)).bearer_auth("not-a-token").send().await.unwrap();
    assert_eq!(answer.status(), 401);
    let line = up.wait_for("HTTP API").await;
    assert_eq!((line["fields"]["route"].as_str(), line["fields"]["status"].as_u64()), (Some("GET /patients/{patientId}/alerts"), Some(401)));
    assert!(up.log.lock().unwrap().iter().all(|l| !l.contains("P-SECRET-42")), "no patient id in the log");

    // A body over API Gateway's 10 MB: its JSON answer, not a bare text.
    let big = vec![b' '; 11 * 1024 * 1024];
    let answer = http.post(format!("{}/api/iot/vitals", up.api_url)).bearer_auth("k").body(big).send().await.unwrap();
    assert_eq!(answer.status(), 413);
    assert_eq!(answer.json::<Value>().await.unwrap(), serde_json::json!({"message": "Request Entity Too Large"}));

    // Keys, and the endpoints file that names the Polaris key, are the owner's only.
    for file in ["certs/ca.key", "certs/server.key", "certs/claim.key", "auth/jwt-signing.key", "auth/polaris-hs512.key", "endpoints.json"] {
        let mode = std::fs::metadata(up.state_dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}")).permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    let _ = std::fs::remove_dir_all(&up.state_dir);
}
