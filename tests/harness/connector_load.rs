//! Sustained throughput of the connectors' data plane on the local platform: heart-rate
//! messages posted over HTTPS with a connection key, through the SQS FIFO queue and the
//! consumer, until every Observation is stored (DynamoDB and SQS are the moto emulator, so
//! the figure is the local platform's, not AWS's).
//!
//!     cargo run --release -p vitalwire-tests --bin connector-load -- [MESSAGES] [PER_REQUEST]
//!
//! MESSAGES defaults to 2000, PER_REQUEST (NDJSON lines per POST) to 100.

use std::time::Instant;

use reqwest::Method;
use serde_json::json;
use vitalwire::access::Role;
use vitalwire_tests::{Api, LocalGateway};

async fn stored(gw: &LocalGateway) -> usize {
    let table = gw.stack.table(&vitalwire::platform::tables::OBSERVATIONS);
    let mut pages = gw.stack.dynamodb.scan().table_name(table).select(aws_sdk_dynamodb::types::Select::Count).into_paginator().send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += page.map(|p| p.count()).unwrap_or(0) as usize;
    }
    count
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(2000);
    let per_request: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(100);
    let gw = LocalGateway::start().await;
    let api = Api::new(&gw);
    let admin = api.token(Role::Admin, None);
    let (_, device) = api.call(Method::POST, "/admin/devices", Some(&admin), Some(json!({"manufacturer": "Acme", "serialNumber": "load 1"}))).await;
    let thing = device["thingName"].as_str().ok_or("no device")?.to_owned();
    api.call(Method::PUT, &format!("/admin/devices/{thing}/patient"), Some(&admin), Some(json!({"patientId": "pat-load"}))).await;
    api.call(Method::PUT, "/connectors/load", Some(&admin), Some(json!({"identityResolutionType": "Lookup"}))).await;
    let device_mapping = json!({"templateType": "CollectionContent", "template": [{"templateType": "JsonPathContent", "template": {
        "typeName": "heartrate", "typeMatchExpression": "$..[?(@heartrate)]", "deviceIdExpression": "$.deviceid",
        "timestampExpression": "$.measurementdatetime", "values": [{"required": true, "valueExpression": "$.heartrate", "valueName": "hr"}]}}]});
    let fhir_mapping = json!({"templateType": "CollectionFhir", "template": [{"templateType": "CodeValueFhir", "template": {
        "typeName": "heartrate", "codes": [{"code": "8867-4", "system": "http://loinc.org", "display": "Heart rate"}],
        "value": {"valueName": "hr", "valueType": "Quantity", "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}}]});
    for (kind, mapping) in [("device", device_mapping), ("fhir", fhir_mapping)] {
        let response = api.http.put(format!("{}/connectors/load/mappings/{kind}", gw.api_url)).header("authorization", format!("Bearer {admin}")).body(mapping.to_string()).send().await?;
        assert!(response.status().is_success(), "mapping {kind}: {}", response.status());
    }
    api.call(Method::PUT, "/connectors/load/connections/gw-1", Some(&admin), Some(json!({}))).await;
    let (_, keys) = api.call(Method::POST, "/connectors/load/connections/gw-1/listKeys", Some(&admin), None).await;
    let key = keys["primaryKey"].as_str().ok_or("no key")?.to_owned();

    // One reading a second, ending now, so that every one is recent enough to be scored.
    let start = chrono::Utc::now() - chrono::Duration::seconds(total as i64);
    let lines: Vec<String> = (0..total)
        .map(|i| {
            let at = (start + chrono::Duration::seconds(i as i64)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            json!({"heartrate": format!("{}", 60 + i % 30), "deviceid": thing, "measurementdatetime": at}).to_string()
        })
        .collect();
    let began = Instant::now();
    for chunk in lines.chunks(per_request) {
        let response = api.http.post(format!("{}/connectors/load/messages", gw.api_url)).header("authorization", format!("SharedAccessKey {key}")).body(chunk.join("\n")).send().await?;
        assert_eq!(response.status(), reqwest::StatusCode::ACCEPTED);
    }
    let posted = began.elapsed();
    let mut last = 0;
    while last < total {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        last = stored(&gw).await;
        if began.elapsed().as_secs() > 1800 {
            return Err(format!("only {last} of {total} stored after 30 minutes").into());
        }
    }
    let filed = began.elapsed();
    println!("{total} heart-rate messages in requests of {per_request}");
    println!("accepted (202) in {:.2} s: {:.0} messages/s", posted.as_secs_f64(), total as f64 / posted.as_secs_f64());
    println!("all stored in {:.2} s: {:.0} messages/s sustained through queue, consumer and store", filed.as_secs_f64(), total as f64 / filed.as_secs_f64());
    Ok(())
}
