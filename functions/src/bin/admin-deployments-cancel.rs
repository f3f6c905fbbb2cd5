//! `admin-deployments-cancel`: see `vitalwire::deployments::cancel`.

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{deployments, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = deployments::aws_deps().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(deployments::cancel(request, deps).await) })).await
}
