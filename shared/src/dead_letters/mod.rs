//! Dead letters: every message the platform refused, with the reason, kept for an operator.

mod dynamodb;
pub mod http;
#[cfg(any(test, feature = "memory"))]
pub mod memory;

use std::future::Future;

use sha2::{Digest, Sha256};

pub use dynamodb::DynamoDeadLetterStore;

use crate::StoreError;

/// Days a refused message is kept unless `DEAD_LETTER_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_DAYS: i64 = 365;

/// The most of a refused message kept: a DynamoDB item holds 400 KB, and a REST body may be
/// 1 MB. A longer message keeps its first bytes, and says so.
pub const MAX_RAW_PAYLOAD_BYTES: usize = 256 * 1024;

/// A refused message.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Derived from the message, so a redelivered message does not add a second record.
    pub id: String,
    /// What refused it, e.g. `fhir-ingest`.
    pub source: String,
    pub thing_name: Option<String>,
    /// Stable machine-readable reason, e.g. `UNKNOWN_DEVICE`.
    pub reason_code: String,
    /// The reason in words, naming the field at fault.
    pub reason: String,
    /// The message exactly as received (its first [`MAX_RAW_PAYLOAD_BYTES`] when longer).
    pub raw_payload: String,
    /// The message's whole length in bytes.
    pub raw_bytes: usize,
    /// When the platform received the message (UTC, `time::format_utc`).
    pub received_at: String,
    /// When it was refused.
    pub recorded_at: String,
}

impl DeadLetter {
    /// A refused message, recorded now; its id derives from the message (see [`Self::id_for`]).
    pub fn refused(
        source: &str,
        thing_name: Option<&str>,
        reason_code: &str,
        reason: String,
        raw_payload: String,
        received_at: String,
    ) -> Self {
        let id = Self::id_for(source, thing_name, &received_at, &raw_payload);
        let raw_bytes = raw_payload.len();
        let mut raw_payload = raw_payload;
        if raw_bytes > MAX_RAW_PAYLOAD_BYTES {
            let mut end = MAX_RAW_PAYLOAD_BYTES;
            while !raw_payload.is_char_boundary(end) {
                end -= 1;
            }
            raw_payload.truncate(end);
        }
        Self {
            id,
            source: source.to_owned(),
            thing_name: thing_name.map(str::to_owned),
            reason_code: reason_code.to_owned(),
            reason,
            raw_payload,
            raw_bytes,
            received_at,
            recorded_at: crate::platform::time::format_utc(chrono::Utc::now()),
        }
    }

    /// Whether `raw_payload` holds only the start of the message.
    pub fn is_truncated(&self) -> bool {
        self.raw_payload.len() < self.raw_bytes
    }

    /// The id of a dead letter for a message: same source, thing, arrival and bytes, same id.
    pub fn id_for(source: &str, thing_name: Option<&str>, received_at: &str, raw_payload: &str) -> String {
        let mut h = Sha256::new();
        for part in [source, thing_name.unwrap_or(""), received_at, raw_payload] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        hex::encode(&h.finalize()[..16])
    }
}

/// A page of dead letters, newest first, and where the next page starts.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterPage {
    pub items: Vec<DeadLetter>,
    pub next: Option<String>,
}

/// Keeps a refusal where an operator finds it, when the sender already has its answer (an HTTP
/// reply): a store failure is logged, not returned, because losing the operator's copy must not
/// fail the request. `what` names the refused thing in the log ("reading", "observation set").
pub async fn keep_for_operator<D: DeadLetterStore>(store: &D, letter: &DeadLetter, what: &str) {
    let (source, code, thing) = (&letter.source, &letter.reason_code, letter.thing_name.as_deref().unwrap_or("-"));
    match store.record(letter).await {
        Ok(()) => tracing::info!(%source, reason_code = %code, thing_name = %thing, dead_letter_id = %letter.id, "{what} refused"),
        Err(e) => tracing::error!(error = %e, %source, reason_code = %code, "refused {what} not kept"),
    }
}

/// The dead-letter store port.
pub trait DeadLetterStore: Send + Sync {
    /// Keeps a refused message; recording the same one twice keeps one record.
    fn record(&self, letter: &DeadLetter) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Lists a source's dead letters, newest first, starting after the cursor `after`.
    fn list(
        &self,
        source: &str,
        limit: i32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<DeadLetterPage, StoreError>> + Send;

    /// Lists a device's dead letters of every source, newest first, after the cursor `after`.
    fn for_thing(
        &self,
        thing_name: &str,
        limit: i32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<DeadLetterPage, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_keeps_its_start_and_says_so() {
        let long = format!("{{\"notes\": \"{}é\"}}", "x".repeat(MAX_RAW_PAYLOAD_BYTES));
        let letter = DeadLetter::refused("iot-vitals", Some("d"), "INVALID_READING", "notes too long".into(), long.clone(), "t".into());
        assert!(letter.is_truncated());
        assert_eq!(letter.raw_bytes, long.len());
        assert!(letter.raw_payload.len() <= MAX_RAW_PAYLOAD_BYTES && long.starts_with(&letter.raw_payload));
        assert_eq!(letter.id, DeadLetter::id_for("iot-vitals", Some("d"), "t", &long), "identified by the whole message");
        let short = DeadLetter::refused("iot-vitals", None, "X", String::new(), "{}".into(), "t".into());
        assert!(!short.is_truncated());
    }
}
