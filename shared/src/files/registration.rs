//! The `upload-registered` function: on S3 `ObjectCreated` under `uploads/`, marks the pending
//! upload complete with the object version the event names (its size and SHA-256) and files a
//! FHIR R4 `DocumentReference` for that version, authored by the Device and about its assigned
//! Patient. A redelivered event changes nothing. Refused, each kept as a dead letter with the
//! event: an object nobody asked a link for (kept, not registered); an object larger than
//! `MAX_UPLOAD_BYTES` or of another size than the device announced (kept, not registered: the
//! link stays usable for a right-sized file); and a later PUT over a registered upload, whose
//! version is moved to `refused/<key>/<versionId>` so that the registered version stays the
//! object behind the DocumentReference.

use std::future::Future;

use aws_lambda_events::s3::{S3Event, S3EventRecord};
use serde::Serialize;
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{UploadRecord, UploadRecordStore, UploadStatus};
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

/// Where refused versions of registered uploads are moved.
pub const REFUSED_PREFIX: &str = "refused/";

/// What reading an object version found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectRead {
    Facts(ObjectFacts),
    /// The object (or the version named) no longer exists.
    Missing,
    /// Larger than allowed, by its length or by the bytes read before stopping.
    TooLarge(u64),
}

/// The uploaded objects: measured and hashed by version, and refused versions set aside.
pub trait UploadedObjects: Send + Sync {
    /// Reads the version (the latest when `None`), stopping once more than `max_bytes` came.
    fn read(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        max_bytes: u64,
    ) -> impl Future<Output = Result<ObjectRead, StoreError>> + Send;

    /// Copies the version to `refused/<key>/<version>` and deletes it from `key`; returns the
    /// key it is kept under. Setting aside a version already set aside succeeds.
    fn set_aside(&self, bucket: &str, key: &str, version_id: &str) -> impl Future<Output = Result<String, StoreError>> + Send;
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

    /// Bytes hashed so far.
    pub fn size(&self) -> u64 {
        self.size
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
    /// `MAX_UPLOAD_BYTES`: larger objects are refused unread.
    pub max_bytes: u64,
}

impl<U: FromWiring, R: FromWiring, D: FromWiring, L: FromWiring> FromWiring for RegistrationDeps<U, R, D, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            uploads: w.build()?,
            objects: w.build()?,
            devices: w.build()?,
            dead_letters: w.build()?,
            max_bytes: w.settings.parsed("MAX_UPLOAD_BYTES", super::DEFAULT_MAX_UPLOAD_BYTES)?,
        })
    }
}

/// What happened to one record of the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Registration {
    Registered { key: String, document_id: String },
    AlreadyRegistered { key: String },
    /// Refused and kept as a dead letter with this reason code.
    Refused { key: String, reason_code: &'static str },
    Ignored { key: String },
}

/// Why an object was not registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationRefusal {
    #[error("no upload link was issued for {0}; the object is kept but not registered")]
    Unrequested(String),
    #[error("the object is {size} bytes, more than the {max} a file may have; it is kept but not registered")]
    TooLarge { size: u64, max: u64 },
    #[error("the object is {actual} bytes but the device announced {declared}; it is kept but not registered")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("{key} is registered already (version {registered}); the later version {refused} was moved to {kept_at}")]
    Overwrite { key: String, registered: String, refused: String, kept_at: String },
}

impl RegistrationRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            RegistrationRefusal::Unrequested(_) => "UNREQUESTED_UPLOAD",
            RegistrationRefusal::TooLarge { .. } => "FILE_TOO_LARGE",
            RegistrationRefusal::SizeMismatch { .. } => "SIZE_MISMATCH",
            RegistrationRefusal::Overwrite { .. } => "OVERWRITE_REFUSED",
        }
    }
}

/// A deterministic FHIR id for the document of an object key.
pub fn document_id(key: &str) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..16])
}

/// Builds the DocumentReference of a completed upload.
pub fn document_reference(
    id: &str,
    bucket: &str,
    upload: &UploadRecord,
    facts: &ObjectFacts,
    patient_id: Option<&str>,
    at: &str,
) -> Value {
    let mut doc = json!({
        "resourceType": "DocumentReference",
        "id": id,
        "identifier": identifiers(upload),
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

/// The upload's object key and, in a versioned bucket, the S3 version the document is about.
fn identifiers(upload: &UploadRecord) -> Value {
    let mut ids = vec![json!({"system": "urn:vitalwire:upload", "value": upload.object_key})];
    if let Some(version) = &upload.version_id {
        ids.push(json!({"system": "urn:vitalwire:upload-version", "value": version}));
    }
    Value::Array(ids)
}

/// Handles one S3 event (possibly several records).
pub async fn handle<U, R, D, L>(event: &S3Event, deps: &RegistrationDeps<U, R, D, L>) -> Result<Vec<Registration>, StoreError>
where
    U: UploadRecordStore,
    R: UploadedObjects,
    D: DeviceRegistry,
    L: DeadLetterStore,
{
    let mut outcomes = Vec::new();
    for record in &event.records {
        let key = crate::platform::aws::decoded_key(record.s3.object.key.as_deref().unwrap_or_default());
        let outcome = match register(record, &key, deps).await? {
            Ok(outcome) => outcome,
            Err(refusal) => {
                // Through a `Value` (sorted keys): the record's maps are hash maps, and a
                // redelivered event must give the same raw text, hence the same dead letter.
                let raw = serde_json::to_value(record).map_err(|e| StoreError::new("serialize event", e))?.to_string();
                let thing = key.split('/').nth(1);
                let letter =
                    DeadLetter::refused(SOURCE, thing, refusal.code(), refusal.to_string(), raw, format_utc(record.event_time));
                deps.dead_letters.record(&letter).await?;
                tracing::warn!(dead_letter_id = %letter.id, reason_code = refusal.code(), "upload refused");
                Registration::Refused { key, reason_code: refusal.code() }
            }
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Registers the object version of one event record, or says why not.
async fn register<U, R, D, L>(
    record: &S3EventRecord,
    key: &str,
    deps: &RegistrationDeps<U, R, D, L>,
) -> Result<Result<Registration, RegistrationRefusal>, StoreError>
where
    U: UploadRecordStore,
    R: UploadedObjects,
    D: DeviceRegistry,
{
    let bucket = record.s3.bucket.name.as_deref().unwrap_or_default();
    let version = record.s3.object.version_id.as_deref();
    if !key.starts_with("uploads/") {
        return Ok(Ok(Registration::Ignored { key: key.to_owned() }));
    }
    let Some(upload) = deps.uploads.get(key).await? else {
        return Ok(Err(RegistrationRefusal::Unrequested(key.to_owned())));
    };
    if upload.status == UploadStatus::Completed {
        return later_version(deps, bucket, key, &upload, version).await;
    }
    let announced = record.s3.object.size.and_then(|s| u64::try_from(s).ok());
    let facts = match announced {
        Some(size) if size > deps.max_bytes => return Ok(Err(RegistrationRefusal::TooLarge { size, max: deps.max_bytes })),
        _ => match deps.objects.read(bucket, key, version, deps.max_bytes).await? {
            ObjectRead::Facts(facts) => facts,
            ObjectRead::Missing => return Ok(Ok(Registration::Ignored { key: key.to_owned() })),
            ObjectRead::TooLarge(size) => return Ok(Err(RegistrationRefusal::TooLarge { size, max: deps.max_bytes })),
        },
    };
    if let Some(declared) = upload.declared_size.filter(|d| *d != facts.size) {
        return Ok(Err(RegistrationRefusal::SizeMismatch { declared, actual: facts.size }));
    }
    let patient = deps.devices.get(&upload.thing_name).await?.and_then(|d| d.patient_id);
    let id = document_id(key);
    let registered = UploadRecord { version_id: version.map(str::to_owned), ..upload };
    let document = document_reference(&id, bucket, &registered, &facts, patient.as_deref(), &format_utc(Utc::now()));
    if deps.uploads.complete(key, version, &facts, &document.to_string()).await? {
        tracing::info!(thing_name = %registered.thing_name, document_id = %id, "upload registered");
        return Ok(Ok(Registration::Registered { key: key.to_owned(), document_id: id }));
    }
    // Another event registered a version first (two PUTs with one link): this one is later.
    match deps.uploads.get(key).await? {
        Some(now) => later_version(deps, bucket, key, &now, version).await,
        None => Ok(Ok(Registration::AlreadyRegistered { key: key.to_owned() })),
    }
}

/// An event for an upload that is registered: the same version again is a redelivery; another
/// version is an overwrite, set aside so that the registered version stays current.
async fn later_version<U, R, D, L>(
    deps: &RegistrationDeps<U, R, D, L>,
    bucket: &str,
    key: &str,
    upload: &UploadRecord,
    version: Option<&str>,
) -> Result<Result<Registration, RegistrationRefusal>, StoreError>
where
    R: UploadedObjects,
{
    let (Some(refused), Some(registered)) = (version, upload.version_id.as_deref()) else {
        // An unversioned bucket cannot tell a redelivery from an overwrite (the template's is versioned).
        return Ok(Ok(Registration::AlreadyRegistered { key: key.to_owned() }));
    };
    if refused == registered {
        return Ok(Ok(Registration::AlreadyRegistered { key: key.to_owned() }));
    }
    let kept_at = deps.objects.set_aside(bucket, key, refused).await?;
    Ok(Err(RegistrationRefusal::Overwrite {
        key: key.to_owned(),
        registered: registered.to_owned(),
        refused: refused.to_owned(),
        kept_at: format!("s3://{bucket}/{kept_at}"),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::memory::{MemoryObjects, MemoryUploads};
    use super::super::{PendingUpload, UploadStore};
    use super::*;
    use crate::dead_letters::memory::MemoryDeadLetters;
    use crate::devices::memory::MemoryDevices;
    use crate::devices::Device;

    const KEY: &str = "uploads/dev-1/1796126400000-ecg.pdf";

    type Deps = RegistrationDeps<MemoryUploads, MemoryObjects, MemoryDevices, MemoryDeadLetters>;

    async fn deps(declared_size: Option<u64>) -> Deps {
        let mut device = Device::registered("Acme", "1", "ECG-1", "ECG", "2026-12-01T12:00:00Z");
        device.thing_name = "dev-1".into();
        device.patient_id = Some("patient-1".into());
        let deps = RegistrationDeps {
            uploads: MemoryUploads::default(),
            objects: MemoryObjects::default(),
            devices: MemoryDevices::with(vec![device]),
            dead_letters: MemoryDeadLetters::default(),
            max_bytes: 10,
        };
        let pending = PendingUpload {
            object_key: KEY.into(),
            thing_name: "dev-1".into(),
            file_name: "ecg.pdf".into(),
            content_type: "application/pdf".into(),
            declared_size,
            requested_at: "2026-12-01T12:00:00.000Z".into(),
            expires_at: "2026-12-01T12:15:00.000Z".into(),
        };
        deps.uploads.record_pending(&pending).await.unwrap();
        deps
    }

    /// The event S3 sends for one new object version.
    fn created(key: &str, version: &str, size: usize) -> S3Event {
        serde_json::from_value(json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "eu-west-1",
            "eventTime": "2026-12-01T12:01:00.000Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:device"}, "requestParameters": {"sourceIPAddress": "192.0.2.1"},
            "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "Uploaded",
                   "bucket": {"name": "files", "ownerIdentity": {"principalId": "O"}, "arn": "arn:aws:s3:::files"},
                   "object": {"key": key, "size": size, "versionId": version, "eTag": "e"}},
        }]}))
        .unwrap()
    }

    fn outcome_code(outcomes: &[Registration]) -> Option<&'static str> {
        match outcomes {
            [Registration::Refused { reason_code, .. }] => Some(reason_code),
            _ => None,
        }
    }

    #[tokio::test]
    async fn the_version_the_event_names_is_registered_and_a_later_put_is_set_aside() {
        let deps = deps(None).await;
        let first = deps.objects.put(KEY, b"%PDF-1");
        let second = deps.objects.put(KEY, b"%PDF-2 other");
        // The event of the first PUT arrives after the second PUT: the first version is hashed.
        let registered = handle(&created(KEY, &first, 6), &deps).await.unwrap();
        assert!(matches!(&registered[..], [Registration::Registered { .. }]), "{registered:?}");
        let document: Value = serde_json::from_str(&deps.uploads.document(KEY).unwrap()).unwrap();
        assert_eq!(document["content"][0]["attachment"]["size"], 6);
        assert_eq!(document["identifier"][1], json!({"system": "urn:vitalwire:upload-version", "value": first}));
        assert_eq!(document["subject"]["reference"], "Patient/patient-1");

        // The same event again changes nothing; the second version's event is refused and that
        // version moved aside, so the registered bytes are current again.
        assert_eq!(handle(&created(KEY, &first, 6), &deps).await.unwrap(), [Registration::AlreadyRegistered { key: KEY.into() }]);
        let refused = handle(&created(KEY, &second, 12), &deps).await.unwrap();
        assert_eq!(outcome_code(&refused), Some("OVERWRITE_REFUSED"));
        assert_eq!(deps.objects.current(KEY).unwrap(), b"%PDF-1");
        assert_eq!(deps.objects.current(&format!("refused/{KEY}/{second}")).unwrap(), b"%PDF-2 other");
        let letters = deps.dead_letters.all();
        assert_eq!(letters.len(), 1);
        assert!(letters[0].reason.contains(&format!("refused/{KEY}/{second}")), "{}", letters[0].reason);
        assert!(letters[0].raw_payload.contains(&second), "the event is kept");
        // Redelivered, the refusal is the same and loses nothing more.
        assert_eq!(outcome_code(&handle(&created(KEY, &second, 12), &deps).await.unwrap()), Some("OVERWRITE_REFUSED"));
        assert_eq!(deps.dead_letters.len(), 1);
        assert_eq!(deps.objects.current(&format!("refused/{KEY}/{second}")).unwrap(), b"%PDF-2 other");
    }

    /// Uploads whose first read is stale: as when two events are handled at the same time.
    struct ReadBeforeTheOther {
        uploads: MemoryUploads,
        stale: std::sync::Mutex<Option<UploadRecord>>,
    }

    impl UploadRecordStore for ReadBeforeTheOther {
        async fn get(&self, key: &str) -> Result<Option<UploadRecord>, StoreError> {
            let stale = self.stale.lock().unwrap().take();
            match stale {
                Some(stale) => Ok(Some(stale)),
                None => self.uploads.get(key).await,
            }
        }
        async fn complete(&self, key: &str, version: Option<&str>, facts: &ObjectFacts, doc: &str) -> Result<bool, StoreError> {
            self.uploads.complete(key, version, facts, doc).await
        }
        async fn documents_for_device(&self, thing: &str, limit: i32) -> Result<Vec<String>, StoreError> {
            self.uploads.documents_for_device(thing, limit).await
        }
        async fn document(&self, id: &str) -> Result<Option<String>, StoreError> {
            UploadRecordStore::document(&self.uploads, id).await
        }
    }

    #[tokio::test]
    async fn of_two_racing_puts_the_first_registered_wins_and_the_other_is_set_aside() {
        let base = deps(None).await;
        let first = base.objects.put(KEY, b"first");
        let second = base.objects.put(KEY, b"second");
        let pending = base.uploads.get(KEY).await.unwrap();
        // The second PUT's event registers first; the first PUT's event had read the upload as pending.
        assert!(matches!(&handle(&created(KEY, &second, 6), &base).await.unwrap()[..], [Registration::Registered { .. }]));
        let deps = RegistrationDeps {
            uploads: ReadBeforeTheOther { uploads: base.uploads, stale: std::sync::Mutex::new(pending) },
            objects: base.objects,
            devices: base.devices,
            dead_letters: base.dead_letters,
            max_bytes: base.max_bytes,
        };
        assert_eq!(outcome_code(&handle(&created(KEY, &first, 5), &deps).await.unwrap()), Some("OVERWRITE_REFUSED"));
        assert_eq!(deps.objects.current(KEY).unwrap(), b"second", "the registered version is current");
        assert_eq!(deps.uploads.uploads.get(KEY).await.unwrap().unwrap().version_id.as_deref(), Some(second.as_str()));
    }

    #[tokio::test]
    async fn objects_over_the_cap_or_of_another_size_are_kept_but_not_registered() {
        let deps = deps(None).await;
        let big = deps.objects.put(KEY, b"01234567890");
        assert_eq!(outcome_code(&handle(&created(KEY, &big, 11), &deps).await.unwrap()), Some("FILE_TOO_LARGE"));
        // The event's size is not trusted alone: the read stops at the cap too.
        assert_eq!(outcome_code(&handle(&created(KEY, &big, 3), &deps).await.unwrap()), Some("FILE_TOO_LARGE"));
        assert_eq!(deps.uploads.get(KEY).await.unwrap().unwrap().status, UploadStatus::Pending, "the link stays usable");
        assert_eq!(deps.objects.current(KEY).unwrap(), b"01234567890", "kept for the operator");
        let small = deps.objects.put(KEY, b"ok");
        assert!(matches!(&handle(&created(KEY, &small, 2), &deps).await.unwrap()[..], [Registration::Registered { .. }]));

        let deps = self::deps(Some(4)).await;
        let wrong = deps.objects.put(KEY, b"abc");
        assert_eq!(outcome_code(&handle(&created(KEY, &wrong, 3), &deps).await.unwrap()), Some("SIZE_MISMATCH"));
        let right = deps.objects.put(KEY, b"abcd");
        assert!(matches!(&handle(&created(KEY, &right, 4), &deps).await.unwrap()[..], [Registration::Registered { .. }]));
        let codes: Vec<_> = deps.dead_letters.all().into_iter().map(|l| l.reason_code).collect();
        assert_eq!(codes, ["SIZE_MISMATCH"]);
    }

    #[tokio::test]
    async fn objects_nobody_asked_for_are_flagged_and_others_ignored() {
        let deps = deps(None).await;
        let stray = "uploads/dev-1/stray.bin";
        let version = deps.objects.put(stray, b"x");
        assert_eq!(outcome_code(&handle(&created(stray, &version, 1), &deps).await.unwrap()), Some("UNREQUESTED_UPLOAD"));
        assert_eq!(deps.dead_letters.all()[0].thing_name.as_deref(), Some("dev-1"));
        assert_eq!(handle(&created("inbox/x.json", "v1", 1), &deps).await.unwrap(), [Registration::Ignored { key: "inbox/x.json".into() }]);
        // A version deleted before its event is handled is nothing to register.
        assert_eq!(handle(&created(KEY, "v9", 1), &deps).await.unwrap(), [Registration::Ignored { key: KEY.into() }]);
    }
}
