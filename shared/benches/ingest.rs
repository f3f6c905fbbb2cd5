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

fn ingest_once(payload: &str) -> StoredObservation {
    let received = Utc.timestamp_millis_opt(1_795_315_200_000).unwrap();
    let p = measurement::parse(payload, received).expect("valid payload");
    let reading = Reading {
        device_id: "acme-bp-0001".into(),
        named_patient: p.patient_id,
        timing: Timing::Received { at: received, delivery: Delivery::Trace("0b8f1f5e".into()) },
        measurements: vec![p.measurement],
        blood_pressure: None,
        grouped: false,
    };
    let (obs, code_key) = reading.observations("patient-123", "2026-11-22T02:40:00.120Z").remove(0);
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

criterion_group!(benches, bench);
criterion_main!(benches);
