//! `upload-registered`: S3 `ObjectCreated` under `uploads/` → upload completed and a FHIR
//! DocumentReference filed (see `vitalwire::uploads::registration`).

use aws_lambda_events::s3::S3Event;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::uploads::registration::{self, RegistrationDeps, S3ObjectReader};
use vitalwire::uploads::DynamoUploadStore;
use vitalwire::{aws, tables, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let config = aws::load_config().await;
    let dynamodb = aws::dynamodb(&config);
    let deps = RegistrationDeps {
        uploads: DynamoUploadStore { client: dynamodb.clone(), table: tables::UPLOADS.name_from_env()? },
        objects: S3ObjectReader { client: aws::s3(&config) },
        devices: DynamoDeviceRegistry::new(dynamodb.clone(), tables::DEVICES.name_from_env()?),
        dead_letters: DynamoDeadLetterStore::new(dynamodb, tables::DEAD_LETTERS.name_from_env()?),
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        let outcomes = registration::handle(&event.payload, deps).await?;
        Ok::<usize, Error>(outcomes.len())
    }))
    .await
}
