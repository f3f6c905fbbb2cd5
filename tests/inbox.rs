//! The S3 inbox through the local platform: files dropped under `inbox/` are filed and moved to
//! `archive/` (or to `failed/` with an error report), streamed, and never processed twice.

use std::time::Duration;

use aws_lambda_events::s3::S3Event;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use vitalwire::clinical::DynamoAlertStore;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::access::Role;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::ingest::inbox::{self, DynamoInboxProgress, InboxDeps, InboxOutcome, RunLimits, S3Inbox, SqsInboxContinuation};
use vitalwire::observations::DynamoObservationStore;
use vitalwire::platform::tables::OBSERVATIONS;
use vitalwire_tests::{Api, LocalGateway};

async fn device(api: &Api<'_>, serial: &str) -> String {
    let admin = api.token(Role::Admin, None);
    let (status, d) = api
        .call(Method::POST, "/admin/devices", Some(&admin), Some(json!({"serialNumber": serial, "manufacturer": "InHealth", "model": "Gateway"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let thing = d["thingName"].as_str().unwrap().to_owned();
    api.call(Method::PUT, &format!("/admin/devices/{thing}/patient"), Some(&admin), Some(json!({"patientId": "P200"}))).await;
    // A gateway that only drops files has no credential of its own: the operator activates it.
    let (status, _) = api.call(Method::PUT, &format!("/admin/devices/{thing}/status"), Some(&admin), Some(json!({"status": "ACTIVE"}))).await;
    assert_eq!(status, StatusCode::OK);
    thing
}

type Deps = InboxDeps<S3Inbox, DynamoDeviceRegistry, DynamoObservationStore, DynamoAlertStore, DynamoDeadLetterStore, DynamoInboxProgress, SqsInboxContinuation>;

struct Inbox<'a> {
    gw: &'a LocalGateway,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Inbox<'_> {
    fn new(gw: &LocalGateway) -> Inbox<'_> {
        Inbox { gw, s3: vitalwire::platform::aws::s3(&gw.stack.config), bucket: gw.stack.stack.bucket("InboxBucket").unwrap().to_owned() }
    }

    async fn drop_file(&self, name: &str, body: impl Into<Vec<u8>>) {
        self.s3.put_object().bucket(&self.bucket).key(format!("inbox/{name}")).body(body.into().into()).send().await.unwrap();
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.s3.list_objects_v2().bucket(&self.bucket).prefix(prefix).send().await.unwrap();
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    /// Waits until the local platform has moved `name` out of the inbox; the keys under
    /// `archive/` and `failed/` then.
    async fn moved(&self, name: &str) -> (Vec<String>, Vec<String>) {
        for _ in 0..300 {
            if !self.keys("inbox/").await.contains(&format!("inbox/{name}")) {
                return (self.keys("archive/").await, self.keys("failed/").await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("inbox/{name} was never processed");
    }

    async fn text(&self, key: &str) -> String {
        self.text_in(&self.bucket, key).await
    }

    async fn text_in(&self, bucket: &str, key: &str) -> String {
        let out = self.s3.get_object().bucket(bucket).key(key).send().await.unwrap();
        String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap()
    }

    fn deps(&self) -> Deps {
        self.gw.stack.deps("inbox-processor")
    }
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_file_is_filed_and_archived_by_date_with_a_timestamped_name() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = device(&api, "DEV101").await;
    let inbox = Inbox::new(&gw);
    let file = json!({
        "device_id": thing, "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75, "blood_pressure_systolic": 120,
        "blood_pressure_diastolic": 80, "temperature": 98.6, "temperature_unit": "F", "respiratory_rate": 16,
        "oxygen_saturation": 98.0, "glucose": 95.0, "weight": 150.0, "weight_unit": "lbs",
        "notes": "Automated reading from device", "signal_quality": 95, "battery_level": 80
    })
    .to_string();
    inbox.drop_file("DEV101_20251117_103000.json", file.clone()).await;
    let (archived, failed) = inbox.moved("DEV101_20251117_103000.json").await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(archived.len(), 1);
    let prefix = format!("archive/{}/DEV101_20251117_103000_", today());
    assert!(archived[0].starts_with(&prefix) && archived[0].ends_with(".json"), "{archived:?}");
    let (stamp, id) = archived[0][prefix.len()..archived[0].len() - 5].rsplit_once('_').unwrap();
    assert!(chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%d_%H%M%S").is_ok(), "YYYYmmdd_HHMMSS: {stamp}");
    assert!(id.len() == 8 && id.bytes().all(|b| b.is_ascii_hexdigit()), "the file's own id: {id}");
    assert_eq!(inbox.text(&archived[0]).await, file, "archived unchanged");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 9, "six vitals, the blood-pressure panel, the battery, the grouping panel");

    // NDJSON and batch files go the same way.
    let ndjson = format!(
        "{}\n{}\n",
        json!({"device_id": thing, "timestamp": "2025-11-17T11:00:00Z", "heart_rate": 70}),
        json!({"device_id": thing, "readings": [{"timestamp": "2025-11-17T11:05:00Z", "heart_rate": 71}]}),
    );
    inbox.drop_file("site/readings.ndjson", ndjson).await;
    let (archived, _) = inbox.moved("site/readings.ndjson").await;
    assert!(archived.iter().any(|k| k.contains("/site_readings_")), "{archived:?}");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 9 + 4, "two heart rates, each with its set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_readings_and_malformed_files_move_to_failed_with_a_report_and_good_ones_are_kept() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = device(&api, "DEV102").await;
    let inbox = Inbox::new(&gw);
    let batch = json!({"device_id": thing, "readings": [
        {"timestamp": "2025-11-17T10:00:00Z", "heart_rate": 75},
        {"timestamp": "2025-11-17T10:30:00Z", "heart_rate": 900},
        {"timestamp": "2025-11-17T11:00:00Z", "oxygen_saturation": 97},
        {"timestamp": "2025-11-17T11:30:00Z", "device_id": "someone-else", "heart_rate": 60},
    ]});
    inbox.drop_file("batch.json", batch.to_string()).await;
    let (archived, failed) = inbox.moved("batch.json").await;
    assert!(archived.is_empty());
    let moved = failed.iter().find(|k| !k.ends_with(".errors.json")).expect("the file under failed/");
    let report_key = failed.iter().find(|k| k.ends_with(".errors.json")).expect("the report");
    assert!(moved.starts_with(&format!("failed/{}/batch_", today())));
    assert_eq!(report_key, &moved.replace(".json", ".errors.json"));
    let report: Value = serde_json::from_str(&inbox.text(report_key).await).unwrap();
    assert_eq!((report["readings"].as_u64(), report["stored"].as_u64(), report["failed"].as_u64()), (Some(4), Some(2), Some(2)));
    assert_eq!((report["errors"][0]["index"].as_u64(), report["errors"][0]["field"].as_str()), (Some(1), Some("heart_rate")));
    assert_eq!((report["errors"][1]["index"].as_u64(), report["errors"][1]["field"].as_str()), (Some(3), Some("device_id")));
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 4, "the two good readings, each with its set");
    // Each bad reading is kept for the operator too, with its reason and its text.
    let (status, page) = api.call(Method::GET, &format!("/admin/dead-letters?thingName={thing}"), Some(&api.token(Role::Admin, None)), None).await;
    assert_eq!(status, StatusCode::OK);
    let letters = page["deadLetters"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "both bad readings, under the batch's device: {page}");
    assert!(letters.iter().all(|l| l["source"] == "inbox-processor" && l["reasonCode"] == "INVALID_READING"), "{page}");
    let kept: Vec<Value> = letters.iter().map(|l| serde_json::from_str(l["rawPayload"].as_str().unwrap()).unwrap()).collect();
    assert!(kept.contains(&batch["readings"][1]) && kept.contains(&batch["readings"][3]), "the readings as written: {kept:?}");
    assert!(letters.iter().any(|l| l["reason"] == "heart_rate 900 bpm is outside the physiological range 20–300 bpm"), "{page}");

    inbox.drop_file("broken.json", "{\"device_id\": \"x\", \"heart_rate\": ").await;
    let (_, failed) = inbox.moved("broken.json").await;
    let report_key = failed.iter().find(|k| k.contains("/broken_") && k.ends_with(".errors.json")).expect("a report");
    let report: Value = serde_json::from_str(&inbox.text(report_key).await).unwrap();
    assert_eq!(report["errors"][0]["field"], "file");
    assert!(report["errors"][0]["reason"].as_str().unwrap().starts_with("malformed JSON"), "{report}");
    assert!(failed.iter().any(|k| k.contains("/broken_") && !k.ends_with(".errors.json")), "the file itself is kept");
    // A file that is no readings at all is in the dead-letter API too, saying where it went.
    let (_, page) = api.call(Method::GET, "/admin/dead-letters?source=inbox-processor", Some(&api.token(Role::Admin, None)), None).await;
    let letter = page["deadLetters"].as_array().unwrap().iter().find(|l| l["reasonCode"] == "INVALID_FILE").expect("the broken file's dead letter");
    let raw: Value = serde_json::from_str(letter["rawPayload"].as_str().unwrap()).unwrap();
    assert_eq!((raw["file"].as_str(), raw["report"].as_str()), (Some("inbox/broken.json"), Some(report_key.as_str())));
    assert!(letter["reason"].as_str().unwrap().contains("malformed JSON"), "{letter}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redelivered_events_change_nothing() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = device(&api, "DEV103").await;
    let inbox = Inbox::new(&gw);
    let body = json!({"device_id": thing, "timestamp": "2025-11-17T10:30:00Z", "heart_rate": 75}).to_string();
    inbox.drop_file("once.json", body.clone()).await;
    inbox.moved("once.json").await;
    let stored = gw.stack.count(&OBSERVATIONS).await;
    let event = vitalwire_local::s3_events::object_created_event(&inbox.bucket, "inbox/once.json", None, body.len() as i64, "e1", chrono::Utc::now());
    let event: S3Event = serde_json::from_value(event).unwrap();
    let outcome = inbox::handle(&event, &inbox.deps()).await.unwrap();
    assert_eq!(outcome, [InboxOutcome::AlreadyProcessed { key: "inbox/once.json".into() }]);

    // Delivered twice before the move finished (in a bucket the platform does not watch, so
    // that only these two deliveries run): the same destination, the same Observations.
    let quiet = format!("{}-quiet", inbox.bucket);
    inbox.s3.create_bucket().bucket(&quiet).send().await.unwrap();
    inbox.s3.put_object().bucket(&quiet).key("inbox/twice.json").body(body.clone().into_bytes().into()).send().await.unwrap();
    let event = vitalwire_local::s3_events::object_created_event(&quiet, "inbox/twice.json", None, body.len() as i64, "e2", chrono::Utc::now());
    let event: S3Event = serde_json::from_value(event).unwrap();
    let first = inbox::handle(&event, &inbox.deps()).await.unwrap();
    inbox.s3.put_object().bucket(&quiet).key("inbox/twice.json").body(body.into_bytes().into()).send().await.unwrap();
    let second = inbox::handle(&event, &inbox.deps()).await.unwrap();
    assert_eq!(first, second, "same destination");
    assert!(matches!(&first[0], InboxOutcome::Archived { stored: 1, .. }));
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, stored, "nothing filed twice");
    // A concurrent delivery that moved the file first leaves nothing to copy: not an error.
    use vitalwire::ingest::inbox::InboxObjects;
    let moved = inbox::ObjectRef { bucket: quiet.clone(), key: "inbox/twice.json".into(), version: None };
    assert!(!inbox.deps().objects.copy(&moved, "archive/elsewhere.json").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_written_twice_under_one_key_is_two_files_and_names_never_collide() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = device(&api, "DEV105").await;
    let inbox = Inbox::new(&gw);
    let reading = |minute: u32| json!({"device_id": thing, "timestamp": format!("2025-11-17T10:{minute:02}:00Z"), "heart_rate": 70 + minute}).to_string();
    // Two gateways' files under one key, one right after the other: two versions of the object.
    inbox.drop_file("same.json", reading(1)).await;
    inbox.drop_file("same.json", reading(2)).await;
    // Two names that fold into one, dropped together.
    inbox.drop_file("a/b.json", reading(3)).await;
    inbox.drop_file("a_b.ndjson", reading(4)).await;
    for name in ["same.json", "a/b.json", "a_b.ndjson"] {
        inbox.moved(name).await;
    }
    let mut archived = Vec::new();
    for _ in 0..50 {
        archived = inbox.keys("archive/").await;
        if archived.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(archived.len(), 4, "four files, four archived copies: {archived:?}");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 8, "four readings, each with its grouping panel: none lost");
    let mut texts = Vec::new();
    for key in &archived {
        texts.push(inbox.text(key).await);
    }
    texts.sort();
    let mut expected: Vec<String> = (1..=4).map(reading).collect();
    expected.sort();
    assert_eq!(texts, expected, "each archived file is one of the files as written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100_mb_file_is_streamed() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = device(&api, "DEV104").await;
    let inbox = Inbox::new(&gw);
    // Two readings around 100 MB of JSON whitespace: a buffering reader would hold it all.
    let mut body = json!({"device_id": thing, "timestamp": "2025-11-17T10:00:00Z", "heart_rate": 70}).to_string().into_bytes();
    body.push(b'\n');
    body.resize(body.len() + 100 * 1024 * 1024, b' ');
    body.extend_from_slice(json!({"device_id": thing, "timestamp": "2025-11-17T10:05:00Z", "heart_rate": 72}).to_string().as_bytes());
    let size = body.len();
    inbox.drop_file("large.json", body).await;
    let (archived, failed) = inbox.moved("large.json").await;
    assert!(failed.is_empty(), "{failed:?}");
    let key = archived.iter().find(|k| k.contains("/large_")).unwrap();
    let head = inbox.s3.head_object().bucket(&inbox.bucket).key(key).send().await.unwrap();
    assert_eq!(head.content_length(), Some(size as i64), "archived whole");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_larger_than_one_run_goes_on_through_the_queue_from_where_it_saved() {
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let thing = device(&api, "DEV106").await;
    let inbox = Inbox::new(&gw);
    // A batch object and NDJSON lines, one reading bad: resumed within the batch and between lines.
    let reading = |minute: u32| json!({"timestamp": format!("2025-11-17T10:{minute:02}:00Z"), "heart_rate": 60 + minute});
    let mut body = json!({"device_id": thing, "readings": (0..5).map(reading).collect::<Vec<_>>()}).to_string();
    for minute in 5..12 {
        let mut line = reading(minute);
        line["device_id"] = json!(thing);
        if minute == 8 {
            line["heart_rate"] = json!(900);
        }
        body.push('\n');
        body.push_str(&line.to_string());
    }
    // In a bucket the platform does not watch: the first run is this test's, with a chunk of
    // three readings and no time budget, so it files one chunk and hands the rest on.
    let quiet = format!("{}-large", inbox.bucket);
    inbox.s3.create_bucket().bucket(&quiet).send().await.unwrap();
    inbox.s3.put_object().bucket(&quiet).key("inbox/day.ndjson").body(body.clone().into_bytes().into()).send().await.unwrap();
    let event = vitalwire_local::s3_events::object_created_event(&quiet, "inbox/day.ndjson", None, body.len() as i64, "e3", chrono::Utc::now());
    let event: S3Event = serde_json::from_value(event).unwrap();
    let mut deps = inbox.deps();
    deps.limits = RunLimits { chunk_readings: 3, budget: Duration::ZERO };
    let outcome = inbox::handle(&event, &deps).await.unwrap();
    let InboxOutcome::Continued { file_id, readings, .. } = &outcome[0] else { panic!("{outcome:?}") };
    assert_eq!(*readings, 3);
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 6, "the first chunk: three heart rates, each with its set");
    let admin = api.token(Role::Admin, None);
    let (status, filing) = api.call(Method::GET, "/admin/inbox/files?status=FILING", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(filing["files"].as_array().unwrap().iter().any(|f| f["fileId"] == file_id.as_str() && f["readings"] == 3), "{filing}");

    // The queue starts inbox-continue on the local platform (500 readings a chunk): it goes on
    // from reading 3, inside the batch, to the end, and moves the file.
    let mut file = Value::Null;
    for _ in 0..300 {
        let (_, f) = api.call(Method::GET, &format!("/admin/inbox/files/{file_id}"), Some(&admin), None).await;
        if f["status"] != "FILING" {
            file = f;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(file["status"], "FAILED", "{file}");
    assert_eq!((file["readings"].as_u64(), file["stored"].as_u64(), file["failed"].as_u64(), file["runs"].as_u64()), (Some(12), Some(11), Some(1), Some(2)), "{file}");
    assert_eq!((file["problems"][0]["index"].as_u64(), file["problems"][0]["field"].as_str()), (Some(8), Some("heart_rate")), "{file}");
    assert_eq!(gw.stack.count(&OBSERVATIONS).await, 22, "eleven readings, none filed twice, none skipped");
    let report: Value = serde_json::from_str(&inbox.text_in(&quiet, file["report"].as_str().unwrap()).await).unwrap();
    assert_eq!((report["readings"].as_u64(), report["failed"].as_u64(), report["errors"][0]["index"].as_u64()), (Some(12), Some(1), Some(8)));
    let (status, missing) = api.call(Method::GET, "/admin/inbox/files/0123", Some(&admin), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (status, _) = api.call(Method::GET, "/admin/inbox/files", Some(&api.token(Role::Clinician, Some("c-1"))), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operators only");
}
