//! `patient-alerts-close`: see `vitalwire::alerts::close`.

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::alerts::{self, DynamoAlertStore};
use vitalwire::{aws, tables, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let config = aws::load_config().await;
    let store = DynamoAlertStore { client: aws::dynamodb(&config), table: tables::ALERTS.name_from_env()? };
    let store = &store;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(alerts::close(request, store).await) })).await
}
