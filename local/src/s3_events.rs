//! S3 `ObjectCreated` events for the local stack. The emulator's own notifications lack fields
//! that AWS sends (see `../shared/protocol/local-emulation-notes.md`), so the local stack
//! watches each prefix a function is notified for and delivers events of the real S3 shape,
//! one per object version, to that function. At-least-once, like S3: a restart delivers
//! existing objects again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::functions::LocalFunctions;

/// An S3 `ObjectCreated:Put` event for one object version written at `at`, as S3 sends it (key
/// URL-encoded). A redelivery of it carries the same time, as S3's does.
pub fn object_created_event(bucket: &str, key: &str, version: Option<&str>, size: i64, etag: &str, at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>().replace("%2F", "/");
    let mut object = json!({"key": encoded, "size": size, "eTag": etag.trim_matches('"'), "sequencer": format!("{:016X}", at.timestamp_micros())});
    if let Some(v) = version {
        object["versionId"] = json!(v);
    }
    json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:LOCAL"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "LOCAL", "x-amz-id-2": "LOCAL"},
        "s3": {
            "s3SchemaVersion": "1.0", "configurationId": "Local",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "LOCAL"}, "arn": format!("arn:aws:s3:::{bucket}")},
            "object": object,
        },
    }]})
}

/// Watches `prefix` in `bucket` and hands an event for each new object version to `function`;
/// a failed handling is retried on the next round, as Lambda retries S3 events.
pub fn watch(
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: &'static str,
    functions: Arc<LocalFunctions>,
    function: &'static str,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        loop {
            let mut present = HashSet::new();
            let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
            loop {
                let listed = s3
                    .list_object_versions()
                    .bucket(&bucket)
                    .prefix(prefix)
                    .set_key_marker(key_marker.take())
                    .set_version_id_marker(version_marker.take())
                    .send()
                    .await;
                let Ok(page) = listed else { break };
                for version in page.versions() {
                    let (Some(key), Some(etag)) = (version.key(), version.e_tag()) else { continue };
                    // A bucket without versioning lists each object once, as version "null".
                    let version_id = version.version_id().filter(|v| *v != "null");
                    let id = (key.to_owned(), version_id.map_or_else(|| etag.to_owned(), str::to_owned));
                    present.insert(id.clone());
                    if !seen.insert(id.clone()) {
                        continue;
                    }
                    let written = version
                        .last_modified()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                        .unwrap_or_else(chrono::Utc::now);
                    let event = object_created_event(&bucket, key, version_id, version.size().unwrap_or(0), etag, written);
                    if let Err(e) = functions.invoke(function, &event.to_string()).await {
                        tracing::error!(error = %e, key, "S3 event handling failed; will retry");
                        seen.remove(&id);
                    }
                }
                if page.is_truncated() != Some(true) {
                    break;
                }
                key_marker = page.next_key_marker().map(str::to_owned);
                version_marker = page.next_version_id_marker().map(str::to_owned);
            }
            // A version that went away and comes back (the same file dropped again) is new again.
            seen.retain(|id| present.contains(id));
            tokio::time::sleep(every).await;
        }
    })
}
