//! Measures a function's cold start: from process spawn to its first request to the Lambda
//! Runtime API (the end of its init phase), against the local Runtime API stand-in. Also
//! reports the binary's size and its resident memory at that point.
//!
//!     cargo build --release -p vitalwire-functions
//!     cargo run --release -p vitalwire-tests --bin cold-start -- [BINARY] [RUNS] [--function NAME] [--python-peer] [--memory-map]
//!
//! NAME (the registry entry, the template's `Handler`) defaults to `fhir-ingest`, BINARY to the
//! release build of its bundle's binary (`<target>/release/vitalwire-lambda-ingest`), RUNS to
//! 30. The function gets every setting `template.yaml` gives it, as the local runner does (a
//! resource's name where AWS would put its name or ARN). Its AWS clients are built during init
//! but make no network call until the first event, so no emulator is needed; the endpoint below
//! is never contacted.

use std::path::PathBuf;
use std::time::Duration;

use vitalwire_tests::lambda_start::{function_named, one_start, one_start_then, resident_by_mapping, settings_from_template};

/// How long one start may take before the measurement fails.
const WAIT: Duration = Duration::from_secs(30);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Median, p90 and the resident memory of the median run, as one line.
fn summary(what: &str, mut runs: Vec<(Duration, Option<(u64, u64)>)>) -> (Duration, String) {
    runs.sort_by_key(|(time, _)| *time);
    let times: Vec<Duration> = runs.iter().map(|(t, _)| *t).collect();
    let mut memory: Vec<(u64, u64)> = runs.iter().filter_map(|(_, m)| *m).collect();
    memory.sort_unstable();
    let median = percentile(&times, 0.5);
    let mut line = format!(
        "{what}: cold start to first Runtime API poll over {} runs: min {:?}, median {median:?}, p90 {:?}, max {:?}",
        times.len(),
        times[0],
        percentile(&times, 0.9),
        times[times.len() - 1]
    );
    if let Some((all, own)) = memory.get(memory.len() / 2) {
        line += &format!("\n{what}: resident memory at first poll: median {:.2} MiB ({:.2} MiB of it the process's own, the rest pages of the binary and libraries)", *all as f64 / 1024.0, *own as f64 / 1024.0);
    }
    (median, line)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--python-peer`: alternate each run with the Python 3 + boto3 function of the same shape
    // (`harness/peer/python_boto3_bootstrap.py`), so both see the same machine, and give the ratio.
    let versus_python = args.iter().any(|a| a == "--python-peer");
    // `--memory-map`: one more start, its resident memory listed by mapping (binary, libraries,
    // heap) at the first poll, to see where memory goes (docs/benchmarks.md).
    let memory_map = args.iter().any(|a| a == "--memory-map");
    args.retain(|a| a != "--python-peer" && a != "--memory-map");
    let function = match args.iter().position(|a| a == "--function") {
        Some(at) if at + 1 < args.len() => args.drain(at..=at + 1).nth(1).unwrap_or_default(),
        Some(_) => return Err("--function takes the registry name of a function, e.g. fhir-ingest".into()),
        None => "fhir-ingest".to_owned(),
    };
    let mut args = args.into_iter();
    let bundle = vitalwire::wiring::functions::bundle_of(&function).ok_or_else(|| format!("no function {function} in the registry"))?;
    let binary = args.next().map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| vitalwire_local::repo_root().join("target")).join("release").join(bundle.binary)
    });
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(30);
    let size = std::fs::metadata(&binary).map_err(|e| format!("{}: {e}", binary.display()))?.len();
    let template = vitalwire_local::stack::LocalStack::template()?;
    let env = settings_from_template(&template, &function_named(&template, &function)?);
    let peer_script = vitalwire_local::repo_root().join("tests/harness/peer/python_boto3_bootstrap.py");
    let (mut rust, mut python) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        rust.push(one_start(tokio::process::Command::new(&binary), &env, WAIT).await?);
        if versus_python {
            let mut command = tokio::process::Command::new(vitalwire_local::python());
            command.arg(&peer_script);
            python.push(one_start(command, &env, WAIT).await?);
        }
    }
    println!("binary: {} ({:.2} MiB), function {function}", binary.display(), size as f64 / (1024.0 * 1024.0));
    let (rust_median, line) = summary("rust", rust);
    println!("{line}");
    if memory_map {
        let (_, _, mapped) = one_start_then(tokio::process::Command::new(&binary), &env, WAIT, resident_by_mapping).await?;
        let mapped = mapped.flatten().ok_or("could not read the function's /proc/<pid>/smaps")?;
        println!("resident memory at first poll by mapping (KiB), one more start:");
        for (what, kib) in &mapped {
            println!("{kib:>8}  {what}");
        }
        println!("{:>8}  in all", mapped.iter().map(|(_, kib)| kib).sum::<u64>());
    }
    if versus_python {
        let (python_median, line) = summary("python + boto3", python);
        println!("{line}");
        println!("python + boto3 takes {:.0}x as long to start (medians, interleaved runs)", python_median.as_secs_f64() / rust_median.as_secs_f64());
    }
    Ok(())
}
