//! The one way Vitalwire builds AWS clients.
//!
//! Region, credentials and endpoints come from the SDK's standard configuration chain, so the
//! very same binary talks to AWS in Lambda and to a local emulator when `AWS_ENDPOINT_URL` or a
//! per-service `AWS_ENDPOINT_URL_<SERVICE>` variable is set. Build these once per cold start,
//! outside the handler: the config load reads the environment and the clients hold connection
//! pools that later invocations reuse.

use std::sync::{Arc, OnceLock};

use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the shared SDK configuration from the environment (no network call when credentials
/// come from environment variables, as they do in Lambda), with the SDK's default HTTPS client
/// made to load the system's CA certificates on its first request ([`DeferredTls`]).
pub async fn load_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).http_client(deferred_tls_https_client()).load().await
}

/// The SDK's default HTTPS client (hyper 1, rustls with aws-lc, proxy settings from the
/// environment, as `aws-smithy-runtime` builds it), under [`DeferredTls`].
fn deferred_tls_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, Builder, ConnectorBuilder};
    let client = Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    });
    aws_smithy_runtime_api::client::http::SharedHttpClient::new(DeferredTls(client))
}

/// An HTTP client that builds its connector (and so loads the system's CA certificates) on the
/// first request. The SDK's own client builds it when an SDK client is constructed, which the
/// functions do at start-up: reading and parsing the certificates was half of a cold start, and
/// a function may answer its first event without any AWS call.
#[derive(Debug)]
struct DeferredTls(aws_smithy_runtime_api::client::http::SharedHttpClient);

impl aws_smithy_runtime_api::client::http::HttpClient for DeferredTls {
    fn http_connector(
        &self,
        settings: &aws_smithy_runtime_api::client::http::HttpConnectorSettings,
        components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
    ) -> aws_smithy_runtime_api::client::http::SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.0.connector_metadata()
    }
    // `validate_base_client_config` keeps its default (nothing): the inner client's would
    // build the connector now.
}

/// A DynamoDB client for the configured region and endpoint.
pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

/// An S3 client; path-style addressing when an endpoint override is set, because emulators
/// serve buckets under one host rather than as virtual-host subdomains.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let overridden = config.endpoint_url().is_some() || env_set("AWS_ENDPOINT_URL_S3");
    let s3_config = aws_sdk_s3::config::Builder::from(config).force_path_style(overridden).build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// The AWS clients of one process, each built on first use and then shared (cheap to clone).
#[derive(Clone)]
pub struct AwsClients(Arc<Clients>);

struct Clients {
    config: SdkConfig,
    /// Where the IoT control and data planes are, when not AWS's (the local IoT gateway).
    iot_endpoint: Option<String>,
    dynamodb: OnceLock<aws_sdk_dynamodb::Client>,
    s3: OnceLock<aws_sdk_s3::Client>,
    iot: OnceLock<aws_sdk_iot::Client>,
    iot_data: OnceLock<aws_sdk_iotdataplane::Client>,
    secrets: OnceLock<aws_sdk_secretsmanager::Client>,
    kms: OnceLock<aws_sdk_kms::Client>,
    sqs: OnceLock<aws_sdk_sqs::Client>,
    sns: OnceLock<aws_sdk_sns::Client>,
    ses: OnceLock<aws_sdk_sesv2::Client>,
}

impl AwsClients {
    /// From the SDK's standard configuration chain.
    pub async fn from_env() -> Self {
        Self::new(load_config().await, None)
    }

    /// Over a configuration; `iot_endpoint` overrides both IoT planes' endpoint.
    pub fn new(config: SdkConfig, iot_endpoint: Option<String>) -> Self {
        Self(Arc::new(Clients {
            config,
            iot_endpoint,
            dynamodb: OnceLock::new(),
            s3: OnceLock::new(),
            iot: OnceLock::new(),
            iot_data: OnceLock::new(),
            secrets: OnceLock::new(),
            kms: OnceLock::new(),
            sqs: OnceLock::new(),
            sns: OnceLock::new(),
            ses: OnceLock::new(),
        }))
    }

    pub fn config(&self) -> &SdkConfig {
        &self.0.config
    }

    /// The configured region (`us-east-1` when none is).
    pub fn region(&self) -> String {
        self.0.config.region().map_or_else(|| "us-east-1".to_owned(), |r| r.as_ref().to_owned())
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        self.0.dynamodb.get_or_init(|| dynamodb(&self.0.config)).clone()
    }

    pub fn s3(&self) -> aws_sdk_s3::Client {
        self.0.s3.get_or_init(|| s3(&self.0.config)).clone()
    }

    pub fn iot(&self) -> aws_sdk_iot::Client {
        self.0
            .iot
            .get_or_init(|| {
                let mut builder = aws_sdk_iot::config::Builder::from(&self.0.config);
                if let Some(endpoint) = &self.0.iot_endpoint {
                    builder = builder.endpoint_url(endpoint);
                }
                aws_sdk_iot::Client::from_conf(builder.build())
            })
            .clone()
    }

    pub fn iot_data(&self) -> aws_sdk_iotdataplane::Client {
        self.0
            .iot_data
            .get_or_init(|| {
                let mut builder = aws_sdk_iotdataplane::config::Builder::from(&self.0.config);
                if let Some(endpoint) = &self.0.iot_endpoint {
                    builder = builder.endpoint_url(endpoint);
                }
                aws_sdk_iotdataplane::Client::from_conf(builder.build())
            })
            .clone()
    }

    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        self.0.secrets.get_or_init(|| aws_sdk_secretsmanager::Client::new(&self.0.config)).clone()
    }

    pub fn kms(&self) -> aws_sdk_kms::Client {
        self.0.kms.get_or_init(|| aws_sdk_kms::Client::new(&self.0.config)).clone()
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        self.0.sqs.get_or_init(|| aws_sdk_sqs::Client::new(&self.0.config)).clone()
    }

    pub fn sns(&self) -> aws_sdk_sns::Client {
        self.0.sns.get_or_init(|| aws_sdk_sns::Client::new(&self.0.config)).clone()
    }

    pub fn ses(&self) -> aws_sdk_sesv2::Client {
        self.0.ses.get_or_init(|| aws_sdk_sesv2::Client::new(&self.0.config)).clone()
    }
}

/// The object key of an S3 event record: S3 URL-encodes it, with `+` for spaces.
pub fn decoded_key(raw: &str) -> String {
    percent_encoding::percent_decode_str(&raw.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// The `CopySource` of an object version: `bucket/key?versionId=`, the key URL-encoded.
pub fn copy_source(bucket: &str, key: &str, version_id: Option<&str>) -> String {
    let key = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
    match version_id {
        Some(v) => format!("{bucket}/{key}?versionId={}", percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)),
        None => format!("{bucket}/{key}"),
    }
}

/// Whether an S3 call failed because the object (or the version named) no longer exists.
pub fn object_gone<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    let code = e.as_service_error().and_then(|s| s.code());
    match code {
        Some("NoSuchKey" | "NoSuchVersion" | "NotFound") => true,
        Some("NoSuchBucket") => false,
        // CopyObject's 404 for a missing source can come without a parsed code.
        _ => e.raw_response().is_some_and(|r| r.status().as_u16() == 404),
    }
}
