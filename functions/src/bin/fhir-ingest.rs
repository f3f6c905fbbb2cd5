//! `fhir-ingest`: invoked by the IoT rule `FHIRIngest`; files a device measurement as a FHIR
//! Observation (see `vitalwire::ingest`).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::value::RawValue;
use vitalwire::alerts::{AlertSettings, DynamoAlertStore};
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::ingest::{self, IngestDeps, IngestOutcome};
use vitalwire::observations::DynamoObservationStore;
use vitalwire::{aws, tables, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let config = aws::load_config().await;
    let dynamodb = aws::dynamodb(&config);
    let deps = IngestDeps {
        devices: DynamoDeviceRegistry::new(dynamodb.clone(), tables::DEVICES.name_from_env()?),
        observations: DynamoObservationStore::new(dynamodb.clone(), tables::OBSERVATIONS.name_from_env()?),
        dead_letters: DynamoDeadLetterStore::new(dynamodb.clone(), tables::DEAD_LETTERS.name_from_env()?),
        alerts: DynamoAlertStore { client: dynamodb, table: tables::ALERTS.name_from_env()? },
        alert_settings: AlertSettings::from_env(),
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<Box<RawValue>>| async move {
        Ok::<IngestOutcome, Error>(ingest::handle(&event.payload, deps).await?)
    }))
    .await
}
