//! `inbox-processor`: files dropped under `inbox/` in the inbox bucket (S3 `ObjectCreated`);
//! `inbox-continue`: the rest of a file too large for one run (SQS).
//!
//! A file holds one reading (the vitals API's format), a batch `{"device_id", "readings": [...]}`,
//! or NDJSON (one reading or batch per line). It is streamed ([`scanner`]): only the readings
//! being filed are held, so a 100 MB file fits a 256 MB function. Readings are filed in chunks
//! ([`RunLimits`]) through the filing service ([`Filing::file_together`]: written together
//! where idempotency allows, each patient's alerts evaluated once per chunk). After each chunk
//! the file's record ([`progress`]) saves how far it got; a run that has used its time budget
//! hands the rest to the next run through a queue, which starts reading where the record says:
//! nothing saved is filed again, and nothing after it is skipped (a run that dies mid-chunk
//! leaves the chunk to the next run, whose filing finds the readings already filed as
//! duplicates). `GET /admin/inbox/files` shows every file's record.
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

pub mod dynamodb;
pub mod http;
pub mod memory;
pub mod progress;
pub mod s3;
pub mod scanner;
pub mod sqs;

use std::future::Future;
use std::time::{Duration, Instant};

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_s3::primitives::ByteStream;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use self::progress::{FileProgress, FileStatus, GoOn, InboxContinuation, InboxProgress, Problem};
use self::scanner::{Found, Resume, Scanner};
use super::readings;
use super::{Filing, FilingDeps};
use crate::clinical::AlertStore;
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::DeviceRegistry;
use crate::observations::ObservationStore;
use crate::platform::batch::BatchFailures;
use crate::platform::time::{format_utc, parse_with_offset};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

pub use self::dynamodb::DynamoInboxProgress;
pub use self::s3::S3Inbox;
pub use self::sqs::SqsInboxContinuation;

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
    /// The object version's bytes from byte `from` on, streamed (nothing when `from` is its
    /// end); `None` if it is gone (moved by an earlier run).
    fn open(&self, object: &ObjectRef, from: u64) -> impl Future<Output = Result<Option<ByteStream>, StoreError>> + Send;
    /// Whether the object version is there (not moved by an earlier run), without reading it.
    fn exists(&self, object: &ObjectRef) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Copies the object version to `to` in its bucket; false if the version is gone (a
    /// concurrent delivery moved it).
    fn copy(&self, object: &ObjectRef, to: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn put_json(&self, bucket: &str, key: &str, body: Vec<u8>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes the object version (only that one: a newer file under the same key stays).
    fn delete(&self, object: &ObjectRef) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// How a run divides its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunLimits {
    /// Readings filed together and saved as one step (`INBOX_CHUNK_READINGS`, 500 unless set):
    /// what a run that dies repeats at most, and what the memory of a run holds.
    pub chunk_readings: usize,
    /// A run that has worked this long saves and hands the rest of its file to the next
    /// (`INBOX_RUN_SECONDS`, 600 unless set: Lambda ends a run at 900 s, and a chunk must fit
    /// in what is left).
    pub budget: Duration,
}

impl Default for RunLimits {
    fn default() -> Self {
        Self { chunk_readings: 500, budget: Duration::from_secs(600) }
    }
}

impl FromWiring for RunLimits {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        let d = Self::default();
        let chunk_readings = w.settings.parsed("INBOX_CHUNK_READINGS", d.chunk_readings)?.max(1);
        Ok(Self { chunk_readings, budget: Duration::from_secs(w.settings.parsed("INBOX_RUN_SECONDS", d.budget.as_secs())?) })
    }
}

/// What the inbox functions need.
pub struct InboxDeps<S, D, O, A, L, P, C> {
    pub objects: S,
    pub filing: FilingDeps<D, O, A>,
    pub dead_letters: L,
    pub progress: P,
    pub continuation: C,
    pub limits: RunLimits,
}

impl<S: FromWiring, D: FromWiring, O: FromWiring, A: FromWiring, L: FromWiring, P: FromWiring, C: FromWiring> FromWiring for InboxDeps<S, D, O, A, L, P, C> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            objects: w.build()?,
            filing: w.build()?,
            dead_letters: w.build()?,
            progress: w.build()?,
            continuation: w.build()?,
            limits: w.build()?,
        })
    }
}

/// What a run did with a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum InboxOutcome {
    Archived { key: String, file_id: String, to: String, stored: u64 },
    Failed { key: String, file_id: String, to: String, report: String, stored: u64, failed: u64 },
    /// The run used its budget: the next run goes on from the record's `readings`.
    Continued { key: String, file_id: String, readings: u64 },
    /// The file had been moved by an earlier (or concurrent) delivery of the event.
    AlreadyProcessed { key: String },
    /// Another run saved progress first: it goes on with the file, this one stopped.
    FiledElsewhere { key: String, file_id: String },
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

/// Handles one S3 event (`inbox-processor`): each file from its start, or from where its
/// record says an earlier delivery got.
pub async fn handle<S, D, O, A, L, P, C>(event: &S3Event, deps: &InboxDeps<S, D, O, A, L, P, C>) -> Result<Vec<InboxOutcome>, StoreError>
where
    S: InboxObjects,
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
    P: InboxProgress,
    C: InboxContinuation,
{
    let mut outcomes = Vec::new();
    for record in &event.records {
        let object = object_of(record);
        if !object.key.starts_with(INBOX_PREFIX) || object.key.ends_with('/') {
            outcomes.push(InboxOutcome::Ignored { key: object.key });
            continue;
        }
        outcomes.push(deps.start(&object, record.event_time).await?);
    }
    Ok(outcomes)
}

/// Handles a batch of the inbox queue (`inbox-continue`): each message names a file whose
/// record says where to go on. A message that fails comes back (partial batch failure).
pub async fn handle_continued<S, D, O, A, L, P, C>(event: SqsEvent, deps: &InboxDeps<S, D, O, A, L, P, C>) -> Result<SqsBatchResponse, std::convert::Infallible>
where
    S: InboxObjects,
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
    P: InboxProgress,
    C: InboxContinuation,
{
    let mut failures = BatchFailures::default();
    for record in &event.records {
        let result = match serde_json::from_str::<GoOn>(record.body.as_deref().unwrap_or_default()) {
            Ok(go_on) => deps.go_on_with(&go_on).await.map(|_| ()),
            Err(e) => Err(StoreError::new("read inbox queue message", e)),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, message_id = record.message_id.as_deref().unwrap_or_default(), "inbox file not continued; the message comes back");
            failures.fail(record);
        }
    }
    Ok(failures.into_response())
}

/// A file's runs: each step over the same ports.
impl<S, D, O, A, L, P, C> InboxDeps<S, D, O, A, L, P, C>
where
    S: InboxObjects,
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
    P: InboxProgress,
    C: InboxContinuation,
{
    /// Goes on with the file a queue message names, from where its record says.
    async fn go_on_with(&self, go_on: &GoOn) -> Result<InboxOutcome, StoreError> {
        match self.progress.get(&go_on.file_id).await? {
            Some(progress) if progress.status == FileStatus::Filing => self.run(progress).await,
            Some(_) => Ok(InboxOutcome::AlreadyProcessed { key: go_on.key.clone() }),
            None => Err(StoreError::new("continue inbox file", format!("no record of file {} ({})", go_on.file_id, go_on.key))),
        }
    }

    /// Starts (or resumes) a file an S3 event names.
    async fn start(&self, object: &ObjectRef, at: DateTime<Utc>) -> Result<InboxOutcome, StoreError> {
        let fresh = FileProgress::new(object, &format_utc(at), &format_utc(Utc::now()));
        let progress = self.progress.start(&fresh).await?;
        if progress.status == FileStatus::Filing {
            return self.run(progress).await;
        }
        // Done, and moved before it was marked done: unless the object is there again, which only
        // a new file under the same key in a bucket without versions makes so: filed afresh.
        if !self.objects.exists(object).await? {
            tracing::info!(key = %object.key, "inbox file already processed");
            return Ok(InboxOutcome::AlreadyProcessed { key: object.key.clone() });
        }
        let again = FileProgress { version_saved: progress.version_saved + 1, problem_base: progress.next_problem(), ..fresh };
        if !self.progress.save(&again, 0, &[]).await? {
            return Ok(InboxOutcome::FiledElsewhere { key: again.key, file_id: again.file_id });
        }
        self.run(again).await
    }

    /// Files a file from where its record says, a chunk at a time, until its end or the run's budget.
    async fn run(&self, mut progress: FileProgress) -> Result<InboxOutcome, StoreError> {
        let started = Instant::now();
        let object = progress.object();
        let Some(mut body) = self.objects.open(&object, progress.resume.offset).await? else {
            return self.record_moved(progress).await;
        };
        progress.runs += 1;
        let mut filing = Filing::new(&self.filing);
        let mut scanner = Scanner::resumed_at(progress.resume.offset);
        let mut skip = progress.resume.skip;
        let (mut found, mut chunk) = (Vec::new(), Chunk::default());
        loop {
            let bytes = body.try_next().await.map_err(|e| StoreError::new("read inbox file", e))?;
            let done = bytes.is_none();
            match bytes {
                Some(bytes) => scanner.feed(&bytes, &mut found),
                None => std::mem::take(&mut scanner).finish(&mut found),
            }
            for item in found.drain(..) {
                match item {
                    Found::Malformed(why) => chunk.malformed = Some(why),
                    // Handled by an earlier run: the first readings of a batch resumed within.
                    Found::Reading { .. } if skip > 0 => skip -= 1,
                    Found::Reading { text, batch_device, resume } => {
                        chunk.readings.push((text, batch_device));
                        chunk.resume = Some(resume);
                    }
                }
                if chunk.readings.len() < self.limits.chunk_readings {
                    continue;
                }
                if !self.file_chunk(&mut progress, std::mem::take(&mut chunk), &mut filing).await? {
                    return Ok(InboxOutcome::FiledElsewhere { key: progress.key, file_id: progress.file_id });
                }
                if started.elapsed() >= self.limits.budget {
                    self.continuation.go_on(&progress).await?;
                    tracing::info!(key = %progress.key, readings = progress.readings, "inbox file handed to the next run");
                    return Ok(InboxOutcome::Continued { key: progress.key, file_id: progress.file_id, readings: progress.readings });
                }
            }
            if done {
                break;
            }
        }
        if !self.file_chunk(&mut progress, chunk, &mut filing).await? {
            return Ok(InboxOutcome::FiledElsewhere { key: progress.key, file_id: progress.file_id });
        }
        drop(filing);
        self.finish(progress).await
    }

    /// Files a chunk's readings together, keeps its bad ones as dead letters and problems, and
    /// saves the file's progress after it; false when another run saved first.
    async fn file_chunk(&self, progress: &mut FileProgress, chunk: Chunk, filing: &mut Filing<'_, D, O, A>) -> Result<bool, StoreError> {
        let now = Utc::now();
        let first_index = progress.readings;
        let mut problems: Vec<(Problem, &'static str, Option<String>, String)> = Vec::new();
        let (mut valid, mut positions) = (Vec::new(), Vec::new());
        for (i, (text, batch_device)) in chunk.readings.iter().enumerate() {
            let index = first_index + i as u64;
            match readings::parse(text, batch_device.as_deref(), now) {
                Ok(parsed) => {
                    valid.push(parsed.reading);
                    positions.push(i);
                }
                Err(errors) => {
                    let first = errors[0].clone();
                    let problem = Problem { index: Some(index), field: first.field, reason: first.reason, errors };
                    problems.push((problem, "INVALID_READING", batch_device.clone(), text.clone()));
                }
            }
        }
        let results = filing.file_together(&valid).await?;
        for ((result, reading), &i) in results.into_iter().zip(&valid).zip(&positions) {
            if let Err(refusal) = result {
                let field = if matches!(refusal, super::Refusal::Admission(_)) { "device_id" } else { "reading" };
                let problem = Problem { index: Some(first_index + i as u64), field: field.into(), reason: refusal.to_string(), errors: Vec::new() };
                problems.push((problem, refusal.code(), Some(reading.device_id.clone()), chunk.readings[i].0.clone()));
            }
        }
        problems.sort_by_key(|(p, ..)| p.index);
        let handled = chunk.readings.len() as u64;
        let failed = problems.len() as u64;
        if let Some(why) = chunk.malformed {
            let problem = Problem { index: None, field: "file".into(), reason: format!("malformed JSON: {why}"), errors: Vec::new() };
            problems.push((problem, "INVALID_JSON", None, String::new()));
        }
        let room = MAX_REPORTED_ERRORS.saturating_sub(usize::try_from(progress.problems_listed).unwrap_or(usize::MAX));
        let received = progress.arrived_at.clone();
        let mut listed = Vec::new();
        for (problem, code, device, raw) in problems.iter().take(room) {
            // A file that is not readings at all is kept as one dead letter when it moves.
            if !raw.is_empty() {
                let reason = format!("{} {}", problem.field, problem.reason);
                self.dead_letters.record(&DeadLetter::refused(SOURCE, device.as_deref(), code, reason, raw.clone(), received.clone())).await?;
            }
            listed.push(problem.clone());
        }
        let first_problem = progress.next_problem();
        progress.readings += handled;
        progress.stored += handled - failed;
        progress.failed += problems.len() as u64;
        progress.problems_listed += listed.len() as u64;
        progress.resume = chunk.resume.unwrap_or(progress.resume);
        progress.version_saved += 1;
        progress.updated_at = format_utc(Utc::now());
        self.progress.save(progress, first_problem, &listed).await
    }

    /// Marks a file done whose move an earlier run made before it could say so.
    async fn record_moved(&self, mut progress: FileProgress) -> Result<InboxOutcome, StoreError> {
        let (status, to, report) = destinations(&progress);
        progress.status = status;
        progress.moved_to = Some(to);
        progress.report = report;
        progress.version_saved += 1;
        progress.updated_at = format_utc(Utc::now());
        self.progress.save(&progress, progress.next_problem(), &[]).await?;
        tracing::info!(key = %progress.key, "inbox file already processed");
        Ok(InboxOutcome::AlreadyProcessed { key: progress.key })
    }

    /// The end of a file: its report (if anything was bad), the move, the record marked done.
    async fn finish(&self, mut progress: FileProgress) -> Result<InboxOutcome, StoreError> {
        let mut last = Vec::new();
        if progress.readings == 0 && progress.failed == 0 {
            last.push(Problem { index: None, field: "file".into(), reason: "the file holds no reading".into(), errors: Vec::new() });
            progress.failed += 1;
        }
        let object = progress.object();
        let key = progress.key.clone();
        let (status, to, report) = destinations(&progress);
        if let Some(report) = &report {
            let mut problems = self.progress.problems(&progress.file_id, progress.problem_base, MAX_REPORTED_ERRORS).await?;
            let room = MAX_REPORTED_ERRORS.saturating_sub(problems.len());
            problems.extend(last.iter().take(room).cloned());
            // A file that is not readings at all (malformed JSON, nothing in it) has no reading to
            // keep as a dead letter: the file itself is, and where it went.
            let file_problems: Vec<&Problem> = problems.iter().filter(|p| p.index.is_none()).collect();
            if !file_problems.is_empty() {
                let reason = file_problems.iter().map(|p| p.reason.as_str()).collect::<Vec<_>>().join("; ");
                let raw = json!({"file": key, "version": object.version, "movedTo": to, "report": report, "errors": file_problems});
                let letter = DeadLetter::refused(SOURCE, None, "INVALID_FILE", format!("{key}: {reason}"), raw.to_string(), progress.arrived_at.clone());
                self.dead_letters.record(&letter).await?;
            }
            let body = json!({
                "file": key,
                "fileId": progress.file_id,
                "version": object.version,
                "movedTo": to,
                "processedAt": format_utc(Utc::now()),
                "readings": progress.readings,
                "stored": progress.stored,
                "failed": progress.failed,
                "errorsListed": problems.len(),
                "errors": problems,
            });
            // The report first, then the copy: the original stays until both exist.
            let bytes = serde_json::to_vec_pretty(&body).map_err(|e| StoreError::new("write inbox report", e))?;
            self.objects.put_json(&object.bucket, report, bytes).await?;
        }
        if !move_file(&self.objects, &object, &to).await? {
            return Ok(InboxOutcome::AlreadyProcessed { key });
        }
        record_metrics(&self.filing.metrics, &progress, Utc::now());
        let first_problem = progress.next_problem();
        progress.problems_listed += last.len() as u64;
        progress.status = status;
        progress.moved_to = Some(to.clone());
        progress.report = report.clone();
        progress.version_saved += 1;
        progress.updated_at = format_utc(Utc::now());
        self.progress.save(&progress, first_problem, &last).await?;
        let file_id = progress.file_id.clone();
        match report {
            None => {
                tracing::info!(key = %key, to = %to, stored = progress.stored, "inbox file archived");
                Ok(InboxOutcome::Archived { key, file_id, to, stored: progress.stored })
            }
            Some(report) => {
                tracing::warn!(key = %key, to = %to, stored = progress.stored, failed = progress.failed, "inbox file had errors");
                Ok(InboxOutcome::Failed { key, file_id, to, report, stored: progress.stored, failed: progress.failed })
            }
        }
    }
}

/// Readings read from the file and not yet filed.
#[derive(Default)]
struct Chunk {
    readings: Vec<(String, Option<String>)>,
    /// Where to resume after the last of them.
    resume: Option<Resume>,
    /// The file is not JSON of an accepted shape from here on.
    malformed: Option<String>,
}

/// `InboxFiles`, `InboxReadings`, `InboxReadingsFailed`, and `InboxLag`: the seconds from the
/// file's arrival in the bucket to the end of its filing, which grows when files queue up.
fn record_metrics(metrics: &crate::platform::metrics::MetricSink, progress: &FileProgress, done: DateTime<Utc>) {
    use crate::platform::metrics::{Metrics as _, Unit};
    let arrived = parse_with_offset(&progress.arrived_at).unwrap_or(done);
    let mut counts = crate::platform::metrics::Tally::default();
    counts.add(&[], "InboxFiles", 1);
    counts.add(&[], "InboxReadings", progress.readings);
    counts.add(&[], "InboxReadingsFailed", progress.failed);
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

/// Where a file goes when filed: its status, destination and (when failed) report.
fn destinations(progress: &FileProgress) -> (FileStatus, String, Option<String>) {
    let at = parse_with_offset(&progress.arrived_at).unwrap_or_else(Utc::now);
    if progress.failed == 0 {
        return (FileStatus::Archived, destination("archive", &progress.object(), at), None);
    }
    let to = destination("failed", &progress.object(), at);
    let report = format!("{}.errors.json", to.strip_suffix(".json").unwrap_or(&to));
    (FileStatus::Failed, to, Some(report))
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

    mod runs {
        use super::super::memory::{MemoryContinuation, MemoryInbox, MemoryProgress};
        use super::*;
        use crate::clinical::memory::MemoryAlerts;
        use crate::clinical::AlertSettings;
        use crate::dead_letters::memory::MemoryDeadLetters;
        use crate::devices::memory::MemoryDevices;
        use crate::devices::{Device, DeviceStatus};
        use crate::observations::memory::MemoryObservations;
        use crate::platform::metrics::MetricSink;

        type Deps = InboxDeps<MemoryInbox, MemoryDevices, MemoryObservations, MemoryAlerts, MemoryDeadLetters, MemoryProgress, MemoryContinuation>;

        fn deps(chunk_readings: usize) -> Deps {
            let mut d = Device::registered("Acme", "1", "HR", "", "");
            d.status = DeviceStatus::Active;
            d.patient_id = Some("pat-1".into());
            InboxDeps {
                objects: MemoryInbox::default(),
                filing: FilingDeps {
                    devices: MemoryDevices::with(vec![d]),
                    observations: MemoryObservations::default(),
                    alerts: MemoryAlerts::default(),
                    alert_settings: AlertSettings::default(),
                    metrics: MetricSink::discard(),
                },
                dead_letters: MemoryDeadLetters::default(),
                progress: MemoryProgress::default(),
                continuation: MemoryContinuation::default(),
                limits: RunLimits { chunk_readings, budget: Duration::ZERO },
            }
        }

        /// Seven readings: a batch object of three (the second bad), then four lines.
        fn file() -> String {
            let reading = |minute: u32, rate: u32| format!(r#"{{"device_id": "acme-1", "timestamp": "2026-11-22T10:{minute:02}:00Z", "heart_rate": {rate}}}"#);
            let batch = r#"{"device_id": "acme-1", "readings": [{"timestamp": "2026-11-22T10:00:00Z", "heart_rate": 70}, {"timestamp": "2026-11-22T10:01:00Z", "heart_rate": 900}, {"timestamp": "2026-11-22T10:02:00Z", "heart_rate": 72}]}"#;
            format!("{batch}\n{}\n{}\n{}\n{}\n", reading(3, 73), reading(4, 74), reading(5, 75), reading(6, 76))
        }

        fn event() -> S3Event {
            let mut event: S3Event = serde_json::from_str(include_str!("../../../../events/inbox-processor.json")).unwrap();
            event.records[0].s3.bucket.name = Some("inbox".into());
            event.records[0].s3.object.key = Some("inbox/day.ndjson".into());
            event.records[0].s3.object.version_id = None;
            event
        }

        async fn go_on(deps: &Deps) -> InboxOutcome {
            let asked = deps.continuation.asked.lock().unwrap().last().cloned().expect("a continuation");
            deps.go_on_with(&asked).await.unwrap()
        }

        #[tokio::test]
        async fn a_file_goes_on_run_after_run_from_where_each_saved() {
            let deps = deps(2);
            deps.objects.put("inbox", "inbox/day.ndjson", file());
            let first = handle(&event(), &deps).await.unwrap();
            let InboxOutcome::Continued { file_id, readings: 2, .. } = &first[0] else { panic!("{first:?}") };
            let record = deps.progress.get(file_id).await.unwrap().unwrap();
            assert_eq!((record.stored, record.failed, record.resume.skip), (1, 1, 2), "saved inside the batch object");
            assert!(matches!(go_on(&deps).await, InboxOutcome::Continued { readings: 4, .. }), "the third of the batch, then a line");
            assert!(matches!(go_on(&deps).await, InboxOutcome::Continued { readings: 6, .. }));
            let last = go_on(&deps).await;
            let InboxOutcome::Failed { stored: 6, failed: 1, report, .. } = &last else { panic!("{last:?}") };
            assert_eq!(deps.filing.observations.len(), 12, "six readings, each with its panel, once each");
            let record = deps.progress.get(file_id).await.unwrap().unwrap();
            assert_eq!((record.status, record.readings, record.runs), (FileStatus::Failed, 7, 4));
            let report: serde_json::Value = serde_json::from_slice(&deps.objects.get("inbox", report).unwrap()).unwrap();
            assert_eq!((report["errors"][0]["index"].as_u64(), report["readings"].as_u64()), (Some(1), Some(7)));
            assert_eq!(deps.objects.keys("inbox/"), Vec::<String>::new(), "moved");
            // The queue's message again, after the file moved: nothing to do.
            assert!(matches!(go_on(&deps).await, InboxOutcome::AlreadyProcessed { .. }));
        }

        #[tokio::test]
        async fn a_new_file_under_the_same_key_of_a_bucket_without_versions_is_filed_with_only_its_own_problems() {
            let deps = deps(500);
            deps.objects.put("inbox", "inbox/day.ndjson", file());
            assert!(matches!(&handle(&event(), &deps).await.unwrap()[0], InboxOutcome::Failed { failed: 1, .. }));
            // Delivered again after the move: nothing to do.
            assert!(matches!(&handle(&event(), &deps).await.unwrap()[0], InboxOutcome::AlreadyProcessed { .. }));
            let second = "{\"device_id\": \"acme-1\", \"timestamp\": \"2026-11-22T11:00:00Z\", \"heart_rate\": 80}\n{\"device_id\": \"acme-1\", \"timestamp\": \"2026-11-22T11:01:00Z\", \"heart_rate\": 1000}\n";
            deps.objects.put("inbox", "inbox/day.ndjson", second);
            let outcome = handle(&event(), &deps).await.unwrap();
            let InboxOutcome::Failed { file_id, stored: 1, failed: 1, report, .. } = &outcome[0] else { panic!("{outcome:?}") };
            let report: serde_json::Value = serde_json::from_slice(&deps.objects.get("inbox", report).unwrap()).unwrap();
            assert_eq!(report["errors"].as_array().unwrap().len(), 1, "{report}");
            assert_eq!((report["errors"][0]["index"].as_u64(), report["readings"].as_u64()), (Some(1), Some(2)));
            let record = deps.progress.get(file_id).await.unwrap().unwrap();
            assert_eq!(deps.progress.problems(file_id, record.problem_base, 10).await.unwrap().len(), 1);
            assert_eq!(deps.filing.observations.len(), 14, "the first file's six readings and the second's one, each with its panel");
        }

        #[tokio::test]
        async fn a_run_that_dies_mid_chunk_leaves_the_chunk_to_the_next_and_two_runs_never_both_advance() {
            let deps = deps(3);
            deps.objects.put("inbox", "inbox/day.ndjson", file());
            // The second chunk's write fails (throttled): the run fails, nothing of the chunk saved.
            deps.filing.observations.fail_next();
            assert!(handle(&event(), &deps).await.is_err());
            assert!(deps.filing.observations.is_empty() || deps.filing.observations.len() == 4);
            // The event's retry resumes from the record and files everything once.
            let again = handle(&event(), &deps).await.unwrap();
            assert!(matches!(again[0], InboxOutcome::Continued { readings: 3, .. }), "{again:?}");
            // A duplicate message for the same point: one run saves, the other stops.
            let asked = deps.continuation.asked.lock().unwrap().last().cloned().unwrap();
            let record = deps.progress.get(&asked.file_id).await.unwrap().unwrap();
            let mut stale = record.clone();
            stale.version_saved += 1;
            assert!(deps.progress.save(&stale, 0, &[]).await.unwrap(), "another run saved first");
            assert!(matches!(deps.run(record).await.unwrap(), InboxOutcome::FiledElsewhere { .. }));
            let done = go_on(&deps).await;
            assert!(matches!(done, InboxOutcome::Continued { .. } | InboxOutcome::Failed { .. }), "{done:?}");
            while let InboxOutcome::Continued { .. } = go_on(&deps).await {}
            assert_eq!(deps.filing.observations.len(), 12, "every good reading once");
        }
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
