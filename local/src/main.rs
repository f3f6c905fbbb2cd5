//! `vitalwire-local`: Vitalwire on this machine.
//!
//! - `vitalwire-local up`: the AWS emulator with the template's tables and the seed devices,
//!   until Ctrl-C; prints the environment that points functions and tools at it.
//! - `vitalwire-local invoke <function> --event <file>`: the same, then runs the function's real
//!   binary behind a Lambda Runtime API stand-in with that event, prints its answer and, for an
//!   ingest, the stored FHIR Observation checked by the independent validator.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;
use vitalwire::devices::{Device, DeviceRegistry, DeviceStatus, DynamoDeviceRegistry};
use vitalwire::observations::{DynamoObservationStore, ObservationStore};
use vitalwire::tables;
use vitalwire_local::emulator::Emulator;
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the emulator with tables and seed devices, and wait for Ctrl-C.
    Up,
    /// Run one function binary with one event.
    Invoke {
        /// The function's binary name, e.g. fhir-ingest.
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
    let emulator = Emulator::start(cli.aws_port)?;
    let aws_env = emulator.aws_environment();
    for (k, v) in &aws_env {
        // Set before any client exists, on the main thread: our own clients read them too.
        std::env::set_var(k, v);
    }
    let config = vitalwire::aws::load_config().await;
    let dynamodb = vitalwire::aws::dynamodb(&config);
    let stack = LocalStack::create(&dynamodb, LocalStack::template()?, "").await?;
    let devices_table = stack.table(tables::DEVICES.logical_id).ok_or("template has no DevicesTable")?;
    let registry = DynamoDeviceRegistry::new(dynamodb.clone(), devices_table);
    let seeded = seed_devices(&registry, &repo_root().join(&cli.seed)).await?;

    match cli.command {
        Command::Up => {
            println!("AWS emulator: {}", emulator.endpoint());
            println!("Tables: {}", stack.tables.values().cloned().collect::<Vec<_>>().join(", "));
            println!("Seed devices: {}", seeded.join(", "));
            println!("Environment for functions and tools:");
            for (k, v) in aws_env.iter().map(|(k, v)| (k.to_string(), v.clone())) {
                println!("  export {k}={v}");
            }
            for spec in tables::ALL {
                if let Some(name) = stack.table(spec.logical_id) {
                    println!("  export {}={name}", spec.env_var);
                }
            }
            println!("Ctrl-C stops everything.");
            tokio::signal::ctrl_c().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Invoke { function, event, bin_dir } => {
            let definition = stack.function(&function).ok_or_else(|| format!("template.yaml has no function with binary {function}"))?;
            let mut env = stack.function_env(&definition)?;
            env.extend(aws_env.iter().map(|(k, v)| (k.to_string(), v.clone())));
            let binary = bin_dir.unwrap_or_else(default_bin_dir).join(&function);
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
    let now = vitalwire::time::format_utc(chrono::Utc::now());
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
            created_at: now.clone(),
            updated_at: now.clone(),
        };
        registry.put(&device).await?;
        names.push(device.thing_name);
    }
    Ok(names)
}
