//! `admin-deployments-create`: see `vitalwire::deployments::create`.

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{deployments, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = deployments::aws_deps().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(deployments::create(request, deps).await) })).await
}
