//! `fhir-ingest` against the AWS emulator: the handler over the DynamoDB adapters, and the real
//! function binary behind the Lambda Runtime API stand-in.

use std::time::Duration;

use serde_json::{json, Value};
use serde_json::value::RawValue;
use vitalwire::dead_letters::{DeadLetterStore, DynamoDeadLetterStore};
use vitalwire::devices::{Device, DeviceRegistry, DeviceStatus, DynamoDeviceRegistry};
use vitalwire::ingest::rule::{self as ingest, IngestDeps, IngestOutcome};
use vitalwire::observations::{DynamoObservationStore, ObservationStore};
use vitalwire::clinical::DynamoAlertStore;
use vitalwire::platform::tables::{DEAD_LETTERS, OBSERVATIONS};
use vitalwire_local::runtime_api::RuntimeApi;
use vitalwire_tests::{assert_valid_fhir, deployed_binary, emulator_environment, repo_root, TestStack};

type Deps = IngestDeps<DynamoDeviceRegistry, DynamoObservationStore, DynamoAlertStore, DynamoDeadLetterStore>;

fn deps(t: &TestStack) -> Deps {
    t.deps("fhir-ingest")
}

fn device(thing: &str, status: DeviceStatus, patient: Option<&str>) -> Device {
    Device {
        thing_name: thing.into(),
        serial_number: format!("SN-{thing}"),
        manufacturer: "Acme Medical".into(),
        model: "BP-200".into(),
        display_name: "test device".into(),
        patient_id: patient.map(Into::into),
        may_name_patient: false,
        status,
        certificate_id: None,
            certificate_bound_at: None,
        firmware: None,
        created_at: "2026-11-01T00:00:00.000Z".into(),
        updated_at: "2026-11-01T00:00:00.000Z".into(),
    }
}

fn sample_event() -> String {
    std::fs::read_to_string(repo_root().join("events/fhir-ingest.json")).expect("sample event")
}

fn event_for(thing: &str, value: Value, unit: &str, system: &str, code: &str, received_at: i64) -> Box<RawValue> {
    let e = json!({
        "value": value, "unit": unit,
        "coding": [{"system": system, "code": code, "display": format!("code {code}")}],
        "thingName": thing, "receivedAt": received_at, "traceId": "trace"
    });
    RawValue::from_string(e.to_string()).expect("json")
}

async fn with_sample_device(t: &TestStack) -> Deps {
    let d = deps(t);
    d.filing.devices.put(&device("acme-bp-0001", DeviceStatus::Active, Some("patient-123"))).await.expect("seed");
    d
}

#[tokio::test]
async fn sample_event_is_stored_and_found_by_id_device_and_patient_code() {
    let t = TestStack::new().await;
    let d = with_sample_device(&t).await;
    let raw = RawValue::from_string(sample_event()).unwrap();
    let IngestOutcome::Stored { observation_id } = ingest::handle(&raw, &d).await.expect("handled") else {
        panic!("sample event was not stored");
    };

    let stored = d.filing.observations.get(&observation_id).await.unwrap().expect("stored observation");
    let obs: Value = serde_json::from_str(&stored.resource).unwrap();
    assert_eq!(obs["resourceType"], "Observation");
    assert_eq!(obs["id"], observation_id.as_str());
    assert_eq!(obs["status"], "final");
    assert_eq!(obs["subject"]["reference"], "Patient/patient-123");
    assert_eq!(obs["device"]["reference"], "Device/acme-bp-0001");
    assert_eq!(obs["code"]["coding"][0]["code"], "8867-4");
    assert_eq!(obs["category"][0]["coding"][0]["code"], "vital-signs");
    assert_eq!(obs["valueQuantity"], json!({"value": 72, "unit": "bpm", "system": "http://unitsofmeasure.org", "code": "/min"}));
    // receivedAt 1795315200000 ms, from the rule's timestamp().
    assert_eq!(obs["effectiveDateTime"], "2026-11-22T02:40:00.000Z");
    assert_valid_fhir(&stored.resource);

    let by_device = d.filing.observations.for_device("acme-bp-0001", 10).await.unwrap();
    assert_eq!(by_device.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), [observation_id.as_str()]);
    let in_window = d
        .filing.observations
        .for_patient_code("patient-123", "http://loinc.org|8867-4", "2026-11-22T00:00:00.000Z", "2026-11-23T00:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(in_window.len(), 1);
    let outside = d
        .filing.observations
        .for_patient_code("patient-123", "http://loinc.org|8867-4", "2026-11-23T00:00:00.000Z", "2026-11-24T00:00:00.000Z")
        .await
        .unwrap();
    assert!(outside.is_empty());
}

#[tokio::test]
async fn redelivery_writes_nothing_new() {
    let t = TestStack::new().await;
    let d = with_sample_device(&t).await;
    let raw = RawValue::from_string(sample_event()).unwrap();
    let first = ingest::handle(&raw, &d).await.unwrap();
    let IngestOutcome::Stored { observation_id } = first else { panic!("not stored: {first:?}") };
    let stored_before = d.filing.observations.get(&observation_id).await.unwrap().unwrap();
    for _ in 0..3 {
        let again = ingest::handle(&raw, &d).await.unwrap();
        assert_eq!(again, IngestOutcome::Duplicate { observation_id: observation_id.clone() });
    }
    assert_eq!(t.count(&OBSERVATIONS).await, 1);
    assert_eq!(d.filing.observations.get(&observation_id).await.unwrap().unwrap(), stored_before, "the first write is kept as it was");
    assert_eq!(t.count(&DEAD_LETTERS).await, 0);
}

#[tokio::test]
async fn unknown_device_is_refused_and_kept_as_a_dead_letter() {
    let t = TestStack::new().await;
    let d = deps(&t);
    let raw = RawValue::from_string(sample_event()).unwrap();
    let outcome = ingest::handle(&raw, &d).await.unwrap();
    let IngestOutcome::Rejected { dead_letter_id, reason_code, reason } = outcome else { panic!("accepted: {outcome:?}") };
    assert_eq!(reason_code, "UNKNOWN_DEVICE");
    assert_eq!(reason, "device 'acme-bp-0001' is not registered");
    assert_eq!(t.count(&OBSERVATIONS).await, 0);

    let page = d.dead_letters.list(ingest::SOURCE, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let letter = &page.items[0];
    assert_eq!(letter.id, dead_letter_id);
    assert_eq!(letter.thing_name.as_deref(), Some("acme-bp-0001"));
    assert_eq!(letter.reason_code, "UNKNOWN_DEVICE");
    assert_eq!(letter.raw_payload, sample_event().trim_end(), "the message is kept as received");
    assert_eq!(letter.received_at, "2026-11-22T02:40:00.000Z");

    // Redelivered: still one dead letter.
    ingest::handle(&raw, &d).await.unwrap();
    assert_eq!(t.count(&DEAD_LETTERS).await, 1);
}

#[tokio::test]
async fn inactive_and_blocked_devices_are_refused() {
    let t = TestStack::new().await;
    let d = deps(&t);
    d.filing.devices.put(&device("off-1", DeviceStatus::Inactive, Some("p1"))).await.unwrap();
    d.filing.devices.put(&device("blocked-1", DeviceStatus::Blocked, Some("p1"))).await.unwrap();
    for (thing, status) in [("off-1", "INACTIVE"), ("blocked-1", "BLOCKED")] {
        let e = event_for(thing, json!(70), "bpm", "http://loinc.org", "8867-4", 1_795_315_200_000);
        let outcome = ingest::handle(&e, &d).await.unwrap();
        let expected = format!("device '{thing}' is {status}, not ACTIVE");
        assert!(
            matches!(&outcome, IngestOutcome::Rejected { reason_code, reason, .. } if reason_code == "DEVICE_NOT_ACTIVE" && *reason == expected),
            "{outcome:?}"
        );
    }
    assert_eq!(t.count(&OBSERVATIONS).await, 0);
    assert_eq!(t.count(&DEAD_LETTERS).await, 2);
}

#[tokio::test]
async fn invalid_payloads_are_dead_lettered_with_the_field_at_fault() {
    let t = TestStack::new().await;
    let d = with_sample_device(&t).await;
    let cases = [
        (json!({"value": "high", "unit": "bpm", "coding": [{"system": "http://loinc.org", "code": "8867-4"}]}), "INVALID_VALUE"),
        (json!({"value": 70, "coding": [{"system": "http://loinc.org", "code": "8867-4"}]}), "MISSING_FIELD"),
        (json!({"value": 70, "unit": "bpm", "coding": []}), "INVALID_CODING"),
        (json!({"value": 70, "unit": "kPa", "coding": [{"system": "http://loinc.org", "code": "8867-4"}]}), "UNIT_NOT_ALLOWED"),
    ];
    for (i, (mut payload, code)) in cases.into_iter().enumerate() {
        payload["thingName"] = json!("acme-bp-0001");
        payload["receivedAt"] = json!(1_795_315_200_000_i64 + i as i64);
        let raw = RawValue::from_string(payload.to_string()).unwrap();
        let outcome = ingest::handle(&raw, &d).await.unwrap();
        assert!(matches!(&outcome, IngestOutcome::Rejected { reason_code, .. } if reason_code == code), "{payload}: {outcome:?}");
    }
    let page = d.dead_letters.list(ingest::SOURCE, 2, None).await.unwrap();
    assert_eq!(page.items.len(), 2);
    let codes = |items: &[vitalwire::dead_letters::DeadLetter]| items.iter().map(|l| l.reason_code.clone()).collect::<Vec<_>>();
    assert_eq!(codes(&page.items), ["UNIT_NOT_ALLOWED", "INVALID_CODING"], "newest first");
    let rest = d.dead_letters.list(ingest::SOURCE, 10, page.next.as_deref()).await.unwrap();
    assert_eq!(codes(&rest.items), ["MISSING_FIELD", "INVALID_VALUE"], "the next page continues after the cursor");
    assert_eq!(rest.next, None);
    assert_eq!(t.count(&OBSERVATIONS).await, 0);
}

#[tokio::test]
async fn every_vital_sign_and_a_manufacturer_code_become_valid_fhir() {
    let t = TestStack::new().await;
    let d = with_sample_device(&t).await;
    // (system, code, value as sent, unit as sent, expected category, expected UCUM code)
    let loinc = "http://loinc.org";
    let cases = [
        (loinc, "8867-4", json!(72), "bpm", Some("vital-signs"), Some("/min")),
        (loinc, "9279-1", json!("16"), "breaths/min", Some("vital-signs"), Some("/min")),
        (loinc, "2708-6", json!(97), "%", Some("vital-signs"), Some("%")),
        (loinc, "59408-5", json!(96), "%", Some("vital-signs"), Some("%")),
        (loinc, "8310-5", json!("36.60"), "Cel", Some("vital-signs"), Some("Cel")),
        (loinc, "8310-5", json!(98.6), "F", Some("vital-signs"), Some("[degF]")),
        (loinc, "29463-7", json!(72.5), "kg", Some("vital-signs"), Some("kg")),
        (loinc, "29463-7", json!(160), "lbs", Some("vital-signs"), Some("[lb_av]")),
        (loinc, "8480-6", json!(120), "mmHg", Some("vital-signs"), Some("mm[Hg]")),
        (loinc, "8462-4", json!(80), "mmHg", Some("vital-signs"), Some("mm[Hg]")),
        (loinc, "2339-0", json!(95), "mg/dL", Some("laboratory"), Some("mg/dL")),
        (loinc, "15074-8", json!(5.4), "mmol/L", Some("laboratory"), Some("mmol/L")),
        ("http://lifeomic.com/fhir/devices", "9750d5e5-d766-4793-a97d-16179578cc4d", json!("100"), "%", None, Some("%")),
    ];
    let mut resources = Vec::new();
    for (i, (system, code, value, unit, category, ucum)) in cases.iter().enumerate() {
        let e = event_for("acme-bp-0001", value.clone(), unit, system, code, 1_795_315_200_000 + i as i64);
        let IngestOutcome::Stored { observation_id } = ingest::handle(&e, &d).await.unwrap() else { panic!("{code} not stored") };
        let stored = d.filing.observations.get(&observation_id).await.unwrap().unwrap();
        let obs: Value = serde_json::from_str(&stored.resource).unwrap();
        assert_eq!(obs["category"][0]["coding"][0]["code"].as_str(), *category, "{code}");
        assert_eq!(obs["valueQuantity"]["code"].as_str(), *ucum, "{code}");
        assert_eq!(obs["valueQuantity"]["unit"], *unit, "{code}: unit kept as sent");
        assert_eq!(obs["code"]["coding"][0]["system"], *system, "{code}: system kept");
        let sent = match value { Value::String(s) => s.clone(), other => other.to_string() };
        assert!(stored.resource.contains(&format!("\"value\":{sent}")), "{code}: value kept as sent ({sent})");
        resources.push(stored.resource);
    }
    assert_valid_fhir(&format!("[{}]", resources.join(",")));
}

#[tokio::test]
async fn the_function_binary_files_the_sample_event_with_its_template_environment() {
    let t = TestStack::new().await;
    with_sample_device(&t).await;
    let function = t.stack.function("fhir-ingest").expect("fhir-ingest in template.yaml");
    let mut env = t.stack.function_env(&function).expect("environment resolves");
    env.extend(emulator_environment());
    let api = RuntimeApi::start().await.unwrap();
    let mut command = tokio::process::Command::new(deployed_binary("fhir-ingest"));
    command.stdout(std::process::Stdio::piped());
    let mut process = api.spawn_command(command, "fhir-ingest", &env).unwrap();

    let answer = api.invoke(sample_event().into_bytes(), Duration::from_secs(30)).await.expect("invocation");
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["outcome"], "stored");
    let again: Value = serde_json::from_slice(&api.invoke(sample_event().into_bytes(), Duration::from_secs(30)).await.unwrap()).unwrap();
    assert_eq!(again, json!({"outcome": "duplicate", "observationId": answer["observationId"]}));
    assert_eq!(t.count(&OBSERVATIONS).await, 1);

    let bad: Value = serde_json::from_slice(
        &api.invoke(br#"{"value":"x","unit":"bpm","coding":[{"system":"s","code":"c"}],"thingName":"acme-bp-0001","receivedAt":1}"#.to_vec(), Duration::from_secs(30))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(bad["outcome"], "rejected");
    assert_eq!(bad["reasonCode"], "INVALID_VALUE");
    assert_eq!(t.count(&DEAD_LETTERS).await, 1);

    // Its metrics are EMF lines on standard output, which CloudWatch Logs turns into metrics.
    process.start_kill().unwrap();
    let output = process.wait_with_output().await.unwrap();
    let emf: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .collect();
    for doc in &emf {
        assert_eq!(doc["Service"], "fhir-ingest", "{doc}");
        for directive in doc["_aws"]["CloudWatchMetrics"].as_array().unwrap() {
            assert_eq!(directive["Namespace"], "Vitalwire", "no METRICS_NAMESPACE here (the template sets it in Globals)");
            for dimension in directive["Dimensions"][0].as_array().unwrap() {
                assert!(doc[dimension.as_str().unwrap()].is_string(), "a declared dimension has its value: {doc}");
            }
            for metric in directive["Metrics"].as_array().unwrap() {
                assert!(doc[metric["Name"].as_str().unwrap()].is_u64(), "a declared metric has its value: {doc}");
            }
        }
    }
    let total = |name: &str| emf.iter().filter_map(|doc| doc[name].as_u64()).sum::<u64>();
    assert_eq!((total("Invocations"), total("Errors"), total("ReadingsFiled"), total("DuplicateReadings")), (3, 0, 1, 1));
    let refusal = emf.iter().find(|doc| doc.get("Refusals").is_some()).expect("the refusal is counted");
    assert_eq!((refusal["Reason"].as_str(), refusal["Refusals"].as_u64()), (Some("INVALID_VALUE"), Some(1)));
}

/// The queued path's function binary, as Lambda's SQS event source runs it: the sample batch is
/// filed, and a redelivery of it files nothing new and reports no failure.
#[tokio::test]
async fn the_queued_function_binary_files_the_sample_batch() {
    let t = TestStack::with_parameters(&[("IngestPath", "queue")]).await;
    with_sample_device(&t).await;
    let function = t.stack.function("fhir-ingest-queue").expect("fhir-ingest-queue in template.yaml");
    let mut env = t.stack.function_env(&function).expect("environment resolves");
    env.extend(emulator_environment());
    let api = RuntimeApi::start().await.unwrap();
    let _process = api.spawn_function(&deployed_binary("fhir-ingest-queue"), "fhir-ingest-queue", &env).unwrap();
    let batch = std::fs::read(repo_root().join("events/fhir-ingest-queue.json")).unwrap();
    for _ in 0..2 {
        let answer: Value = serde_json::from_slice(&api.invoke(batch.clone(), Duration::from_secs(30)).await.expect("invocation")).unwrap();
        assert_eq!(answer, json!({"batchItemFailures": []}));
        assert_eq!(t.count(&OBSERVATIONS).await, 1);
    }
}

/// The patients' current vital signs in DynamoDB (`AlertsTable`, `VITALS`), which alert
/// evaluation reads instead of the history: each vital sign keeps its newest value; an older
/// value in the same set as a newer one does not stop the newer one landing; the same time
/// again (a redelivery) is taken; a value entered in a set keeps no device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_current_vital_signs_keep_the_newest_value_of_each() {
    use vitalwire::clinical::{AlertStore, CurrentValue};
    let t = TestStack::new().await;
    let alerts: DynamoAlertStore = t.deps("fhir-ingest");
    let value = |code: &str, at: &str, v: &str| CurrentValue {
        code_key: format!("http://loinc.org|{code}"),
        observation_id: format!("{code}@{at}"),
        device_id: "cuff-1".into(),
        effective_at: at.into(),
        value: v.into(),
        unit: "/min".into(),
    };
    let current = |found: Vec<CurrentValue>| {
        let mut found: Vec<(String, String, String)> = found.into_iter().map(|c| (c.code_key, c.value, c.device_id)).collect();
        found.sort();
        found
    };
    let (hr, rr) = ("http://loinc.org|8867-4".to_owned(), "http://loinc.org|9279-1".to_owned());
    alerts.record_current("P1", &[value("8867-4", "2026-11-22T11:00:00.000Z", "72"), value("9279-1", "2026-11-22T11:00:00.000Z", "16")]).await.unwrap();
    let answered = alerts.record_current("P1", &[value("8867-4", "2026-11-22T10:00:00.000Z", "60"), value("9279-1", "2026-11-22T11:05:00.000Z", "20")]).await.unwrap();
    let expected = [(hr.clone(), "72".into(), "cuff-1".into()), (rr.clone(), "20".into(), "cuff-1".into())];
    assert_eq!(current(alerts.current("P1").await.unwrap()), expected);
    assert_eq!(current(answered), expected, "the write answers the record as it now is");
    alerts.record_current("P1", &[value("9279-1", "2026-11-22T11:05:00.000Z", "20")]).await.unwrap();
    let entered = CurrentValue { device_id: String::new(), ..value("8867-4", "2026-11-22T11:10:00.000Z", "90") };
    let answered = alerts.record_current("P1", &[entered]).await.unwrap();
    assert_eq!(current(answered), [(hr, "90".into(), String::new()), (rr, "20".into(), "cuff-1".into())], "one round trip answers the whole record");
    assert!(alerts.current("P2").await.unwrap().is_empty(), "another patient's are their own");
}
