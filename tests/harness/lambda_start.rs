//! Starting a deployed function binary as Lambda would, against the local Runtime API stand-in,
//! and timing its init: shared by the cold-start measurement and the `sam build` package check.

use std::time::{Duration, Instant};

use vitalwire::platform::stack::{EnvValue, FunctionDefinition, Template};
use vitalwire_local::runtime_api::RuntimeApi;

/// Resident memory in KiB: in all, and the part that is the process's own (heap, stacks)
/// rather than pages of the binary and libraries.
pub fn resident_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok();
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

/// The template's function that runs the registry entry `name` (its `Handler`).
pub fn function_named(template: &Template, name: &str) -> Result<FunctionDefinition, String> {
    template.functions().into_iter().find(|f| f.handler.as_deref() == Some(name)).ok_or_else(|| format!("template.yaml has no function with Handler {name}"))
}

/// The settings `template.yaml` gives `function`, as CloudFormation and Lambda would set them
/// (with `_HANDLER`) but with placeholders for resources (init only reads them), plus an AWS
/// environment whose endpoint is never contacted.
pub fn settings_from_template(template: &Template, function: &FunctionDefinition) -> Vec<(String, String)> {
    let placeholder = |value: &EnvValue| match value {
        EnvValue::Literal(v) => v.clone(),
        EnvValue::Ref(target) => template.parameter_default(target).unwrap_or_else(|| target.clone()),
        EnvValue::GetAtt(target) => format!("arn:aws:iam::000000000000:role/{target}"),
        EnvValue::Sub(text) => text.replace("${", "").replace('}', ""),
        EnvValue::Other => "cold-start".to_owned(),
    };
    let mut env: Vec<(String, String)> = function.handler.iter().map(|h| ("_HANDLER".to_owned(), h.clone())).collect();
    env.extend(function.environment.iter().map(|(k, v)| (k.clone(), placeholder(v))));
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
    env
}

/// One start: time from spawn to the first poll of the Runtime API, and resident memory (all,
/// own) then. Fails when the function exits or has not polled within `wait`.
pub async fn one_start(command: tokio::process::Command, env: &[(String, String)], wait: Duration) -> Result<(Duration, Option<(u64, u64)>), String> {
    let api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = api.spawn_command(command, "cold-start", env).map_err(|e| e.to_string())?;
    let Some(polled) = api.first_poll(wait).await else {
        let exited = child.try_wait().ok().flatten();
        let _ = child.kill().await;
        return Err(match exited {
            Some(status) => format!("the function exited ({status}) before it polled for work"),
            None => format!("the function never polled for work within {wait:?}"),
        });
    };
    let memory = child.id().and_then(resident_kib);
    child.kill().await.map_err(|e| e.to_string())?;
    Ok((polled.duration_since(started), memory))
}
