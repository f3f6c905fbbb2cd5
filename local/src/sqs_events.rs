//! SQS event sources for the local stack, as Lambda's event source mapping runs them: the
//! queue is long-polled for up to ten messages, the function gets them as an `SqsEvent`, the
//! messages it handled are deleted, and the ones it reports in `batchItemFailures` (or all of
//! them, when it fails) stay on the queue and come back once their visibility lapses.
//!
//! AWS waits the queue's visibility timeout (180 s for the connectors' queue) before a failed
//! message comes back; the local stack makes it visible again after `retry_after`, so a
//! developer sees the retry in seconds.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use serde_json::{json, Map, Value};

use crate::functions::LocalFunctions;

/// The `SqsEvent` Lambda builds from received messages.
pub fn sqs_event(queue_arn: &str, messages: &[Message]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m.attributes().map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), json!(v))).collect()).unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    json!({"Records": records})
}

/// The message ids a function's answer reports as failed.
pub fn failed_ids(answer: &Value) -> Vec<String> {
    answer["batchItemFailures"].as_array().map(|f| f.iter().filter_map(|i| i["itemIdentifier"].as_str().map(str::to_owned)).collect()).unwrap_or_default()
}

/// Polls `queue_url` and hands each batch to `function`.
pub fn poll(sqs: aws_sdk_sqs::Client, queue_url: String, functions: Arc<LocalFunctions>, function: &'static str, retry_after: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let arn = match sqs.get_queue_attributes().queue_url(&queue_url).attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn).send().await {
            Ok(out) => out.attributes().and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)).cloned().unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %vitalwire::platform::describe(&e), queue = %queue_url, "cannot read the queue; its function will get no events");
                return;
            }
        };
        loop {
            let received = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await;
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %vitalwire::platform::describe(&e), "receiving from the queue failed; trying again");
                    tokio::time::sleep(retry_after).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let failed = match functions.invoke(function, &sqs_event(&arn, &messages).to_string()).await {
                Ok(answer) => failed_ids(&serde_json::from_str(answer.get()).unwrap_or(Value::Null)),
                Err(e) => {
                    tracing::error!(error = %e, function, "the batch failed; its messages come back");
                    messages.iter().filter_map(|m| m.message_id().map(str::to_owned)).collect()
                }
            };
            let mut done = Vec::new();
            for (i, m) in messages.iter().enumerate() {
                let (Some(id), Some(handle)) = (m.message_id(), m.receipt_handle()) else { continue };
                if failed.iter().any(|f| f == id) {
                    let visible_in = i32::try_from(retry_after.as_secs()).unwrap_or(5);
                    let _ = sqs.change_message_visibility().queue_url(&queue_url).receipt_handle(handle).visibility_timeout(visible_in).send().await;
                } else if let Ok(entry) = DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(handle).build() {
                    done.push(entry);
                }
            }
            if !done.is_empty() {
                if let Err(e) = sqs.delete_message_batch().queue_url(&queue_url).set_entries(Some(done)).send().await {
                    tracing::warn!(error = %vitalwire::platform::describe(&e), "handled messages not deleted; they will be delivered again");
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_what_lambda_sends_and_failures_are_read_back() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("r-1")
            .body("{}")
            .attributes(MessageSystemAttributeName::MessageGroupId, "ward-7/gw-1")
            .build();
        let event = sqs_event("arn:aws:sqs:us-east-1:000000000000:q.fifo", &[message]);
        let record = &event["Records"][0];
        assert_eq!((record["messageId"].as_str(), record["body"].as_str()), (Some("m-1"), Some("{}")));
        assert_eq!(record["attributes"]["MessageGroupId"], "ward-7/gw-1");
        let parsed: aws_lambda_events::sqs::SqsEvent = serde_json::from_value(event).unwrap();
        assert_eq!(parsed.records[0].attributes.get("MessageGroupId").map(String::as_str), Some("ward-7/gw-1"));
        assert_eq!(failed_ids(&json!({"batchItemFailures": [{"itemIdentifier": "m-2"}]})), ["m-2"]);
        assert!(failed_ids(&json!({"batchItemFailures": []})).is_empty());
    }
}
