//! `inbox-processor`: files dropped under `inbox/` in the inbox bucket (S3 `ObjectCreated`).
//!
//! A file holds one reading (the vitals API's format), a batch `{"device_id", "readings": [...]}`,
//! or NDJSON (one reading or batch per line). It is streamed ([`scanner`]): only the reading
//! being read is held, so a 100 MB file fits a 256 MB function. Each valid reading goes through
//! the filing service like a reading of the REST API.
//!
//! Then the file moves (copy, then delete: nothing is deleted without a copy) to
//! `archive/YYYY-MM-DD/<name>_<YYYYmmdd_HHMMSS>_<id>.json`, or, if any reading or the file itself
//! was bad, to `failed/YYYY-MM-DD/...` beside a `<name>_..._<id>.errors.json` report listing each
//! bad reading and why (its good readings are filed all the same); every bad reading is also
//! kept as a dead letter (source `inbox-processor`, the first [`MAX_REPORTED_ERRORS`] of a file).
//!
//! Every step acts on the object version the event names, so a file written twice under one
//! key is two files: each version is filed and moved on its own. The destination's `<id>` is
//! derived from the key and the version, so two files never share a destination, and a
//! redelivered event computes the same one; a redelivered event whose version has moved already
//! finds nothing and changes nothing.

pub mod s3;
pub mod scanner;

use std::future::Future;

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use self::scanner::{Found, Scanner};
use super::readings::{self, FieldError};
use super::{Filing, FilingDeps};
use crate::clinical::AlertStore;
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::DeviceRegistry;
use crate::observations::ObservationStore;
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

pub use self::s3::S3Inbox;

/// Where files are dropped.
pub const INBOX_PREFIX: &str = "inbox/";
/// At most this many bad readings are listed in a report and kept as dead letters (the count
/// is always complete, and the file itself is kept under `failed/`).
pub const MAX_REPORTED_ERRORS: usize = 1000;
/// The dead-letter source of refused inbox readings.
pub const SOURCE: &str = "inbox-processor";

/// One version of one object in the inbox bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub bucket: String,
    pub key: String,
    /// The version the event names (`None` in a bucket without versioning).
    pub version: Option<String>,
}

/// The inbox bucket.
pub trait InboxObjects: Send + Sync {
    /// The object version's bytes, streamed; `None` if it is gone (moved by an earlier delivery).
    fn open(&self, object: &ObjectRef) -> impl Future<Output = Result<Option<ByteStream>, StoreError>> + Send;
    /// Copies the object version to `to` in its bucket; false if the version is gone (a
    /// concurrent delivery moved it).
    fn copy(&self, object: &ObjectRef, to: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn put_json(&self, bucket: &str, key: &str, body: Vec<u8>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes the object version (only that one: a newer file under the same key stays).
    fn delete(&self, object: &ObjectRef) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What the inbox processor needs.
pub struct InboxDeps<S, D, O, A, L> {
    pub objects: S,
    pub filing: FilingDeps<D, O, A>,
    pub dead_letters: L,
}

impl<S: FromWiring, D: FromWiring, O: FromWiring, A: FromWiring, L: FromWiring> FromWiring for InboxDeps<S, D, O, A, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { objects: w.build()?, filing: w.build()?, dead_letters: w.build()? })
    }
}

/// What processing one file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum InboxOutcome {
    Archived { key: String, to: String, stored: usize },
    Failed { key: String, to: String, report: String, stored: usize, failed: usize },
    /// The file had been moved by an earlier (or concurrent) delivery of the event.
    AlreadyProcessed { key: String },
    /// Not under `inbox/` (or a folder marker): left alone.
    Ignored { key: String },
}

/// `archive/2025-11-17/DEV001_reading_20251117_103045_<id>.json` for `inbox/DEV001_reading.json`
/// processed for an event of 2025-11-17T10:30:45Z (sub-folders fold into the name); `<id>` is 8
/// hex characters of a hash of the key and version, so destinations never collide.
pub fn destination(folder: &str, object: &ObjectRef, at: DateTime<Utc>) -> String {
    use sha2::Digest;
    let name = object.key.strip_prefix(INBOX_PREFIX).unwrap_or(&object.key).replace('/', "_");
    let stem = [".ndjson", ".jsonl", ".json"].iter().find_map(|ext| name.strip_suffix(ext)).unwrap_or(&name);
    let id = sha2::Sha256::digest(format!("{}\0{}", object.key, object.version.as_deref().unwrap_or_default()).as_bytes());
    format!("{folder}/{}/{stem}_{}_{}.json", at.format("%Y-%m-%d"), at.format("%Y%m%d_%H%M%S"), hex::encode(&id[..4]))
}

/// The object version an S3 event record names.
pub fn object_of(record: &S3EventRecord) -> ObjectRef {
    ObjectRef {
        bucket: record.s3.bucket.name.clone().unwrap_or_default(),
        key: crate::platform::aws::decoded_key(record.s3.object.key.as_deref().unwrap_or_default()),
        version: record.s3.object.version_id.clone().filter(|v| !v.is_empty() && v != "null"),
    }
}

/// Handles one S3 event.
pub async fn handle<S, D, O, A, L>(event: &S3Event, deps: &InboxDeps<S, D, O, A, L>) -> Result<Vec<InboxOutcome>, StoreError>
where
    S: InboxObjects,
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
{
    let mut outcomes = Vec::new();
    for record in &event.records {
        let object = object_of(record);
        if !object.key.starts_with(INBOX_PREFIX) || object.key.ends_with('/') {
            outcomes.push(InboxOutcome::Ignored { key: object.key });
            continue;
        }
        outcomes.push(process(&object, record.event_time, deps).await?);
    }
    Ok(outcomes)
}

/// A bad reading (or the file itself, without an index) and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Problem {
    index: Option<usize>,
    field: String,
    reason: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

/// What reading a file's readings found.
#[derive(Default)]
struct Tally {
    readings: usize,
    stored: usize,
    failed: usize,
    /// The first [`MAX_REPORTED_ERRORS`] problems.
    problems: Vec<Problem>,
}

impl Tally {
    fn note(&mut self, problem: Problem) -> bool {
        self.failed += 1;
        let listed = self.problems.len() < MAX_REPORTED_ERRORS;
        if listed {
            self.problems.push(problem);
        }
        listed
    }
}

/// Files one reading the scanner found; its problem, if any, with the reason code to keep.
async fn file_one<D, O, A>(
    filing: &mut Filing<'_, D, O, A>,
    index: usize,
    text: &str,
    batch_device: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<(&'static str, Option<String>, Problem)>, StoreError>
where
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
{
    let parsed = match readings::parse(text, batch_device, now) {
        Err(errors) => {
            let first = errors[0].clone();
            let device = batch_device.map(str::to_owned);
            return Ok(Some(("INVALID_READING", device, Problem { index: Some(index), field: first.field, reason: first.reason, errors })));
        }
        Ok(p) => p,
    };
    match filing.file(&parsed.reading).await? {
        Ok(_) => Ok(None),
        Err(refusal) => {
            let field = if matches!(refusal, super::Refusal::Admission(_)) { "device_id" } else { "reading" };
            let problem = Problem { index: Some(index), field: field.into(), reason: refusal.to_string(), errors: Vec::new() };
            Ok(Some((refusal.code(), Some(parsed.reading.device_id), problem)))
        }
    }
}

/// Streams the file and files each reading, keeping the refused ones as dead letters.
async fn file_readings<S, D, O, A, L>(
    mut body: ByteStream,
    received: &str,
    deps: &InboxDeps<S, D, O, A, L>,
) -> Result<Tally, StoreError>
where
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
{
    let now = Utc::now();
    let mut filing = Filing::new(&deps.filing);
    let mut scanner = Scanner::default();
    let mut found = Vec::new();
    let mut tally = Tally::default();
    loop {
        let chunk = body.try_next().await.map_err(|e| StoreError::new("read inbox file", e))?;
        let done = chunk.is_none();
        match chunk {
            Some(chunk) => scanner.feed(&chunk, &mut found),
            None => std::mem::take(&mut scanner).finish(&mut found),
        }
        for item in found.drain(..) {
            let (code, device, problem, raw) = match item {
                Found::Malformed(why) => {
                    let problem = Problem { index: None, field: "file".into(), reason: format!("malformed JSON: {why}"), errors: Vec::new() };
                    ("INVALID_JSON", None, problem, String::new())
                }
                Found::Reading { text, batch_device } => {
                    let index = tally.readings;
                    tally.readings += 1;
                    match file_one(&mut filing, index, &text, batch_device.as_deref(), now).await? {
                        None => {
                            tally.stored += 1;
                            continue;
                        }
                        Some((code, device, problem)) => (code, device, problem, text),
                    }
                }
            };
            let reason = format!("{} {}", problem.field, problem.reason);
            if tally.note(problem) && !raw.is_empty() {
                let letter = DeadLetter::refused(SOURCE, device.as_deref(), code, reason, raw, received.to_owned());
                deps.dead_letters.record(&letter).await?;
            }
        }
        if done {
            return Ok(tally);
        }
    }
}

/// `InboxFiles`, `InboxReadings`, `InboxReadingsFailed`, and `InboxLag`: the seconds from the
/// file's arrival in the bucket to the end of its filing, which grows when files queue up.
fn record_metrics(metrics: &crate::platform::metrics::MetricSink, tally: &Tally, arrived: DateTime<Utc>, done: DateTime<Utc>) {
    use crate::platform::metrics::{Metrics as _, Unit};
    let mut counts = crate::platform::metrics::Tally::default();
    counts.add(&[], "InboxFiles", 1);
    counts.add(&[], "InboxReadings", tally.readings as u64);
    counts.add(&[], "InboxReadingsFailed", tally.failed as u64);
    counts.put(&[], "InboxLag", u64::try_from((done - arrived).num_seconds()).unwrap_or(0), Unit::Seconds);
    metrics.record(&counts.take());
}

/// Moves the file to `to`; false when a concurrent delivery moved it first.
async fn move_file<S: InboxObjects>(objects: &S, object: &ObjectRef, to: &str) -> Result<bool, StoreError> {
    if !objects.copy(object, to).await? {
        return Ok(false);
    }
    objects.delete(object).await?;
    Ok(true)
}

async fn process<S, D, O, A, L>(object: &ObjectRef, at: DateTime<Utc>, deps: &InboxDeps<S, D, O, A, L>) -> Result<InboxOutcome, StoreError>
where
    S: InboxObjects,
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
{
    let key = object.key.clone();
    let Some(body) = deps.objects.open(object).await? else {
        tracing::info!(key = %key, "inbox file already processed");
        return Ok(InboxOutcome::AlreadyProcessed { key });
    };
    let mut tally = file_readings(body, &format_utc(at), deps).await?;
    if tally.readings == 0 && tally.failed == 0 {
        tally.note(Problem { index: None, field: "file".into(), reason: "the file holds no reading".into(), errors: Vec::new() });
    }
    record_metrics(&deps.filing.metrics, &tally, at, Utc::now());
    if tally.failed == 0 {
        let to = destination("archive", object, at);
        if !move_file(&deps.objects, object, &to).await? {
            return Ok(InboxOutcome::AlreadyProcessed { key });
        }
        tracing::info!(key = %key, to = %to, stored = tally.stored, "inbox file archived");
        return Ok(InboxOutcome::Archived { key, to, stored: tally.stored });
    }
    let to = destination("failed", object, at);
    let report = format!("{}.errors.json", to.strip_suffix(".json").unwrap_or(&to));
    let body: Value = json!({
        "file": key,
        "version": object.version,
        "movedTo": to,
        "processedAt": format_utc(Utc::now()),
        "readings": tally.readings,
        "stored": tally.stored,
        "failed": tally.failed,
        "errorsListed": tally.problems.len(),
        "errors": tally.problems,
    });
    // A file that is not readings at all (malformed JSON, nothing in it) has no reading to keep
    // as a dead letter: the file itself is, and where it went (each bad reading is kept above).
    let file_problems: Vec<&Problem> = tally.problems.iter().filter(|p| p.index.is_none()).collect();
    if !file_problems.is_empty() {
        let reason = file_problems.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>().join("; ");
        let raw = json!({"file": key, "version": object.version, "movedTo": to, "report": report, "errors": file_problems});
        let letter = DeadLetter::refused(SOURCE, None, "INVALID_FILE", format!("{key}: {reason}"), raw.to_string(), format_utc(at));
        deps.dead_letters.record(&letter).await?;
    }
    // The report first, then the copy: the original stays until both exist.
    let report_bytes = serde_json::to_vec_pretty(&body).map_err(|e| StoreError::new("write inbox report", e))?;
    deps.objects.put_json(&object.bucket, &report, report_bytes).await?;
    if !move_file(&deps.objects, object, &to).await? {
        return Ok(InboxOutcome::AlreadyProcessed { key });
    }
    tracing::warn!(key = %key, to = %to, stored = tally.stored, failed = tally.failed, "inbox file had errors");
    Ok(InboxOutcome::Failed { key, to, report, stored: tally.stored, failed: tally.failed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 11, 17, 10, 30, 45).unwrap()
    }

    fn object(key: &str, version: Option<&str>) -> ObjectRef {
        ObjectRef { bucket: "inbox".into(), key: key.into(), version: version.map(Into::into) }
    }

    #[test]
    fn the_sample_event_is_an_s3_event_for_the_inbox() {
        let event: S3Event = serde_json::from_str(include_str!("../../../../events/inbox-processor.json")).unwrap();
        let o = object_of(&event.records[0]);
        assert!(o.key.starts_with(INBOX_PREFIX));
        let to = destination("archive", &o, event.records[0].event_time);
        assert!(to.starts_with("archive/2025-11-17/DEV001_20251117_103000_20251117_103045_"), "{to}");
    }

    #[test]
    fn destinations_are_dated_stamped_in_utc_and_never_shared() {
        let to = destination("archive", &object("inbox/DEV001_reading1.json", None), at());
        assert!(to.starts_with("archive/2025-11-17/DEV001_reading1_20251117_103045_") && to.ends_with(".json"), "{to}");
        assert!(destination("failed", &object("inbox/site-a/batch.ndjson", None), at()).starts_with("failed/2025-11-17/site-a_batch_20251117_103045_"));
        let a = destination("archive", &object("inbox/a/b.json", None), at());
        let b = destination("archive", &object("inbox/a_b.ndjson", None), at());
        assert_ne!(a, b, "two files that fold to one name");
        let v1 = destination("archive", &object("inbox/x.json", Some("v1")), at());
        let v2 = destination("archive", &object("inbox/x.json", Some("v2")), at());
        assert_ne!(v1, v2, "two versions of one key");
        assert_eq!(v1, destination("archive", &object("inbox/x.json", Some("v1")), at()), "a redelivery computes the same");
    }
}
