//! The Polaris listings (`docs/polaris/messages-reference.md` §4), each served by one index
//! (a party's sent or received messages, newest first) and filtered as the reference filters:
//! by the type the caller's id stands for, by the handshake state, and for the sender-or-receiver
//! listing by what the caller may see.
//!
//! Decided where the reference is wrong: its active listing of a sender–receiver pair returns
//! every unconfirmed message of every party (an operator-precedence slip); here it is the pair's
//! active messages, as its name and documentation say. Listings the reference leaves unordered
//! are newest first here too, and a caller with no id of their own gets an empty list instead
//! of the reference's server error.

use std::collections::BTreeMap;

use super::access::Caller;
use super::{Message, MessageStore, MessageType};
use crate::StoreError;

/// The type filter of a listing: what `id` stands for to the caller, as text.
fn typed<'a>(caller: &Caller, id: &str) -> Option<&'a str> {
    caller.user_type(id).map(|t| t.as_str())
}

/// `GET /dhos/v1/sender/{id}/message`: sent by `id` as the caller's type for it (nothing when
/// `id` is nobody to the caller, as in the reference).
pub async fn sent<S: MessageStore>(store: &S, caller: &Caller, id: &str) -> Result<Vec<Message>, StoreError> {
    let Some(t) = typed(caller, id) else { return Ok(Vec::new()) };
    Ok(store.sent_by(id).await?.into_iter().filter(|m| m.sender_type == t).collect())
}

/// `GET /dhos/v1/receiver/{id}/message`: received by `id`, of the caller's type for it when it
/// has one (a system caller sees every receiver type).
pub async fn received<S: MessageStore>(store: &S, caller: &Caller, id: &str) -> Result<Vec<Message>, StoreError> {
    let t = typed(caller, id);
    Ok(store.received_by(id).await?.into_iter().filter(|m| t.is_none_or(|t| m.receiver_type == t)).collect())
}

/// `GET /dhos/v1/sender/{id}/active/message`.
pub async fn sent_active<S: MessageStore>(store: &S, caller: &Caller, id: &str) -> Result<Vec<Message>, StoreError> {
    Ok(sent(store, caller, id).await?.into_iter().filter(Message::is_active).collect())
}

/// `GET /dhos/v1/receiver/{id}/active/message` (nothing when `id` is nobody to the caller).
pub async fn received_active<S: MessageStore>(store: &S, caller: &Caller, id: &str) -> Result<Vec<Message>, StoreError> {
    let Some(t) = typed(caller, id) else { return Ok(Vec::new()) };
    Ok(store.received_by(id).await?.into_iter().filter(|m| m.receiver_type == t && m.is_active()).collect())
}

/// `GET /dhos/v1/receiver/{id}/active/callback/message`: callbacks neither confirmed nor cancelled.
pub async fn received_open_callbacks<S: MessageStore>(store: &S, caller: &Caller, id: &str) -> Result<Vec<Message>, StoreError> {
    Ok(received_active(store, caller, id).await?.into_iter().filter(Message::is_open_callback).collect())
}

/// `GET /dhos/v1/sender/{s}/receiver/{r}/message`, and its `/active/` form.
pub async fn between<S: MessageStore>(store: &S, sender: &str, receiver: &str, active_only: bool) -> Result<Vec<Message>, StoreError> {
    Ok(store.sent_by(sender).await?.into_iter().filter(|m| m.receiver == receiver && (!active_only || m.is_active())).collect())
}

/// `GET /dhos/v1/sender_or_receiver/{id}/message`: sent or received by `id`, newest first, as
/// far as the caller may see (no red, amber or grey alerts for an owner).
pub async fn sent_or_received<S: MessageStore>(store: &S, caller: &Caller, id: &str) -> Result<Vec<Message>, StoreError> {
    let mut all = store.sent_by(id).await?;
    all.extend(store.received_by(id).await?.into_iter().filter(|m| m.sender != id));
    all.retain(|m| caller.sees_in_either_listing(id, m));
    all.sort_by_key(|m| std::cmp::Reverse(m.created.at));
    Ok(all)
}

/// `POST /dhos/v1/active/callback/message`: for each id, one callback it sent that is neither
/// confirmed nor cancelled (the newest), keyed by sender; ids without one are left out.
pub async fn open_callbacks_from<S: MessageStore>(store: &S, senders: &[String]) -> Result<BTreeMap<String, Message>, StoreError> {
    let mut found = BTreeMap::new();
    for sender in senders {
        if found.contains_key(sender) {
            continue;
        }
        if let Some(m) = store.sent_by(sender).await?.into_iter().find(|m| m.message_type == MessageType::Callback && m.is_open_callback()) {
            found.insert(sender.clone(), m);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::memory::MemoryMessages;
    use crate::messages::{new_message, patch, PolarisTime};

    fn message(uuid: &str, sender: (&str, &str), receiver: (&str, &str), kind: MessageType, minute: u32) -> Message {
        let body = serde_json::json!({"sender": sender.0, "sender_type": sender.1, "receiver": receiver.0, "receiver_type": receiver.1, "content": "x", "message_type": {"value": kind.value()}});
        let at = PolarisTime::parse(&format!("2022-01-01T10:{minute:02}:00.000Z")).unwrap();
        Message::from_new(uuid.into(), new_message(&body).unwrap(), sender.0, at)
    }

    fn caller(patient: Option<&str>, clinician: Option<&str>) -> Caller {
        Caller { patient_id: patient.map(Into::into), clinician_id: clinician.map(Into::into), ..Caller::default() }
    }

    fn uuids(list: &[Message]) -> Vec<&str> {
        list.iter().map(|m| m.uuid.as_str()).collect()
    }

    async fn store() -> MemoryMessages {
        let store = MemoryMessages::default();
        for m in [
            message("callback", ("p-1", "patient"), ("c-1", "clinician"), MessageType::Callback, 1),
            message("general", ("c-1", "clinician"), ("p-1", "patient"), MessageType::General, 2),
            message("red", ("c-1", "clinician"), ("p-1", "patient"), MessageType::RedAlert, 3),
            message("odd-type", ("c-1", "clinician"), ("p-1", "bad_user_type"), MessageType::General, 4),
            message("elsewhere", ("c-2", "clinician"), ("p-2", "patient"), MessageType::General, 5),
        ] {
            store.create(&m).await.unwrap();
        }
        store
    }

    #[tokio::test]
    async fn the_handshake_moves_messages_between_the_lists() {
        let store = store().await;
        let (patient, clinician) = (caller(Some("p-1"), None), caller(None, Some("c-1")));
        assert_eq!(uuids(&open_callbacks_from(&store, &["p-1".into()]).await.unwrap().into_values().collect::<Vec<_>>()), ["callback"]);
        assert_eq!(uuids(&received_active(&store, &clinician, "c-1").await.unwrap()), ["callback"]);
        // The clinician confirms the callback: it leaves the callback lists, and stays active.
        let mut callback = store.get("callback").await.unwrap().unwrap();
        patch("callback", &serde_json::json!({"confirmed": "2022-01-01T11:00:00.000Z"})).unwrap().apply(&mut callback);
        callback.version += 1;
        assert!(store.update(&callback).await.unwrap());
        assert!(open_callbacks_from(&store, &["p-1".into()]).await.unwrap().is_empty());
        assert!(received_open_callbacks(&store, &clinician, "c-1").await.unwrap().is_empty());
        assert_eq!(uuids(&received_active(&store, &clinician, "c-1").await.unwrap()), ["callback"], "a confirmed callback stays active");
        // The patient confirms the general message: it leaves their active list, stays in the listing.
        assert_eq!(uuids(&received_active(&store, &patient, "p-1").await.unwrap()), ["red", "general"]);
        let mut general = store.get("general").await.unwrap().unwrap();
        patch("general", &serde_json::json!({"confirmed": "2022-01-01T11:00:00.000Z"})).unwrap().apply(&mut general);
        general.version += 1;
        store.update(&general).await.unwrap();
        assert_eq!(uuids(&received_active(&store, &patient, "p-1").await.unwrap()), ["red"]);
        assert_eq!(uuids(&received(&store, &patient, "p-1").await.unwrap()), ["red", "general"], "newest first; the wrong receiver type is not the patient's");
        assert_eq!(uuids(&received(&store, &Caller::default(), "p-1").await.unwrap()), ["odd-type", "red", "general"], "a system caller sees every type");
    }

    #[tokio::test]
    async fn a_patient_never_sees_alerts_and_a_pair_lists_only_its_own() {
        let store = store().await;
        let patient = caller(Some("p-1"), None);
        assert_eq!(uuids(&sent_or_received(&store, &patient, "p-1").await.unwrap()), ["general", "callback"], "no red alert, no other receiver type");
        let other_clinician = caller(None, Some("c-9"));
        assert_eq!(uuids(&sent_or_received(&store, &other_clinician, "p-1").await.unwrap()), ["red", "general", "callback"]);
        assert!(sent_or_received(&store, &other_clinician, "c-1").await.unwrap().iter().all(|m| m.sender_type == "patient" || m.receiver_type == "patient"));
        assert_eq!(uuids(&between(&store, "c-1", "p-1", true).await.unwrap()), ["odd-type", "red", "general"], "the pair's active messages (whatever their types, as in the reference), nobody else's");
        assert_eq!(uuids(&sent(&store, &patient, "p-1").await.unwrap()), ["callback"]);
        assert!(sent(&store, &Caller::default(), "p-1").await.unwrap().is_empty(), "nobody to the caller: nothing, as in the reference");
    }
}
