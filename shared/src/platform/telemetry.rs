//! Logging set-up shared by every function binary.
//!
//! Lambda wants one JSON object per line (CloudWatch Logs Insights parses them). The levels come
//! from `RUST_LOG` (default `info`). Handlers log identifiers and outcomes only: never measured
//! values or patient identifiers.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs a JSON subscriber for a Lambda function; call once at the top of `main`.
pub fn init_lambda_logging() {
    let filter = lambda_log_levels(std::env::var("RUST_LOG").ok().as_deref());
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .with_ansi(false)
        // Lambda stamps every log line itself.
        .without_time()
        .finish()
        .with(filter)
        .init();
}

/// The levels `RUST_LOG` sets, as `level` and `target=level` directives separated by commas
/// (`warn,vitalwire=debug`); `info` for everything when it is unset or not in that form.
/// Not `EnvFilter`, whose span and field filters are regular expressions: they would link a
/// regex engine and its Unicode tables into every function, which the loader relocates at
/// every start, for directives nobody sets in Lambda.
fn lambda_log_levels(rust_log: Option<&str>) -> Targets {
    rust_log.and_then(|directives| directives.parse().ok()).unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::lambda_log_levels;
    use tracing::Level;

    #[test]
    fn rust_log_sets_levels_by_target_and_anything_else_means_info() {
        let set = lambda_log_levels(Some("warn,vitalwire=debug"));
        assert!(set.would_enable("vitalwire::ingest", &Level::DEBUG));
        assert!(!set.would_enable("vitalwire::ingest", &Level::TRACE));
        assert!(set.would_enable("hyper::client", &Level::WARN));
        assert!(!set.would_enable("hyper::client", &Level::INFO));
        for default in [None, Some("[span{field=x}]=debug")] {
            let set = lambda_log_levels(default);
            assert!(set.would_enable("vitalwire", &Level::INFO), "{default:?}");
            assert!(!set.would_enable("vitalwire", &Level::DEBUG), "{default:?}");
        }
    }
}
