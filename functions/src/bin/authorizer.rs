//! `authorizer`: the HTTP API's Lambda authorizer (see `vitalwire::authorizer`).

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use vitalwire::auth::JwtVerifier;
use vitalwire::{authorizer, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let verifier = JwtVerifier::from_env()?;
    let verifier = &verifier;
    run(service_fn(move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
        Ok::<ApiGatewayV2CustomAuthorizerSimpleResponse, Error>(authorizer::handle(&event.payload, verifier).await)
    }))
    .await
}
