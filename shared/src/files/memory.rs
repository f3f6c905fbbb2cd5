//! Uploads and uploaded objects in memory for unit tests, with the real stores' conditions: a
//! pending upload is recorded once per object key and completed only while pending; objects are
//! versioned like the device-files bucket. Upload links are signed by naming what they are
//! bound to.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::registration::{Hasher, ObjectFacts, ObjectRead, UploadedObjects, REFUSED_PREFIX};
use super::{PendingUpload, UploadRecord, UploadRecordStore, UploadSigner, UploadStatus, UploadStore};
use crate::StoreError;

#[derive(Debug, Clone)]
struct Stored {
    record: UploadRecord,
    document: Option<String>,
}

#[derive(Default)]
pub struct MemoryUploads(Mutex<BTreeMap<String, Stored>>);

impl MemoryUploads {
    pub fn document(&self, object_key: &str) -> Option<String> {
        self.0.lock().expect("lock").get(object_key).and_then(|s| s.document.clone())
    }
}

impl UploadStore for MemoryUploads {
    async fn record_pending(&self, u: &PendingUpload) -> Result<(), StoreError> {
        self.0.lock().expect("lock").entry(u.object_key.clone()).or_insert_with(|| Stored {
            record: UploadRecord {
                object_key: u.object_key.clone(),
                thing_name: u.thing_name.clone(),
                file_name: u.file_name.clone(),
                content_type: u.content_type.clone(),
                declared_size: u.declared_size,
                requested_at: u.requested_at.clone(),
                status: UploadStatus::Pending,
                version_id: None,
            },
            document: None,
        });
        Ok(())
    }

    async fn links_since(&self, thing_name: &str, since: &str, except_key: &str, at_most: u32) -> Result<u32, StoreError> {
        let all = self.0.lock().expect("lock");
        let count = all
            .values()
            .filter(|s| s.record.thing_name == thing_name && s.record.requested_at.as_str() >= since && s.record.object_key != except_key)
            .count();
        Ok(u32::try_from(count).unwrap_or(u32::MAX).min(at_most.saturating_add(1)))
    }
}

impl UploadRecordStore for MemoryUploads {
    async fn get(&self, object_key: &str) -> Result<Option<UploadRecord>, StoreError> {
        Ok(self.0.lock().expect("lock").get(object_key).map(|s| s.record.clone()))
    }

    async fn complete(&self, object_key: &str, version_id: Option<&str>, _facts: &ObjectFacts, document: &str) -> Result<bool, StoreError> {
        let mut all = self.0.lock().expect("lock");
        match all.get_mut(object_key) {
            Some(s) if s.record.status == UploadStatus::Pending => {
                s.record.status = UploadStatus::Completed;
                s.record.version_id = version_id.map(str::to_owned);
                s.document = Some(document.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn document(&self, document_id: &str) -> Result<Option<String>, StoreError> {
        let all = self.0.lock().expect("lock");
        Ok(all.values().find(|s| s.document.is_some() && super::registration::document_id(&s.record.object_key) == document_id).and_then(|s| s.document.clone()))
    }

    async fn documents_for_device(&self, thing_name: &str, limit: i32) -> Result<Vec<String>, StoreError> {
        let all = self.0.lock().expect("lock");
        let mut found: Vec<_> = all.values().filter(|s| s.record.thing_name == thing_name && s.document.is_some()).collect();
        found.sort_by(|a, b| b.record.requested_at.cmp(&a.record.requested_at));
        Ok(found.into_iter().take(usize::try_from(limit).unwrap_or(0)).filter_map(|s| s.document.clone()).collect())
    }
}

/// One object version: its id and bytes.
type Version = (String, Vec<u8>);

/// A versioned bucket: each key's versions, oldest first.
#[derive(Default)]
pub struct MemoryObjects(Mutex<BTreeMap<String, Vec<Version>>>);

impl MemoryObjects {
    /// Writes a new version and returns its id.
    pub fn put(&self, key: &str, bytes: &[u8]) -> String {
        let mut all = self.0.lock().expect("lock");
        let versions = all.entry(key.to_owned()).or_default();
        let id = format!("v{}", versions.len() + 1);
        versions.push((id.clone(), bytes.to_vec()));
        id
    }

    /// The bytes of the key's current (latest) version.
    pub fn current(&self, key: &str) -> Option<Vec<u8>> {
        self.0.lock().expect("lock").get(key).and_then(|v| v.last()).map(|(_, b)| b.clone())
    }
}

impl UploadedObjects for MemoryObjects {
    async fn read(&self, _bucket: &str, key: &str, version_id: Option<&str>, max_bytes: u64) -> Result<ObjectRead, StoreError> {
        let all = self.0.lock().expect("lock");
        let versions = all.get(key).map(Vec::as_slice).unwrap_or_default();
        let found = match version_id {
            Some(id) => versions.iter().find(|(v, _)| v == id),
            None => versions.last(),
        };
        let Some((_, bytes)) = found else { return Ok(ObjectRead::Missing) };
        if bytes.len() as u64 > max_bytes {
            return Ok(ObjectRead::TooLarge(bytes.len() as u64));
        }
        let mut hasher = Hasher::default();
        hasher.update(bytes);
        Ok(ObjectRead::Facts(hasher.finish()))
    }

    async fn set_aside(&self, _bucket: &str, key: &str, version_id: &str) -> Result<String, StoreError> {
        let kept = format!("{REFUSED_PREFIX}{key}/{version_id}");
        let mut all = self.0.lock().expect("lock");
        let versions = all.entry(key.to_owned()).or_default();
        if let Some(at) = versions.iter().position(|(v, _)| v == version_id) {
            let (_, bytes) = versions.remove(at);
            all.entry(kept.clone()).or_default().push(("v1".to_owned(), bytes));
        }
        Ok(kept)
    }
}

/// Signs by naming what it signed, so that tests see what a link is bound to.
pub struct NamingSigner;

impl UploadSigner for NamingSigner {
    async fn presign_put(&self, key: &str, content_type: &str, length: Option<u64>) -> Result<String, StoreError> {
        Ok(format!("https://bucket/{key}?type={content_type}&length={length:?}"))
    }
}
