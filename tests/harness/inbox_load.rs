//! A large inbox file through the local platform, end to end: an NDJSON file of heart-rate
//! readings (about 200 bytes each: 500 000 make 100 MB) from several devices and patients is
//! dropped under `inbox/`; the platform's `inbox-processor` files it in chunks, with alert
//! evaluation, and hands what one run (600 s, as in the template) does not finish to
//! `inbox-continue` through the queue. The bench follows the file's record through
//! `GET /admin/inbox/files/{fileId}` and prints the rate as it goes, then checks that every
//! reading was filed once.
//!
//!     cargo run --release -p vitalwire-tests --bin inbox-load -- [READINGS] [PATIENTS] [RUN_SECONDS]
//!
//! READINGS defaults to 500 000, PATIENTS to 20, RUN_SECONDS (the stack's `InboxRunSeconds`:
//! how long a run files before it hands the rest on) to 600. Loopback only; bounded by READINGS.

use std::io::Write as _;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use vitalwire::access::Role;
use vitalwire::devices::{Device, DeviceRegistry, DeviceStatus, DynamoDeviceRegistry};
use vitalwire::platform::tables::OBSERVATIONS;
use vitalwire_tests::{Api, LocalGateway};

/// One reading's line, padded with a note to about 200 bytes, as a gateway's export might be.
fn line(thing: &str, at: chrono::DateTime<chrono::Utc>, i: usize) -> String {
    // Mostly ordinary heart rates; now and then one that scores 3 (an alert, once open).
    let value = if i % 5_000 == 4_999 { 135 } else { 60 + (i % 30) };
    let reading = json!({
        "device_id": thing,
        "timestamp": at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "heart_rate": value,
        "signal_quality": 95,
        "battery_level": 80,
        "notes": "exported by the ward gateway, resting measurement",
    });
    let mut text = reading.to_string();
    text.push('\n');
    text
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(500_000);
    let patients: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(20).max(1);
    let run_seconds: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(600);
    let gw = LocalGateway::start_with_parameters(&[("InboxRunSeconds", &run_seconds.to_string())]).await;
    let api = Api::new(&gw);
    let devices: DynamoDeviceRegistry = gw.stack.deps("inbox-processor");
    let mut things = Vec::with_capacity(patients);
    for p in 0..patients {
        let mut device = Device::registered("Acme Medical", &format!("inbox-load-{p}"), "HR-1", "", "");
        device.status = DeviceStatus::Active;
        device.patient_id = Some(format!("patient-{p}"));
        devices.put(&device).await?;
        things.push(device.thing_name);
    }
    // One reading a second per patient, in time order, ending now.
    let per_patient = total.div_ceil(patients) as i64;
    let start = chrono::Utc::now() - chrono::Duration::seconds(per_patient + 60);
    let mut file = Vec::with_capacity(total * 210);
    for i in 0..total {
        let at = start + chrono::Duration::seconds((i / patients) as i64);
        file.write_all(line(&things[i % patients], at, i).as_bytes())?;
    }
    let bytes = file.len();
    println!("{total} readings of {patients} patients: {:.1} MB", bytes as f64 / 1e6);

    let s3 = vitalwire::platform::aws::s3(&gw.stack.config);
    let bucket = gw.stack.stack.bucket("InboxBucket").ok_or("no inbox bucket")?.to_owned();
    let began = Instant::now();
    let put = s3.put_object().bucket(&bucket).key("inbox/load.ndjson").body(file.into()).send().await?;
    let version = put.version_id().map(str::to_owned);
    let object = vitalwire::ingest::inbox::ObjectRef { bucket: bucket.clone(), key: "inbox/load.ndjson".into(), version };
    let file_id = vitalwire::ingest::inbox::progress::file_id(&object);
    let (mut last_count, mut last_at) = (0, Instant::now());
    let record = loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (status, record) = api.call(Method::GET, &format!("/admin/inbox/files/{file_id}"), Some(&api.token(Role::Admin, None)), None).await;
        if status != StatusCode::OK {
            // Not there yet (404), or the emulator too busy to answer in time: look again.
            if status != StatusCode::NOT_FOUND {
                println!("{:>7.0} s: the files route answered {status}", began.elapsed().as_secs_f64());
            }
            continue;
        }
        let readings = record["readings"].as_u64().unwrap_or(0);
        if readings != last_count {
            let rate = readings.saturating_sub(last_count) as f64 / last_at.elapsed().as_secs_f64();
            println!("{:>7.0} s: {readings:>7} readings, run {}, {rate:>6.0} readings/s", began.elapsed().as_secs_f64(), record["runs"]);
            (last_count, last_at) = (readings, Instant::now());
        }
        if record["status"] != "FILING" {
            break record;
        }
    };
    let elapsed = began.elapsed().as_secs_f64();
    println!(
        "{} in {elapsed:.0} s ({:.0} readings/s, {:.2} MB/s) over {} runs: {} filed, {} refused",
        record["status"],
        total as f64 / elapsed,
        bytes as f64 / 1e6 / elapsed,
        record["runs"],
        record["stored"],
        record["failed"]
    );
    // The table's item count, which the emulator keeps current (DynamoDB updates it every few
    // hours): a counting scan of a million items takes moto tens of minutes, as each page sorts
    // the whole table again.
    let described = gw.stack.dynamodb.describe_table().table_name(gw.stack.table(&OBSERVATIONS)).send().await?;
    let observations = described.table.and_then(|t| t.item_count).unwrap_or(0);
    println!("{observations} Observations stored (per reading a heart rate, the device's battery charge and the grouping panel)");
    if record["status"] != "ARCHIVED" || record["stored"] != json!(total) || observations != 3 * total as i64 {
        return Err(format!("not every reading was filed once: {record}").into());
    }
    Ok(())
}
