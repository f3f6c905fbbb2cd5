//! The clinician console in a real browser: `vitalwire-local up` (the real binary, serving the
//! built console at `/console/`), seeded through the public HTTP API as a gateway and an admin
//! would, then Playwright (console/tests/console.spec.ts) drives Debian's headless Chromium
//! through sign-in, the worklist, acknowledging an alert, the patient's charts and registering a
//! device. What the browser did is then checked through the API.

use std::process::Command;

use serde_json::{json, Value};
use vitalwire::access::Role;
use vitalwire_local::http_api::LocalAuth;
use vitalwire_tests::LocalUp;

const PATIENT: &str = "P-CONSOLE";
const CLINICIAN: &str = "nurse-console";
const ADMIN: &str = "admin-console";

async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
    let mut request = http.request(method.clone(), &url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let text = answer.text().await.unwrap();
    assert!(status.is_success(), "{method} {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_and_an_admin_use_the_console_in_a_real_browser() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let console = root.join("console");
    assert!(console.join("dist/index.html").exists(), "the console is not built: scripts/dev-env.sh builds it");
    let up = LocalUp::start(None);
    let auth = LocalAuth::load_or_create(&up.state_dir.join("auth")).unwrap();
    let admin = auth.mint("seed-admin", Role::Admin, None, 30).unwrap();
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{}{path}", up.api_url);
    use reqwest::Method;

    // The care team, a gateway device of the patient's and its API key, as the README's
    // walkthrough makes them.
    call(&http, Method::PUT, api(&format!("/admin/clinicians/{CLINICIAN}")), &admin, Some(json!({"name": "Nurse Console", "role": "nurse"}))).await;
    call(&http, Method::PUT, api(&format!("/admin/patients/{PATIENT}/care-team")), &admin, Some(json!({"nurses": [CLINICIAN]}))).await;
    let device = call(&http, Method::POST, api("/admin/devices"), &admin, Some(json!({"serialNumber": "CON001", "manufacturer": "InHealth", "model": "Vitals Monitor", "displayName": "Bedside monitor"}))).await;
    let thing = device["thingName"].as_str().unwrap().to_owned();
    call(&http, Method::PUT, api(&format!("/admin/devices/{thing}/patient")), &admin, Some(json!({"patientId": PATIENT}))).await;
    let key = call(&http, Method::POST, api(&format!("/admin/devices/{thing}/api-keys")), &admin, Some(json!({"name": "console test"}))).await;
    let key = key["apiKey"].as_str().unwrap().to_owned();

    // Six hours of ordinary readings, then a set that scores NEWS2 9 and raises an alert.
    let now = chrono::Utc::now();
    let mut heart_rates = 0;
    for hour in (1..=6).rev() {
        let at = (now - chrono::Duration::hours(hour)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let reading = json!({"device_id": thing, "timestamp": at, "heart_rate": 70 + hour, "respiratory_rate": 16, "oxygen_saturation": 97,
                             "blood_pressure_systolic": 118 + hour, "blood_pressure_diastolic": 78, "temperature": 36.8, "temperature_unit": "C"});
        let filed = call(&http, Method::POST, api("/api/iot/vitals"), &key, Some(reading)).await;
        assert_eq!(filed["alerts_triggered"], 0, "{filed}");
        heart_rates += 1;
    }
    let at = (now - chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let filed = call(&http, Method::POST, api("/api/iot/vitals"), &key, Some(json!({"device_id": thing, "timestamp": at, "heart_rate": 135, "respiratory_rate": 26, "oxygen_saturation": 91}))).await;
    assert_eq!(filed["alerts_triggered"], 1, "{filed}");
    heart_rates += 1;

    // A cuff that provisioned itself with the claim certificate (the real device CLI), and a
    // firmware deployment to it, for the admin's firmware view.
    let registered = call(&http, Method::POST, api("/admin/devices"), &admin, Some(json!({"serialNumber": "FW001", "manufacturer": "Acme Medical", "model": "BP-200"}))).await;
    let cuff = registered["thingName"].as_str().unwrap().to_owned();
    let certs = up.state_dir.join("certs");
    let device_dir = up.state_dir.join("device");
    std::fs::create_dir_all(&device_dir).unwrap();
    let provisioned = Command::new(vitalwire_tests::function_binary("vitalwire-device"))
        .current_dir(&device_dir)
        .args(["provision", "--serialNumber", "FW001", "--manufacturer", "Acme Medical", "--model", "BP-200", "--port", &up.mqtt_port.to_string()])
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .arg("--claimCert")
        .arg(certs.join("claim.pem"))
        .arg("--claimKey")
        .arg(certs.join("claim.key"))
        .output()
        .expect("run vitalwire-device");
    assert!(provisioned.status.success(), "{}", String::from_utf8_lossy(&provisioned.stderr));
    // The cuff is the patient's too, and reports its battery as LifeOmic's device samples do.
    call(&http, Method::PUT, api(&format!("/admin/devices/{cuff}/patient")), &admin, Some(json!({"patientId": PATIENT}))).await;
    let battery = Command::new(vitalwire_tests::function_binary("vitalwire-device"))
        .current_dir(&device_dir)
        .args(["upload-observation", "--deviceName", &cuff, "--payloadValue", "87", "--unit", "%", "--code", "9750d5e5-d766-4793-a97d-16179578cc4d"])
        .args(["--codeSystem", "http://lifeomic.com/fhir/devices", "--codeDisplay", "Battery Percentage", "--port", &up.mqtt_port.to_string()])
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .output()
        .expect("run vitalwire-device");
    assert!(battery.status.success(), "{}", String::from_utf8_lossy(&battery.stderr));
    let search = api(&format!("/fhir/Observation?patient={PATIENT}&device={cuff}"));
    let mut filed = Value::Null;
    for _ in 0..100 {
        filed = call(&http, Method::GET, search.clone(), &admin, None).await;
        if filed["entry"].as_array().is_some_and(|e| !e.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(filed["entry"][0]["resource"]["valueQuantity"]["value"], 87, "the battery reading was filed: {filed}");
    let image = b"BP-200 firmware 2.1.0".to_vec();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&image));
    let firmware = call(&http, Method::POST, api("/admin/firmware"), &admin, Some(json!({"version": "2.1.0", "deviceModel": "BP-200", "sha256": sha256, "sizeBytes": image.len()}))).await;
    let uploaded = http.put(firmware["uploadUrl"].as_str().unwrap()).header("content-type", "application/octet-stream").body(image).send().await.unwrap();
    assert!(uploaded.status().is_success(), "{}", uploaded.status());
    let deployment = call(&http, Method::POST, api("/admin/firmware/deployments"), &admin, Some(json!({"firmwareId": firmware["firmwareId"], "thingNames": [cuff]}))).await;
    let deployment = deployment["deploymentId"].as_str().unwrap().to_owned();

    let started = std::time::SystemTime::now();
    let run = Command::new("npx")
        .args(["playwright", "test"])
        .current_dir(&console)
        .env("VITALWIRE_CONSOLE_URL", api("/console/"))
        .env("VITALWIRE_PATIENT", PATIENT)
        .env("VITALWIRE_CLINICIAN", CLINICIAN)
        .env("VITALWIRE_ADMIN", ADMIN)
        .env("VITALWIRE_HEART_RATE_READINGS", heart_rates.to_string())
        .env("VITALWIRE_SCREENSHOTS", root.join("docs/console"))
        .env("VITALWIRE_DEPLOYMENT", &deployment)
        .env("VITALWIRE_DEPLOYED_DEVICE", &cuff)
        .env("VITALWIRE_BATTERY_DEVICE", &cuff)
        .output()
        .expect("run Playwright (npx, in console/)");
    assert!(
        run.status.success(),
        "the browser tests failed:\n{}\n{}\n(traces of failures: console/test-results/)",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    // What the browser did, as the API tells it: the clinician took the alert, the admin's
    // device is registered beside the seeded one.
    let nurse = auth.mint(CLINICIAN, Role::Clinician, None, 10).unwrap();
    let worklist = call(&http, Method::GET, api("/worklist"), &nurse, None).await;
    let alert = &worklist["alerts"][0];
    assert_eq!((alert["patientId"].as_str(), alert["flow"]["stage"].as_str()), (Some(PATIENT), Some("acknowledged")), "{worklist}");
    let devices = call(&http, Method::GET, api("/admin/devices"), &admin, None).await;
    let registered: Vec<&str> = devices["devices"].as_array().unwrap().iter().filter_map(|d| d["serialNumber"].as_str()).collect();
    assert!(registered.iter().any(|s| s.starts_with("CONSOLE-")), "{registered:?}");
    let cancelled = call(&http, Method::GET, api(&format!("/admin/firmware/deployments/{deployment}")), &admin, None).await;
    assert_eq!(cancelled["status"], "CANCELED", "the admin cancelled it in the browser: {cancelled}");
    for shot in ["worklist.png", "patient.png", "patient-tablet.png", "admin.png", "firmware.png"] {
        let written = root.join("docs/console").join(shot).metadata().is_ok_and(|m| m.len() > 10_000 && m.modified().is_ok_and(|t| t >= started));
        assert!(written, "{shot} was not written by this run");
    }
    let _ = std::fs::remove_dir_all(&up.state_dir);
}
