//! `provisioning-hook`: AWS IoT fleet provisioning's pre-provisioning hook for
//! `DefaultProvisioningTemplate` (see `vitalwire::provisioning`).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::devices::DynamoDeviceRegistry;
use vitalwire::provisioning::{self, HookDeps, HookRequest, HookResponse};
use vitalwire::{aws, tables, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let config = aws::load_config().await;
    let dynamodb = aws::dynamodb(&config);
    let deps = HookDeps {
        devices: DynamoDeviceRegistry::new(dynamodb.clone(), tables::DEVICES.name_from_env()?),
        dead_letters: DynamoDeadLetterStore::new(dynamodb, tables::DEAD_LETTERS.name_from_env()?),
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<HookRequest>| async move {
        Ok::<HookResponse, Error>(provisioning::handle(&event.payload, deps).await?)
    }))
    .await
}
