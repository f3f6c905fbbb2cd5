//! The `upload-registered` function: on S3 `ObjectCreated` under `uploads/`, marks the pending
//! upload complete (size, SHA-256) and files a FHIR R4 `DocumentReference` for it, authored by
//! the Device and about its assigned Patient. A redelivered event changes nothing; an object
//! nobody asked a link for is flagged as a dead letter, not registered.

use std::future::Future;

use aws_lambda_events::s3::S3Event;
use serde::Serialize;
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::UploadRecordStore;
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::DeviceRegistry;
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The dead-letter source name of this function.
pub const SOURCE: &str = "upload-registered";

/// What an object holds, as read back from the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectFacts {
    pub size: u64,
    /// Hex SHA-256, kept with the upload record.
    pub sha256: String,
    /// Base64 SHA-1: FHIR R4 `Attachment.hash`.
    pub sha1_base64: String,
}

/// Reads objects to measure and hash them.
pub trait ObjectReader: Send + Sync {
    /// `None` when the object no longer exists.
    fn facts(&self, bucket: &str, key: &str) -> impl Future<Output = Result<Option<ObjectFacts>, StoreError>> + Send;
}

/// Hashes a byte stream as it arrives (uploads can be large; nothing is buffered whole).
#[derive(Default)]
pub struct Hasher {
    size: u64,
    sha256: Sha256,
    sha1: sha1::Sha1,
}

impl Hasher {
    pub fn update(&mut self, chunk: &[u8]) {
        self.size += chunk.len() as u64;
        self.sha256.update(chunk);
        sha1::Digest::update(&mut self.sha1, chunk);
    }

    pub fn finish(self) -> ObjectFacts {
        ObjectFacts {
            size: self.size,
            sha256: hex::encode(self.sha256.finalize()),
            sha1_base64: base64::engine::general_purpose::STANDARD.encode(sha1::Digest::finalize(self.sha1)),
        }
    }
}

/// What the handler needs.
pub struct RegistrationDeps<U, R, D, L> {
    pub uploads: U,
    pub objects: R,
    pub devices: D,
    pub dead_letters: L,
}

impl<U: FromWiring, R: FromWiring, D: FromWiring, L: FromWiring> FromWiring for RegistrationDeps<U, R, D, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { uploads: w.build()?, objects: w.build()?, devices: w.build()?, dead_letters: w.build()? })
    }
}

/// What happened to one record of the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Registration {
    Registered { key: String, document_id: String },
    AlreadyRegistered { key: String },
    Unrequested { key: String },
    Ignored { key: String },
}

/// A deterministic FHIR id for the document of an object key.
pub fn document_id(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

/// Builds the DocumentReference of a completed upload.
pub fn document_reference(
    id: &str,
    bucket: &str,
    upload: &super::UploadRecord,
    facts: &ObjectFacts,
    patient_id: Option<&str>,
    at: &str,
) -> Value {
    let mut doc = json!({
        "resourceType": "DocumentReference",
        "id": id,
        "identifier": [{"system": "urn:vitalwire:upload", "value": upload.object_key}],
        "status": "current",
        "date": at,
        "author": [{"reference": format!("Device/{}", upload.thing_name)}],
        "description": upload.file_name,
        "content": [{"attachment": {
            "contentType": upload.content_type,
            "url": format!("s3://{bucket}/{}", upload.object_key),
            "size": facts.size,
            "hash": facts.sha1_base64,
            "title": upload.file_name,
            "creation": upload.requested_at,
        }}],
    });
    if let Some(p) = patient_id {
        doc["subject"] = json!({"reference": format!("Patient/{p}")});
    }
    doc
}

/// Handles one S3 event (possibly several records).
pub async fn handle<U, R, D, L>(event: &S3Event, deps: &RegistrationDeps<U, R, D, L>) -> Result<Vec<Registration>, StoreError>
where
    U: UploadRecordStore,
    R: ObjectReader,
    D: DeviceRegistry,
    L: DeadLetterStore,
{
    let mut outcomes = Vec::new();
    for record in &event.records {
        let bucket = record.s3.bucket.name.clone().unwrap_or_default();
        let key = crate::platform::aws::decoded_key(record.s3.object.key.as_deref().unwrap_or_default());
        if !key.starts_with("uploads/") {
            outcomes.push(Registration::Ignored { key });
            continue;
        }
        let Some(upload) = deps.uploads.get(&key).await? else {
            let raw = serde_json::to_string(record).map_err(|e| StoreError::new("serialize event", e))?;
            let letter = DeadLetter::refused(
                SOURCE,
                key.split('/').nth(1),
                "UNREQUESTED_UPLOAD",
                format!("no upload link was issued for {key}; the object is kept but not registered"),
                raw,
                format_utc(record.event_time),
            );
            deps.dead_letters.record(&letter).await?;
            tracing::warn!(dead_letter_id = %letter.id, "upload nobody asked for");
            outcomes.push(Registration::Unrequested { key });
            continue;
        };
        if upload.status != "PENDING" {
            outcomes.push(Registration::AlreadyRegistered { key });
            continue;
        }
        let Some(facts) = deps.objects.facts(&bucket, &key).await? else {
            outcomes.push(Registration::Ignored { key });
            continue;
        };
        let patient = deps.devices.get(&upload.thing_name).await?.and_then(|d| d.patient_id);
        let id = document_id(&key);
        let document = document_reference(&id, &bucket, &upload, &facts, patient.as_deref(), &format_utc(Utc::now()));
        if deps.uploads.complete(&key, &facts, &document.to_string()).await? {
            tracing::info!(thing_name = %upload.thing_name, document_id = %id, "upload registered");
            outcomes.push(Registration::Registered { key, document_id: id });
        } else {
            outcomes.push(Registration::AlreadyRegistered { key });
        }
    }
    Ok(outcomes)
}
