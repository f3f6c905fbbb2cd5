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

pub mod registration;

use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::time::{format_utc, from_epoch_millis};
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

/// [`UploadSigner`] with the AWS SDK's S3 presigning.
pub struct S3UploadSigner {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
}

impl UploadSigner for S3UploadSigner {
    async fn presign_put(&self, key: &str, content_type: &str) -> Result<String, StoreError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(LINK_LIFETIME)
            .map_err(|e| StoreError::new("presign upload", e))?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .presigned(config)
            .await
            .map_err(|e| StoreError::new("presign upload", crate::dynamo::describe(&e)))?;
        Ok(request.uri().to_owned())
    }
}

/// [`DevicePublisher`] through the IoT data-plane `Publish` (QoS 1).
pub struct IotDataPublisher {
    pub client: aws_sdk_iotdataplane::Client,
}

impl DevicePublisher for IotDataPublisher {
    async fn publish(&self, topic: &str, payload: &Value) -> Result<(), StoreError> {
        self.client
            .publish()
            .topic(topic)
            .qos(1)
            .payload(aws_sdk_iotdataplane::primitives::Blob::new(payload.to_string().into_bytes()))
            .send()
            .await
            .map_err(|e| StoreError::new("publish to device", crate::dynamo::describe(&e)))?;
        Ok(())
    }
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

impl UploadRecordStore for DynamoUploadStore {
    async fn documents_for_device(&self, thing_name: &str, limit: i32) -> Result<Vec<String>, StoreError> {
        use crate::dynamo::{opt_s, s};
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(crate::tables::UPLOADS_BY_THING.name)
            .key_condition_expression("thingName = :t")
            .filter_expression("attribute_exists(documentReference)")
            .expression_attribute_values(":t", s(thing_name))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::new("list documents", crate::dynamo::describe(&e)))?;
        Ok(out.items().iter().filter_map(|i| opt_s(i, "documentReference")).collect())
    }

    async fn get(&self, object_key: &str) -> Result<Option<UploadRecord>, StoreError> {
        use crate::dynamo::{opt_s, req_s, s};
        const OP: &str = "read upload";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("objectKey", s(object_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::new(OP, crate::dynamo::describe(&e)))?;
        let Some(item) = out.item else { return Ok(None) };
        Ok(Some(UploadRecord {
            object_key: req_s(&item, "objectKey", OP)?,
            thing_name: req_s(&item, "thingName", OP)?,
            file_name: opt_s(&item, "fileName").unwrap_or_default(),
            content_type: opt_s(&item, "contentType").unwrap_or_default(),
            requested_at: opt_s(&item, "requestedAt").unwrap_or_default(),
            status: req_s(&item, "status", OP)?,
        }))
    }

    async fn complete(&self, object_key: &str, facts: &registration::ObjectFacts, document: &str) -> Result<bool, StoreError> {
        use crate::dynamo::s;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("objectKey", s(object_key))
            .update_expression("SET #status = :done, sizeBytes = :size, sha256 = :sha, documentReference = :doc, completedAt = :at")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("COMPLETED"))
            .expression_attribute_values(":pending", s("PENDING"))
            .expression_attribute_values(":size", aws_sdk_dynamodb::types::AttributeValue::N(facts.size.to_string()))
            .expression_attribute_values(":sha", s(&facts.sha256))
            .expression_attribute_values(":doc", s(document))
            .expression_attribute_values(":at", s(format_utc(Utc::now())))
            .send()
            .await;
        match update {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
            Err(e) => Err(StoreError::new("complete upload", crate::dynamo::describe(&e))),
        }
    }
}

/// [`UploadStore`] in the `UploadsTable`.
pub struct DynamoUploadStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl UploadStore for DynamoUploadStore {
    async fn record_pending(&self, u: &PendingUpload) -> Result<(), StoreError> {
        use crate::dynamo::s;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("objectKey", s(&u.object_key))
            .item("thingName", s(&u.thing_name))
            .item("fileName", s(&u.file_name))
            .item("contentType", s(&u.content_type))
            .item("status", s("PENDING"))
            .item("requestedAt", s(&u.requested_at))
            .item("expiresAt", s(&u.expires_at))
            .condition_expression("attribute_not_exists(objectKey)");
        // `false`: a redelivered request, recorded already.
        crate::dynamo::put_if_absent(put, "record pending upload").await.map(|_| ())
    }
}

/// The accepted content types from `UPLOAD_CONTENT_TYPES` (comma-separated), or the defaults.
pub fn content_types_from_env() -> Vec<String> {
    match std::env::var("UPLOAD_CONTENT_TYPES") {
        Ok(list) if !list.trim().is_empty() => list.split(',').map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect(),
        _ => DEFAULT_CONTENT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
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
