//! In-memory [`InboxProgress`] and [`InboxContinuation`] for unit tests: the same conditions as
//! the DynamoDB and SQS adapters (a save only over the version before it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::progress::{FileProgress, FileStatus, GoOn, InboxContinuation, InboxProgress, Problem, ProgressPage};
use crate::StoreError;

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

    async fn problems(&self, file_id: &str, limit: usize) -> Result<Vec<Problem>, StoreError> {
        let kept = self.problems.lock().expect("lock");
        Ok(kept.range((file_id.to_owned(), 0)..=(file_id.to_owned(), u64::MAX)).map(|(_, p)| p.clone()).take(limit).collect())
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
