//! Small helpers for DynamoDB items, shared by the adapters.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::StoreError;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
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

/// The full error chain of an SDK error (its `Display` alone says only "service error").
pub fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Sends a conditional put; `Ok(false)` when the condition failed (for a guard against
/// overwriting: the item exists already, which at-least-once delivery makes ordinary).
pub async fn put_if_absent(
    request: aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    operation: &'static str,
) -> Result<bool, StoreError> {
    match request.send().await {
        Ok(_) => Ok(true),
        Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(false),
        Err(e) => Err(StoreError::new(operation, describe(&e))),
    }
}
