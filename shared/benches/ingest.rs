//! The `fhir-ingest` hot path without I/O: validate a device payload, build the Observation,
//! serialize it for storage. Run with `cargo bench -p vitalwire --bench ingest`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use vitalwire::ingest::measurement;
use vitalwire::ingest::{Delivery, Reading, Timing};
use vitalwire::observations::{Fingerprint, StoredObservation};

const HEART_RATE: &str = r#"{"value":72,"unit":"bpm","coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"thingName":"acme-bp-0001","receivedAt":1795315200000,"traceId":"0b8f1f5e"}"#;
const VENDOR_CODE: &str = r#"{"value":"100","unit":"%","coding":[{"system":"http://lifeomic.com/fhir/devices","code":"9750d5e5-d766-4793-a97d-16179578cc4d","display":"Battery Percentage"}],"patientId":"patient-123","thingName":"acme-bp-0001","receivedAt":1795315200000}"#;

/// The payload validated and read as `fhir-ingest` reads it.
fn reading_of(payload: &str, received: chrono::DateTime<Utc>) -> Reading {
    let p = measurement::parse(payload, received).expect("valid payload");
    Reading {
        device_id: "acme-bp-0001".into(),
        named_patient: p.patient_id,
        timing: Timing::Received { at: received, delivery: Delivery::Trace("0b8f1f5e".into()) },
        measurements: vec![p.measurement],
        blood_pressure: None,
        grouped: false,
        device_status: Vec::new(),
    }
}

fn ingest_once(payload: &str) -> StoredObservation {
    let received = Utc.timestamp_millis_opt(1_795_315_200_000).unwrap();
    let (obs, code_key) = reading_of(payload, received).observations("patient-123", "2026-11-22T02:40:00.120Z").remove(0);
    StoredObservation::new(&obs, code_key, vitalwire::platform::time::format_utc(received), Fingerprint::WithoutTime).expect("serializes")
}

fn bench(c: &mut Criterion) {
    c.bench_function("ingest: validate + build + serialize (LOINC heart rate)", |b| {
        b.iter(|| ingest_once(black_box(HEART_RATE)))
    });
    c.bench_function("ingest: validate + build + serialize (vendor code)", |b| {
        b.iter(|| ingest_once(black_box(VENDOR_CODE)))
    });
}

/// The parts of the hot path on their own, to see where its time goes.
fn parts(c: &mut Criterion) {
    use sha2::Digest;
    let received = Utc.timestamp_millis_opt(1_795_315_200_000).unwrap();
    c.bench_function("ingest part: parse and validate the payload", |b| b.iter(|| measurement::parse(black_box(HEART_RATE), received).expect("valid")));
    let reading = reading_of(HEART_RATE, received);
    c.bench_function("ingest part: build the Observation", |b| b.iter(|| black_box(&reading).observations("patient-123", "2026-11-22T02:40:00.120Z")));
    let (obs, code_key) = reading.observations("patient-123", "2026-11-22T02:40:00.120Z").remove(0);
    c.bench_function("ingest part: write the Observation's JSON", |b| {
        b.iter(|| {
            let mut json = String::with_capacity(1536);
            vitalwire::fhir::json::observation(&mut json, black_box(&obs)).unwrap();
            json
        })
    });
    c.bench_function("ingest part: the same by serde_json", |b| b.iter(|| serde_json::to_string(black_box(&obs)).unwrap()));
    let json = serde_json::to_string(&obs).unwrap();
    c.bench_function("ingest part: SHA-256 of its JSON (sha2)", |b| b.iter(|| sha2::Sha256::digest(black_box(json.as_bytes()))));
    c.bench_function("ingest part: SHA-256 of its JSON (aws-lc)", |b| b.iter(|| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(json.as_bytes()))));
    // The path's own digests are short: an id's key, and the fingerprint's third of the JSON.
    let key = obs.identifier[0].value.as_bytes();
    let recorded = &json.as_bytes()[..290];
    for (what, bytes) in [("an id's key", key), ("290 bytes, a fingerprint's", recorded)] {
        c.bench_function(&format!("ingest part: SHA-256 of {what} (sha2)"), |b| b.iter(|| sha2::Sha256::digest(black_box(bytes))));
        c.bench_function(&format!("ingest part: SHA-256 of {what} (aws-lc)"), |b| b.iter(|| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, black_box(bytes))));
    }
    println!("id's key: {} bytes", key.len());
    println!("JSON: {} bytes", json.len());
    c.bench_function("ingest part: wrap for storage (fingerprint and JSON)", |b| {
        b.iter(|| StoredObservation::new(black_box(&obs), code_key.clone(), "2026-11-22T02:40:00.000Z".into(), Fingerprint::WithoutTime).unwrap())
    });
}

criterion_group!(benches, bench, parts);
criterion_main!(benches);
