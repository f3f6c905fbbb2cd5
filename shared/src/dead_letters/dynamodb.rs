use aws_sdk_dynamodb::Client;

use super::{DeadLetter, DeadLetterPage, DeadLetterStore, DEFAULT_RETENTION_DAYS};
use crate::platform::dynamodb::{expires_in_days, n, opt_s, conditional_put, put_opt, req_s, s, Item};
use crate::platform::metrics::{Counts, MetricSink, Metrics as _};
use crate::platform::tables::{DEAD_LETTERS, DEAD_LETTERS_BY_THING};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Dead letters in the `DeadLettersTable`, keyed by source and `<receivedAt>#<id>` (index
/// `byThing` by thing), expired by a TTL (`expiresAt`) after the retention period.
///
/// Every refusal on every path ends here, so this is where refusals are counted: `Refusals` by
/// `Reason`, once per refused message (a redelivery of one already kept is not counted again).
#[derive(Debug, Clone)]
pub struct DynamoDeadLetterStore {
    client: Client,
    table: String,
    retention_days: i64,
    metrics: MetricSink,
}

impl DynamoDeadLetterStore {
    pub fn new(client: Client, table: impl Into<String>, retention_days: i64) -> Self {
        Self { client, table: table.into(), retention_days, metrics: MetricSink::discard() }
    }

    async fn page(
        &self,
        operation: &'static str,
        request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<DeadLetterPage, StoreError> {
        let out = request.table_name(&self.table).scan_index_forward(false).send().await.map_err(|e| StoreError::sdk(operation, &e))?;
        let items = out.items().iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        let next = out.last_evaluated_key().and_then(|k| k.get("sortKey")).and_then(|v| v.as_s().ok()).cloned();
        Ok(DeadLetterPage { items, next })
    }
}

impl FromWiring for DynamoDeadLetterStore {
    /// The table and `DEAD_LETTER_RETENTION_DAYS` (365 unless set).
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        let store = Self::new(w.aws.dynamodb(), w.table(&DEAD_LETTERS)?, w.settings.parsed("DEAD_LETTER_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?);
        Ok(Self { metrics: w.build()?, ..store })
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
        ("rawBytes".to_owned(), n(l.raw_bytes)),
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
        raw_bytes: crate::platform::dynamodb::opt_u64(item, "rawBytes")
            .and_then(|b| usize::try_from(b).ok())
            .unwrap_or_else(|| opt_s(item, "rawPayload").map_or(0, |r| r.len())),
        raw_payload: req_s(item, "rawPayload", OP)?,
        received_at: req_s(item, "receivedAt", OP)?,
        recorded_at: req_s(item, "recordedAt", OP)?,
    })
}

impl DeadLetterStore for DynamoDeadLetterStore {
    async fn record(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let mut item = to_item(letter);
        item.insert("expiresAt".into(), expires_in_days(self.retention_days));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(sortKey)");
        // `false`: already kept by an earlier delivery of the same message.
        if conditional_put(put, "record dead letter").await? {
            self.metrics.record(&[Counts::of(vec![("Reason", letter.reason_code.clone())], vec![("Refusals", 1)])]);
        }
        Ok(())
    }

    async fn list(&self, source: &str, limit: i32, after: Option<&str>) -> Result<DeadLetterPage, StoreError> {
        let mut request = self
            .client
            .query()
            .key_condition_expression("#source = :source")
            .expression_attribute_names("#source", "source")
            .expression_attribute_values(":source", s(source))
            .limit(limit);
        if let Some(after) = after {
            request = request.exclusive_start_key("source", s(source)).exclusive_start_key("sortKey", s(after));
        }
        self.page("list dead letters", request).await
    }

    async fn for_thing(&self, thing_name: &str, limit: i32, after: Option<&str>) -> Result<DeadLetterPage, StoreError> {
        let mut request = self
            .client
            .query()
            .index_name(DEAD_LETTERS_BY_THING.name)
            .key_condition_expression("thingName = :t")
            .expression_attribute_values(":t", s(thing_name))
            .limit(limit);
        if let Some(after) = after {
            // An index page resumes from the index key and the table key of its last item.
            let (sort_key, source) = after.rsplit_once('|').unwrap_or((after, ""));
            request = request
                .exclusive_start_key("thingName", s(thing_name))
                .exclusive_start_key("sortKey", s(sort_key))
                .exclusive_start_key("source", s(source));
        }
        let mut page = self.page("list a device's dead letters", request).await?;
        // The cursor carries the source too: the table's key is (source, sortKey).
        if let (Some(next), Some(last)) = (&page.next, page.items.last()) {
            page.next = Some(format!("{next}|{}", last.source));
        }
        Ok(page)
    }
}
