//! `job-events`: IoT job-execution events → deployment progress and installed firmware (see
//! `vitalwire::job_events`).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::deployments::DynamoDeploymentStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::job_events::{self, JobEventDeps};
use vitalwire::{aws, tables, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let config = aws::load_config().await;
    let dynamodb = aws::dynamodb(&config);
    let deps = JobEventDeps {
        deployments: DynamoDeploymentStore::new(dynamodb.clone(), tables::DEPLOYMENTS.name_from_env()?),
        devices: DynamoDeviceRegistry::new(dynamodb.clone(), tables::DEVICES.name_from_env()?),
        dead_letters: DynamoDeadLetterStore::new(dynamodb, tables::DEAD_LETTERS.name_from_env()?),
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        let outcome = job_events::handle(&event.payload, deps).await?;
        Ok::<String, Error>(format!("{outcome:?}"))
    }))
    .await
}
