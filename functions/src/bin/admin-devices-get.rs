//! `admin-devices-get`: `GET /admin/devices/{thingName}` of the device admin API (see `vitalwire::admin::get_device`).

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{admin, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = admin::aws_deps().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(admin::get_device(request, deps).await) })).await
}
