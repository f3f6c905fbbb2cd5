//! Publish-to-stored latency on the local platform: a provisioned device publishes heart-rate
//! readings to `$aws/rules/FHIRIngest` at a steady rate over MQTT (loopback only), the gateway
//! runs `fhir-ingest` with alert evaluation for each as its rule does, and the readings are
//! watched for in the device's index of `ObservationsTable` (the moto emulator). Prints the
//! latency percentiles from each publish to its Observation being readable.
//!
//!     cargo run --release -p vitalwire-tests --bin publish-load -- [READINGS] [PER_SECOND] [direct|queue]
//!
//! READINGS defaults to 1 000 (at most 20 000), PER_SECOND to 50; `queue` deploys the stack with
//! `IngestPath=queue` (the rule queues, `fhir-ingest-queue` files batches); it gives up after ten
//! minutes. The gateway keeps AWS's 50 ms before a rule runs (`up --latency`), so that is in
//! every figure, and the watch looks every 20 ms.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use vitalwire::platform::tables::{OBSERVATIONS, OBSERVATIONS_BY_DEVICE};
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

    // Watches the device's index, newest first, noting when each reading's time first shows.
    let (table, index) = (gw.stack.table(&OBSERVATIONS), OBSERVATIONS_BY_DEVICE.name);
    let dynamodb = gw.stack.dynamodb.clone();
    let watched_thing = thing.clone();
    let watcher = tokio::spawn(async move {
        let mut seen: HashMap<String, Instant> = HashMap::new();
        let until = Instant::now() + Duration::from_secs(600);
        while seen.len() < total && Instant::now() < until {
            let page = dynamodb
                .query()
                .table_name(&table)
                .index_name(index)
                .key_condition_expression("deviceId = :d")
                .expression_attribute_values(":d", AttributeValue::S(watched_thing.clone()))
                .projection_expression("effectiveAt")
                .scan_index_forward(false)
                .limit(300)
                .send()
                .await;
            let now = Instant::now();
            for item in page.map(|p| p.items.unwrap_or_default()).unwrap_or_default() {
                if let Some(Ok(at)) = item.get("effectiveAt").map(|v| v.as_s().cloned()) {
                    seen.entry(at).or_insert(now);
                }
            }
            // Every 20 ms: each query reads the whole index on the emulator, so watching
            // more often would load it as much as the readings do.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    });

    let start = chrono::Utc::now() - chrono::Duration::seconds(total as i64);
    let mut published: Vec<(String, Instant)> = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / per_second));
    let began = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let at = start + chrono::Duration::milliseconds(i as i64 * 1000);
        let payload = json!({
            "value": 60 + i % 30, "unit": "/min",
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "effectiveDateTime": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        device.publish("$aws/rules/FHIRIngest", payload.to_string()).await;
        published.push((vitalwire::platform::time::format_utc(at), Instant::now()));
    }
    let sent = began.elapsed();
    let seen = watcher.await?;
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
