//! Dead letters in memory for unit tests: like the DynamoDB store, a letter is kept once per
//! (source, received time, id).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{DeadLetter, DeadLetterPage, DeadLetterStore};
use crate::StoreError;

#[derive(Default)]
pub struct MemoryDeadLetters(Mutex<BTreeMap<(String, String), DeadLetter>>);

impl MemoryDeadLetters {
    pub fn len(&self) -> usize {
        self.0.lock().expect("lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<DeadLetter> {
        self.0.lock().expect("lock").values().cloned().collect()
    }
}

impl DeadLetterStore for MemoryDeadLetters {
    async fn record(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let key = (letter.source.clone(), format!("{}#{}", letter.received_at, letter.id));
        self.0.lock().expect("lock").entry(key).or_insert_with(|| letter.clone());
        Ok(())
    }

    async fn list(&self, source: &str, limit: i32, after: Option<&str>) -> Result<DeadLetterPage, StoreError> {
        let all = self.0.lock().expect("lock");
        let mut items: Vec<_> = all
            .iter()
            .rev()
            .filter(|((s, k), _)| s == source && after.is_none_or(|a| k.as_str() < a))
            .map(|(_, l)| l.clone())
            .collect();
        let limit = usize::try_from(limit).unwrap_or(0);
        // As DynamoDB does: a full page has a cursor, even when nothing follows it.
        let next = (items.len() >= limit && limit > 0).then(|| format!("{}#{}", items[limit - 1].received_at, items[limit - 1].id));
        items.truncate(limit);
        Ok(DeadLetterPage { items, next })
    }

    async fn for_thing(&self, thing_name: &str, limit: i32, after: Option<&str>) -> Result<DeadLetterPage, StoreError> {
        let all = self.0.lock().expect("lock");
        let mut items: Vec<_> = all.values().filter(|l| l.thing_name.as_deref() == Some(thing_name)).cloned().collect();
        let key = |l: &DeadLetter| format!("{}#{}|{}", l.received_at, l.id, l.source);
        items.sort_by_key(|l| std::cmp::Reverse(key(l)));
        items.retain(|l| after.is_none_or(|a| key(l).as_str() < a));
        let limit = usize::try_from(limit).unwrap_or(0);
        // As DynamoDB does: a full page has a cursor, even when nothing follows it.
        let next = (items.len() >= limit && limit > 0).then(|| key(&items[limit - 1]));
        items.truncate(limit);
        Ok(DeadLetterPage { items, next })
    }
}
