//! `admin-api-keys-revoke`: see `vitalwire::api_keys::revoke`.

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{api_keys, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = api_keys::aws_admin_deps().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(api_keys::revoke(request, deps).await) })).await
}
