//! How far the filing of each inbox file got: a record per file version, saved after every
//! chunk of readings, so that a file larger than one run goes on in the next run from where the
//! last one saved, and an operator sees where every file is (`GET /admin/inbox/files`).

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::scanner::Resume;
use super::ObjectRef;
use crate::ingest::readings::FieldError;
use crate::StoreError;

/// Where a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FileStatus {
    /// Readings are being filed (by a run now, or by the next one the queue starts).
    Filing,
    /// Every reading filed; the file moved to `archive/`.
    Archived,
    /// Filed, but some readings (or the file itself) were bad; moved to `failed/` with a report.
    Failed,
}

impl FileStatus {
    pub const ALL: [FileStatus; 3] = [FileStatus::Filing, FileStatus::Archived, FileStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            FileStatus::Filing => "FILING",
            FileStatus::Archived => "ARCHIVED",
            FileStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A bad reading (or the file itself, without an index) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub index: Option<u64>,
    pub field: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// One file version's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileProgress {
    /// 32 hex characters of a hash of the key and version.
    pub file_id: String,
    pub bucket: String,
    pub key: String,
    pub version: Option<String>,
    /// When the file arrived (its event's time).
    pub arrived_at: String,
    pub status: FileStatus,
    /// Readings handled so far (filed or refused), filed (new or again), and refused.
    pub readings: u64,
    pub stored: u64,
    pub failed: u64,
    /// Problems kept so far (at most [`super::MAX_REPORTED_ERRORS`]).
    pub problems_listed: u64,
    /// The number of this file's first problem: a new file under the same key of a bucket
    /// without versions (the same record) numbers its problems after the previous file's.
    pub problem_base: u64,
    /// Where the next run starts reading.
    pub resume: Resume,
    /// Runs (invocations) that worked on the file.
    pub runs: u64,
    /// Saves of the record: each save is over the one before, so two runs never both advance.
    pub version_saved: u64,
    pub started_at: String,
    pub updated_at: String,
    pub moved_to: Option<String>,
    pub report: Option<String>,
}

impl FileProgress {
    /// A file not yet read.
    pub fn new(object: &ObjectRef, arrived_at: &str, now: &str) -> Self {
        Self {
            file_id: file_id(object),
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            version: object.version.clone(),
            arrived_at: arrived_at.to_owned(),
            status: FileStatus::Filing,
            readings: 0,
            stored: 0,
            failed: 0,
            problems_listed: 0,
            problem_base: 0,
            resume: Resume::default(),
            runs: 0,
            version_saved: 1,
            started_at: now.to_owned(),
            updated_at: now.to_owned(),
            moved_to: None,
            report: None,
        }
    }

    /// The number the next problem kept gets.
    pub fn next_problem(&self) -> u64 {
        self.problem_base + self.problems_listed
    }

    pub fn object(&self) -> ObjectRef {
        ObjectRef { bucket: self.bucket.clone(), key: self.key.clone(), version: self.version.clone() }
    }
}

/// The id of a file version's record: the same for every delivery of its event.
pub fn file_id(object: &ObjectRef) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("{}\0{}\0{}", object.bucket, object.key, object.version.as_deref().unwrap_or_default()).as_bytes());
    hex::encode(&hash[..16])
}

/// A page of records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgressPage {
    pub items: Vec<FileProgress>,
    pub next: Option<String>,
}

/// Where files' progress is kept.
pub trait InboxProgress: Send + Sync {
    /// The file's record: the one kept, or `fresh` saved as the first.
    fn start(&self, fresh: &FileProgress) -> impl Future<Output = Result<FileProgress, StoreError>> + Send;
    fn get(&self, file_id: &str) -> impl Future<Output = Result<Option<FileProgress>, StoreError>> + Send;
    /// Keeps `problems` (numbered from `first_problem` in the file: keeping them again is
    /// harmless), then saves the record if the kept one is the version before it; false when
    /// another run saved first (this one stops: the readings it filed were filed idempotently).
    fn save(&self, progress: &FileProgress, first_problem: u64, problems: &[Problem]) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The file's problems in order from number `from`, at most `limit`.
    fn problems(&self, file_id: &str, from: u64, limit: usize) -> impl Future<Output = Result<Vec<Problem>, StoreError>> + Send;
    /// Files of one status, most recently updated first.
    fn by_status(&self, status: FileStatus, limit: i32, after: Option<&str>) -> impl Future<Output = Result<ProgressPage, StoreError>> + Send;
}

/// Where the rest of a file too large for one run is handed to the next run.
pub trait InboxContinuation: Send + Sync {
    /// Asks for a run to go on with the file (its record says from where).
    fn go_on(&self, file: &FileProgress) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The message a continuation sends: which file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoOn {
    pub file_id: String,
    pub bucket: String,
    pub key: String,
    #[serde(default)]
    pub version: Option<String>,
}
