use aws_sdk_dynamodb::Client;

use super::{DeadLetter, DeadLetterPage, DeadLetterStore};
use crate::platform::dynamodb::{opt_s, put_if_absent, put_opt, req_s, s, Item};
use crate::platform::tables::DEAD_LETTERS;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Dead letters in the `DeadLettersTable`, keyed by source and `<receivedAt>#<id>`.
#[derive(Debug, Clone)]
pub struct DynamoDeadLetterStore {
    client: Client,
    table: String,
}

impl DynamoDeadLetterStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl FromWiring for DynamoDeadLetterStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&DEAD_LETTERS)?))
    }
}

fn sort_key(letter: &DeadLetter) -> String {
    format!("{}#{}", letter.received_at, letter.id)
}

fn to_item(l: &DeadLetter) -> Item {
    let mut item = Item::from([
        ("source".to_owned(), s(&l.source)),
        ("sortKey".to_owned(), s(sort_key(l))),
        ("id".to_owned(), s(&l.id)),
        ("reasonCode".to_owned(), s(&l.reason_code)),
        ("reason".to_owned(), s(&l.reason)),
        ("rawPayload".to_owned(), s(&l.raw_payload)),
        ("receivedAt".to_owned(), s(&l.received_at)),
        ("recordedAt".to_owned(), s(&l.recorded_at)),
    ]);
    put_opt(&mut item, "thingName", l.thing_name.as_deref());
    item
}

fn from_item(item: &Item) -> Result<DeadLetter, StoreError> {
    const OP: &str = "read dead letter";
    Ok(DeadLetter {
        id: req_s(item, "id", OP)?,
        source: req_s(item, "source", OP)?,
        thing_name: opt_s(item, "thingName"),
        reason_code: req_s(item, "reasonCode", OP)?,
        reason: req_s(item, "reason", OP)?,
        raw_payload: req_s(item, "rawPayload", OP)?,
        received_at: req_s(item, "receivedAt", OP)?,
        recorded_at: req_s(item, "recordedAt", OP)?,
    })
}

impl DeadLetterStore for DynamoDeadLetterStore {
    async fn record(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(letter)))
            .condition_expression("attribute_not_exists(sortKey)");
        // `false`: already kept by an earlier delivery of the same message.
        put_if_absent(put, "record dead letter").await.map(|_| ())
    }

    async fn list(&self, source: &str, limit: i32, after: Option<&str>) -> Result<DeadLetterPage, StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#source = :source")
            .expression_attribute_names("#source", "source")
            .expression_attribute_values(":source", s(source))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(after) = after {
            request = request
                .exclusive_start_key("source", s(source))
                .exclusive_start_key("sortKey", s(after));
        }
        let out = request.send().await.map_err(|e| StoreError::sdk("list dead letters", &e))?;
        let items = out.items().iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key().and_then(|k| k.get("sortKey")).and_then(|v| v.as_s().ok()).cloned();
        Ok(DeadLetterPage { items, next })
    }
}
