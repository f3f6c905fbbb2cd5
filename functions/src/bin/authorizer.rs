//! `authorizer`: the HTTP API's Lambda authorizer (see `vitalwire::authorizer`).

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use vitalwire::auth::JwtVerifier;
use vitalwire::authorizer::{self, AuthorizerDeps};
use vitalwire::{api_keys, aws, telemetry};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_lambda_logging();
    let config = aws::load_config().await;
    // The JWKS and the API key pepper are fetched on first use, not at cold start.
    let deps = AuthorizerDeps {
        verifier: JwtVerifier::from_env()?,
        keys: api_keys::aws_key_store(aws::dynamodb(&config))?,
        pepper: api_keys::aws_pepper(&config)?,
    };
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
        Ok::<ApiGatewayV2CustomAuthorizerSimpleResponse, Error>(authorizer::handle(&event.payload, deps).await)
    }))
    .await
}
