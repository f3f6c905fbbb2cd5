//! `vitalwire-local up` as a user runs it (the real binary, its own emulator): it says what it
//! is doing (JSON log lines with `--log-format json`: connections and refusals with their
//! reasons, HTTP API requests by route, never a patient's id or value), keeps its keys readable
//! by their owner only, and answers an oversized body in API Gateway's JSON.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use vitalwire_tests::{function_binary, MqttTestClient};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `vitalwire-local up`, stopped when dropped.
struct Up {
    child: Child,
    state_dir: std::path::PathBuf,
    mqtt_port: u16,
    api_url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Up {
    fn start() -> Self {
        let state_dir = std::env::temp_dir().join(format!("vitalwire-up-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        let (mqtt_port, iot_port, api_port) = (free_port(), free_port(), free_port());
        let mut child = Command::new(function_binary("vitalwire-local"))
            .args(["--state-dir", state_dir.to_str().unwrap(), "up", "--log-format", "json"])
            .args(["--mqtt-port", &mqtt_port.to_string(), "--iot-http-port", &iot_port.to_string(), "--api-port", &api_port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start vitalwire-local up");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        // Ready once it has printed its endpoints.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let started = Instant::now();
        while !line.contains("Ctrl-C stops everything") {
            line.clear();
            let read = stdout.read_line(&mut line).unwrap();
            assert!(read > 0 && started.elapsed() < Duration::from_secs(120), "vitalwire-local up stopped: {:?}", log.lock().unwrap());
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, state_dir, mqtt_port, api_url: format!("http://127.0.0.1:{api_port}"), log }
    }

    /// The JSON log lines logged so far.
    fn logged(&self) -> Vec<Value> {
        self.log.lock().unwrap().iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))).collect()
    }

    /// Waits for a log line whose message contains `text`.
    async fn wait_for(&self, text: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(found) = self.logged().into_iter().find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains(text))) {
                return found;
            }
            assert!(Instant::now() < until, "no log line with {text:?}: {:?}", self.log.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_logs_what_it_does_keeps_its_keys_private_and_answers_oversized_bodies_in_json() {
    vitalwire_local::gateway::install_default_provider();
    let up = Up::start();
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
