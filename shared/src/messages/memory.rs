//! Messages in memory, with the DynamoDB store's conditions: a uuid is created once, a change
//! is written only over the version it was made from; listings newest first.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Message, MessageStore};
use crate::StoreError;

#[derive(Debug, Default)]
pub struct MemoryMessages(pub Mutex<BTreeMap<String, Message>>);

impl MemoryMessages {
    fn newest_first(&self, keep: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut found: Vec<Message> = self.0.lock().expect("lock").values().filter(|m| keep(m)).cloned().collect();
        found.sort_by_key(|m| std::cmp::Reverse(m.created.at));
        found
    }
}

impl MessageStore for MemoryMessages {
    async fn create(&self, message: &Message) -> Result<bool, StoreError> {
        let mut all = self.0.lock().expect("lock");
        if all.contains_key(&message.uuid) {
            return Ok(false);
        }
        all.insert(message.uuid.clone(), message.clone());
        Ok(true)
    }

    async fn get(&self, uuid: &str) -> Result<Option<Message>, StoreError> {
        Ok(self.0.lock().expect("lock").get(uuid).cloned())
    }

    async fn update(&self, message: &Message) -> Result<bool, StoreError> {
        let mut all = self.0.lock().expect("lock");
        match all.get_mut(&message.uuid) {
            Some(current) if current.version + 1 == message.version => {
                *current = message.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn sent_by(&self, sender: &str) -> Result<Vec<Message>, StoreError> {
        Ok(self.newest_first(|m| m.sender == sender))
    }

    async fn received_by(&self, receiver: &str) -> Result<Vec<Message>, StoreError> {
        Ok(self.newest_first(|m| m.receiver == receiver))
    }

    async fn create_many(&self, messages: &[Message]) -> Result<(), StoreError> {
        let mut all = self.0.lock().expect("lock");
        all.extend(messages.iter().map(|m| (m.uuid.clone(), m.clone())));
        Ok(())
    }

    async fn drop_all(&self) -> Result<usize, StoreError> {
        let mut all = self.0.lock().expect("lock");
        let count = all.len();
        all.clear();
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{new_message, PolarisTime};
    use serde_json::json;

    #[tokio::test]
    async fn the_memory_store_keeps_the_dynamodb_conditions() {
        let new = new_message(&json!({"sender": "c", "sender_type": "clinician", "receiver": "p", "receiver_type": "patient", "content": "x", "message_type": {"value": 0}})).unwrap();
        let m = |uuid: &str, t: &str| Message::from_new(uuid.into(), new.clone(), "c", PolarisTime::parse(t).unwrap());
        let store = MemoryMessages::default();
        assert!(store.create(&m("a", "2022-01-01T10:00:00.000Z")).await.unwrap());
        assert!(!store.create(&m("a", "2022-01-01T10:00:00.000Z")).await.unwrap());
        assert!(store.create(&m("b", "2022-01-01T11:00:00.000+03:00")).await.unwrap());
        let order: Vec<String> = store.sent_by("c").await.unwrap().into_iter().map(|m| m.uuid).collect();
        assert_eq!(order, ["a", "b"], "newest first by instant (11:00+03:00 is 08:00Z)");
        let stale = m("a", "2022-01-01T10:00:00.000Z");
        assert!(!store.update(&stale).await.unwrap(), "version 1 over version 1");
        assert!(store.update(&Message { version: 2, ..stale }).await.unwrap());
    }
}
