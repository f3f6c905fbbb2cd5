//! The `fhir-ingest` hot path without I/O: validate a device payload, build the Observation,
//! serialize it for storage. Run with `cargo bench -p vitalwire --bench ingest`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use vitalwire::measurement;
use vitalwire::observations::{build_observation, ObservationContext, StoredObservation};

const HEART_RATE: &str = r#"{"value":72,"unit":"bpm","coding":[{"system":"http://loinc.org","code":"8867-4","display":"Heart rate"}],"thingName":"acme-bp-0001","receivedAt":1795315200000,"traceId":"0b8f1f5e"}"#;
const VENDOR_CODE: &str = r#"{"value":"100","unit":"%","coding":[{"system":"http://lifeomic.com/fhir/devices","code":"9750d5e5-d766-4793-a97d-16179578cc4d","display":"Battery Percentage"}],"patientId":"patient-123","thingName":"acme-bp-0001","receivedAt":1795315200000}"#;

fn ingest_once(payload: &str) -> StoredObservation {
    let received = Utc.timestamp_millis_opt(1_795_315_200_000).unwrap();
    let m = measurement::parse(payload, received).expect("valid payload");
    let effective = vitalwire::time::format_utc(received);
    let ctx = ObservationContext {
        thing_name: "acme-bp-0001",
        patient_id: "patient-123",
        effective: &effective,
        effective_utc: &effective,
        issued: "2026-11-22T02:40:00.120Z",
    };
    let obs = build_observation(&m, &ctx);
    StoredObservation::new(&obs, m.code_key(), effective.clone()).expect("serializes")
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
