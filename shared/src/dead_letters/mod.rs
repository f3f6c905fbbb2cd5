//! Dead letters: every message the platform refused, with the reason, kept for an operator.

mod dynamodb;
pub mod http;
#[cfg(test)]
pub(crate) mod memory;

use std::future::Future;

use sha2::{Digest, Sha256};

pub use dynamodb::DynamoDeadLetterStore;

use crate::StoreError;

/// Days a refused message is kept unless `DEAD_LETTER_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_DAYS: i64 = 365;

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
    /// The message exactly as received.
    pub raw_payload: String,
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
        Self {
            id: Self::id_for(source, thing_name, &received_at, &raw_payload),
            source: source.to_owned(),
            thing_name: thing_name.map(str::to_owned),
            reason_code: reason_code.to_owned(),
            reason,
            raw_payload,
            received_at,
            recorded_at: crate::platform::time::format_utc(chrono::Utc::now()),
        }
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
