//! The binaries the Lambda functions deploy, one per bundle of the registry
//! (`vitalwire::wiring::functions::BUNDLES`): each runs the entry that its function's `Handler`
//! names, handed over by Lambda as `_HANDLER`. It builds the entry's dependencies once per cold
//! start from the environment, then serves its events (HTTP API requests through `lambda_http`,
//! any other event as JSON through `lambda_runtime`).
//!
//! A few bundles rather than one binary per function: `sam build` then builds and links once
//! per bundle (the link-time optimization is most of a release build), in minutes instead of
//! hours (docs/benchmarks.md, "Release builds").

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::value::RawValue;
use vitalwire::wiring::{Bundle, FunctionSpec, Handler, Wiring};

pub use lambda_runtime::Error;

/// Runs the entry `name` (Lambda's `_HANDLER`) of `bundle`, whose binary this is (`binary`, the
/// cargo binary's name): a binary of another bundle, and a name absent or not in the bundle,
/// fail at start-up, saying what was given. Only `bundle` is named here: a reference to the
/// other bundles (or to `functions::all()`) would link every function into every binary.
pub async fn run_bundle(bundle: &Bundle, binary: &str, name: Option<&str>) -> Result<(), Error> {
    vitalwire::platform::telemetry::init_lambda_logging();
    if bundle.binary != binary {
        return Err(format!("binary {binary} runs the bundle {}", bundle.binary).into());
    }
    let name = name.ok_or("_HANDLER is not set: the function's Handler in template.yaml names its registry entry")?;
    let spec = bundle
        .function(name)
        .ok_or_else(|| format!("{binary} has no function {name} (the function's Handler and BuildProperties.Binary in template.yaml)"))?;
    run(spec).await
}

/// Builds `spec` from the environment and serves it until the Lambda sandbox ends.
async fn run(spec: &FunctionSpec) -> Result<(), Error> {
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

/// The `main` of a bundle's binary: `vitalwire_functions::lambda_bundle!(INGEST_BUNDLE);`.
#[macro_export]
macro_rules! lambda_bundle {
    ($bundle:ident) => {
        // One event at a time per sandbox (Lambda's model): one thread, no worker pool to start.
        #[tokio::main(flavor = "current_thread")]
        async fn main() -> Result<(), $crate::Error> {
            $crate::run_bundle(&vitalwire::wiring::functions::$bundle, env!("CARGO_BIN_NAME"), std::env::var("_HANDLER").ok().as_deref()).await
        }
    };
}
