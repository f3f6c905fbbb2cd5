//! Measures a function binary's cold start: from process spawn to its first request to the
//! Lambda Runtime API (the end of its init phase), against the local Runtime API stand-in.
//! Also reports the binary's size and its resident memory at that point.
//!
//!     cargo build --release -p vitalwire-functions
//!     cargo run --release -p vitalwire-tests --bin cold-start -- [BINARY] [RUNS]
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let binary = args.next().map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| vitalwire_local::repo_root().join("target"))
            .join("release/fhir-ingest")
    });
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(30);
    let size = std::fs::metadata(&binary).map_err(|e| format!("{}: {e}", binary.display()))?.len();
    let env = settings_from_template(&binary)?;
    let mut times = Vec::with_capacity(runs);
    let mut rss = Vec::with_capacity(runs);
    for _ in 0..runs {
        let api = RuntimeApi::start().await?;
        let started = Instant::now();
        let mut child = api.spawn_function(&binary, "cold-start", &env)?;
        let polled = api.first_poll(Duration::from_secs(10)).await.ok_or("the function never polled for work")?;
        times.push(polled.duration_since(started));
        if let Some(kib) = child.id().and_then(resident_kib) {
            rss.push(kib);
        }
        child.kill().await?;
    }
    times.sort_unstable();
    rss.sort_unstable();
    println!("binary: {} ({:.2} MiB)", binary.display(), size as f64 / (1024.0 * 1024.0));
    println!(
        "cold start to first Runtime API poll over {runs} runs: min {:?}, median {:?}, p90 {:?}, max {:?}",
        times[0],
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        times[times.len() - 1]
    );
    if let Some((all, own)) = rss.get(rss.len() / 2) {
        println!("resident memory at first poll: median {:.1} MiB ({:.1} MiB of it the process's own, the rest pages of the binary and libraries)", *all as f64 / 1024.0, *own as f64 / 1024.0);
    }
    Ok(())
}
