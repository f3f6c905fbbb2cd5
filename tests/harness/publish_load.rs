//! Publish-to-stored latency on the local platform: a provisioned device publishes heart-rate
//! readings to `$aws/rules/FHIRIngest` at a steady rate over MQTT (loopback only), the gateway
//! runs `fhir-ingest` with alert evaluation for each as its rule does, and the readings are
//! watched for in `ObservationsTable` (the moto emulator) by their Observations' ids, which
//! derive from the device, time and code. Prints the latency percentiles from each publish to
//! its Observation being readable.
//!
//!     cargo run --release -p vitalwire-tests --bin publish-load -- [READINGS] [PER_SECOND] [direct|queue]
//!
//! READINGS defaults to 1 000 (at most 20 000), PER_SECOND to 50; `queue` deploys the stack with
//! `IngestPath=queue` (the rule queues, `fhir-ingest-queue` files batches); it gives up after ten
//! minutes. The gateway keeps AWS's 50 ms before a rule runs (`up --latency`), so that is in
//! every figure, and the watch looks every 10 ms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use serde_json::json;
use vitalwire::observations::{natural_key, observation_id};
use vitalwire::platform::tables::OBSERVATIONS;
use vitalwire_tests::provisioning::provisioned_device;
use vitalwire_tests::{LocalGateway, MqttTestClient};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(1000).min(20_000);
    let per_second: u64 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(50).max(1);
    let path = args.next().unwrap_or_else(|| "direct".into());
    if path != "direct" && path != "queue" {
        return Err(format!("the ingest path is direct or queue, not {path}").into());
    }
    let gw = LocalGateway::start_with_parameters(&[("IngestPath", path.as_str())]).await;
    let (thing, cert, key) = provisioned_device(&gw, "load-0001").await;
    let device = MqttTestClient::connect(gw.port, &gw.read("ca.pem"), cert.as_bytes(), key.as_bytes(), &thing).await?;

    // Each reading's time, and the id its Observation will have.
    let start = chrono::Utc::now() - chrono::Duration::seconds(total as i64);
    let readings: Vec<(chrono::DateTime<chrono::Utc>, String)> = (0..total)
        .map(|i| {
            let at = start + chrono::Duration::milliseconds(i as i64 * 1000);
            let time = vitalwire::platform::time::format_utc(at);
            (at, observation_id(&natural_key(&thing, &time, "http://loinc.org|8867-4", None)))
        })
        .collect();

    // Watches for the Observations of the readings published so far and not yet seen, by id
    // (up to 100 a request): each look costs the emulator what is outstanding, where a query of
    // the device's index reads the whole table on moto, loading it as much as the readings do.
    let published_count = Arc::new(AtomicUsize::new(0));
    let table = gw.stack.table(&OBSERVATIONS);
    let dynamodb = gw.stack.dynamodb.clone();
    let (ids, count) = (readings.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>(), published_count.clone());
    let watcher = tokio::spawn(async move {
        let mut seen: HashMap<String, Instant> = HashMap::new();
        let until = Instant::now() + Duration::from_secs(600);
        while seen.len() < total && Instant::now() < until {
            let outstanding: Vec<&String> = ids[..count.load(Ordering::Acquire)].iter().filter(|id| !seen.contains_key(*id)).take(100).collect();
            if !outstanding.is_empty() {
                let keys = outstanding.iter().map(|id| HashMap::from([("id".to_owned(), AttributeValue::S((*id).clone()))])).collect();
                let wanted = KeysAndAttributes::builder().set_keys(Some(keys)).projection_expression("id").build()?;
                let found = dynamodb.batch_get_item().request_items(&table, wanted).send().await;
                let now = Instant::now();
                for item in found.ok().and_then(|f| f.responses).and_then(|mut r| r.remove(&table)).unwrap_or_default() {
                    if let Some(Ok(id)) = item.get("id").map(|v| v.as_s().cloned()) {
                        seen.entry(id).or_insert(now);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok::<_, aws_sdk_dynamodb::error::BuildError>(seen)
    });

    let mut published: Vec<(String, Instant)> = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
    let began = Instant::now();
    for (at, id) in &readings {
        tick.tick().await;
        let payload = json!({
            "value": 60 + published.len() % 30, "unit": "/min",
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "effectiveDateTime": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        device.publish("$aws/rules/FHIRIngest", payload.to_string()).await;
        published.push((id.clone(), Instant::now()));
        published_count.fetch_add(1, Ordering::Release);
    }
    let sent = began.elapsed();
    let seen = watcher.await??;
    let mut latencies: Vec<Duration> = published.iter().filter_map(|(at, sent)| seen.get(at).map(|stored| stored.saturating_duration_since(*sent))).collect();
    latencies.sort_unstable();
    let missing = total - latencies.len();
    println!("{total} heart-rate readings published at {per_second}/s ({:.1}/s achieved) over MQTT, filed with alert evaluation ({path} ingest path)", total as f64 / sent.as_secs_f64());
    if latencies.is_empty() {
        return Err("no reading was stored".into());
    }
    println!(
        "publish to stored: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}{}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies[latencies.len() - 1],
        if missing > 0 { format!("; {missing} not stored within ten minutes") } else { String::new() }
    );
    Ok(())
}
