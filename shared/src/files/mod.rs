//! The `upload-link` function: a device asks `$aws/rules/CreateFileUploadLink` for somewhere to
//! upload a file (`{"fileName", "contentType", "fileSize"?}`) and gets `{"uploadUrl"}` on the
//! topic named like its thing: a presigned S3 PUT, valid 15 minutes, bound to that content type
//! (and, when the device says how big the file is, to that exact size), for a key under the
//! device's own prefix `uploads/<thing>/`. A device may ask for `UPLOAD_LINKS_PER_HOUR` links an
//! hour (20 unless set), for files of up to `MAX_UPLOAD_BYTES` (100 MiB unless set). A refused
//! request gets `{"error": {"code", "message"}}` on the same topic and is kept as a dead letter.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};

mod dynamodb;
pub mod http;
mod iot;
#[cfg(test)]
pub(crate) mod memory;
pub mod registration;
mod s3;

pub use dynamodb::DynamoUploadStore;
pub use iot::IotDataPublisher;
pub use s3::{S3UploadSigner, S3UploadedObjects};

use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::platform::time::{format_utc, from_epoch_millis};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The dead-letter source name of this function.
pub const SOURCE: &str = "upload-link";
/// How long an upload link is valid.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// The largest upload accepted unless `MAX_UPLOAD_BYTES` says otherwise: 100 MiB. Larger
/// objects are refused at registration (hashing them would outlast the function).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// Upload links a device may ask for in an hour unless `UPLOAD_LINKS_PER_HOUR` says otherwise.
pub const DEFAULT_LINKS_PER_HOUR: u32 = 20;
/// Content types accepted unless `UPLOAD_CONTENT_TYPES` says otherwise.
pub const DEFAULT_CONTENT_TYPES: &[&str] =
    &["image/png", "image/jpeg", "application/pdf", "application/json", "text/csv", "application/octet-stream"];

/// Signs S3 PUT URLs.
pub trait UploadSigner: Send + Sync {
    /// A PUT for `key` with this content type and, when given, exactly this many bytes (S3
    /// refuses a body of another length, because `Content-Length` is signed).
    fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: Option<u64>,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Publishes a message to an MQTT topic (IoT data-plane `Publish`).
pub trait DevicePublisher: Send + Sync {
    fn publish(&self, topic: &str, payload: &Value) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where pending uploads are recorded.
pub trait UploadStore: Send + Sync {
    /// Records a pending upload; recording the same key twice keeps one record.
    fn record_pending(&self, upload: &PendingUpload) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// How many links the device was given since `since` (RFC 3339), not counting `except_key`
    /// (a redelivered request); counting stops at `at_most`.
    fn links_since(
        &self,
        thing_name: &str,
        since: &str,
        except_key: &str,
        at_most: u32,
    ) -> impl Future<Output = Result<u32, StoreError>> + Send;
}

/// An upload a device was given a link for.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpload {
    pub object_key: String,
    pub thing_name: String,
    pub file_name: String,
    pub content_type: String,
    /// The size the device announced, bound into the link.
    pub declared_size: Option<u64>,
    pub requested_at: String,
    pub expires_at: String,
}

/// What the handler needs.
pub struct UploadLinkDeps<S, P, U, L> {
    pub signer: S,
    pub publisher: P,
    pub uploads: U,
    pub dead_letters: L,
    /// Accepted content types (operators configure them).
    pub content_types: Vec<String>,
    pub limits: UploadLimits,
}

/// How much a device may upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    pub max_bytes: u64,
    pub links_per_hour: u32,
}

impl UploadLimits {
    /// `MAX_UPLOAD_BYTES` and `UPLOAD_LINKS_PER_HOUR`, or the defaults.
    pub fn from_settings(settings: &crate::wiring::Settings) -> Result<Self, WiringError> {
        Ok(Self {
            max_bytes: settings.parsed("MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES)?,
            links_per_hour: settings.parsed("UPLOAD_LINKS_PER_HOUR", DEFAULT_LINKS_PER_HOUR)?,
        })
    }
}

impl<S: FromWiring, P: FromWiring, U: FromWiring, L: FromWiring> FromWiring for UploadLinkDeps<S, P, U, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            signer: w.build()?,
            publisher: w.build()?,
            uploads: w.build()?,
            dead_letters: w.build()?,
            content_types: content_types(&w.settings),
            limits: UploadLimits::from_settings(&w.settings)?,
        })
    }
}

/// Why a link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("the request is not a JSON object with fileName and contentType")]
    Malformed,
    #[error("fileName must be 1-128 characters of letters, digits, '.', '_' or '-', not starting with '.'")]
    FileName,
    #[error("contentType '{0}' is not accepted; accepted: {1}")]
    ContentType(String, String),
    #[error("fileSize must be a whole number of bytes from 1")]
    FileSize,
    #[error("fileSize {0} is larger than the {1} bytes a file may have")]
    TooLarge(u64, u64),
    #[error("this device asked for {0} upload links in the last hour, the most it may; ask again later")]
    TooManyLinks(u32),
}

impl LinkRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            LinkRefusal::Malformed => "INVALID_REQUEST",
            LinkRefusal::FileName => "INVALID_FILE_NAME",
            LinkRefusal::ContentType(..) => "INVALID_CONTENT_TYPE",
            LinkRefusal::FileSize => "INVALID_FILE_SIZE",
            LinkRefusal::TooLarge(..) => "FILE_TOO_LARGE",
            LinkRefusal::TooManyLinks(_) => "TOO_MANY_UPLOAD_LINKS",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleEvent {
    thing_name: String,
    received_at: i64,
    file_name: Option<Value>,
    content_type: Option<Value>,
    file_size: Option<Value>,
}

/// A request that passed the checks.
struct LinkRequest<'a> {
    file_name: &'a str,
    content_type: &'a str,
    file_size: Option<u64>,
}

/// Checks a request against the accepted names, types and sizes.
fn check_request<'a>(rule: &'a RuleEvent, content_types: &[String], max_bytes: u64) -> Result<LinkRequest<'a>, LinkRefusal> {
    let (Some(file_name), Some(content_type)) =
        (rule.file_name.as_ref().and_then(Value::as_str), rule.content_type.as_ref().and_then(Value::as_str))
    else {
        return Err(LinkRefusal::Malformed);
    };
    if !valid_file_name(file_name) {
        return Err(LinkRefusal::FileName);
    }
    if !content_types.iter().any(|a| a == content_type) {
        return Err(LinkRefusal::ContentType(content_type.to_owned(), content_types.join(", ")));
    }
    let file_size = match &rule.file_size {
        None | Some(Value::Null) => None,
        Some(size) => match size.as_u64().filter(|s| *s > 0) {
            Some(size) if size > max_bytes => return Err(LinkRefusal::TooLarge(size, max_bytes)),
            Some(size) => Some(size),
            None => return Err(LinkRefusal::FileSize),
        },
    };
    Ok(LinkRequest { file_name, content_type, file_size })
}

/// Whether a file name is safe as the last part of an S3 key and in a URL.
pub fn valid_file_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The object key of an upload: the device's own prefix, then the request time and the name,
/// so a redelivered request maps to the same key.
pub fn object_key(thing: &str, received_at_ms: i64, file_name: &str) -> String {
    format!("uploads/{thing}/{received_at_ms}-{file_name}")
}

/// Handles one `CreateFileUploadLink` rule event. Errors are transient failures.
pub async fn handle<S, P, U, L>(event: &Value, deps: &UploadLinkDeps<S, P, U, L>) -> Result<Value, StoreError>
where
    S: UploadSigner,
    P: DevicePublisher,
    U: UploadStore,
    L: DeadLetterStore,
{
    let Ok(rule) = serde_json::from_value::<RuleEvent>(event.clone()) else {
        return Err(StoreError::new("read rule event", "thingName and receivedAt are required: check the rule SQL"));
    };
    let thing = rule.thing_name.as_str();
    let received = from_epoch_millis(rule.received_at).unwrap_or_else(Utc::now);
    let request = match check_request(&rule, &deps.content_types, deps.limits.max_bytes) {
        Ok(request) => request,
        Err(refusal) => return refuse(deps, thing, event, received, refusal).await,
    };
    let key = object_key(thing, rule.received_at, request.file_name);
    let limit = deps.limits.links_per_hour;
    let given = deps.uploads.links_since(thing, &format_utc(received - chrono::Duration::hours(1)), &key, limit).await?;
    if given >= limit {
        return refuse(deps, thing, event, received, LinkRefusal::TooManyLinks(given)).await;
    }
    let url = deps.signer.presign_put(&key, request.content_type, request.file_size).await?;
    let lifetime = chrono::Duration::from_std(LINK_LIFETIME).unwrap_or_default();
    deps.uploads
        .record_pending(&PendingUpload {
            object_key: key.clone(),
            thing_name: thing.to_owned(),
            file_name: request.file_name.to_owned(),
            content_type: request.content_type.to_owned(),
            declared_size: request.file_size,
            requested_at: format_utc(received),
            expires_at: format_utc(received + lifetime),
        })
        .await?;
    deps.publisher.publish(thing, &json!({"uploadUrl": url})).await?;
    tracing::info!(thing_name = %thing, "upload link sent");
    Ok(json!({"objectKey": key}))
}

/// Keeps a refused request as a dead letter and tells the device why on its topic.
async fn refuse<S, P, U, L>(
    deps: &UploadLinkDeps<S, P, U, L>,
    thing: &str,
    event: &Value,
    received: chrono::DateTime<Utc>,
    refusal: LinkRefusal,
) -> Result<Value, StoreError>
where
    P: DevicePublisher,
    L: DeadLetterStore,
{
    let letter = DeadLetter::refused(SOURCE, Some(thing), refusal.code(), refusal.to_string(), event.to_string(), format_utc(received));
    deps.dead_letters.record(&letter).await?;
    let reply = json!({"error": {"code": refusal.code(), "message": refusal.to_string()}});
    deps.publisher.publish(thing, &reply).await?;
    tracing::info!(thing_name = %thing, reason_code = refusal.code(), "upload link refused");
    Ok(reply)
}

/// An upload as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRecord {
    pub object_key: String,
    pub thing_name: String,
    pub file_name: String,
    pub content_type: String,
    pub declared_size: Option<u64>,
    pub requested_at: String,
    pub status: UploadStatus,
    /// The S3 version registered, once completed: the DocumentReference is about it alone.
    pub version_id: Option<String>,
}

/// Where an upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStatus {
    /// A link was given; no object has been registered.
    Pending,
    /// An object version was registered and has a DocumentReference.
    Completed,
}

impl UploadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Pending => "PENDING",
            UploadStatus::Completed => "COMPLETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(UploadStatus::Pending),
            "COMPLETED" => Some(UploadStatus::Completed),
            _ => None,
        }
    }
}

/// Reading and completing upload records (the `upload-registered` side).
pub trait UploadRecordStore: Send + Sync {
    fn get(&self, object_key: &str) -> impl Future<Output = Result<Option<UploadRecord>, StoreError>> + Send;

    /// Marks a pending upload complete with the version registered, what it holds and its
    /// DocumentReference; false when it was not pending any more (another event registered it).
    fn complete(
        &self,
        object_key: &str,
        version_id: Option<&str>,
        facts: &registration::ObjectFacts,
        document: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The DocumentReferences (FHIR JSON) of a device's completed uploads, newest first.
    fn documents_for_device(&self, thing_name: &str, limit: i32) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// The DocumentReference (FHIR JSON) with this id, once its upload completed.
    fn document(&self, document_id: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
}

/// The accepted content types from `UPLOAD_CONTENT_TYPES` (comma-separated), or the defaults.
pub fn content_types(settings: &crate::wiring::Settings) -> Vec<String> {
    match settings.optional("UPLOAD_CONTENT_TYPES") {
        Some(list) => list.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
        None => DEFAULT_CONTENT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::memory::{MemoryUploads, NamingSigner};
    use super::*;
    use crate::dead_letters::memory::MemoryDeadLetters;

    #[derive(Default)]
    struct Topics(Mutex<Vec<(String, Value)>>);

    impl DevicePublisher for Topics {
        async fn publish(&self, topic: &str, payload: &Value) -> Result<(), StoreError> {
            self.0.lock().expect("lock").push((topic.to_owned(), payload.clone()));
            Ok(())
        }
    }

    type Deps = UploadLinkDeps<NamingSigner, Topics, MemoryUploads, MemoryDeadLetters>;

    fn deps(max_bytes: u64, links_per_hour: u32) -> Deps {
        UploadLinkDeps {
            signer: NamingSigner,
            publisher: Topics::default(),
            uploads: MemoryUploads::default(),
            dead_letters: MemoryDeadLetters::default(),
            content_types: content_types(&crate::wiring::Settings::from_map([])),
            limits: UploadLimits { max_bytes, links_per_hour },
        }
    }

    fn request(at_ms: i64, body: Value) -> Value {
        let mut event = json!({"thingName": "dev-1", "receivedAt": at_ms});
        event.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        event
    }

    const NOON: i64 = 1_796_126_400_000; // 2026-12-01T12:00:00Z

    #[test]
    fn file_names_are_checked() {
        for ok in ["pic.png", "ecg_2026-11-22.pdf", "a"] {
            assert!(valid_file_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "../etc/passwd", "a/b.png", "with space.png", "é.png", &"a".repeat(129)] {
            assert!(!valid_file_name(bad), "{bad:?}");
        }
        assert_eq!(object_key("dev-1", 1700, "x.pdf"), "uploads/dev-1/1700-x.pdf");
    }

    #[tokio::test]
    async fn a_link_is_bound_to_the_announced_size_and_recorded_once() {
        let deps = deps(1000, 5);
        let event = request(NOON, json!({"fileName": "ecg.pdf", "contentType": "application/pdf", "fileSize": 700}));
        let out = handle(&event, &deps).await.unwrap();
        assert_eq!(out["objectKey"], format!("uploads/dev-1/{NOON}-ecg.pdf"));
        handle(&event, &deps).await.unwrap();
        let sent = deps.publisher.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 2, "a redelivered request is answered again");
        assert_eq!(sent[0].0, "dev-1");
        assert_eq!(sent[0].1["uploadUrl"], format!("https://bucket/uploads/dev-1/{NOON}-ecg.pdf?type=application/pdf&length=Some(700)"));
        let recorded = deps.uploads.get(&format!("uploads/dev-1/{NOON}-ecg.pdf")).await.unwrap().unwrap();
        assert_eq!((recorded.declared_size, recorded.status), (Some(700), UploadStatus::Pending));

        // Without a size the link is still given; registration enforces the cap.
        let out = handle(&request(NOON + 1, json!({"fileName": "a.png", "contentType": "image/png"})), &deps).await.unwrap();
        assert!(out.get("objectKey").is_some(), "{out}");
        assert!(deps.publisher.0.lock().unwrap()[2].1["uploadUrl"].as_str().unwrap().ends_with("length=None"));
    }

    #[tokio::test]
    async fn refused_requests_are_answered_on_the_topic_and_kept() {
        let deps = deps(1000, 5);
        for (body, code) in [
            (json!({"fileName": "x.pdf", "contentType": "application/pdf", "fileSize": 1001}), "FILE_TOO_LARGE"),
            (json!({"fileName": "x.pdf", "contentType": "application/pdf", "fileSize": 0}), "INVALID_FILE_SIZE"),
            (json!({"fileName": "x.pdf", "contentType": "application/pdf", "fileSize": "12"}), "INVALID_FILE_SIZE"),
            (json!({"fileName": "x.pdf", "contentType": "application/pdf", "fileSize": 1.5}), "INVALID_FILE_SIZE"),
            (json!({"fileName": "../x", "contentType": "application/pdf"}), "INVALID_FILE_NAME"),
            (json!({"fileName": "x.sh", "contentType": "application/x-sh"}), "INVALID_CONTENT_TYPE"),
            (json!({"contentType": "application/pdf"}), "INVALID_REQUEST"),
        ] {
            let reply = handle(&request(NOON, body.clone()), &deps).await.unwrap();
            assert_eq!(reply["error"]["code"], code, "{body}");
        }
        let letters = deps.dead_letters.all();
        assert_eq!(letters.len(), 7);
        assert!(letters.iter().all(|l| l.source == SOURCE && l.thing_name.as_deref() == Some("dev-1")));
        assert!(letters.iter().any(|l| l.reason_code == "FILE_TOO_LARGE" && l.raw_payload.contains("1001")));
        assert_eq!(deps.publisher.0.lock().unwrap().len(), 7);
        assert!(deps.uploads.get(&format!("uploads/dev-1/{NOON}-x.pdf")).await.unwrap().is_none(), "nothing recorded");
    }

    #[tokio::test]
    async fn a_device_gets_so_many_links_an_hour() {
        let deps = deps(1000, 3);
        let ask = |at: i64, name: &str| request(at, json!({"fileName": name, "contentType": "image/png"}));
        for i in 0..3 {
            assert!(handle(&ask(NOON + i, "a.png"), &deps).await.unwrap().get("objectKey").is_some());
        }
        let refused = handle(&ask(NOON + 10, "b.png"), &deps).await.unwrap();
        assert_eq!(refused["error"]["code"], "TOO_MANY_UPLOAD_LINKS");
        // A redelivery of a request already granted is still answered.
        assert!(handle(&ask(NOON + 2, "a.png"), &deps).await.unwrap().get("objectKey").is_some());
        // Another device is not limited by this one; an hour later this one may ask again.
        let other = json!({"thingName": "dev-2", "receivedAt": NOON + 11, "fileName": "a.png", "contentType": "image/png"});
        assert!(handle(&other, &deps).await.unwrap().get("objectKey").is_some());
        assert!(handle(&ask(NOON + 3_600_001, "c.png"), &deps).await.unwrap().get("objectKey").is_some());
    }
}
