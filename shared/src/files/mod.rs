//! The `upload-link` function: a device asks `$aws/rules/CreateFileUploadLink` for somewhere to
//! upload a file (`{"fileName", "contentType"}`) and gets `{"uploadUrl"}` on the topic named
//! like its thing: a presigned S3 PUT, valid 15 minutes, bound to that content type, for a key
//! under the device's own prefix `uploads/<thing>/`. A refused request gets
//! `{"error": {"code", "message"}}` on the same topic and is kept as a dead letter.

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
pub use s3::{S3ObjectReader, S3UploadSigner};

use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::platform::time::{format_utc, from_epoch_millis};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The dead-letter source name of this function.
pub const SOURCE: &str = "upload-link";
/// How long an upload link is valid.
pub const LINK_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// Content types accepted unless `UPLOAD_CONTENT_TYPES` says otherwise.
pub const DEFAULT_CONTENT_TYPES: &[&str] =
    &["image/png", "image/jpeg", "application/pdf", "application/json", "text/csv", "application/octet-stream"];

/// Signs S3 PUT URLs.
pub trait UploadSigner: Send + Sync {
    fn presign_put(&self, key: &str, content_type: &str) -> impl Future<Output = Result<String, StoreError>> + Send;
}

/// Publishes a message to an MQTT topic (IoT data-plane `Publish`).
pub trait DevicePublisher: Send + Sync {
    fn publish(&self, topic: &str, payload: &Value) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Where pending uploads are recorded.
pub trait UploadStore: Send + Sync {
    /// Records a pending upload; recording the same key twice keeps one record.
    fn record_pending(&self, upload: &PendingUpload) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// An upload a device was given a link for.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingUpload {
    pub object_key: String,
    pub thing_name: String,
    pub file_name: String,
    pub content_type: String,
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
}

impl<S: FromWiring, P: FromWiring, U: FromWiring, L: FromWiring> FromWiring for UploadLinkDeps<S, P, U, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            signer: w.build()?,
            publisher: w.build()?,
            uploads: w.build()?,
            dead_letters: w.build()?,
            content_types: content_types(&w.settings),
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
}

impl LinkRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            LinkRefusal::Malformed => "INVALID_REQUEST",
            LinkRefusal::FileName => "INVALID_FILE_NAME",
            LinkRefusal::ContentType(..) => "INVALID_CONTENT_TYPE",
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
    let checked = match (rule.file_name.as_ref().and_then(Value::as_str), rule.content_type.as_ref().and_then(Value::as_str)) {
        (Some(name), Some(ct)) if !valid_file_name(name) => Err((LinkRefusal::FileName, name, ct)),
        (Some(name), Some(ct)) if !deps.content_types.iter().any(|a| a == ct) => {
            Err((LinkRefusal::ContentType(ct.to_owned(), deps.content_types.join(", ")), name, ct))
        }
        (Some(name), Some(ct)) => Ok((name, ct)),
        _ => Err((LinkRefusal::Malformed, "", "")),
    };
    let (file_name, content_type) = match checked {
        Ok(ok) => ok,
        Err((refusal, _, _)) => {
            let letter =
                DeadLetter::refused(SOURCE, Some(thing), refusal.code(), refusal.to_string(), event.to_string(), format_utc(received));
            deps.dead_letters.record(&letter).await?;
            let reply = json!({"error": {"code": refusal.code(), "message": refusal.to_string()}});
            deps.publisher.publish(thing, &reply).await?;
            tracing::info!(thing_name = %thing, reason_code = refusal.code(), "upload link refused");
            return Ok(reply);
        }
    };
    let key = object_key(thing, rule.received_at, file_name);
    let url = deps.signer.presign_put(&key, content_type).await?;
    let lifetime = chrono::Duration::from_std(LINK_LIFETIME).unwrap_or_default();
    deps.uploads
        .record_pending(&PendingUpload {
            object_key: key.clone(),
            thing_name: thing.to_owned(),
            file_name: file_name.to_owned(),
            content_type: content_type.to_owned(),
            requested_at: format_utc(received),
            expires_at: format_utc(received + lifetime),
        })
        .await?;
    deps.publisher.publish(thing, &json!({"uploadUrl": url})).await?;
    tracing::info!(thing_name = %thing, "upload link sent");
    Ok(json!({"objectKey": key}))
}

/// An upload as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadRecord {
    pub object_key: String,
    pub thing_name: String,
    pub file_name: String,
    pub content_type: String,
    pub requested_at: String,
    /// `PENDING` until the object arrives, then `COMPLETED`.
    pub status: String,
}

/// Reading and completing upload records (the `upload-registered` side).
pub trait UploadRecordStore: Send + Sync {
    fn get(&self, object_key: &str) -> impl Future<Output = Result<Option<UploadRecord>, StoreError>> + Send;

    /// Marks a pending upload complete with what the object holds and its DocumentReference;
    /// false when it was not pending any more (a redelivered event).
    fn complete(
        &self,
        object_key: &str,
        facts: &registration::ObjectFacts,
        document: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The DocumentReferences (FHIR JSON) of a device's completed uploads, newest first.
    fn documents_for_device(&self, thing_name: &str, limit: i32) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
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
    use super::*;

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
}
