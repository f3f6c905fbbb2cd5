//! Plumbing every domain shares: AWS clients, DynamoDB item helpers, HTTP API request and
//! response helpers, the table specs, time formats and logging. No domain logic lives here.

pub mod aws;
pub mod dynamodb;
pub mod http;
#[cfg(feature = "stack")]
pub mod stack;
pub mod tables;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testing;
pub mod time;

/// A storage or AWS call failed for a reason that may pass (throttling, network, service).
///
/// Handlers let it fail the invocation so the event source retries or keeps the event.
#[derive(Debug, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct StoreError {
    pub operation: &'static str,
    pub message: String,
}

impl StoreError {
    pub fn new(operation: &'static str, err: impl std::fmt::Display) -> Self {
        Self { operation, message: err.to_string() }
    }

    /// An AWS SDK error with its whole cause chain (its `Display` alone says only "service error").
    pub fn sdk(operation: &'static str, err: &(dyn std::error::Error + 'static)) -> Self {
        Self { operation, message: describe(err) }
    }
}

/// The full error chain of an error.
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
