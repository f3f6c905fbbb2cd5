//! Uploads in memory for unit tests, with the DynamoDB store's conditions: a pending upload is
//! recorded once per object key, and completed only while pending.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::registration::ObjectFacts;
use super::{PendingUpload, UploadRecord, UploadRecordStore, UploadStore};
use crate::StoreError;

#[derive(Debug, Clone)]
struct Stored {
    record: UploadRecord,
    document: Option<String>,
}

#[derive(Default)]
pub struct MemoryUploads(Mutex<BTreeMap<String, Stored>>);

impl UploadStore for MemoryUploads {
    async fn record_pending(&self, u: &PendingUpload) -> Result<(), StoreError> {
        self.0.lock().expect("lock").entry(u.object_key.clone()).or_insert_with(|| Stored {
            record: UploadRecord {
                object_key: u.object_key.clone(),
                thing_name: u.thing_name.clone(),
                file_name: u.file_name.clone(),
                content_type: u.content_type.clone(),
                requested_at: u.requested_at.clone(),
                status: "PENDING".into(),
            },
            document: None,
        });
        Ok(())
    }
}

impl UploadRecordStore for MemoryUploads {
    async fn get(&self, object_key: &str) -> Result<Option<UploadRecord>, StoreError> {
        Ok(self.0.lock().expect("lock").get(object_key).map(|s| s.record.clone()))
    }

    async fn complete(&self, object_key: &str, _facts: &ObjectFacts, document: &str) -> Result<bool, StoreError> {
        let mut all = self.0.lock().expect("lock");
        match all.get_mut(object_key) {
            Some(s) if s.record.status == "PENDING" => {
                s.record.status = "COMPLETED".into();
                s.document = Some(document.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn documents_for_device(&self, thing_name: &str, limit: i32) -> Result<Vec<String>, StoreError> {
        let all = self.0.lock().expect("lock");
        let mut found: Vec<_> = all.values().filter(|s| s.record.thing_name == thing_name && s.document.is_some()).collect();
        found.sort_by(|a, b| b.record.requested_at.cmp(&a.record.requested_at));
        Ok(found.into_iter().take(usize::try_from(limit).unwrap_or(0)).filter_map(|s| s.document.clone()).collect())
    }
}
