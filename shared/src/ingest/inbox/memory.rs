//! In-memory [`InboxObjects`], [`InboxProgress`] and [`InboxContinuation`] for unit tests: the
//! same conditions as the S3, DynamoDB and SQS adapters (a version read, copied or deleted only
//! while it is there; a save only over the version before it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use aws_sdk_s3::primitives::ByteStream;

use super::progress::{FileProgress, FileStatus, GoOn, InboxContinuation, InboxProgress, Problem, ProgressPage};
use super::{InboxObjects, ObjectRef};
use crate::StoreError;

/// Objects by (bucket, key); one version each (a bucket without versioning).
#[derive(Default)]
pub struct MemoryInbox {
    pub objects: Mutex<BTreeMap<(String, String), Vec<u8>>>,
}

impl MemoryInbox {
    pub fn put(&self, bucket: &str, key: &str, body: impl Into<Vec<u8>>) {
        self.objects.lock().expect("lock").insert((bucket.to_owned(), key.to_owned()), body.into());
    }

    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        self.objects.lock().expect("lock").get(&(bucket.to_owned(), key.to_owned())).cloned()
    }

    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.objects.lock().expect("lock").keys().filter(|(_, k)| k.starts_with(prefix)).map(|(_, k)| k.clone()).collect()
    }
}

impl InboxObjects for MemoryInbox {
    async fn open(&self, object: &ObjectRef, from: u64) -> Result<Option<ByteStream>, StoreError> {
        let Some(body) = self.get(&object.bucket, &object.key) else { return Ok(None) };
        let from = usize::try_from(from).unwrap_or(usize::MAX).min(body.len());
        Ok(Some(ByteStream::from(body[from..].to_vec())))
    }

    async fn exists(&self, object: &ObjectRef) -> Result<bool, StoreError> {
        Ok(self.get(&object.bucket, &object.key).is_some())
    }

    async fn copy(&self, object: &ObjectRef, to: &str) -> Result<bool, StoreError> {
        let Some(body) = self.get(&object.bucket, &object.key) else { return Ok(false) };
        self.put(&object.bucket, to, body);
        Ok(true)
    }

    async fn put_json(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.put(bucket, key, body);
        Ok(())
    }

    async fn delete(&self, object: &ObjectRef) -> Result<(), StoreError> {
        self.objects.lock().expect("lock").remove(&(object.bucket.clone(), object.key.clone()));
        Ok(())
    }
}

#[derive(Default)]
pub struct MemoryProgress {
    files: Mutex<HashMap<String, FileProgress>>,
    problems: Mutex<BTreeMap<(String, u64), Problem>>,
}

impl InboxProgress for MemoryProgress {
    async fn start(&self, fresh: &FileProgress) -> Result<FileProgress, StoreError> {
        Ok(self.files.lock().expect("lock").entry(fresh.file_id.clone()).or_insert_with(|| fresh.clone()).clone())
    }

    async fn get(&self, file_id: &str) -> Result<Option<FileProgress>, StoreError> {
        Ok(self.files.lock().expect("lock").get(file_id).cloned())
    }

    async fn save(&self, progress: &FileProgress, first_problem: u64, problems: &[Problem]) -> Result<bool, StoreError> {
        let mut kept = self.problems.lock().expect("lock");
        for (n, p) in (first_problem..).zip(problems) {
            kept.insert((progress.file_id.clone(), n), p.clone());
        }
        let mut files = self.files.lock().expect("lock");
        match files.get(&progress.file_id) {
            Some(current) if current.version_saved + 1 == progress.version_saved => {
                files.insert(progress.file_id.clone(), progress.clone());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn problems(&self, file_id: &str, from: u64, limit: usize) -> Result<Vec<Problem>, StoreError> {
        let kept = self.problems.lock().expect("lock");
        Ok(kept.range((file_id.to_owned(), from)..=(file_id.to_owned(), u64::MAX)).map(|(_, p)| p.clone()).take(limit).collect())
    }

    async fn by_status(&self, status: FileStatus, limit: i32, after: Option<&str>) -> Result<ProgressPage, StoreError> {
        let files = self.files.lock().expect("lock");
        let mut found: Vec<&FileProgress> = files.values().filter(|f| f.status == status).collect();
        found.sort_by(|a, b| (&b.updated_at, &b.file_id).cmp(&(&a.updated_at, &a.file_id)));
        let cursor = |f: &FileProgress| format!("{}#{}", f.updated_at, f.file_id);
        let items: Vec<FileProgress> = found.into_iter().filter(|f| after.is_none_or(|a| cursor(f).as_str() < a)).cloned().collect();
        let limit = usize::try_from(limit).unwrap_or(0);
        let next = limit.checked_sub(1).filter(|_| items.len() > limit).map(|last| cursor(&items[last]));
        Ok(ProgressPage { items: items.into_iter().take(limit).collect(), next })
    }
}

/// Continuations asked for, in order.
#[derive(Default)]
pub struct MemoryContinuation {
    pub asked: Mutex<Vec<GoOn>>,
}

impl InboxContinuation for MemoryContinuation {
    async fn go_on(&self, file: &FileProgress) -> Result<(), StoreError> {
        let go_on = GoOn { file_id: file.file_id.clone(), bucket: file.bucket.clone(), key: file.key.clone(), version: file.version.clone() };
        self.asked.lock().expect("lock").push(go_on);
        Ok(())
    }
}
