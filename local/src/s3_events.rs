//! S3 `ObjectCreated` events for the local stack. The emulator's own notifications lack fields
//! that AWS sends (see `../shared/protocol/local-emulation-notes.md`), so the local stack
//! watches the prefix and delivers events of the real S3 shape to the same handler the Lambda
//! runs. At-least-once, like S3: a restart delivers existing objects again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::s3::S3Event;
use serde_json::json;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::uploads::registration::{self, RegistrationDeps, S3ObjectReader};
use vitalwire::uploads::DynamoUploadStore;

/// The `upload-registered` handler's dependencies.
pub type UploadRegistration = RegistrationDeps<DynamoUploadStore, S3ObjectReader, DynamoDeviceRegistry, DynamoDeadLetterStore>;

/// An S3 `ObjectCreated:Put` event for one object, as S3 sends it (key URL-encoded).
pub fn object_created_event(bucket: &str, key: &str, size: i64, etag: &str) -> serde_json::Value {
    let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>().replace("%2F", "/");
    let now = chrono::Utc::now();
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:LOCAL"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "LOCAL", "x-amz-id-2": "LOCAL"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "UploadRegistered",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "LOCAL"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": {"key": encoded, "size": size, "eTag": etag.trim_matches('"'), "sequencer": format!("{:016X}", now.timestamp_micros())},
        },
    }]})
}

/// What a watched prefix's events are handed to.
pub type EventHandler = Arc<dyn Fn(S3Event) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Watches `prefix` in `bucket` and hands an event for each new object (or new version of one)
/// to `handler`; a failed handling is retried on the next round, as Lambda retries S3 events.
pub fn watch(s3: aws_sdk_s3::Client, bucket: String, prefix: &'static str, handler: EventHandler, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        loop {
            let mut present = HashSet::new();
            let mut pages = s3.list_objects_v2().bucket(&bucket).prefix(prefix).into_paginator().send();
            while let Some(Ok(page)) = pages.next().await {
                for object in page.contents() {
                    let (Some(key), Some(etag)) = (object.key(), object.e_tag()) else { continue };
                    let id = (key.to_owned(), etag.to_owned());
                    present.insert(id.clone());
                    if !seen.insert(id.clone()) {
                        continue;
                    }
                    let event = object_created_event(&bucket, key, object.size().unwrap_or(0), etag);
                    match serde_json::from_value::<S3Event>(event) {
                        Ok(event) => {
                            if let Err(e) = handler(event).await {
                                tracing::error!(error = %e, key, "S3 event handling failed; will retry");
                                seen.remove(&id);
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "could not build the S3 event"),
                    }
                }
            }
            // An object that went away and comes back (the same file dropped again) is new again.
            seen.retain(|id| present.contains(id));
            tokio::time::sleep(every).await;
        }
    })
}

/// Watches `prefix` and hands each new object to the `upload-registered` handler.
pub fn watch_uploads(
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: &'static str,
    deps: Arc<UploadRegistration>,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let handler: EventHandler = Arc::new(move |event| {
        let deps = deps.clone();
        Box::pin(async move { registration::handle(&event, &deps).await.map(|_| ()).map_err(|e| e.to_string()) })
    });
    watch(s3, bucket, prefix, handler, every)
}

/// The `inbox-processor` handler's dependencies.
pub type InboxProcessor = vitalwire::inbox::InboxDeps<
    vitalwire::inbox::S3Inbox,
    DynamoDeviceRegistry,
    vitalwire::observations::DynamoObservationStore,
    vitalwire::alerts::DynamoAlertStore,
>;

/// Watches `inbox/` and hands each dropped file to the `inbox-processor` handler.
pub fn watch_inbox(s3: aws_sdk_s3::Client, bucket: String, deps: Arc<InboxProcessor>, every: Duration) -> tokio::task::JoinHandle<()> {
    let handler: EventHandler = Arc::new(move |event| {
        let deps = deps.clone();
        Box::pin(async move { vitalwire::inbox::handle(&event, &deps).await.map(|_| ()).map_err(|e| e.to_string()) })
    });
    watch(s3, bucket, vitalwire::inbox::INBOX_PREFIX, handler, every)
}
