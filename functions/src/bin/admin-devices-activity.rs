//! `admin-devices-activity`: see `vitalwire::activity::list`.

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{activity, aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let config = aws::load_config().await;
    let log = activity::aws_log(aws::dynamodb(&config))?;
    let log = &log;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(activity::list(request, log).await) })).await
}
