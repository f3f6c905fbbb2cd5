//! In-memory API keys and activity log for unit tests, with the DynamoDB adapters' conditions:
//! a key id is created once, a key is revoked only through its own device and keeps its first
//! revocation time, uses are counted per UTC minute and day (the last 31 days read back); an
//! activity or audit record is one item per key, a second write of it replaces the first.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::activity::{Activity, ActivityLog};
use super::api_keys::{ApiKey, ApiKeyStore};
use crate::StoreError;

#[derive(Default)]
pub struct MemoryApiKeys {
    keys: Mutex<BTreeMap<String, ApiKey>>,
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

impl MemoryApiKeys {
    fn add(&self, key_id: &str, window: String) -> u64 {
        let mut counts = self.counts.lock().expect("lock");
        let count = counts.entry((key_id.to_owned(), window)).or_default();
        *count += 1;
        *count
    }
}

impl ApiKeyStore for MemoryApiKeys {
    async fn create(&self, key: &ApiKey) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().expect("lock");
        if keys.contains_key(&key.key_id) {
            return Ok(false);
        }
        keys.insert(key.key_id.clone(), key.clone());
        Ok(true)
    }

    async fn get(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.keys.lock().expect("lock").get(key_id).cloned())
    }

    async fn list_for_device(&self, thing_name: &str) -> Result<Vec<ApiKey>, StoreError> {
        let mut keys: Vec<_> = self.keys.lock().expect("lock").values().filter(|k| k.thing_name == thing_name).cloned().collect();
        keys.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        Ok(keys)
    }

    async fn revoke(&self, thing_name: &str, key_id: &str, at: &str) -> Result<Option<ApiKey>, StoreError> {
        let mut keys = self.keys.lock().expect("lock");
        Ok(keys.get_mut(key_id).filter(|k| k.thing_name == thing_name).map(|k| {
            k.revoked_at.get_or_insert_with(|| at.to_owned());
            k.clone()
        }))
    }

    async fn count_in_minute(&self, key_id: &str, at: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self.add(key_id, format!("minute#{}", at.timestamp().div_euclid(60))))
    }

    async fn record_use(&self, key_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        {
            let mut keys = self.keys.lock().expect("lock");
            let key = keys.get_mut(key_id).ok_or_else(|| StoreError::new("record API key use", "the conditional request failed"))?;
            key.last_used_at = Some(crate::platform::time::format_utc(at));
        }
        self.add(key_id, format!("day#{}", at.format("%Y-%m-%d")));
        Ok(())
    }

    async fn daily_counts(&self, key_id: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let counts = self.counts.lock().expect("lock");
        let mut days: Vec<_> = counts
            .iter()
            .filter(|((k, w), _)| k == key_id && w.starts_with("day#"))
            .map(|((_, w), n)| (w.trim_start_matches("day#").to_owned(), *n))
            .collect();
        days.sort_by(|a, b| b.0.cmp(&a.0));
        // The DynamoDB query reads one page of at most 31 days.
        days.truncate(31);
        Ok(days)
    }
}

#[derive(Default)]
pub struct MemoryActivity(pub Mutex<Vec<Activity>>);

impl MemoryActivity {
    pub fn all(&self) -> Vec<Activity> {
        self.0.lock().expect("lock").clone()
    }
}

impl ActivityLog for MemoryActivity {
    /// As the DynamoDB put: one item per (device, `<at>#<requestId>`), a second put replaces
    /// it; the user agent is kept to 512 characters.
    async fn record(&self, activity: &Activity) -> Result<(), StoreError> {
        let mut kept = activity.clone();
        kept.user_agent = kept.user_agent.chars().take(512).collect();
        let mut all = self.0.lock().expect("lock");
        all.retain(|a| (&a.device_id, &a.at, &a.request_id) != (&kept.device_id, &kept.at, &kept.request_id));
        all.push(kept);
        Ok(())
    }

    async fn for_device(&self, device_id: &str, limit: i32, after: Option<&str>) -> Result<(Vec<Activity>, Option<String>), StoreError> {
        let key = |a: &Activity| format!("{}#{}", a.at, a.request_id);
        let mut items: Vec<_> = self
            .0
            .lock()
            .expect("lock")
            .iter()
            .filter(|a| a.device_id == device_id && after.is_none_or(|c| key(a).as_str() < c))
            .cloned()
            .collect();
        items.sort_by_key(|a| std::cmp::Reverse(key(a)));
        let limit = usize::try_from(limit).unwrap_or(0);
        // As DynamoDB does: a full page has a cursor, even when nothing follows it.
        let next = (items.len() >= limit && limit > 0).then(|| key(&items[limit - 1]));
        items.truncate(limit);
        Ok((items, next))
    }
}

/// The audit log in memory.
#[derive(Default)]
pub struct MemoryAudit(pub Mutex<Vec<super::audit::AuditRecord>>);

impl MemoryAudit {
    pub fn all(&self) -> Vec<super::audit::AuditRecord> {
        self.0.lock().expect("lock").clone()
    }
}

impl super::audit::AuditLog for MemoryAudit {
    /// As the DynamoDB put: one item per (patient, `<at>#<requestId>#<subject>`), a second put
    /// replaces it.
    async fn record(&self, record: &super::audit::AuditRecord) -> Result<(), StoreError> {
        let key = |r: &super::audit::AuditRecord| (r.patient_id.clone(), r.at.clone(), r.request_id.clone(), r.subject.clone());
        let mut all = self.0.lock().expect("lock");
        all.retain(|r| key(r) != key(record));
        all.push(record.clone());
        Ok(())
    }

    async fn for_patient(
        &self,
        patient_id: &str,
        limit: i32,
        after: Option<&str>,
    ) -> Result<(Vec<super::audit::AuditRecord>, Option<String>), StoreError> {
        let key = |r: &super::audit::AuditRecord| format!("{}#{}#{}", r.at, r.request_id, r.subject);
        let mut items: Vec<_> =
            self.0.lock().expect("lock").iter().filter(|r| r.patient_id == patient_id && after.is_none_or(|a| key(r).as_str() < a)).cloned().collect();
        items.sort_by_key(|r| std::cmp::Reverse(key(r)));
        let limit = usize::try_from(limit).unwrap_or(0);
        let next = (items.len() >= limit && limit > 0).then(|| key(&items[limit - 1]));
        items.truncate(limit);
        Ok((items, next))
    }
}
