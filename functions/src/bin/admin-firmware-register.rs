//! `admin-firmware-register`: `POST /admin/firmware` (see `vitalwire::firmware::register`).

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{firmware, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = firmware::aws_deps().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(firmware::register(request, deps).await) })).await
}
