//! The whole local platform wired once, as `template.yaml` wires it on AWS: every function of
//! the registry built with its template settings ([`crate::functions`]), the IoT gateway (MQTT
//! over mutual TLS) running the rule and provisioning functions, the IoT HTTP APIs, the HTTP
//! API routes, and the S3 events. `vitalwire-local up` and the integration tests both start it
//! here, so the tests exercise what developers run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use vitalwire::platform::aws::AwsClients;
use vitalwire::wiring::Trigger;

use crate::functions::LocalFunctions;
use crate::gateway::pki::PkiFiles;
use crate::gateway::{Gateway, GatewayConfig};
use crate::http_api::{LocalApi, LocalAuth, PolarisCompat};
use crate::stack::LocalStack;

/// The bucket gateways drop reading files into (logical id in `template.yaml`).
pub const INBOX_BUCKET: &str = "InboxBucket";

/// Where the platform listens and keeps its state.
pub struct Settings {
    /// CA, certificates (`certs/`) and the JWT signing key (`auth/`).
    pub state_dir: PathBuf,
    pub mqtt: SocketAddr,
    pub iot_http: SocketAddr,
    pub api: SocketAddr,
    /// Ownership-token lifetime (one hour unless a test shortens it).
    pub token_lifetime: Option<Duration>,
    /// The IoT gateway's pause before replies and rule runs (`gateway::AWS_REPLY_LATENCY`).
    pub reply_latency: Duration,
    /// The shortest keep-alive the gateway applies (`gateway::AWS_MINIMUM_KEEP_ALIVE`).
    pub keep_alive_floor: u16,
    /// How often the uploads and inbox prefixes are checked for new objects.
    pub upload_poll: Duration,
    /// The Polaris issuer signs RS256 (its keys published at `/.well-known/jwks.json`), not HS512.
    pub polaris_rs256: bool,
    /// The Polaris issuer, if not the HTTP API's URL with its `/`.
    pub polaris_issuer: Option<String>,
    /// How often scheduled functions (the alert sweep) run by themselves; none: only when the
    /// clock is moved (`POST /local/clock`), as tests want.
    pub schedule_tick: Option<Duration>,
    /// The built clinician console served at `/console/` ([`crate::console::default_dir`] for
    /// `up`; tests point it at a directory of their own).
    pub console_dir: PathBuf,
}

/// A running local platform; dropping it stops its servers.
pub struct Platform {
    pub gateway: Arc<Gateway>,
    pub mqtt_port: u16,
    /// Base URL of the IoT HTTP APIs.
    pub iot_endpoint: String,
    /// Base URL of the HTTP API.
    pub api_url: String,
    /// The clinician console's URL (`<api_url>/console/`).
    pub console_url: String,
    /// Mints tokens the HTTP API accepts.
    pub auth: LocalAuth,
    /// Mints Polaris-compatibility tokens the HTTP API accepts.
    pub polaris: PolarisCompat,
    pub files: PkiFiles,
    /// The time every function goes by; tests and `POST /local/clock` move it.
    pub clock: vitalwire::platform::time::Clock,
    /// Runs the scheduled functions.
    pub scheduler: Arc<crate::scheduler::Scheduler>,
    /// What the functions' metrics would be on CloudWatch (`GET /local/metrics`).
    pub metrics: Arc<crate::metrics::LocalMetrics>,
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
    // The IoT HTTP endpoint and the HTTP API are bound first: functions reply to devices and
    // switch certificates through the one, and fetch the token keys from the other, as they
    // reach IoT Core and Cognito on AWS.
    let iot_listener = bind(settings.iot_http, "--iot-http-port").await?;
    let iot_endpoint = format!("http://{}", iot_listener.local_addr().map_err(|e| e.to_string())?);
    let api_listener = bind(settings.api, "--api-port").await?;
    let api_url = format!("http://{}", api_listener.local_addr().map_err(|e| e.to_string())?);
    let auth = LocalAuth::load_or_create(&settings.state_dir.join("auth"))?;

    let aws = AwsClients::new(config.clone(), Some(iot_endpoint.clone()));
    // The settings whose template values name what exists only on AWS (the Cognito user pool),
    // or that a deployer sets (the Polaris issuer).
    let polaris = PolarisCompat::load_or_create(&settings.state_dir.join("auth"), stack, config, &api_url, settings.polaris_issuer.as_deref(), settings.polaris_rs256).await?;
    let overrides: BTreeMap<String, String> = LocalAuth::authorizer_settings(&api_url)
        .into_iter()
        .chain(polaris.settings())
        // Answer links in patients' SMS and email point at the local HTTP API.
        .chain([("ANSWER_LINK_BASE_URL".to_owned(), api_url.clone())])
        .collect();
    let clock = vitalwire::platform::time::Clock::controllable();
    let metrics = Arc::new(crate::metrics::LocalMetrics::default());
    let functions = LocalFunctions::build(stack, &aws, &overrides, &clock, &metrics)?;
    let alerts_table = stack.table(vitalwire::platform::tables::ALERTS.logical_id).ok_or("template.yaml has no AlertsTable")?.to_owned();
    let scheduler = crate::scheduler::Scheduler::new(functions.clone(), clock.clone(), aws.dynamodb(), alerts_table);

    let gateway = Gateway::new(
        GatewayConfig { certs_dir: settings.state_dir.join("certs"), token_lifetime: settings.token_lifetime, reply_latency: settings.reply_latency, keep_alive_floor: settings.keep_alive_floor },
        functions.clone(),
        stack,
        &aws,
    )
    .map_err(|e| e.to_string())?;
    let mqtt_listener = bind(settings.mqtt, "--mqtt-port").await?;
    let mqtt_port = mqtt_listener.local_addr().map_err(|e| e.to_string())?.port();
    let api = LocalApi::new(functions.clone(), auth.jwks.clone())?;
    // The console and its sign-in on the API's origin, as Cognito's hosted UI and the console's
    // bucket are reached from the browser on AWS.
    let hosted_ui = crate::hosted_ui::HostedUi::new(auth.clone(), &api_url)?;
    let console = crate::console::Console::new(settings.console_dir.clone(), &api_url);
    let console_url = format!("{api_url}{}", crate::hosted_ui::CONSOLE_PATH);

    let files = gateway.pki.files.clone();
    let mut tasks = vec![
        spawn_http(iot_listener, crate::gateway::http::router(gateway.clone())),
        tokio::spawn({
            let gateway = gateway.clone();
            async move {
                let _ = gateway.serve(mqtt_listener).await;
            }
        }),
        spawn_http(api_listener, api.router().merge(scheduler.router()).merge(metrics.router()).merge(hosted_ui.router()).merge(console.router())),
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
    // S3 events: each function's bucket and prefix, as the template's notifications deliver them.
    for spec in functions.triggered_by(|t| matches!(t, Trigger::S3ObjectCreated { .. })) {
        let Trigger::S3ObjectCreated { bucket, prefix } = spec.trigger else { continue };
        let bucket = stack.bucket(bucket).map(str::to_owned).ok_or_else(|| format!("template.yaml has no bucket {bucket}"))?;
        tasks.push(crate::s3_events::watch(aws.s3(), bucket, prefix, functions.clone(), spec.name, settings.upload_poll));
    }
    // SQS event sources: each function's queue, polled as Lambda's event source mapping does.
    for spec in functions.triggered_by(|t| matches!(t, Trigger::Sqs { .. })) {
        let Trigger::Sqs { queue } = spec.trigger else { continue };
        let url = stack.queues.get(queue).cloned().ok_or_else(|| format!("template.yaml has no queue {queue}"))?;
        tasks.push(crate::sqs_events::poll(aws.sqs(), url, functions.clone(), spec.name, settings.upload_poll.max(Duration::from_secs(1))));
    }
    if let Some(tick) = settings.schedule_tick {
        tasks.push(scheduler.spawn(tick));
    }
    Ok(Platform { gateway, mqtt_port, iot_endpoint, api_url, console_url, auth, polaris, files, clock, scheduler, metrics, tasks })
}
