//! The whole local platform wired once, as `template.yaml` wires it on AWS: the IoT gateway
//! (MQTT over mutual TLS) with its rule and provisioning handlers, the IoT HTTP APIs, the HTTP
//! API routes, and S3 upload events. `vitalwire-local up` and the integration tests both start
//! it here, so the tests exercise what developers run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vitalwire::activity::DynamoActivityLog;
use vitalwire::admin::AdminDeps;
use vitalwire::vitals_api::VitalsDeps;
use vitalwire::api_keys::{ApiKeyAdminDeps, DynamoApiKeyStore, SecretsManagerPepper};
use vitalwire::dead_letters::DynamoDeadLetterStore;
use vitalwire::deployments::{DeploymentDeps, DynamoDeploymentStore, IotJobControl};
use vitalwire::job_events::JobEventDeps;
use vitalwire::devices::{DynamoDeviceRegistry, IotCertificateControl};
use vitalwire::fhir_api::FhirReadDeps;
use vitalwire::firmware::{DynamoFirmwareStore, FirmwareDeps};
use vitalwire::ingest::IngestDeps;
use vitalwire::observations::DynamoObservationStore;
use vitalwire::provisioning::HookDeps;
use vitalwire::tables::{self, TableSpec};
use vitalwire::uploads::registration::{RegistrationDeps, S3ObjectReader};
use vitalwire::uploads::{DynamoUploadStore, IotDataPublisher, S3UploadSigner, UploadLinkDeps};

use crate::gateway::pki::PkiFiles;
use crate::gateway::{Functions, Gateway, GatewayConfig};
use crate::http_api::{LocalApi, LocalAuth, RouteDeps};
use crate::stack::LocalStack;

/// The secret that peppers API key hashes (logical id in `template.yaml`).
pub const API_KEY_PEPPER_SECRET: &str = "ApiKeyPepperSecret";

/// The bucket gateways drop reading files into (logical id in `template.yaml`).
pub const INBOX_BUCKET: &str = "InboxBucket";

/// The bucket of device uploads and firmware (logical id in `template.yaml`).
pub const DEVICE_FILES_BUCKET: &str = "DeviceFilesBucket";

/// The presigned-URL role the local job documents name (the local gateway presigns with the
/// emulator's credentials; on AWS this is `FirmwareDownloadRole`).
const LOCAL_FIRMWARE_DOWNLOAD_ROLE: &str = "arn:aws:iam::000000000000:role/local-firmware-download";

/// Where the platform listens and keeps its state.
pub struct Settings {
    /// CA, certificates (`certs/`) and the JWT signing key (`auth/`).
    pub state_dir: PathBuf,
    pub mqtt: SocketAddr,
    pub iot_http: SocketAddr,
    pub api: SocketAddr,
    /// Ownership-token lifetime (one hour unless a test shortens it).
    pub token_lifetime: Option<Duration>,
    /// How often the uploads and inbox prefixes are checked for new objects.
    pub upload_poll: Duration,
}

/// A running local platform; dropping it stops its servers.
pub struct Platform {
    pub gateway: Arc<Gateway>,
    pub mqtt_port: u16,
    /// Base URL of the IoT HTTP APIs.
    pub iot_endpoint: String,
    /// Base URL of the HTTP API.
    pub api_url: String,
    /// Mints tokens the HTTP API accepts.
    pub auth: LocalAuth,
    pub files: PkiFiles,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind(addr: SocketAddr, flag: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e} (choose another with {flag})"))
}

fn spawn_http(listener: TcpListener, router: axum::Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    })
}

/// Starts every local server over the stack's tables and buckets.
pub async fn start(stack: &LocalStack, config: &SdkConfig, settings: Settings) -> Result<Platform, String> {
    let dynamodb = vitalwire::aws::dynamodb(config);
    let s3 = vitalwire::aws::s3(config);
    let table = |spec: &TableSpec| {
        stack.table(spec.logical_id).map(str::to_owned).ok_or_else(|| format!("template.yaml has no {}", spec.logical_id))
    };
    let bucket = stack
        .bucket(DEVICE_FILES_BUCKET)
        .map(str::to_owned)
        .ok_or_else(|| format!("template.yaml has no {DEVICE_FILES_BUCKET}"))?;
    let devices = || -> Result<_, String> { Ok(DynamoDeviceRegistry::new(dynamodb.clone(), table(&tables::DEVICES)?)) };
    let dead_letters = || -> Result<_, String> { Ok(DynamoDeadLetterStore::new(dynamodb.clone(), table(&tables::DEAD_LETTERS)?)) };
    let observations = || -> Result<_, String> { Ok(DynamoObservationStore::new(dynamodb.clone(), table(&tables::OBSERVATIONS)?)) };
    let alert_store = || -> Result<_, String> { Ok(vitalwire::alerts::DynamoAlertStore { client: dynamodb.clone(), table: table(&tables::ALERTS)? }) };
    let signer = || S3UploadSigner { client: s3.clone(), bucket: bucket.clone() };
    let deployments = || -> Result<_, String> { Ok(DynamoDeploymentStore::new(dynamodb.clone(), table(&tables::DEPLOYMENTS)?)) };
    let api_keys = || -> Result<_, String> {
        Ok(DynamoApiKeyStore::new(dynamodb.clone(), table(&tables::API_KEYS)?, table(&tables::API_KEY_USAGE)?))
    };
    let pepper_secret = stack.secrets.get(API_KEY_PEPPER_SECRET).cloned().ok_or_else(|| format!("template.yaml has no {API_KEY_PEPPER_SECRET}"))?;
    let pepper = || SecretsManagerPepper::new(aws_sdk_secretsmanager::Client::new(config), pepper_secret.clone());
    let firmware_images = || -> Result<_, String> { Ok(DynamoFirmwareStore { client: dynamodb.clone(), table: table(&tables::FIRMWARE)? }) };

    // The IoT HTTP endpoint comes first: functions reply to devices and switch certificates
    // through it, as they do through IoT Core on AWS.
    let iot_listener = bind(settings.iot_http, "--iot-http-port").await?;
    let iot_endpoint = format!("http://{}", iot_listener.local_addr().map_err(|e| e.to_string())?);
    let data_plane = aws_sdk_iotdataplane::config::Builder::from(config).endpoint_url(&iot_endpoint).build();
    let control_plane = aws_sdk_iot::config::Builder::from(config).endpoint_url(&iot_endpoint).build();

    let functions = Functions {
        ingest: IngestDeps {
            devices: devices()?,
            observations: observations()?,
            dead_letters: dead_letters()?,
            alerts: alert_store()?,
            alert_settings: vitalwire::alerts::AlertSettings::default(),
        },
        hook: HookDeps { devices: devices()?, dead_letters: dead_letters()? },
        uploads: UploadLinkDeps {
            signer: signer(),
            publisher: IotDataPublisher { client: aws_sdk_iotdataplane::Client::from_conf(data_plane) },
            uploads: DynamoUploadStore { client: dynamodb.clone(), table: table(&tables::UPLOADS)? },
            dead_letters: dead_letters()?,
            content_types: vitalwire::uploads::DEFAULT_CONTENT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
        },
        job_events: JobEventDeps { deployments: deployments()?, devices: devices()?, dead_letters: dead_letters()? },
        s3: s3.clone(),
    };
    let gateway = Gateway::new(
        GatewayConfig { certs_dir: settings.state_dir.join("certs"), token_lifetime: settings.token_lifetime },
        functions,
    )
    .map_err(|e| e.to_string())?;
    let mqtt_listener = bind(settings.mqtt, "--mqtt-port").await?;
    let mqtt_port = mqtt_listener.local_addr().map_err(|e| e.to_string())?.port();

    let auth = LocalAuth::load_or_create(&settings.state_dir.join("auth"))?;
    let routes = RouteDeps {
        admin: AdminDeps {
            devices: devices()?,
            dead_letters: dead_letters()?,
            certificates: IotCertificateControl { client: aws_sdk_iot::Client::from_conf(control_plane.clone()) },
        },
        fhir: FhirReadDeps { devices: devices()?, observations: observations()? },
        documents: vitalwire::fhir_api::DocumentReadDeps {
            devices: devices()?,
            uploads: DynamoUploadStore { client: dynamodb.clone(), table: table(&tables::UPLOADS)? },
        },
        firmware: FirmwareDeps { images: firmware_images()?, signer: signer() },
        deployments: DeploymentDeps {
            images: firmware_images()?,
            devices: devices()?,
            deployments: deployments()?,
            jobs: IotJobControl {
                client: aws_sdk_iot::Client::from_conf(control_plane.clone()),
                thing_arn_prefix: format!("{}:thing/", crate::gateway::policy::ARN_PREFIX),
                presign_role_arn: LOCAL_FIRMWARE_DOWNLOAD_ROLE.to_owned(),
            },
            bucket_url: format!("https://s3.{}.amazonaws.com/{bucket}", config.region().map_or("us-east-1", |r| r.as_ref())),
        },
        api_keys: ApiKeyAdminDeps { devices: devices()?, keys: api_keys()?, pepper: pepper() },
        vitals: VitalsDeps {
            devices: devices()?,
            observations: observations()?,
            keys: api_keys()?,
            activity: DynamoActivityLog {
                client: dynamodb.clone(),
                table: table(&tables::ACTIVITY)?,
                retention_days: vitalwire::activity::DEFAULT_RETENTION_DAYS,
            },
            alerts: alert_store()?,
            alert_settings: vitalwire::alerts::AlertSettings::default(),
        },
    };
    let api = LocalApi::new(&stack.template, &auth, routes, api_keys()?, pepper())?;
    let api_listener = bind(settings.api, "--api-port").await?;
    let api_url = format!("http://{}", api_listener.local_addr().map_err(|e| e.to_string())?);

    let registration = RegistrationDeps {
        uploads: DynamoUploadStore { client: dynamodb.clone(), table: table(&tables::UPLOADS)? },
        objects: S3ObjectReader { client: s3.clone() },
        devices: devices()?,
        dead_letters: dead_letters()?,
    };
    let inbox_bucket = stack.bucket(INBOX_BUCKET).map(str::to_owned).ok_or_else(|| format!("template.yaml has no {INBOX_BUCKET}"))?;
    let inbox = vitalwire::inbox::InboxDeps {
        objects: vitalwire::inbox::S3Inbox { client: s3.clone() },
        devices: devices()?,
        observations: observations()?,
        alerts: alert_store()?,
        alert_settings: vitalwire::alerts::AlertSettings::default(),
    };
    let files = gateway.pki.files.clone();
    let tasks = vec![
        spawn_http(iot_listener, crate::gateway::http::router(gateway.clone())),
        tokio::spawn({
            let gateway = gateway.clone();
            async move {
                let _ = gateway.serve(mqtt_listener).await;
            }
        }),
        spawn_http(api_listener, api.router()),
        crate::s3_events::watch_uploads(s3.clone(), bucket, "uploads/", Arc::new(registration), settings.upload_poll),
        crate::s3_events::watch_inbox(s3, inbox_bucket, Arc::new(inbox), settings.upload_poll),
        tokio::spawn({
            // Step and in-progress timeouts of job executions.
            let gateway = gateway.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                    let effects = gateway.jobs.expire_timers();
                    gateway.apply_job_effects(effects).await;
                }
            }
        }),
    ];
    Ok(Platform { gateway, mqtt_port, iot_endpoint, api_url, auth, files, tasks })
}
