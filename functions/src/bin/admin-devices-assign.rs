//! `admin-devices-assign`: `PUT /admin/devices/{thingName}/patient` of the device admin API (see `vitalwire::admin::assign_patient`).

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{admin, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = admin::aws_deps().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(admin::assign_patient(request, deps).await) })).await
}
