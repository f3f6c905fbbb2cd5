//! The connectors' message queue: an SQS FIFO queue (why FIFO and not Kinesis:
//! `docs/connectors.md`). Messages of one group (a connection, or a device) stay in order;
//! a message id sent again within five minutes is dropped by the queue.

use std::future::Future;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// One message for the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// What keeps order among messages: `<connector>/<connection or thing>`.
    pub group: String,
    /// Deduplicates a resend.
    pub message_id: String,
    /// The enveloped message, JSON.
    pub body: String,
}

/// Where received messages wait for the consumer.
pub trait MessageQueue: Send + Sync {
    /// Sends every message, or fails (then the caller answers 503 and the sender retries; the
    /// messages already sent are dropped as repeats when the sender gives its own ids).
    fn send(&self, messages: &[Queued]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// [`MessageQueue`] on SQS.
#[derive(Debug, Clone)]
pub struct SqsMessageQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl SqsMessageQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into() }
    }
}

impl FromWiring for SqsMessageQueue {
    /// The queue URL of the setting `CONNECTOR_MESSAGES_QUEUE`.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.sqs(), w.settings.required("CONNECTOR_MESSAGES_QUEUE")?))
    }
}

/// Tries for entries SQS did not take (throttling) before the send fails.
const ATTEMPTS: usize = 3;

impl MessageQueue for SqsMessageQueue {
    async fn send(&self, messages: &[Queued]) -> Result<(), StoreError> {
        const OP: &str = "queue connector messages";
        // Ten per batch, the most SQS takes.
        for chunk in messages.chunks(10) {
            let mut pending: Vec<(usize, &Queued)> = chunk.iter().enumerate().collect();
            for attempt in 1..=ATTEMPTS {
                let mut entries = Vec::with_capacity(pending.len());
                for (i, m) in &pending {
                    let entry = SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&m.body)
                        .message_group_id(&m.group)
                        .message_deduplication_id(&m.message_id)
                        .build()
                        .map_err(|e| StoreError::new(OP, e))?;
                    entries.push(entry);
                }
                let out = self.client.send_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                if failed.is_empty() {
                    break;
                }
                if attempt == ATTEMPTS {
                    let why = out.failed().first().map(|f| format!("{}: {}", f.code(), f.message().unwrap_or_default())).unwrap_or_default();
                    return Err(StoreError::new(OP, format!("{} message(s) not taken: {why}", failed.len())));
                }
                pending.retain(|(i, _)| failed.contains(&i.to_string().as_str()));
            }
        }
        Ok(())
    }
}
