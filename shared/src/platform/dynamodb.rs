//! Small helpers for DynamoDB items, shared by the adapters.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::StoreError;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Inserts a string attribute only when there is a value (sparse GSIs rely on absence).
pub fn put_opt(item: &mut Item, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        item.insert(name.to_owned(), s(v));
    }
}

pub fn opt_s(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub fn req_s(item: &Item, name: &str, operation: &'static str) -> Result<String, StoreError> {
    opt_s(item, name).ok_or_else(|| StoreError::new(operation, format!("item has no string attribute `{name}`")))
}

pub fn opt_bool(item: &Item, name: &str) -> Option<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied()
}

pub fn opt_u64(item: &Item, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}

/// Whether an SDK error is DynamoDB's "the condition of this write failed".
pub fn is_condition_failed<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

type TransactError<R> = aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>;

/// Why a transaction was cancelled, one reason per item (`None` or `"None"` for an item that
/// was fine); empty for any other error.
fn cancellation_codes<R>(err: &TransactError<R>) -> Vec<Option<&str>> {
    match err.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e)) => {
            e.cancellation_reasons().iter().map(|r| r.code()).collect()
        }
        _ => Vec::new(),
    }
}

/// Whether a transaction was cancelled only because conditions failed (and not, say, because
/// it conflicted with another transaction on the same items, which is worth a retry).
pub fn only_conditions_failed<R>(err: &TransactError<R>) -> bool {
    let codes = cancellation_codes(err);
    codes.iter().all(|c| matches!(c, None | Some("None") | Some("ConditionalCheckFailed"))) && codes.contains(&Some("ConditionalCheckFailed"))
}

/// Whether a transaction was cancelled only because it met another transaction on the same
/// items (no condition failed): the same request, sent again a moment later, may succeed.
pub fn met_another_transaction<R>(err: &TransactError<R>) -> bool {
    let codes = cancellation_codes(err);
    codes.contains(&Some("TransactionConflict")) && !codes.contains(&Some("ConditionalCheckFailed"))
}

/// Whether a transaction was cancelled because conditions failed or it met another
/// transaction on the same items: either way, read again and retry.
pub fn lost_to_another_write<R>(err: &TransactError<R>) -> bool {
    let codes = cancellation_codes(err);
    !codes.is_empty() && codes.iter().all(|c| matches!(c, None | Some("None") | Some("ConditionalCheckFailed") | Some("TransactionConflict")))
}

/// Writes an item whatever is there (a record with its own unique key: an activity or audit
/// entry).
pub async fn put(client: &aws_sdk_dynamodb::Client, table: &str, item: Item, operation: &'static str) -> Result<(), StoreError> {
    client.put_item().table_name(table).set_item(Some(item)).send().await.map_err(|e| StoreError::sdk(operation, &e))?;
    Ok(())
}

/// Sends a conditional put; `Ok(false)` when the condition failed (the item exists already,
/// which at-least-once delivery makes ordinary, or changed since it was read).
pub async fn conditional_put(
    request: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    operation: &'static str,
) -> Result<bool, StoreError> {
    match request.send().await {
        Ok(_) => Ok(true),
        Err(e) if is_condition_failed(&e) => Ok(false),
        Err(e) => Err(StoreError::sdk(operation, &e)),
    }
}

/// Every item a query finds, through all of DynamoDB's pages (1 MB each), each read by `from`.
pub async fn query_all<T>(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    operation: &'static str,
    from: impl Fn(&Item) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    query_at_most(query, operation, usize::MAX, from).await
}

/// The first `limit` items a query finds, page by page, reading no page past them.
pub async fn query_at_most<T>(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    operation: &'static str,
    limit: usize,
    from: impl Fn(&Item) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut pages = query.into_paginator().send();
    let mut found = Vec::new();
    while found.len() < limit {
        let Some(page) = pages.next().await else { break };
        for item in page.map_err(|e| StoreError::sdk(operation, &e))?.items().iter().take(limit - found.len()) {
            found.push(from(item)?);
        }
    }
    Ok(found)
}

/// The condition on writing a record's `version` (counting writes from 1): for the first, that
/// no item with its `key` exists; after it, that the stored one is the version before.
fn over_version(version: u64, key: &str) -> (String, Option<AttributeValue>) {
    if version <= 1 {
        (format!("attribute_not_exists({key})"), None)
    } else {
        ("version = :previous".to_owned(), Some(n(version - 1)))
    }
}

/// Writes `item`, a record's `version`, only over the version before it (the first only where
/// no item with its `key` is); false when another write came first.
pub async fn put_over_version(client: &aws_sdk_dynamodb::Client, table: &str, item: Item, version: u64, key: &str, operation: &'static str) -> Result<bool, StoreError> {
    let (condition, previous) = over_version(version, key);
    let put = client.put_item().table_name(table).set_item(Some(item)).condition_expression(condition);
    conditional_put(put.set_expression_attribute_values(previous.map(|p| std::collections::HashMap::from([(":previous".to_owned(), p)]))), operation).await
}

/// The same write as [`put_over_version`], as a part of a transaction.
pub fn put_over_version_in(table: &str, item: Item, version: u64, key: &str, operation: &'static str) -> Result<aws_sdk_dynamodb::types::Put, StoreError> {
    let (condition, previous) = over_version(version, key);
    let put = aws_sdk_dynamodb::types::Put::builder().table_name(table).set_item(Some(item)).condition_expression(condition);
    put.set_expression_attribute_values(previous.map(|p| std::collections::HashMap::from([(":previous".to_owned(), p)]))).build().map_err(|e| StoreError::new(operation, e))
}

/// Deletes every item of a table keyed by `key` alone (the development routes' `TRUNCATE`):
/// a scan of the keys, then batch deletes. The number deleted.
pub async fn delete_all(client: &aws_sdk_dynamodb::Client, table: &str, key: &str, operation: &'static str) -> Result<usize, StoreError> {
    use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
    let mut pages = client.scan().table_name(table).projection_expression("#k").expression_attribute_names("#k", key).into_paginator().send();
    let mut requests = Vec::new();
    while let Some(page) = pages.next().await {
        for item in page.map_err(|e| StoreError::sdk(operation, &e))?.items() {
            let delete = DeleteRequest::builder().key(key, s(req_s(item, key, operation)?)).build().map_err(|e| StoreError::new(operation, e))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
    }
    let count = requests.len();
    batch_write(client, table, requests, operation).await?;
    Ok(count)
}

/// Writes `requests` (puts or deletes) in batches of 25; what DynamoDB leaves unprocessed
/// (throttling) is sent again, with a growing pause, a few times before failing.
pub async fn batch_write(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
    operation: &'static str,
) -> Result<(), StoreError> {
    for chunk in requests.chunks(25) {
        let mut pending = chunk.to_vec();
        for attempt in 0.. {
            let out = client.batch_write_item().request_items(table, pending).send().await.map_err(|e| StoreError::sdk(operation, &e))?;
            pending = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
            if pending.is_empty() {
                break;
            }
            if attempt == 5 {
                return Err(StoreError::new(operation, "items left unwritten after retries"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
        }
    }
    Ok(())
}

/// One page of a partition's items, newest (highest `sortKey`) first: `query` names the table
/// and the key condition on `partition` (name, value); `after` is the previous page's cursor
/// (its last `sortKey`). Answers the items and the next page's cursor (set when the page is
/// full, as DynamoDB does, even if nothing follows).
pub async fn newest_first_page(
    query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    partition: (&str, &str),
    limit: i32,
    after: Option<&str>,
    operation: &'static str,
) -> Result<(Vec<Item>, Option<String>), StoreError> {
    let mut query = query.scan_index_forward(false).limit(limit);
    if let Some(after) = after {
        query = query.exclusive_start_key(partition.0, s(partition.1)).exclusive_start_key("sortKey", s(after));
    }
    let out = query.send().await.map_err(|e| StoreError::sdk(operation, &e))?;
    let next = out.last_evaluated_key().and_then(|k| k.get("sortKey")).and_then(|v| v.as_s().ok()).cloned();
    Ok((out.items.unwrap_or_default(), next))
}

/// A TTL attribute (epoch seconds) for an item written now and kept `days` days.
pub fn expires_in_days(days: i64) -> AttributeValue {
    n(chrono::Utc::now().timestamp() + days * 86_400)
}
