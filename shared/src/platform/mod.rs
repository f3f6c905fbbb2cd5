//! Plumbing every domain shares: AWS clients, DynamoDB item helpers, HTTP API request and
//! response helpers, the table specs, time formats and logging. No domain logic lives here.

pub mod aws;
pub mod batch;
pub mod dynamodb;
pub mod http;
pub mod metrics;
#[cfg(feature = "stack")]
pub mod stack;
pub mod tables;
pub mod telemetry;
#[cfg(test)]
pub(crate) mod testing;
pub mod time;

/// A folder of the reference material beside the project (`../shared/<sub>`, e.g.
/// `conformance/news2`): under `$VITALWIRE_REFERENCE_DIR` if set, else beside the repository
/// (or one of its ancestors), else the workplace's `/work/shared`. For tests only.
#[cfg(any(test, feature = "stack"))]
pub fn reference_dir(sub: &str) -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut candidates: Vec<std::path::PathBuf> =
        std::env::var_os("VITALWIRE_REFERENCE_DIR").map(|d| std::path::PathBuf::from(d).join(sub)).into_iter().collect();
    candidates.extend(here.ancestors().map(|a| a.join("shared").join(sub)));
    candidates.push(std::path::Path::new("/work/shared").join(sub));
    candidates.iter().find(|p| p.is_dir()).cloned().unwrap_or_else(|| panic!("the reference material ../shared/{sub} is needed; looked in {candidates:?}"))
}

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
