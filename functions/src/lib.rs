//! Runs one function of the registry (`vitalwire::wiring::functions`) in AWS Lambda: builds its
//! dependencies once per cold start from the environment, then serves its events (HTTP API
//! requests through `lambda_http`, any other event as JSON through `lambda_runtime`).
//!
//! Each binary in `src/bin/` is one line, [`lambda_function!`] with its registry entry.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::value::RawValue;
use vitalwire::wiring::{FunctionSpec, Handler, Wiring};

pub use lambda_runtime::Error;

/// Builds `spec` from the environment and serves it until the Lambda sandbox ends.
///
/// `binary` is the cargo binary's name: a binary that names the wrong entry fails at start-up.
pub async fn run(spec: &FunctionSpec, binary: &str) -> Result<(), Error> {
    vitalwire::platform::telemetry::init_lambda_logging();
    if spec.name != binary {
        return Err(format!("binary {binary} runs the registry entry {}", spec.name).into());
    }
    let wiring = Wiring::from_env().await;
    match spec.instantiate(wiring)? {
        Handler::Http(handler) => {
            let handler = &handler;
            lambda_http::run(service_fn(move |request| async move { Ok::<_, Error>(handler.call(request).await) })).await
        }
        Handler::Event(handler) => {
            let handler = &handler;
            lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move { handler.call(event.payload.get()).await }))
                .await
        }
    }
}

/// The `main` of a function's binary: `vitalwire_functions::lambda_function!(FHIR_INGEST);`.
#[macro_export]
macro_rules! lambda_function {
    ($entry:ident) => {
        // One event at a time per sandbox (Lambda's model): one thread, no worker pool to start.
        #[tokio::main(flavor = "current_thread")]
        async fn main() -> Result<(), $crate::Error> {
            $crate::run(&vitalwire::wiring::functions::$entry, env!("CARGO_BIN_NAME")).await
        }
    };
}
