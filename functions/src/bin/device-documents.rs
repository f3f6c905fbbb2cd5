//! `device-documents`: `GET /devices/{thingName}/documents` (see `vitalwire::fhir_api::device_documents`).

use lambda_http::{run, service_fn, Error, Request};
use vitalwire::{fhir_api, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let deps = fhir_api::aws_document_deps().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move { Ok::<_, Error>(fhir_api::device_documents(request, deps).await) })).await
}
