//! Firmware updates end to end through the local platform: an admin registers and uploads an
//! image and creates a deployment (an IoT Job), the device CLI runs the six update steps over
//! the IoT Jobs MQTT API, and job-execution events reach `job-events`, which keeps the
//! deployment's progress and the device's installed version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Digest;
use vitalwire::access::Role;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::firmware::DynamoDeploymentStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::firmware::job_events::{self, JobEventDeps, Outcome};
use vitalwire::platform::tables::DEAD_LETTERS;
use vitalwire_tests::provisioning::provisioned_device;
use vitalwire_tests::{device_cli, Api, LocalGateway, MqttTestClient};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A provisioned device with its certificate where the CLI looks (`<dir>/certs/<thing>.*`).
async fn device_with_cli_certs(gw: &LocalGateway, serial: &str, dir: &Path) -> (String, String, String) {
    let (thing, cert, key) = provisioned_device(gw, serial).await;
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::write(dir.join(format!("certs/{thing}.pem")), &cert).unwrap();
    std::fs::write(dir.join(format!("certs/{thing}.key")), &key).unwrap();
    (thing, cert, key)
}

fn workdir(gw: &LocalGateway, name: &str) -> PathBuf {
    let dir = gw.certs_dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Registers an image claiming `sha256` and uploads `image` with the returned URL.
async fn register_firmware(api: &Api<'_>, version: &str, image: &[u8], sha256: &str) -> String {
    let admin = api.token(Role::Admin, None);
    let body = json!({"version": version, "deviceModel": "BP-200", "sha256": sha256, "sizeBytes": image.len()});
    let (status, firmware) = api.call(Method::POST, "/admin/firmware", Some(&admin), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{firmware}");
    let url = firmware["uploadUrl"].as_str().unwrap();
    let put = api.http.put(url).header("content-type", "application/octet-stream").body(image.to_vec()).send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    firmware["firmwareId"].as_str().unwrap().to_owned()
}

async fn deploy(api: &Api<'_>, body: Value) -> (StatusCode, Value) {
    api.call(Method::POST, "/admin/firmware/deployments", Some(&api.token(Role::Admin, None)), Some(body)).await
}

/// Polls the deployment until `done` holds (job events are asynchronous, as on AWS).
async fn deployment_when(api: &Api<'_>, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let admin = api.token(Role::Admin, None);
    let mut last = Value::Null;
    for _ in 0..100 {
        let (status, body) = api.call(Method::GET, &format!("/admin/firmware/deployments/{id}"), Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the deployment never reached the expected state: {last}");
}

fn device_status<'a>(deployment: &'a Value, thing: &str) -> &'a Value {
    deployment["devices"].as_array().unwrap().iter().find(|d| d["thingName"] == thing).expect("the device is a target")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_updates_a_device_through_the_cli_and_records_its_new_version() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let dir = workdir(&gw, "fw-ok");
    let (thing, _, _) = device_with_cli_certs(&gw, "0501", &dir).await;
    let image: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let firmware_id = register_firmware(&api, "1.1.0", &image, &sha256_hex(&image)).await;

    let (status, created) = deploy(&api, json!({"firmwareId": firmware_id, "thingNames": [thing], "rollout": {"timeoutMinutes": 30}})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["deploymentId"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "IN_PROGRESS");
    assert_eq!(device_status(&created, &thing)["status"], "QUEUED");
    assert_eq!(created["rollout"]["timeoutMinutes"], 30);

    let out = device_cli(&gw, &dir, &["firmware-update", "--deviceName", &thing]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in ["[1/6] 0 job(s) in progress, 1 queued", "[2/6] Job ", "[3/6] ", "[4/6] Downloading: 100% (200000 of 200000 bytes)", "[5/6] SHA-256 verified", "[6/6] "] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    assert!(stdout.matches("[4/6] Downloading: ").count() >= 3, "progress is shown as it goes:\n{stdout}");
    assert!(stdout.contains("marked SUCCEEDED"), "{stdout}");
    assert_eq!(std::fs::read(dir.join(format!("firmware/{thing}/1.1.0.bin"))).unwrap(), image, "the verified image was applied");

    // IoT says COMPLETED at once; the device's details come with the job-execution event,
    // which job-events records a moment later (on AWS too).
    let done = deployment_when(&api, &id, |d| d["status"] == "COMPLETED" && device_status(d, &thing)["statusDetails"].as_object().is_some_and(|m| !m.is_empty())).await;
    let device = device_status(&done, &thing);
    assert_eq!(device["status"], "SUCCEEDED");
    assert_eq!(device["statusDetails"]["version"], "1.1.0");
    assert_eq!((done["progress"]["succeeded"].as_u64(), done["progress"]["percentComplete"].as_u64()), (Some(1), Some(100)));

    // The installed version comes from the job-execution event, which job-events handles
    // asynchronously: the deployment can read COMPLETED (from IoT) a moment before it lands.
    let mut record = Value::Null;
    for _ in 0..50 {
        let (status, r) = api.call(Method::GET, &format!("/admin/devices/{thing}"), Some(&api.token(Role::Admin, None)), None).await;
        assert_eq!(status, StatusCode::OK);
        record = r;
        if !record["firmware"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!((record["firmware"]["version"].as_str(), record["firmware"]["deploymentId"].as_str()), (Some("1.1.0"), Some(id.as_str())));

    // Nothing left to do: the CLI says so and succeeds.
    let out = device_cli(&gw, &dir, &["firmware-update", "--deviceName", &thing]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to update"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_mismatch_fails_the_device_and_installs_nothing() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let dir = workdir(&gw, "fw-bad");
    let (thing, _, _) = device_with_cli_certs(&gw, "0502", &dir).await;
    let image = b"a corrupted image".to_vec();
    let firmware_id = register_firmware(&api, "1.2.0", &image, &sha256_hex(b"the image that was signed off")).await;
    let (_, created) = deploy(&api, json!({"firmwareId": firmware_id, "thingNames": [thing]})).await;
    let id = created["deploymentId"].as_str().unwrap().to_owned();

    let out = device_cli(&gw, &dir, &["firmware-update", "--deviceName", &thing]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("FAILED: checksum mismatch"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("marked FAILED"));
    assert!(!dir.join(format!("firmware/{thing}/1.2.0.bin")).exists(), "nothing applied");

    let done = deployment_when(&api, &id, |d| d["status"] == "COMPLETED" && device_status(d, &thing)["statusDetails"].as_object().is_some_and(|m| !m.is_empty())).await;
    let device = device_status(&done, &thing);
    assert_eq!(device["status"], "FAILED");
    assert!(device["statusDetails"]["reason"].as_str().unwrap().starts_with("checksum mismatch"), "{device}");
    let (_, record) = api.call(Method::GET, &format!("/admin/devices/{thing}"), Some(&api.token(Role::Admin, None)), None).await;
    assert!(record["firmware"].is_null(), "a failed update installs nothing: {record}");
}

async fn jobs_client(gw: &LocalGateway, thing: &str, cert: &str, key: &str) -> MqttTestClient {
    let mut c = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), thing).await.unwrap();
    assert!(matches!(c.subscribe(&format!("$aws/things/{thing}/jobs/#")).await[0], rumqttc::SubscribeReasonCode::Success(_)));
    c
}

/// Publishes a jobs request and returns (accepted?, body).
async fn ask(c: &mut MqttTestClient, topic: &str, body: Value) -> (bool, Value) {
    c.publish(topic, body.to_string()).await;
    loop {
        match c.next().await.expect("a reply") {
            rumqttc::Packet::Publish(p) if p.topic == format!("{topic}/accepted") => return (true, serde_json::from_slice(&p.payload).unwrap()),
            rumqttc::Packet::Publish(p) if p.topic == format!("{topic}/rejected") => return (false, serde_json::from_slice(&p.payload).unwrap()),
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_queued_updates_and_lets_started_ones_finish() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let (started, cert_a, key_a) = provisioned_device(&gw, "0511").await;
    let (waiting, cert_b, key_b) = provisioned_device(&gw, "0512").await;
    let firmware_id = register_firmware(&api, "2.0.0", b"image", &sha256_hex(b"image")).await;
    let (status, created) = deploy(&api, json!({"firmwareId": firmware_id, "allDevicesOfModel": true})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["progress"]["total"], 2, "every ACTIVE BP-200 device");
    let id = created["deploymentId"].as_str().unwrap().to_owned();

    let mut a = jobs_client(&gw, &started, &cert_a, &key_a).await;
    let (ok, next) = ask(&mut a, &format!("$aws/things/{started}/jobs/start-next"), json!({"clientToken": "a-1"})).await;
    assert!(ok, "{next}");
    assert_eq!((next["execution"]["jobId"].as_str(), next["clientToken"].as_str()), (Some(id.as_str()), Some("a-1")));
    let url = next["execution"]["jobDocument"]["firmwareUrl"].as_str().unwrap();
    assert!(url.starts_with("http") && url.contains("X-Amz-Signature") && url.contains("X-Amz-Expires=3600"), "placeholder resolved: {url}");
    assert_eq!(reqwest::get(url).await.unwrap().bytes().await.unwrap().as_ref(), b"image");

    let mut b = jobs_client(&gw, &waiting, &cert_b, &key_b).await;
    let (status, cancelled) = api.call(Method::POST, &format!("/admin/firmware/deployments/{id}/cancel"), Some(&admin), None).await;
    assert_eq!((status, cancelled["status"].as_str()), (StatusCode::OK, Some("CANCELED")), "{cancelled}");
    let notice = b.message_on(&format!("$aws/things/{waiting}/jobs/notify")).await.expect("the device hears of the change");
    assert_eq!(notice["jobs"], json!({}), "no job left for it");
    let (_, listed) = ask(&mut b, &format!("$aws/things/{waiting}/jobs/get"), json!({})).await;
    assert_eq!((listed["queuedJobs"].as_array().map(Vec::len), listed["inProgressJobs"].as_array().map(Vec::len)), (Some(0), Some(0)));
    let (ok, refused) = ask(&mut b, &format!("$aws/things/{waiting}/jobs/{id}/update"), json!({"status": "IN_PROGRESS"})).await;
    assert!(!ok);
    assert_eq!(refused["code"], "InvalidStateTransition");

    // The device that had started may still finish.
    let (ok, _) = ask(&mut a, &format!("$aws/things/{started}/jobs/{id}/update"), json!({"status": "SUCCEEDED", "statusDetails": {"version": "2.0.0"}})).await;
    assert!(ok);
    let done = deployment_when(&api, &id, |d| {
        device_status(d, &waiting)["status"] == "CANCELED" && device_status(d, &started)["status"] == "SUCCEEDED"
    })
    .await;
    assert_eq!(done["status"], "CANCELED");
    let (status, again) = api.call(Method::POST, &format!("/admin/firmware/deployments/{id}/cancel"), Some(&admin), None).await;
    assert_eq!((status, again["status"].as_str()), (StatusCode::OK, Some("CANCELED")), "cancelling twice is harmless");
    let (status, _) = api.call(Method::POST, "/admin/firmware/deployments/fw-nope/cancel", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_cannot_read_or_update_another_devices_job() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let (owner, _, _) = provisioned_device(&gw, "0521").await;
    let (other, cert, key) = provisioned_device(&gw, "0522").await;
    let firmware_id = register_firmware(&api, "3.0.0", b"image", &sha256_hex(b"image")).await;
    let (_, created) = deploy(&api, json!({"firmwareId": firmware_id, "thingNames": [owner]})).await;
    let id = created["deploymentId"].as_str().unwrap().to_owned();

    // Its own topics: the owner's job does not exist for it.
    let mut c = jobs_client(&gw, &other, &cert, &key).await;
    let (ok, refused) = ask(&mut c, &format!("$aws/things/{other}/jobs/{id}/get"), json!({"clientToken": "x"})).await;
    assert!(!ok);
    assert_eq!((refused["code"].as_str(), refused["clientToken"].as_str()), (Some("ResourceNotFound"), Some("x")));
    let (ok, refused) = ask(&mut c, &format!("$aws/things/{other}/jobs/{id}/update"), json!({"status": "SUCCEEDED"})).await;
    assert!(!ok);
    assert_eq!(refused["code"], "ResourceNotFound");
    // The owner's topics: no subscription, and publishing there closes the connection.
    assert_eq!(c.subscribe(&format!("$aws/things/{owner}/jobs/notify-next")).await, vec![rumqttc::SubscribeReasonCode::Failure]);
    c.publish(&format!("$aws/things/{owner}/jobs/{id}/update"), json!({"status": "SUCCEEDED"}).to_string()).await;
    assert!(c.closed().await, "MQTT 3.1.1: an unauthorized publish closes the connection");

    let state = deployment_when(&api, &id, |_| true).await;
    assert_eq!(device_status(&state, &owner)["status"], "QUEUED", "the owner's job is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_validated_and_admin_only() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let (thing, _, _) = provisioned_device(&gw, "0531").await;
    let firmware_id = register_firmware(&api, "4.0.0", b"image", &sha256_hex(b"image")).await;
    for (body, field) in [
        (json!({"firmwareId": "nope", "thingNames": [thing]}), "firmwareId"),
        (json!({"firmwareId": firmware_id}), "thingNames"),
        (json!({"firmwareId": firmware_id, "thingNames": [thing], "allDevicesOfModel": true}), "thingNames"),
        (json!({"firmwareId": firmware_id, "thingNames": []}), "thingNames"),
        (json!({"firmwareId": firmware_id, "thingNames": ["ghost"]}), "thingNames"),
        (json!({"firmwareId": firmware_id, "thingNames": [thing, thing]}), "thingNames"),
        (json!({"firmwareId": firmware_id, "thingNames": [thing], "rollout": {"maximumPerMinute": 0}}), "rollout.maximumPerMinute"),
    ] {
        let (status, error) = deploy(&api, body.clone()).await;
        assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some(field)), "{body}: {error}");
    }
    let (status, _) = api
        .call(Method::POST, "/admin/firmware/deployments", Some(&api.token(Role::Clinician, None)), Some(json!({"firmwareId": firmware_id, "thingNames": [thing]})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.call(Method::POST, "/admin/firmware/deployments", None, Some(json!({}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api.call(Method::GET, "/admin/firmware/deployments/fw-nope", Some(&api.token(Role::Admin, None)), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_events_are_recorded_once_and_foreign_or_malformed_ones_are_not_lost() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let (thing, _, _) = provisioned_device(&gw, "0541").await;
    let firmware_id = register_firmware(&api, "5.0.0", b"image", &sha256_hex(b"image")).await;
    let (_, created) = deploy(&api, json!({"firmwareId": firmware_id, "thingNames": [thing]})).await;
    let id = created["deploymentId"].as_str().unwrap().to_owned();
    let deps: JobEventDeps<DynamoDeploymentStore, DynamoDeviceRegistry, DynamoDeadLetterStore> = gw.stack.deps("job-events");
    let event = |status: &str, job: &str| {
        json!({
            "eventType": "JOB_EXECUTION", "eventId": "e-1", "timestamp": 1_800_000_000, "operation": status.to_lowercase(),
            "jobId": job, "thingArn": format!("arn:aws:iot:us-east-1:000000000000:thing/{thing}"), "status": status,
            "statusDetails": {"version": "5.0.0"},
        })
    };
    let dead_before = gw.stack.count(&DEAD_LETTERS).await;
    assert_eq!(job_events::handle(&event("SUCCEEDED", &id), &deps).await.unwrap(), Outcome::Recorded { firmware_installed: true });
    assert_eq!(job_events::handle(&event("SUCCEEDED", &id), &deps).await.unwrap(), Outcome::Duplicate, "redelivery");
    assert_eq!(job_events::handle(&event("FAILED", &id), &deps).await.unwrap(), Outcome::Duplicate, "the first end counts");
    assert_eq!(job_events::handle(&event("SUCCEEDED", "someone-elses-job"), &deps).await.unwrap(), Outcome::NotADeployment);
    assert!(matches!(job_events::handle(&event("IN_PROGRESS", &id), &deps).await.unwrap(), Outcome::Refused { .. }));
    assert!(matches!(job_events::handle(&json!({"what": 1}), &deps).await.unwrap(), Outcome::Refused { .. }));
    assert_eq!(gw.stack.count(&DEAD_LETTERS).await, dead_before + 2, "refused events are kept");
    let state = deployment_when(&api, &id, |d| d["status"] == "COMPLETED").await;
    assert_eq!(device_status(&state, &thing)["status"], "SUCCEEDED");
    // The list counts the device once, however often its end was delivered.
    let (_, listed) = api.call(Method::GET, "/admin/firmware/deployments", Some(&api.token(Role::Admin, None)), None).await;
    let entry = &listed["deployments"][0];
    assert_eq!((entry["deploymentId"].as_str(), entry["status"].as_str(), entry["devices"].as_u64(), entry["finished"].as_u64()), (Some(id.as_str()), Some("COMPLETED"), Some(1), Some(1)), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_finishing_at_once_are_each_counted_once_on_the_deployment() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let mut things = Vec::new();
    for serial in ["0571", "0572", "0573", "0574"] {
        things.push(provisioned_device(&gw, serial).await.0);
    }
    let firmware_id = register_firmware(&api, "8.0.0", b"image", &sha256_hex(b"image")).await;
    let (_, created) = deploy(&api, json!({"firmwareId": firmware_id, "thingNames": things})).await;
    let id = created["deploymentId"].as_str().unwrap().to_owned();
    let deps: JobEventDeps<DynamoDeploymentStore, DynamoDeviceRegistry, DynamoDeadLetterStore> = gw.stack.deps("job-events");
    let event = |thing: &str| {
        json!({
            "eventType": "JOB_EXECUTION", "eventId": format!("e-{thing}"), "timestamp": 1_800_000_000, "operation": "succeeded",
            "jobId": id, "thingArn": format!("arn:aws:iot:us-east-1:000000000000:thing/{thing}"), "status": "SUCCEEDED",
            "statusDetails": {"version": "8.0.0"},
        })
    };
    // Every device's end at once, each delivered twice.
    let events: Vec<Value> = things.iter().chain(things.iter()).map(|t| event(t)).collect();
    let outcomes = futures_util::future::join_all(events.iter().map(|e| job_events::handle(e, &deps))).await;
    let recorded = outcomes.into_iter().map(Result::unwrap).filter(|o| matches!(o, Outcome::Recorded { .. })).count();
    assert_eq!(recorded, things.len(), "each device's end recorded once");
    let (_, listed) = api.call(Method::GET, "/admin/firmware/deployments", Some(&api.token(Role::Admin, None)), None).await;
    let entry = &listed["deployments"][0];
    assert_eq!((entry["status"].as_str(), entry["devices"].as_u64(), entry["finished"].as_u64()), (Some("COMPLETED"), Some(4), Some(4)), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_listed_newest_first_in_pages() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let (thing, _, _) = provisioned_device(&gw, "0561").await;
    let firmware_id = register_firmware(&api, "7.0.0", b"image", &sha256_hex(b"image")).await;
    let mut created = Vec::new();
    for _ in 0..3 {
        let (status, d) = deploy(&api, json!({"firmwareId": firmware_id, "thingNames": [thing]})).await;
        assert_eq!(status, StatusCode::CREATED, "{d}");
        created.push(d["deploymentId"].as_str().unwrap().to_owned());
    }
    let admin = api.token(Role::Admin, None);
    let mut listed = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..4 {
        let path = match &next {
            Some(n) => format!("/admin/firmware/deployments?limit=2&next={n}"),
            None => "/admin/firmware/deployments?limit=2".to_owned(),
        };
        let (status, page) = api.call(Method::GET, &path, Some(&admin), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for d in page["deployments"].as_array().unwrap() {
            assert_eq!((d["version"].as_str(), d["devices"].as_u64(), d["finished"].as_u64(), d["status"].as_str()), (Some("7.0.0"), Some(1), Some(0), Some("IN_PROGRESS")), "{d}");
            listed.push((d["createdAt"].as_str().unwrap().to_owned(), d["deploymentId"].as_str().unwrap().to_owned()));
        }
        next = page["next"].as_str().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    assert!(next.is_none(), "the pages end");
    let mut newest_first = listed.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(listed, newest_first, "newest first");
    let mut ids: Vec<String> = listed.into_iter().map(|(_, id)| id).collect();
    ids.sort();
    created.sort();
    assert_eq!(ids, created, "every deployment once, and no device item listed");

    let (status, error) = api.call(Method::GET, "/admin/firmware/deployments?next=forged", Some(&admin), None).await;
    assert_eq!((status, error["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("next")), "{error}");
    let (status, _) = api.call(Method::GET, "/admin/firmware/deployments", Some(&api.token(Role::Clinician, None)), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_iot_device_sdk_jobs_client_runs_a_firmware_job_unchanged() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let dir = workdir(&gw, "fw-sdk");
    let (thing, _, _) = device_with_cli_certs(&gw, "0551", &dir).await;
    let image = b"firmware for the SDK agent".to_vec();
    let firmware_id = register_firmware(&api, "6.0.0", &image, &sha256_hex(&image)).await;
    let (_, created) = deploy(&api, json!({"firmwareId": firmware_id, "thingNames": [thing]})).await;
    let id = created["deploymentId"].as_str().unwrap().to_owned();

    let certs = gw.certs_dir.display().to_string();
    let out = std::process::Command::new(vitalwire_local::python())
        .arg(vitalwire_tests::repo_root().join("tests/aws_device_sdk_jobs.py"))
        .args(["--port", &gw.port.to_string(), "--ca", &format!("{certs}/ca.pem"), "--thing", &thing])
        .args(["--cert", &dir.join(format!("certs/{thing}.pem")).display().to_string()])
        .args(["--key", &dir.join(format!("certs/{thing}.key")).display().to_string()])
        .output()
        .expect("python with awsiotsdk (scripts/dev-env.sh installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or("null")).unwrap_or(Value::Null);
    assert!(out.status.success(), "SDK run failed: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(result["queued"], json!([id]));
    assert_eq!((result["jobId"].as_str(), result["operation"].as_str()), (Some(id.as_str()), Some("firmware_update")));
    assert_eq!((result["startedStatus"].as_str(), result["describedStatus"].as_str()), (Some("IN_PROGRESS"), Some("IN_PROGRESS")));
    assert_eq!(result["checksumOk"], true, "the presigned URL served the image");
    assert_eq!((result["finalStatus"].as_str(), result["finalDetails"]["version"].as_str()), (Some("SUCCEEDED"), Some("6.0.0")));
    assert_eq!(result["staleUpdate"], "VersionMismatch");
    assert_eq!(result["nextAfterwards"], Value::Null, "notify-next: nothing next once the job ended");

    let done = deployment_when(&api, &id, |d| d["status"] == "COMPLETED").await;
    assert_eq!(device_status(&done, &thing)["status"], "SUCCEEDED");
}
