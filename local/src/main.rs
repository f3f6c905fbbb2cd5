//! `vitalwire-local`: Vitalwire on this machine.
//!
//! - `vitalwire-local up`: the AWS emulator with the template's tables and the seed devices, and
//!   the IoT gateway (MQTT over mutual TLS, fleet provisioning, Basic Ingest rules), until
//!   Ctrl-C; prints the endpoints and writes them to `<state-dir>/endpoints.json`.
//! - `vitalwire-local invoke <function> --event <file>`: the same, then runs the function's real
//!   binary behind a Lambda Runtime API stand-in with that event, prints its answer and, for an
//!   ingest, the stored FHIR Observation checked by the independent validator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;
use vitalwire::access::Role;
use vitalwire::devices::{Device, DeviceRegistry, DeviceStatus, DynamoDeviceRegistry};
use vitalwire::observations::{DynamoObservationStore, ObservationStore};
use vitalwire::platform::aws;
use vitalwire::platform::tables;
use vitalwire_local::emulator::Emulator;
use vitalwire_local::http_api::LocalAuth;
use vitalwire_local::platform;
use vitalwire_local::runtime_api::RuntimeApi;
use vitalwire_local::stack::LocalStack;
use vitalwire_local::{repo_root, validate_fhir};

#[derive(Parser)]
#[command(version, about = "Runs Vitalwire locally against an AWS emulator")]
struct Cli {
    /// Port of the AWS emulator (0 picks a free one).
    #[arg(long, default_value_t = 0, global = true)]
    aws_port: u16,
    /// Devices to register first (JSON: {"devices": [...]}).
    #[arg(long, global = true, default_value = "events/seed-devices.json")]
    seed: PathBuf,
    /// A template parameter, as `sam deploy --parameter-overrides` gives it: `NAME=VALUE`
    /// (repeatable), e.g. `--parameter IngestPath=queue` for the queued ingest path.
    #[arg(long = "parameter", global = true, value_parser = parse_parameter)]
    parameters: Vec<(String, String)>,
    /// Where the local CA, certificates and endpoints.json live (kept across runs).
    #[arg(long, global = true, default_value = ".local")]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// How `up` writes its log.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

/// Logs what the platform does to standard error (the endpoints stay on standard output):
/// connections and refusals with their reasons, rule runs, provisioning and jobs steps, HTTP API
/// requests by route. Never a payload: they hold patients' values.
fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,vitalwire_local=info,vitalwire=info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false);
    match format {
        LogFormat::Human => builder.compact().with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Start the platform: AWS emulator, tables, seed devices and the IoT gateway (MQTT over
    /// mutual TLS); wait for Ctrl-C.
    Up {
        /// MQTT over TLS port of the IoT gateway.
        #[arg(long, default_value_t = 8883)]
        mqtt_port: u16,
        /// Port of the IoT HTTP APIs (data-plane Publish, control-plane certificates).
        #[arg(long, default_value_t = 8091)]
        iot_http_port: u16,
        /// Port of the platform's HTTP API (the HttpApi routes of template.yaml).
        #[arg(long, default_value_t = 8080)]
        api_port: u16,
        /// The Polaris issuer signs RS256 with the RSA key in the state dir, its public key at
        /// `/.well-known/jwks.json`, instead of HS512 with the shared key.
        #[arg(long)]
        polaris_rs256: bool,
        /// The Polaris issuer (`iss` and `aud` of its tokens), if not the HTTP API's URL with
        /// its `/`: a Polaris deployment's `HS_ISSUER`, for clients that have it built in.
        #[arg(long)]
        polaris_issuer: Option<String>,
        /// Milliseconds the IoT gateway waits before it answers a request on a reserved topic
        /// (provisioning, jobs) or runs a rule, as AWS IoT Core's round trip takes; 0 answers
        /// at once (fast tests; device code that subscribes late may then miss replies).
        #[arg(long, default_value_t = vitalwire_local::gateway::AWS_REPLY_LATENCY.as_millis() as u64)]
        latency: u64,
        /// How the platform logs what it does (to standard error): `human` lines, or one JSON
        /// object per line. `RUST_LOG` sets the levels (default: `info` for the platform).
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
        /// The built clinician console served at `/console/` (relative to the repository, as
        /// `--state-dir`); default `console/dist`, the Vite build `scripts/dev-env.sh` makes.
        #[arg(long)]
        console_dir: Option<PathBuf>,
    },
    /// Mint a JWT for the local HTTP API, signed with the local key; with `--polaris`, a
    /// Polaris-compatibility token (HS512) for the running `up` instead.
    Token {
        /// admin, clinician or patient (platform tokens).
        #[arg(long, required_unless_present = "polaris")]
        role: Option<String>,
        /// The patient a token stands for.
        #[arg(long)]
        patient_id: Option<String>,
        /// A Polaris token, with the ids given (`--patient-id`, `--clinician-id`, `--system-id`)
        /// and `--scope`.
        #[arg(long)]
        polaris: bool,
        #[arg(long, requires = "polaris")]
        clinician_id: Option<String>,
        #[arg(long, requires = "polaris")]
        system_id: Option<String>,
        /// Space-separated scopes of a Polaris token, e.g. "read:gdm_message write:gdm_message".
        #[arg(long, requires = "polaris", default_value = "")]
        scope: String,
        #[arg(long, default_value = "local-user")]
        subject: String,
        #[arg(long, default_value_t = 60)]
        minutes: i64,
    },
    /// Print a device's stored FHIR Observations, newest first, from a running `up`.
    Observations {
        /// The device's thing name.
        #[arg(long)]
        device: String,
        #[arg(long, default_value_t = 20)]
        limit: i32,
    },
    /// Drop a reading file into the inbox bucket of a running `up` (as `inbox/<file name>`).
    InboxDrop {
        file: PathBuf,
    },
    /// List the inbox bucket of a running `up` (`inbox/`, `archive/`, `failed/`).
    InboxList {
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Run one function, as its deployed binary (`vitalwire-lambda-<bundle>`), with one event.
    Invoke {
        /// The function's registry name (its `Handler` in template.yaml), e.g. fhir-ingest.
        function: String,
        /// The event file, e.g. events/fhir-ingest.json.
        #[arg(long)]
        event: PathBuf,
        /// Where the function binaries are (default: the cargo target dir's debug folder).
        #[arg(long)]
        bin_dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    vitalwire_local::gateway::install_default_provider();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vitalwire-local: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

async fn run(cli: Cli) -> Result<ExitCode, AnyError> {
    if let Command::Up { log_format, .. } = &cli.command {
        init_logging(*log_format);
    }
    if let Command::Observations { device, limit } = &cli.command {
        return print_device_observations(&repo_root().join(&cli.state_dir), device, *limit).await;
    }
    if let Command::InboxDrop { file } = &cli.command {
        let s3 = aws::s3(&running_config(&repo_root().join(&cli.state_dir)).await?);
        let name = file.file_name().and_then(|n| n.to_str()).ok_or("the file has no name")?;
        let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let key = format!("{}{name}", vitalwire::ingest::inbox::INBOX_PREFIX);
        s3.put_object().bucket(local_inbox_bucket()).key(&key).content_type("application/json").body(body.into()).send().await?;
        println!("Dropped {} as s3://{}/{key}", file.display(), local_inbox_bucket());
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::InboxList { prefix } = &cli.command {
        let s3 = aws::s3(&running_config(&repo_root().join(&cli.state_dir)).await?);
        let listed = s3.list_objects_v2().bucket(local_inbox_bucket()).prefix(prefix).send().await?;
        for object in listed.contents() {
            println!("{:>10}  {}", object.size().unwrap_or(0), object.key().unwrap_or_default());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Token { role, patient_id, polaris, clinician_id, system_id, scope, subject, minutes } = &cli.command {
        let state_dir = repo_root().join(&cli.state_dir);
        if *polaris {
            let endpoints = read_endpoints(&state_dir)?;
            let (key, issuer) = (endpoints["polarisHsKey"].as_str(), endpoints["polarisIssuer"].as_str());
            let (Some(key), Some(issuer)) = (key, issuer) else { return Err("endpoints.json has no polarisHsKey (restart `vitalwire-local up`)".into()) };
            let ids: Vec<(&str, &str)> = [("patient_id", patient_id), ("clinician_id", clinician_id), ("system_id", system_id)]
                .into_iter()
                .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
                .collect();
            let rs256 = endpoints["polarisAlgorithm"].as_str() == Some("RS256");
            let rsa_pem = if rs256 { std::fs::read_to_string(state_dir.join("auth/polaris-rs256.pem"))? } else { String::new() };
            let jwks_url = endpoints["polarisJwksUrl"].as_str().unwrap_or_default().to_owned();
            let compat = vitalwire_local::http_api::PolarisCompat { key: key.to_owned(), issuer: issuer.to_owned(), rsa_pem, rs256, jwks_url };
            println!("{}", compat.mint(&ids, scope, *minutes)?);
            return Ok(ExitCode::SUCCESS);
        }
        let role = role.as_deref().and_then(Role::parse).ok_or("--role must be admin, clinician or patient")?;
        let auth = LocalAuth::load_or_create(&state_dir.join("auth"))?;
        println!("{}", auth.mint(subject, role, patient_id.as_deref(), *minutes)?);
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!("starting the AWS emulator (moto)");
    let emulator = Emulator::start(cli.aws_port)?;
    tracing::info!(endpoint = %emulator.endpoint(), "AWS emulator ready");
    let aws_env = emulator.aws_environment();
    for (k, v) in &aws_env {
        // Set before any client exists, on the main thread: our own clients read them too.
        std::env::set_var(k, v);
    }
    let config = aws::load_config().await;
    let dynamodb = aws::dynamodb(&config);
    let template = cli.parameters.iter().try_fold(LocalStack::template()?, |template, (name, value)| {
        if template.parameter_default(name).is_none() {
            return Err(format!("template.yaml has no parameter {name} with a default"));
        }
        Ok(template.with_parameter(name, value))
    })?;
    let stack = LocalStack::create(&config, template, "").await?;
    let devices_table = stack.table(tables::DEVICES.logical_id).ok_or("template has no DevicesTable")?;
    let registry = DynamoDeviceRegistry::new(dynamodb.clone(), devices_table);
    let seeded = seed_devices(&registry, &repo_root().join(&cli.seed)).await?;
    tracing::info!(tables = stack.tables.len(), seed_devices = seeded.len(), "tables and buckets of template.yaml created, seed devices registered");

    match cli.command {
        Command::Up { mqtt_port, iot_http_port, api_port, polaris_rs256, polaris_issuer, latency, console_dir, .. } => {
            let state_dir = repo_root().join(&cli.state_dir);
            let localhost = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let settings = platform::Settings {
                state_dir: state_dir.clone(),
                mqtt: localhost(mqtt_port),
                iot_http: localhost(iot_http_port),
                api: localhost(api_port),
                token_lifetime: None,
                reply_latency: std::time::Duration::from_millis(latency),
                keep_alive_floor: vitalwire_local::gateway::AWS_MINIMUM_KEEP_ALIVE,
                upload_poll: std::time::Duration::from_millis(500),
                polaris_rs256,
                polaris_issuer,
                schedule_tick: Some(std::time::Duration::from_secs(2)),
                console_dir: console_dir.map_or_else(vitalwire_local::console::default_dir, |d| repo_root().join(d)),
            };
            let running = platform::start(&stack, &config, settings).await?;
            let (mqtt_port, iot_endpoint, api_url, files) =
                (running.mqtt_port, &running.iot_endpoint, &running.api_url, &running.files);
            let endpoints = serde_json::json!({
                "mqttHost": "localhost",
                "mqttPort": mqtt_port,
                "caPath": files.ca,
                "claimCertificatePath": files.claim_cert,
                "claimKeyPath": files.claim_key,
                "awsEndpoint": emulator.endpoint(),
                "iotEndpoint": iot_endpoint,
                "httpApiUrl": api_url,
                "provisioningTemplate": "DefaultProvisioningTemplate",
                // Polaris clients mint their own tokens with these (HS_KEY, HS_ISSUER).
                "polarisHsKey": running.polaris.key,
                "polarisIssuer": running.polaris.issuer,
                "polarisAudience": running.polaris.issuer,
                "polarisAlgorithm": if running.polaris.rs256 { "RS256" } else { "HS512" },
                "polarisJwksUrl": running.polaris.jwks_url,
                // The alert sweep's clock (POST {"advanceMinutes": n}) and what it sent.
                "clockUrl": format!("{api_url}/local/clock"),
                "outboxUrl": format!("{api_url}/local/outbox"),
                // The clinician console, signing in through the local stand-in for Cognito.
                "consoleUrl": running.console_url,
            });
            // It names the Polaris key: the owner's only, like the keys.
            vitalwire_local::private_file::write(&state_dir.join("endpoints.json"), serde_json::to_string_pretty(&endpoints)?.as_bytes())?;
            println!("IoT gateway (MQTT 3.1.1 and 5 over mutual TLS): localhost:{mqtt_port}");
            println!("  CA: {}", files.ca.display());
            println!("  claim certificate: {}", files.claim_cert.display());
            println!("  claim key: {}", files.claim_key.display());
            println!("  written to {}", state_dir.join("endpoints.json").display());
            println!("HTTP API: {api_url} (tokens: vitalwire-local token --role admin)");
            println!("  alert sweep every 2 s; move its clock: POST {api_url}/local/clock {{\"advanceMinutes\": 15}}; sent SMS and email: GET {api_url}/local/outbox");
            println!("Clinician console: {} (sign in with any user name, as clinician or admin)", running.console_url);
            println!("AWS emulator: {}", emulator.endpoint());
            println!("Tables: {}", stack.tables.values().cloned().collect::<Vec<_>>().join(", "));
            println!("Seed devices: {}", seeded.join(", "));
            println!("Environment for functions and tools:");
            for (k, v) in aws_env.iter().map(|(k, v)| (k.to_string(), v.clone())) {
                println!("  export {k}={v}");
            }
            println!("  export AWS_ENDPOINT_URL_IOT={iot_endpoint}");
            println!("  export AWS_ENDPOINT_URL_IOT_DATA_PLANE={iot_endpoint}");
            for spec in tables::ALL {
                if let Some(name) = stack.table(spec.logical_id) {
                    println!("  export {}={name}", spec.env_var);
                }
            }
            println!("Ctrl-C stops everything.");
            tokio::signal::ctrl_c().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Observations { .. } | Command::Token { .. } | Command::InboxDrop { .. } | Command::InboxList { .. } => {
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke { function, event, bin_dir } => {
            let definition = stack.function(&function).ok_or_else(|| format!("template.yaml has no function with Handler {function}"))?;
            let mut env = stack.function_env(&definition)?;
            env.extend(aws_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
            let bundle = vitalwire::wiring::functions::bundle_of(&function).ok_or_else(|| format!("no function {function} in the registry"))?;
            let binary = bin_dir.unwrap_or_else(default_bin_dir).join(bundle.binary);
            let payload = std::fs::read(repo_root().join(&event)).map_err(|e| format!("{}: {e}", event.display()))?;
            let api = RuntimeApi::start().await?;
            let _process = api
                .spawn_function(&binary, &function, &env)
                .map_err(|e| format!("cannot start {}: {e} (build it: cargo build -p vitalwire-functions)", binary.display()))?;
            let answer = api.invoke(payload, Duration::from_secs(30)).await?;
            let answer: Value = serde_json::from_slice(&answer)?;
            println!("{function} answered:\n{}", serde_json::to_string_pretty(&answer)?);
            print_observation(&stack, dynamodb, &answer).await
        }
    }
}

/// Reads the Observations of a device from the emulator of a running `vitalwire-local up`.
/// The inbox bucket as the local stack names it (no prefix, lower case).
fn local_inbox_bucket() -> String {
    vitalwire_local::platform::INBOX_BUCKET.to_lowercase()
}

/// The `endpoints.json` of a running `up`.
fn read_endpoints(state_dir: &Path) -> Result<Value, AnyError> {
    let endpoints_file = state_dir.join("endpoints.json");
    let bytes = std::fs::read(&endpoints_file).map_err(|e| format!("{}: {e} (is `vitalwire-local up` running?)", endpoints_file.display()))?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// The AWS configuration of a running `up`, from its `endpoints.json`.
async fn running_config(state_dir: &Path) -> Result<aws_config::SdkConfig, AnyError> {
    let endpoints = read_endpoints(state_dir)?;
    let endpoint = endpoints["awsEndpoint"].as_str().ok_or("endpoints.json has no awsEndpoint")?;
    std::env::set_var("AWS_ENDPOINT_URL", endpoint);
    for (k, v) in [("AWS_REGION", "us-east-1"), ("AWS_ACCESS_KEY_ID", "vitalwire-local"), ("AWS_SECRET_ACCESS_KEY", "vitalwire-local")] {
        std::env::set_var(k, v);
    }
    Ok(aws::load_config().await)
}

async fn print_device_observations(state_dir: &Path, device: &str, limit: i32) -> Result<ExitCode, AnyError> {
    let config = running_config(state_dir).await?;
    let store = DynamoObservationStore::new(aws::dynamodb(&config), tables::OBSERVATIONS.logical_id);
    let found = store.for_device(device, limit).await?;
    println!("{} Observation(s) of device {device}, newest first:", found.len());
    for o in found {
        println!("{}", o.resource);
    }
    Ok(ExitCode::SUCCESS)
}

fn default_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target")).join("debug")
}

async fn print_observation(stack: &LocalStack, dynamodb: aws_sdk_dynamodb::Client, answer: &Value) -> Result<ExitCode, AnyError> {
    let Some(id) = answer.get("observationId").and_then(Value::as_str) else {
        return Ok(ExitCode::SUCCESS);
    };
    let table = stack.table(tables::OBSERVATIONS.logical_id).ok_or("template has no ObservationsTable")?;
    let store = DynamoObservationStore::new(dynamodb, table);
    let stored = store.get(id).await?.ok_or_else(|| format!("observation {id} is not in {table}"))?;
    // Printed exactly as stored: re-serializing would reorder keys and re-format decimals.
    println!("Stored Observation (table {table}):\n{}", stored.resource);
    match validate_fhir(&stored.resource) {
        Ok(()) => {
            println!("FHIR R4 validation (official JSON schema + fhir.resources): valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(report) => {
            println!("FHIR R4 validation failed:\n{report}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Registers the seed devices; returns their thing names.
async fn seed_devices(registry: &DynamoDeviceRegistry, path: &Path) -> Result<Vec<String>, AnyError> {
    let seed: Value = serde_json::from_slice(&std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?)?;
    let now = vitalwire::platform::time::format_utc(chrono::Utc::now());
    let mut names = Vec::new();
    for d in seed.get("devices").and_then(Value::as_array).into_iter().flatten() {
        let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        let required = |k: &str| text(k).ok_or_else(|| format!("{}: a device has no {k}", path.display()));
        let status = text("status").unwrap_or_else(|| "ACTIVE".into());
        let device = Device {
            thing_name: required("thingName")?,
            serial_number: required("serialNumber")?,
            manufacturer: required("manufacturer")?,
            model: text("model").unwrap_or_default(),
            display_name: text("displayName").unwrap_or_default(),
            patient_id: text("patientId"),
            may_name_patient: d.get("mayNamePatient").and_then(Value::as_bool).unwrap_or(false),
            status: DeviceStatus::parse(&status).ok_or_else(|| format!("unknown status {status}"))?,
            certificate_id: None,
            certificate_bound_at: None,
            firmware: None,
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        registry.put(&device).await?;
        names.push(device.thing_name);
    }
    Ok(names)
}

/// `NAME=VALUE` of `--parameter`.
fn parse_parameter(text: &str) -> Result<(String, String), String> {
    text.split_once('=').map(|(n, v)| (n.to_owned(), v.to_owned())).ok_or_else(|| format!("{text}: expected NAME=VALUE"))
}
