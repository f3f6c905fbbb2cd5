//! The connectors' consumer (issue 11): the cost of one SQS batch (10 messages, the most a FIFO
//! batch holds) through envelope, device mapping, FHIR mapping, identity resolution, filing and
//! alert evaluation, over the in-memory ports (so this is the consumer's own work: on AWS each
//! batch adds its DynamoDB round trips, listed in the README's data model).
//! Run with `cargo bench -p vitalwire --features memory --bench connectors`.

use std::hint::black_box;

use aws_lambda_events::sqs::SqsEvent;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};
use vitalwire::connectors::memory::{consumer, MemoryConsumer};
use vitalwire::connectors::messages::{envelope, Sender};
use vitalwire::connectors::IdentityResolutionType;


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

fn deps(fhir_mapping: &str) -> MemoryConsumer {
    consumer(IdentityResolutionType::Lookup, DEVICE, fhir_mapping)
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
