//! The one way Vitalwire builds AWS clients.
//!
//! Region, credentials and endpoints come from the SDK's standard configuration chain, so the
//! very same binary talks to AWS in Lambda and to a local emulator when `AWS_ENDPOINT_URL` or a
//! per-service `AWS_ENDPOINT_URL_<SERVICE>` variable is set. Build these once per cold start,
//! outside the handler: the config load reads the environment and the clients hold connection
//! pools that later invocations reuse.

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the shared SDK configuration from the environment (no network call when credentials
/// come from environment variables, as they do in Lambda).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A DynamoDB client for the configured region and endpoint.
pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An S3 client; path-style addressing when an endpoint override is set, because emulators
/// serve buckets under one host rather than as virtual-host subdomains.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let overridden = config.endpoint_url().is_some() || env_set("AWS_ENDPOINT_URL_S3");
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(overridden)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}
