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

/// Resident memory in KiB by what it holds, from `/proc/<pid>/smaps`, largest first: each file
/// mapped, by name and permissions, with the pages written since (such as the relocated pointers
/// of the binary's `.data.rel.ro`) apart from those read from the file; and anonymous memory
/// (heap, stacks).
pub fn resident_by_mapping(pid: u32) -> Option<Vec<(String, u64)>> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let mut by_mapping: Vec<(String, u64)> = Vec::new();
    let mut add = |what: String, kib: u64| match by_mapping.iter_mut().find(|(w, _)| *w == what) {
        Some((_, total)) => *total += kib,
        None if kib > 0 => by_mapping.push((what, kib)),
        None => {}
    };
    let (mut mapping, mut resident) = (String::new(), 0);
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let is_header = fields.first().is_some_and(|range| range.split('-').count() == 2 && range.split('-').all(|a| u64::from_str_radix(a, 16).is_ok()));
        if is_header {
            // address range, permissions, offset, device, inode, and the file's path if any
            let file = fields.get(5).map(|path| path.rsplit('/').next().unwrap_or(path));
            mapping = match file {
                Some(name) if !name.starts_with('[') => format!("{name} {}", fields.get(1).unwrap_or(&"")),
                Some(special) => special.to_owned(),
                None => "[anonymous]".to_owned(),
            };
        } else if fields.first() == Some(&"Rss:") {
            resident = fields.get(1)?.parse().ok()?;
        } else if fields.first() == Some(&"Anonymous:") {
            let written: u64 = fields.get(1)?.parse().ok()?;
            if mapping.starts_with('[') {
                add(mapping.clone(), resident);
            } else {
                add(mapping.clone(), resident.saturating_sub(written));
                add(format!("{mapping}, written"), written);
            }
        }
    }
    by_mapping.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(by_mapping)
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
    one_start_then(command, env, wait, |_| ()).await.map(|(took, memory, _)| (took, memory))
}

/// [`one_start`], also calling `at_first_poll` with the process id while the function waits
/// for its first event.
pub async fn one_start_then<T>(
    command: tokio::process::Command,
    env: &[(String, String)],
    wait: Duration,
    at_first_poll: impl FnOnce(u32) -> T,
) -> Result<(Duration, Option<(u64, u64)>, Option<T>), String> {
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
    let inspected = child.id().map(at_first_poll);
    child.kill().await.map_err(|e| e.to_string())?;
    Ok((polled.duration_since(started), memory, inspected))
}
