//! Checks what `sam build` made (`scripts/check-sam-build.sh` runs it): every function of
//! `template.yaml` has a package in the build dir holding an executable `bootstrap`, at most
//! 5 MB once zipped as `sam deploy` zips it, and each package starts and polls the local Lambda
//! Runtime API stand-in with the settings the template gives its function, as Lambda starts it.
//!
//!     cargo run -p vitalwire-tests --bin sam-packages -- BUILD_DIR [--runner "qemu-aarch64 -L /usr/aarch64-linux-gnu"]
//!
//! `--runner` starts each `bootstrap` through an emulator: the arm64 packages on an x86_64
//! machine. Exits non-zero, naming each function that fails a check.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::write::DeflateEncoder;
use flate2::Compression;
use vitalwire_tests::lambda_start::{one_start, settings_from_template};

/// Lambda's limit is 50 MB zipped; the platform's own goal (issue 17) is 5 MB.
const MAX_ZIPPED_BYTES: u64 = 5_000_000;
/// Generous: an emulated arm64 start takes a few hundred milliseconds here.
const WAIT: Duration = Duration::from_secs(30);

/// The package's size zipped as `sam deploy` zips it (Python's zipfile, deflate at its default
/// level 6), without the zip format's headers of a few dozen bytes a file.
fn zipped_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        total += if path.is_dir() {
            zipped_bytes(&path)?
        } else {
            let mut encoder = DeflateEncoder::new(Vec::new(), Compression::new(6));
            encoder.write_all(&std::fs::read(&path)?)?;
            encoder.finish()?.len() as u64
        };
    }
    Ok(total)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let runner: Vec<String> = match args.iter().position(|a| a == "--runner") {
        Some(at) if at + 1 < args.len() => args.drain(at..=at + 1).nth(1).unwrap_or_default().split_whitespace().map(str::to_owned).collect(),
        Some(_) => return Err("--runner takes a command, e.g. \"qemu-aarch64 -L /usr/aarch64-linux-gnu\"".into()),
        None => Vec::new(),
    };
    let build_dir = PathBuf::from(args.first().ok_or("usage: sam-packages BUILD_DIR [--runner COMMAND]")?);
    let template = vitalwire_local::stack::LocalStack::template()?;
    let functions = template.functions();
    let (mut failures, mut starts, mut largest) = (Vec::new(), Vec::new(), 0);
    for function in &functions {
        let id = &function.logical_id;
        let bootstrap = build_dir.join(id).join("bootstrap");
        let executable = std::fs::metadata(&bootstrap).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false);
        if !executable {
            failures.push(format!("{id}: no executable {}", bootstrap.display()));
            continue;
        }
        let zipped = zipped_bytes(&build_dir.join(id))?;
        largest = largest.max(zipped);
        if zipped > MAX_ZIPPED_BYTES {
            failures.push(format!("{id}: its package is {zipped} bytes zipped, over {MAX_ZIPPED_BYTES}"));
        }
        let mut command = match runner.split_first() {
            Some((program, runner_args)) => {
                let mut command = tokio::process::Command::new(program);
                command.args(runner_args).arg(&bootstrap);
                command
            }
            None => tokio::process::Command::new(&bootstrap),
        };
        command.stdout(std::process::Stdio::null());
        match one_start(command, &settings_from_template(&template, function), WAIT).await {
            Ok((time, _)) => starts.push(time),
            Err(e) => failures.push(format!("{id} ({}): {e}", function.handler.as_deref().unwrap_or("no Handler"))),
        }
    }
    starts.sort();
    println!(
        "{} functions in template.yaml; {} packages started and polled the Runtime API{}; the largest package is {:.2} MB zipped",
        functions.len(),
        starts.len(),
        match (starts.get(starts.len() / 2), starts.last()) {
            (Some(median), Some(max)) => format!(" (start to first poll: median {median:?}, slowest {max:?})"),
            _ => String::new(),
        },
        largest as f64 / 1e6
    );
    if failures.is_empty() {
        return Ok(());
    }
    for failure in &failures {
        eprintln!("FAILED {failure}");
    }
    Err(format!("{} of {} functions failed the package check", failures.len(), functions.len()).into())
}
