//! `iot-vitals`: see `vitalwire::vitals_api::submit`.

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{telemetry, vitals_api};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = vitals_api::aws_deps().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(vitals_api::submit(request, deps).await) })).await
}
