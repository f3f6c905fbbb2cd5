//! The connectors' consumer (issue 11): the cost of one SQS batch (10 messages, the most a FIFO
//! batch holds) through envelope, device mapping, FHIR mapping, identity resolution, filing and
//! alert evaluation, over the in-memory ports (so this is the consumer's own work: on AWS each
//! batch adds its DynamoDB round trips, listed in the README's data model).
//! Run with `cargo bench -p vitalwire --features memory --bench connectors`.

use std::hint::black_box;

use aws_lambda_events::sqs::SqsEvent;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use vitalwire::clinical::memory::MemoryAlerts;
use vitalwire::clinical::AlertSettings;
use vitalwire::connectors::consumer::ConsumerDeps;
use vitalwire::connectors::mappings::{MappingKind, StoredMapping};
use vitalwire::connectors::memory::MemoryConnectors;
use vitalwire::connectors::messages::{envelope, Sender};
use vitalwire::connectors::{Connector, IdentityResolutionType};
use vitalwire::dead_letters::memory::MemoryDeadLetters;
use vitalwire::devices::memory::MemoryDevices;
use vitalwire::devices::{Device, DeviceStatus};
use vitalwire::ingest::FilingDeps;
use vitalwire::observations::memory::MemoryObservations;
use vitalwire::patients::memory::{MemoryEncounters, MemoryPatients};
use vitalwire::platform::metrics::MemoryMetrics;

type Deps = ConsumerDeps<MemoryConnectors, MemoryDevices, MemoryPatients, MemoryEncounters, MemoryObservations, MemoryAlerts, MemoryDeadLetters, MemoryMetrics>;

const DEVICE: &str = r#"{"templateType": "CollectionContent", "template": [{"templateType": "JsonPathContent", "template": {
    "typeName": "heartrate", "typeMatchExpression": "$..[?(@heartrate)]", "deviceIdExpression": "$.deviceid",
    "timestampExpression": "$.measurementdatetime", "values": [{"required": true, "valueExpression": "$.heartrate", "valueName": "hr"}]}}]}"#;

fn fhir(value_type: &str) -> String {
    let value = match value_type {
        "Quantity" => json!({"valueName": "hr", "valueType": "Quantity", "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}),
        _ => json!({"valueName": "hr", "valueType": "SampledData", "defaultPeriod": 1000, "unit": "/min"}),
    };
    let interval = if value_type == "Quantity" { 0 } else { 60 };
    json!({"templateType": "CollectionFhir", "template": [{"templateType": "CodeValueFhir", "template": {
        "typeName": "heartrate", "periodInterval": interval, "codes": [{"code": "8867-4", "system": "http://loinc.org"}], "value": value}}]})
    .to_string()
}

fn deps(fhir_mapping: &str) -> Deps {
    let store = MemoryConnectors::default();
    let connector = Connector::created("ward-7", IdentityResolutionType::Lookup, "");
    store.connectors.lock().unwrap().insert("ward-7".into(), connector);
    for (kind, text) in [(MappingKind::Device, DEVICE.to_owned()), (MappingKind::Fhir, fhir_mapping.to_owned())] {
        let m = StoredMapping { connector: "ward-7".into(), kind, version: 1, text, updated_at: String::new() };
        store.mappings.lock().unwrap().insert(("ward-7".into(), kind.as_str(), 1), m);
    }
    let mut band = Device::registered("Acme", "band 7", "HR", "", "");
    band.status = DeviceStatus::Active;
    band.patient_id = Some("pat-1".into());
    ConsumerDeps {
        store,
        filing: FilingDeps {
            devices: MemoryDevices::with(vec![band]),
            observations: MemoryObservations::default(),
            alerts: MemoryAlerts::default(),
            alert_settings: AlertSettings::default(),
        },
        patients: MemoryPatients::default(),
        encounters: MemoryEncounters::default(),
        dead_letters: MemoryDeadLetters::default(),
        metrics: MemoryMetrics::default(),
    }
}

/// Ten heart-rate messages a second apart, as the front door queues them.
fn batch() -> SqsEvent {
    let records: Vec<Value> = (0..10)
        .map(|i| {
            let body = json!({"heartrate": format!("{}", 60 + i), "deviceid": "acme-band-7", "measurementdatetime": format!("2026-12-01T10:00:{i:02}Z")});
            let id = format!("m-{i}");
            let e = envelope("ward-7", &Sender::Connection { name: "gw-1", device: None }, body, serde_json::Map::new(), "2026-12-01T10:00:10.000Z", &id);
            json!({"messageId": id, "body": e.to_string(), "attributes": {"MessageGroupId": "ward-7/gw-1"}})
        })
        .collect();
    serde_json::from_value(json!({"Records": records})).unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut group = c.benchmark_group("consumer batch of 10 heart-rate messages");
    group.throughput(Throughput::Elements(10));
    for value_type in ["Quantity", "SampledData"] {
        let mapping = fhir(value_type);
        group.bench_function(value_type, |b| {
            b.iter_batched(
                || (deps(&mapping), batch()),
                |(deps, event)| {
                    let answer = runtime.block_on(deps.handle(event)).unwrap();
                    assert!(answer.batch_item_failures.is_empty());
                    black_box(deps)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
