//! The messages store (issue 12) against DynamoDB (the moto emulator): create once, read,
//! change only over the version read, and list a party's messages newest first through every
//! DynamoDB page.

use serde_json::json;
use vitalwire::messages::{new_message, patch, DynamoMessageStore, Message, MessageStore, PolarisTime};
use vitalwire::platform::tables::MESSAGES;
use vitalwire_tests::TestStack;

fn message(uuid: &str, sender: &str, receiver: &str, at: &str, content: String) -> Message {
    let new = new_message(&json!({"sender": sender, "sender_type": "clinician", "receiver": receiver, "receiver_type": "patient",
        "content": content, "message_type": {"value": 5}})).unwrap();
    Message::from_new(uuid.into(), new, sender, PolarisTime::parse(at).unwrap())
}

#[tokio::test]
async fn messages_are_kept_changed_over_their_version_and_listed_newest_first_across_pages() {
    let t = TestStack::new().await;
    let store = DynamoMessageStore::new(t.dynamodb.clone(), t.table(&MESSAGES));
    let first = message("m-1", "c-1", "p-1", "2022-01-01T10:00:00.000+01:00", "Please call me.".into());
    assert!(store.create(&first).await.unwrap());
    assert!(!store.create(&first).await.unwrap(), "a uuid is created once");
    let read = store.get("m-1").await.unwrap().unwrap();
    assert_eq!(read, first);
    assert_eq!(read.to_json(), first.to_json(), "the JSON survives the store, offsets included");

    let mut confirmed = read.clone();
    patch("m-1", &json!({"confirmed": "2022-01-01T11:00:00.123456+03:00", "confirmed_by": "1234"})).unwrap().apply(&mut confirmed);
    confirmed.version += 1;
    assert!(store.update(&confirmed).await.unwrap());
    assert!(!store.update(&confirmed).await.unwrap(), "a change made from an older version is refused");
    let now = store.get("m-1").await.unwrap().unwrap();
    assert_eq!(now.to_json()["confirmed"], "2022-01-01T11:00:00.123+03:00");
    assert!(now.is_active() && !now.is_open_callback(), "a confirmed callback stays active");

    // Enough content to spread one sender's messages over several 1 MB DynamoDB pages.
    let big = "x".repeat(20_000);
    for i in 0..60 {
        let m = message(&format!("n-{i:02}"), "c-2", "p-2", &format!("2022-02-01T10:{:02}:00.000Z", i), big.clone());
        assert!(store.create(&m).await.unwrap());
    }
    let sent = store.sent_by("c-2").await.unwrap();
    assert_eq!(sent.len(), 60, "every page");
    assert_eq!((sent[0].uuid.as_str(), sent[59].uuid.as_str()), ("n-59", "n-00"), "newest first");
    assert_eq!(store.received_by("p-2").await.unwrap().len(), 60);
    assert_eq!(store.received_by("p-1").await.unwrap().iter().map(|m| m.uuid.as_str()).collect::<Vec<_>>(), ["m-1"]);
    assert!(store.sent_by("nobody").await.unwrap().is_empty());
}
