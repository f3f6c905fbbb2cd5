//! Logging set-up shared by every function binary.
//!
//! Lambda wants one JSON object per line (CloudWatch Logs Insights parses them). The level comes
//! from `RUST_LOG` (default `info`). Handlers log identifiers and outcomes only: never measured
//! values or patient identifiers.

use tracing_subscriber::EnvFilter;

/// Installs a JSON subscriber for a Lambda function; call once at the top of `main`.
pub fn init_lambda_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        // Lambda stamps every log line itself.
        .without_time()
        .init();
}
