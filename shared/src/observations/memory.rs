//! Observations in memory for unit tests: a set written all or none, each id once, like the
//! DynamoDB store's transaction of conditional puts, and queried the way its indexes are.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::{Along, Inserted, ObservationStore, Position, SearchPage, StoredObservation};
use crate::StoreError;

#[derive(Default)]
pub struct MemoryObservations {
    items: Mutex<BTreeMap<String, StoredObservation>>,
    fail_next: AtomicBool,
}

impl MemoryObservations {
    pub fn len(&self) -> usize {
        self.items.lock().expect("lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get_sync(&self, id: &str) -> Option<StoredObservation> {
        self.items.lock().expect("lock").get(id).cloned()
    }

    /// Makes the next insert fail as a throttled or unreachable table would.
    pub fn fail_next(&self) {
        self.fail_next.store(true, Ordering::SeqCst);
    }
}

impl ObservationStore for MemoryObservations {
    async fn insert_set(&self, set: &[StoredObservation]) -> Result<Inserted, StoreError> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::new("insert observations", "simulated throttling"));
        }
        let mut items = self.items.lock().expect("lock");
        let existing: Vec<StoredObservation> = set.iter().filter_map(|o| items.get(&o.id).cloned()).collect();
        let verdict = super::judge(set, &existing);
        if verdict == Inserted::New {
            for o in set {
                items.entry(o.id.clone()).or_insert_with(|| o.clone());
            }
        }
        Ok(verdict)
    }

    async fn insert_new_sets(&self, sets: &[&[StoredObservation]]) -> Result<bool, StoreError> {
        let all: Vec<&StoredObservation> = sets.iter().flat_map(|s| s.iter()).collect();
        // DynamoDB refuses a transaction over its item limit or naming one item twice.
        let distinct: std::collections::HashSet<&str> = all.iter().map(|o| o.id.as_str()).collect();
        if all.len() > super::MAX_WRITTEN_TOGETHER || distinct.len() != all.len() {
            return Err(StoreError::new("insert observations", "more than 100 Observations, or one twice, in one transaction"));
        }
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(StoreError::new("insert observations", "simulated throttling"));
        }
        let mut items = self.items.lock().expect("lock");
        if all.iter().any(|o| items.contains_key(&o.id)) {
            return Ok(false);
        }
        for o in all {
            items.insert(o.id.clone(), o.clone());
        }
        Ok(true)
    }

    async fn get(&self, id: &str) -> Result<Option<StoredObservation>, StoreError> {
        Ok(self.get_sync(id))
    }

    async fn replace(&self, observation: &StoredObservation, previous_hash: &str) -> Result<bool, StoreError> {
        let mut items = self.items.lock().expect("lock");
        match items.get_mut(&observation.id) {
            Some(current) if current.content_hash == previous_hash => {
                *current = observation.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn for_patient_code(
        &self,
        patient_id: &str,
        code_key: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<StoredObservation>, StoreError> {
        let mut found: Vec<_> = self
            .items
            .lock()
            .expect("lock")
            .values()
            .filter(|o| o.patient_id == patient_id && o.code_key == code_key)
            .filter(|o| (from..=to).contains(&o.effective_at.as_str()))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.effective_at.cmp(&b.effective_at));
        Ok(found)
    }

    async fn for_device(&self, device_id: &str, limit: i32) -> Result<Vec<StoredObservation>, StoreError> {
        let mut found: Vec<_> =
            self.items.lock().expect("lock").values().filter(|o| !o.device_id.is_empty() && o.device_id == device_id).cloned().collect();
        found.sort_by(|a, b| b.effective_at.cmp(&a.effective_at));
        found.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(found)
    }

    async fn search_page(&self, page: &SearchPage<'_>) -> Result<(Vec<StoredObservation>, bool), StoreError> {
        let mut found = self.along(page.along, page.from, page.to);
        if page.newest_first {
            found.reverse();
        }
        if let Some(after) = page.after {
            found.retain(|o| if page.newest_first { Position::of(o) < *after } else { Position::of(o) > *after });
        }
        let more = found.len() > page.limit;
        found.truncate(page.limit);
        Ok((found, more))
    }

    async fn count(&self, along: &Along, from: Option<&str>, to: Option<&str>) -> Result<usize, StoreError> {
        Ok(self.along(along, from, to).len())
    }
}

impl MemoryObservations {
    /// What an index holds for the search, oldest first (ties by id, as a table key breaks them).
    fn along(&self, along: &Along, from: Option<&str>, to: Option<&str>) -> Vec<StoredObservation> {
        let mut found: Vec<StoredObservation> = self
            .items
            .lock()
            .expect("lock")
            .values()
            .filter(|o| match along {
                Along::Patient(p) => &o.patient_id == p,
                Along::PatientCode { patient, code_key } => &o.patient_id == patient && &o.code_key == code_key,
                // An Observation without a device is not on `byDevice`.
                Along::Device(d) => !o.device_id.is_empty() && &o.device_id == d,
            })
            .filter(|o| from.is_none_or(|f| o.effective_at.as_str() >= f) && to.is_none_or(|t| o.effective_at.as_str() <= t))
            .cloned()
            .collect();
        found.sort_by_key(Position::of);
        found
    }
}
