//! `inbox-processor`: S3 `ObjectCreated` under `inbox/` → readings filed, the file archived or
//! failed with a report (see `vitalwire::inbox`).

use aws_lambda_events::s3::S3Event;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use vitalwire::{inbox, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = inbox::aws_deps().await?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        let outcomes = inbox::handle(&event.payload, deps).await?;
        Ok::<String, Error>(format!("{outcomes:?}"))
    }))
    .await
}
