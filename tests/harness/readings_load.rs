//! Readings per second as a patient's history grows: heart-rate device messages filed one after
//! another through `fhir-ingest`'s handler, with alert evaluation, by the real DynamoDB adapters
//! against the moto emulator (the local platform's DynamoDB), for one patient. Prints the rate of
//! each block of readings, so that the first block and the last can be compared: with alerts
//! reading the patient's current vital signs rather than the history, they should match.
//!
//!     cargo run --release -p vitalwire-tests --bin readings-load -- [READINGS] [BLOCK]
//!
//! READINGS defaults to 10 000, BLOCK to 1 000.

use std::time::Instant;

use serde_json::json;
use serde_json::value::RawValue;
use vitalwire::clinical::DynamoAlertStore;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::devices::{Device, DeviceRegistry, DeviceStatus, DynamoDeviceRegistry};
use vitalwire::ingest::rule::{self as ingest, IngestDeps, IngestOutcome};
use vitalwire::observations::DynamoObservationStore;
use vitalwire_tests::TestStack;

type Deps = IngestDeps<DynamoDeviceRegistry, DynamoObservationStore, DynamoAlertStore, DynamoDeadLetterStore>;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(10_000);
    let block: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1_000).max(1);
    let t = TestStack::new().await;
    let deps: Deps = t.deps("fhir-ingest");
    let mut device = Device::registered("Acme Medical", "load-1", "HR-1", "", "");
    device.status = DeviceStatus::Active;
    device.patient_id = Some("patient-load".into());
    deps.filing.devices.put(&device).await?;
    let thing = device.thing_name.clone();

    // One reading a second, ending now, so that each is within the alert window of the last.
    let start = chrono::Utc::now().timestamp_millis() - total as i64 * 1000;
    let mut rates = Vec::new();
    let mut block_began = Instant::now();
    let began = Instant::now();
    for i in 0..total {
        // Mostly ordinary heart rates; now and then one that scores 3 (an alert, once open).
        let value = if i % 500 == 499 { 135 } else { 60 + (i % 30) };
        let event = json!({
            "value": value, "unit": "/min",
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "thingName": thing, "receivedAt": start + i as i64 * 1000, "traceId": format!("load-{i}"),
        });
        let raw = RawValue::from_string(event.to_string())?;
        match ingest::handle(&raw, &deps).await? {
            IngestOutcome::Stored { .. } => {}
            other => return Err(format!("reading {i} was not stored: {other:?}").into()),
        }
        if (i + 1) % block == 0 || i + 1 == total {
            let done = (i % block) + 1;
            let rate = done as f64 / block_began.elapsed().as_secs_f64();
            println!("readings {:>7}-{:<7} {rate:>7.1} readings/s", i + 1 - done + 1, i + 1);
            rates.push(rate);
            block_began = Instant::now();
        }
    }
    let (first, last) = (rates[0], rates[rates.len() - 1]);
    println!("{total} heart-rate readings with alert evaluation in {:.1} s: {:.1} readings/s overall", began.elapsed().as_secs_f64(), total as f64 / began.elapsed().as_secs_f64());
    println!("first block {first:.1} readings/s, last block {last:.1} readings/s: the last at {:.0} % of the first", last / first * 100.0);
    Ok(())
}
