//! [`InboxContinuation`] on SQS: the `InboxFilesQueue`, which starts `inbox-continue`.

use super::progress::{FileProgress, GoOn, InboxContinuation};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

#[derive(Debug, Clone)]
pub struct SqsInboxContinuation {
    client: aws_sdk_sqs::Client,
    queue_url: String,
}

impl FromWiring for SqsInboxContinuation {
    /// The queue URL of the setting `INBOX_FILES_QUEUE`.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { client: w.aws.sqs(), queue_url: w.settings.required("INBOX_FILES_QUEUE")? })
    }
}

impl InboxContinuation for SqsInboxContinuation {
    async fn go_on(&self, file: &FileProgress) -> Result<(), StoreError> {
        const OP: &str = "hand an inbox file to the next run";
        let message = GoOn { file_id: file.file_id.clone(), bucket: file.bucket.clone(), key: file.key.clone(), version: file.version.clone() };
        let body = serde_json::to_string(&message).map_err(|e| StoreError::new(OP, e))?;
        self.client.send_message().queue_url(&self.queue_url).message_body(body).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(())
    }
}
