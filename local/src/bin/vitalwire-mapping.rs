//! `vitalwire-mapping`: IoMT device-mapping and FHIR-mapping templates (the IoMT FHIR
//! connector's, Azure MedTech's) tried offline, for operators.
//!
//!     vitalwire-mapping validate --device-mapping D.json [--fhir-mapping F.json]
//!     vitalwire-mapping normalize --device-mapping D.json [--wrap] MESSAGE.json...
//!     vitalwire-mapping convert --device-mapping D.json --fhir-mapping F.json [--patient-id P] [--wrap] MESSAGE.json...
//!
//! Results (JSON) go to stdout, diagnostics to stderr; the exit status is 1 when a template
//! has errors or a message or group was refused.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use vitalwire::mapping::debugger::{self, ConvertOptions, Message, Report};

#[derive(Parser)]
#[command(version, about = "Try IoMT FHIR connector (MedTech) mapping templates on messages, offline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Messages {
    /// Message files: one message in the connector's envelope {"Body", "Properties",
    /// "SystemProperties"}, a JSON array of messages, or NDJSON.
    #[arg(required = true)]
    messages: Vec<PathBuf>,
    /// The files hold bare device JSON: wrap each message as {"Body": ...}.
    #[arg(long)]
    wrap: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Check the templates: every error with file, line and column.
    Validate {
        #[arg(long = "device-mapping")]
        device_mapping: PathBuf,
        #[arg(long = "fhir-mapping")]
        fhir_mapping: Option<PathBuf>,
    },
    /// Messages to normalized measurements (a JSON array on stdout).
    Normalize {
        #[arg(long = "device-mapping")]
        device_mapping: PathBuf,
        #[command(flatten)]
        messages: Messages,
    },
    /// Messages to FHIR Observations (a Bundle of type collection on stdout), grouped and
    /// merged across all the messages given.
    Convert {
        #[arg(long = "device-mapping")]
        device_mapping: PathBuf,
        #[arg(long = "fhir-mapping")]
        fhir_mapping: PathBuf,
        /// Resolve identities as Lookup would for devices assigned to this patient; without
        /// it, as Create would from the measurements' patient ids.
        #[arg(long = "patient-id")]
        patient_id: Option<String>,
        /// The connector's DefaultDeviceIdentifierSystem.
        #[arg(long = "device-system")]
        device_system: Option<String>,
        /// The Observations' `issued` (default: now), for reproducible output.
        #[arg(long)]
        issued: Option<chrono::DateTime<chrono::Utc>>,
        #[command(flatten)]
        messages: Messages,
    },
}

fn read(path: &Path, report: &mut Report) -> Option<String> {
    std::fs::read_to_string(path).map_err(|e| report.fail(format!("{}: {e}", path.display()))).ok()
}

fn messages(given: &Messages, report: &mut Report) -> Vec<Message> {
    let mut all = Vec::new();
    for path in &given.messages {
        let Some(text) = read(path, report) else { continue };
        match debugger::read_messages(path, &text, given.wrap) {
            Ok(mut found) => all.append(&mut found),
            Err(e) => report.fail(e),
        }
    }
    all
}

async fn run(command: Command) -> Report {
    let mut report = Report::default();
    match command {
        Command::Validate { device_mapping, fhir_mapping } => {
            let Some(device) = read(&device_mapping, &mut report) else { return report };
            let fhir = match &fhir_mapping {
                Some(path) => match read(path, &mut report) {
                    Some(text) => Some((path.as_path(), text)),
                    None => return report,
                },
                None => None,
            };
            return debugger::validate((&device_mapping, &device), fhir.as_ref().map(|(p, t)| (*p, t.as_str())));
        }
        Command::Normalize { device_mapping, messages: given } => {
            let Some(text) = read(&device_mapping, &mut report) else { return report };
            let Some(mapping) = debugger::load_device_mapping(&mut report, &device_mapping, &text) else { return report };
            let messages = messages(&given, &mut report);
            let measurements = debugger::normalize(&mapping, &messages, &mut report);
            report.stdout = serde_json::to_string_pretty(&measurements).unwrap_or_default();
        }
        Command::Convert { device_mapping, fhir_mapping, patient_id, device_system, issued, messages: given } => {
            let (Some(device), Some(fhir)) = (read(&device_mapping, &mut report), read(&fhir_mapping, &mut report)) else { return report };
            let mapping = debugger::load_device_mapping(&mut report, &device_mapping, &device);
            let fhir = debugger::load_fhir_mapping(&mut report, &fhir_mapping, &fhir);
            let (Some(mapping), Some(fhir)) = (mapping, fhir) else { return report };
            let messages = messages(&given, &mut report);
            let measurements = debugger::normalize(&mapping, &messages, &mut report);
            let options = ConvertOptions { patient_id, device_system, issued: issued.unwrap_or_else(chrono::Utc::now) };
            report.stdout = debugger::convert_measurements(&fhir, &measurements, &options, &mut report).await;
        }
    }
    report
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let report = run(Cli::parse().command).await;
    for line in &report.diagnostics {
        eprintln!("{line}");
    }
    if !report.stdout.is_empty() {
        println!("{}", report.stdout);
    }
    if report.failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
