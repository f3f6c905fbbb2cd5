//! `inbox-processor`: files dropped under `inbox/` in the inbox bucket (S3 `ObjectCreated`).
//!
//! A file holds one reading (the vitals API's format), a batch `{"device_id", "readings": [...]}`,
//! or NDJSON (one reading or batch per line). It is streamed ([`scanner`]): only the reading
//! being read is held, so a 100 MB file fits a 256 MB function. Each valid reading goes through
//! the same filing as the REST API ([`crate::vitals_api::file_reading`]: Observations, alerts).
//!
//! Then the file moves (copy, then delete: nothing is deleted without a copy) to
//! `archive/YYYY-MM-DD/<name>_<YYYYmmdd_HHMMSS>.json`, or, if any reading or the file itself
//! was bad, to `failed/YYYY-MM-DD/...` beside a `<name>_<ts>.errors.json` report listing each
//! bad reading and why (its good readings are filed all the same). Dates are UTC, taken from
//! the event, so a redelivered event computes the same destination; a redelivered event whose
//! file has moved already finds nothing and changes nothing.

pub mod scanner;

use std::collections::HashMap;
use std::future::Future;

use aws_lambda_events::s3::S3Event;
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::alerts::{AlertSettings, AlertStore};
use crate::devices::{Device, DeviceRegistry};
use crate::observations::ObservationStore;
use crate::readings;
use crate::StoreError;

use self::scanner::{Found, Scanner};

/// Where files are dropped.
pub const INBOX_PREFIX: &str = "inbox/";
/// At most this many bad readings are listed in a report (the count is always complete).
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// The inbox bucket.
pub trait InboxObjects: Send + Sync {
    /// The object's bytes, streamed; `None` if it is gone (moved by an earlier delivery).
    fn open(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Option<ByteStream>, StoreError>> + Send;
    /// Copies an object; false if the source is gone (a concurrent delivery moved it).
    fn copy(&self, bucket: &str, from: &str, to: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn put_json(&self, bucket: &str, key: &str, body: Vec<u8>) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete(&self, bucket: &str, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// [`InboxObjects`] over S3 (the bucket comes with each event).
#[derive(Debug, Clone)]
pub struct S3Inbox {
    pub client: aws_sdk_s3::Client,
}

impl InboxObjects for S3Inbox {
    async fn open(&self, bucket: &str, key: &str) -> Result<Option<ByteStream>, StoreError> {
        match self.client.get_object().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(Some(out.body)),
            Err(aws_sdk_s3::error::SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(None),
            Err(e) => Err(StoreError::new("read inbox file", crate::dynamo::describe(&e))),
        }
    }

    async fn copy(&self, bucket: &str, from: &str, to: &str) -> Result<bool, StoreError> {
        let source = format!("{bucket}/{}", percent_encoding::utf8_percent_encode(from, percent_encoding::NON_ALPHANUMERIC));
        match self.client.copy_object().bucket(bucket).key(to).copy_source(source).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(StoreError::new("copy inbox file", crate::dynamo::describe(&e))),
        }
    }

    async fn put_json(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| StoreError::new("write inbox report", crate::dynamo::describe(&e)))?;
        Ok(())
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| StoreError::new("remove inbox file", crate::dynamo::describe(&e)))?;
        Ok(())
    }
}

/// What the inbox processor needs.
pub struct InboxDeps<S, D, O, L> {
    pub objects: S,
    pub devices: D,
    pub observations: O,
    pub alerts: L,
    pub alert_settings: AlertSettings,
}

/// What processing one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxOutcome {
    Archived { key: String, to: String, stored: usize },
    Failed { key: String, to: String, report: String, stored: usize, failed: usize },
    /// The file had been moved by an earlier (or concurrent) delivery of the event.
    AlreadyProcessed { key: String },
    /// Not under `inbox/` (or a folder marker): left alone.
    Ignored { key: String },
}

/// `archive/2025-11-17/DEV001_reading_20251117_103045.json` for `inbox/DEV001_reading.json`
/// processed for an event of 2025-11-17T10:30:45Z (sub-folders fold into the name).
pub fn destination(folder: &str, key: &str, at: DateTime<Utc>) -> String {
    let name = key.strip_prefix(INBOX_PREFIX).unwrap_or(key).replace('/', "_");
    let stem = [".ndjson", ".jsonl", ".json"].iter().find_map(|ext| name.strip_suffix(ext)).unwrap_or(&name);
    format!("{folder}/{}/{stem}_{}.json", at.format("%Y-%m-%d"), at.format("%Y%m%d_%H%M%S"))
}

/// A bad reading (or the file itself, without an index) and why.
fn error_entry(index: Option<usize>, field: &str, reason: &str) -> Value {
    json!({"index": index, "field": field, "reason": reason})
}

/// Handles one S3 event.
pub async fn handle<S, D, O, L>(event: &S3Event, deps: &InboxDeps<S, D, O, L>) -> Result<Vec<InboxOutcome>, StoreError>
where
    S: InboxObjects,
    D: DeviceRegistry,
    O: ObservationStore,
    L: AlertStore,
{
    let mut outcomes = Vec::new();
    for record in &event.records {
        let key = crate::uploads::registration::decoded_key(record.s3.object.key.as_deref().unwrap_or_default());
        if !key.starts_with(INBOX_PREFIX) || key.ends_with('/') {
            outcomes.push(InboxOutcome::Ignored { key });
            continue;
        }
        let bucket = record.s3.bucket.name.as_deref().unwrap_or_default();
        outcomes.push(process(bucket, &key, record.event_time, deps).await?);
    }
    Ok(outcomes)
}

async fn process<S, D, O, L>(bucket: &str, key: &str, at: DateTime<Utc>, deps: &InboxDeps<S, D, O, L>) -> Result<InboxOutcome, StoreError>
where
    S: InboxObjects,
    D: DeviceRegistry,
    O: ObservationStore,
    L: AlertStore,
{
    let Some(mut body) = deps.objects.open(bucket, key).await? else {
        tracing::info!(key, "inbox file already processed");
        return Ok(InboxOutcome::AlreadyProcessed { key: key.to_owned() });
    };
    let mut scanner = Scanner::default();
    let mut found = Vec::new();
    let mut devices: HashMap<String, Result<(Device, String), String>> = HashMap::new();
    let (mut index, mut stored, mut failed) = (0usize, 0usize, 0usize);
    let mut errors = Vec::new();
    let now = Utc::now();
    let mut done = false;
    while !done {
        match body.try_next().await.map_err(|e| StoreError::new("read inbox file", e))? {
            Some(chunk) => scanner.feed(&chunk, &mut found),
            None => {
                std::mem::take(&mut scanner).finish(&mut found);
                done = true;
            }
        }
        for item in found.drain(..) {
            let problem = match item {
                Found::Malformed(why) => Some(error_entry(None, "file", &format!("malformed JSON: {why}"))),
                Found::Reading { text, batch_device } => {
                    let i = index;
                    index += 1;
                    match readings::parse(&text, batch_device.as_deref(), now) {
                        Err(problems) => {
                            let first = &problems[0];
                            Some(json!({"index": i, "field": first.field, "reason": first.reason, "errors": problems}))
                        }
                        Ok(reading) => {
                            if !devices.contains_key(&reading.device_id) {
                                let found = crate::vitals_api::sending_device(&deps.devices, &reading.device_id).await?;
                                devices.insert(reading.device_id.clone(), found.map_err(|f| f.error));
                            }
                            match &devices[&reading.device_id] {
                                Err(why) => Some(error_entry(Some(i), "device_id", why)),
                                Ok((device, patient)) => {
                                    match crate::vitals_api::file_reading(
                                        &deps.observations,
                                        &deps.alerts,
                                        &deps.alert_settings,
                                        &reading,
                                        device,
                                        patient,
                                    )
                                    .await?
                                    {
                                        Ok(_) => {
                                            stored += 1;
                                            None
                                        }
                                        Err(f) => Some(error_entry(Some(i), f.field.as_deref().unwrap_or("reading"), &f.error)),
                                    }
                                }
                            }
                        }
                    }
                }
            };
            if let Some(p) = problem {
                failed += 1;
                if errors.len() < MAX_REPORTED_ERRORS {
                    errors.push(p);
                }
            }
        }
    }
    if index == 0 && failed == 0 {
        failed = 1;
        errors.push(error_entry(None, "file", "the file holds no reading"));
    }
    if failed == 0 {
        let to = destination("archive", key, at);
        if !deps.objects.copy(bucket, key, &to).await? {
            return Ok(InboxOutcome::AlreadyProcessed { key: key.to_owned() });
        }
        deps.objects.delete(bucket, key).await?;
        tracing::info!(key, to = %to, stored, "inbox file archived");
        return Ok(InboxOutcome::Archived { key: key.to_owned(), to, stored });
    }
    let to = destination("failed", key, at);
    let report = format!("{}.errors.json", to.strip_suffix(".json").unwrap_or(&to));
    let body = json!({
        "file": key,
        "movedTo": to,
        "processedAt": crate::time::format_utc(now),
        "readings": index,
        "stored": stored,
        "failed": failed,
        "errorsListed": errors.len(),
        "errors": errors,
    });
    // The report first, then the copy: the original stays until both exist.
    deps.objects.put_json(bucket, &report, serde_json::to_vec_pretty(&body).unwrap_or_default()).await?;
    if !deps.objects.copy(bucket, key, &to).await? {
        return Ok(InboxOutcome::AlreadyProcessed { key: key.to_owned() });
    }
    deps.objects.delete(bucket, key).await?;
    tracing::warn!(key, to = %to, stored, failed, "inbox file had errors");
    Ok(InboxOutcome::Failed { key: key.to_owned(), to, report, stored, failed })
}

/// The AWS-backed dependencies, from the function's environment.
pub async fn aws_deps() -> Result<
    InboxDeps<S3Inbox, crate::devices::DynamoDeviceRegistry, crate::observations::DynamoObservationStore, crate::alerts::DynamoAlertStore>,
    crate::tables::MissingSetting,
> {
    let config = crate::aws::load_config().await;
    let dynamodb = crate::aws::dynamodb(&config);
    Ok(InboxDeps {
        objects: S3Inbox { client: crate::aws::s3(&config) },
        devices: crate::devices::DynamoDeviceRegistry::new(dynamodb.clone(), crate::tables::DEVICES.name_from_env()?),
        observations: crate::observations::DynamoObservationStore::new(dynamodb.clone(), crate::tables::OBSERVATIONS.name_from_env()?),
        alerts: crate::alerts::DynamoAlertStore { client: dynamodb, table: crate::tables::ALERTS.name_from_env()? },
        alert_settings: AlertSettings::from_env(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_sample_event_is_an_s3_event_for_the_inbox() {
        let event: S3Event = serde_json::from_str(include_str!("../../events/inbox-processor.json")).unwrap();
        let record = &event.records[0];
        let key = crate::uploads::registration::decoded_key(record.s3.object.key.as_deref().unwrap());
        assert!(key.starts_with(INBOX_PREFIX));
        assert_eq!(destination("archive", &key, record.event_time), "archive/2025-11-17/DEV001_20251117_103000_20251117_103045.json");
    }

    #[test]
    fn destinations_are_dated_and_stamped_in_utc() {
        let at = Utc.with_ymd_and_hms(2025, 11, 17, 10, 30, 45).unwrap();
        assert_eq!(destination("archive", "inbox/DEV001_reading1.json", at), "archive/2025-11-17/DEV001_reading1_20251117_103045.json");
        assert_eq!(destination("failed", "inbox/site-a/batch.ndjson", at), "failed/2025-11-17/site-a_batch_20251117_103045.json");
        assert_eq!(destination("archive", "inbox/noext", at), "archive/2025-11-17/noext_20251117_103045.json");
    }
}
