//! Measures a function binary's cold start: from process spawn to its first request to the
//! Lambda Runtime API (the end of its init phase), against the local Runtime API stand-in.
//! Also reports the binary's size and its resident memory at that point.
//!
//!     cargo build --release -p vitalwire-functions
//!     cargo run --release -p vitalwire-tests --bin cold-start -- [BINARY] [RUNS] [--python-peer]
//!
//! BINARY defaults to `<target>/release/fhir-ingest`, RUNS to 30. The function gets every
//! setting `template.yaml` gives it, as the local runner does (a resource's name where AWS
//! would put its name or ARN). Its AWS clients are built during init but make no network call
//! until the first event, so no emulator is needed; the endpoint below is never contacted.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use vitalwire_local::runtime_api::RuntimeApi;

/// Resident memory in KiB: in all, and the part that is the process's own (heap, stacks)
/// rather than pages of the binary and libraries.
fn resident_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok();
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The settings `template.yaml` gives the function built as `binary`, as CloudFormation would set
/// them but with placeholders for resources (init only reads them), plus an AWS environment
/// whose endpoint is never contacted.
fn settings_from_template(binary: &std::path::Path) -> Result<Vec<(String, String)>, Box<dyn std::error::Error>> {
    use vitalwire::platform::stack::EnvValue;
    let name = binary.file_name().and_then(|n| n.to_str()).ok_or("the binary has no name")?;
    let template = vitalwire_local::stack::LocalStack::template()?;
    let function = template.functions().into_iter().find(|f| f.binary.as_deref() == Some(name)).ok_or_else(|| format!("template.yaml has no function with binary {name}"))?;
    let placeholder = |value: &EnvValue| match value {
        EnvValue::Literal(v) => v.clone(),
        EnvValue::Ref(target) => template.parameter_default(target).unwrap_or_else(|| target.clone()),
        EnvValue::GetAtt(target) => format!("arn:aws:iam::000000000000:role/{target}"),
        EnvValue::Sub(text) => text.replace("${", "").replace('}', ""),
        EnvValue::Other => "cold-start".to_owned(),
    };
    let mut env: Vec<(String, String)> = function.environment.iter().map(|(k, v)| (k.clone(), placeholder(v))).collect();
    for (k, v) in [
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_ACCESS_KEY_ID", "cold-start"),
        ("AWS_SECRET_ACCESS_KEY", "cold-start"),
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
        ("RUST_LOG", "warn"),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    Ok(env)
}

/// One measured start: time to the first poll and resident memory (all, own) then.
async fn one_start(command: tokio::process::Command, env: &[(String, String)]) -> Result<(Duration, Option<(u64, u64)>), Box<dyn std::error::Error>> {
    let api = RuntimeApi::start().await?;
    let started = Instant::now();
    let mut child = api.spawn_command(command, "cold-start", env)?;
    let polled = api.first_poll(Duration::from_secs(30)).await.ok_or("the function never polled for work")?;
    let memory = child.id().and_then(resident_kib);
    child.kill().await?;
    Ok((polled.duration_since(started), memory))
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
    args.retain(|a| a != "--python-peer");
    let mut args = args.into_iter();
    let binary = args.next().map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| vitalwire_local::repo_root().join("target"))
            .join("release/fhir-ingest")
    });
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(30);
    let size = std::fs::metadata(&binary).map_err(|e| format!("{}: {e}", binary.display()))?.len();
    let env = settings_from_template(&binary)?;
    let peer_script = vitalwire_local::repo_root().join("tests/harness/peer/python_boto3_bootstrap.py");
    let (mut rust, mut python) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for _ in 0..runs {
        rust.push(one_start(tokio::process::Command::new(&binary), &env).await?);
        if versus_python {
            let mut command = tokio::process::Command::new(vitalwire_local::python());
            command.arg(&peer_script);
            python.push(one_start(command, &env).await?);
        }
    }
    println!("binary: {} ({:.2} MiB)", binary.display(), size as f64 / (1024.0 * 1024.0));
    let (rust_median, line) = summary("rust", rust);
    println!("{line}");
    if versus_python {
        let (python_median, line) = summary("python + boto3", python);
        println!("{line}");
        println!("python + boto3 takes {:.0}x as long to start (medians, interleaved runs)", python_median.as_secs_f64() / rust_median.as_secs_f64());
    }
    Ok(())
}
