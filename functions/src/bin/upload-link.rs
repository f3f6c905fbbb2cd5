//! `upload-link`: invoked by the IoT rule `CreateFileUploadLink`; replies to the device with a
//! presigned upload URL (see `vitalwire::uploads`).

use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::uploads::{self, DynamoUploadStore, IotDataPublisher, S3UploadSigner, UploadLinkDeps};
use vitalwire::{aws, tables, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let config = aws::load_config().await;
    let dynamodb = aws::dynamodb(&config);
    let bucket = std::env::var("UPLOADS_BUCKET").map_err(|_| tables::MissingSetting("UPLOADS_BUCKET"))?;
    let deps = UploadLinkDeps {
        signer: S3UploadSigner { client: aws::s3(&config), bucket },
        publisher: IotDataPublisher { client: aws_sdk_iotdataplane::Client::new(&config) },
        uploads: DynamoUploadStore { client: dynamodb.clone(), table: tables::UPLOADS.name_from_env()? },
        dead_letters: DynamoDeadLetterStore::new(dynamodb, tables::DEAD_LETTERS.name_from_env()?),
        content_types: uploads::content_types_from_env(),
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<Value>| async move { Ok::<Value, Error>(uploads::handle(&event.payload, deps).await?) })).await
}
