//! `job-events`: the IoT job-execution events (`$aws/events/jobExecution/<jobId>/<operation>`,
//! through the `JobExecutionEvents` rule) kept as deployment progress; a device whose firmware
//! job SUCCEEDED gets that firmware recorded as installed.
//!
//! IoT delivers events at least once: a device's first terminal status is recorded, later
//! copies change nothing. Events of jobs that are not Vitalwire deployments are ignored; a
//! malformed event is kept as a dead letter.

use serde::Deserialize;
use serde_json::{Map, Value};

use serde::Serialize;

use super::deployments::{DeploymentStore, ExecutionStatus, Recorded};
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::{DeviceRegistry, InstalledFirmware};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The dead-letter source of refused job events.
pub const SOURCE: &str = "job-events";

/// A job-execution event as IoT publishes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobExecutionEvent {
    pub event_type: String,
    #[serde(default)]
    pub event_id: Option<String>,
    /// Epoch seconds.
    #[serde(default)]
    pub timestamp: Option<i64>,
    pub job_id: String,
    pub thing_arn: String,
    pub status: String,
    #[serde(default)]
    pub status_details: Map<String, Value>,
}

/// What one event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Outcome {
    Recorded { firmware_installed: bool },
    Duplicate,
    NotADeployment,
    Refused { reason: String },
}

/// What `job-events` needs.
pub struct JobEventDeps<S, D, L> {
    pub deployments: S,
    pub devices: D,
    pub dead_letters: L,
}

impl<S: FromWiring, D: FromWiring, L: FromWiring> FromWiring for JobEventDeps<S, D, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { deployments: w.build()?, devices: w.build()?, dead_letters: w.build()? })
    }
}

async fn refuse<L: DeadLetterStore>(deps: &L, raw: &Value, code: &str, reason: String) -> Result<Outcome, StoreError> {
    // The event's own time, so that a redelivered copy maps to the same dead letter.
    let at = raw
        .get("timestamp")
        .and_then(Value::as_i64)
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(format_utc)
        .unwrap_or_default();
    let letter = DeadLetter::refused(SOURCE, None, code, reason.clone(), raw.to_string(), at);
    deps.record(&letter).await?;
    tracing::warn!(reason_code = code, "job event refused");
    Ok(Outcome::Refused { reason })
}

/// Handles one event.
pub async fn handle<S: DeploymentStore, D: DeviceRegistry, L: DeadLetterStore>(
    raw: &Value,
    deps: &JobEventDeps<S, D, L>,
) -> Result<Outcome, StoreError> {
    let event: JobExecutionEvent = match serde_json::from_value(raw.clone()) {
        Ok(e) => e,
        Err(e) => return refuse(&deps.dead_letters, raw, "INVALID_EVENT", e.to_string()).await,
    };
    if event.event_type != "JOB_EXECUTION" {
        return refuse(&deps.dead_letters, raw, "INVALID_EVENT", format!("eventType {} is not JOB_EXECUTION", event.event_type)).await;
    }
    let Some(status) = ExecutionStatus::parse(&event.status).filter(|s| s.is_terminal()) else {
        return refuse(&deps.dead_letters, raw, "INVALID_EVENT", format!("status {} is not a terminal job status", event.status))
            .await;
    };
    let thing = event.thing_arn.rsplit_once("thing/").map(|(_, t)| t).unwrap_or_default();
    if thing.is_empty() {
        return refuse(&deps.dead_letters, raw, "INVALID_EVENT", format!("{} is not a thing ARN", event.thing_arn)).await;
    }
    let at = event
        .timestamp
        .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
        .map(format_utc)
        .unwrap_or_else(|| format_utc(chrono::Utc::now()));
    match deps.deployments.record_terminal(&event.job_id, thing, status, &event.status_details, &at).await? {
        Recorded::Unknown => {
            tracing::info!(job_id = %event.job_id, "job is not a firmware deployment of this platform");
            Ok(Outcome::NotADeployment)
        }
        Recorded::AlreadyFinal(_) => Ok(Outcome::Duplicate),
        Recorded::Updated => {
            tracing::info!(job_id = %event.job_id, thing_name = thing, status = status.as_str(), "device finished");
            if status != ExecutionStatus::Succeeded {
                return Ok(Outcome::Recorded { firmware_installed: false });
            }
            let Some(deployment) = deps.deployments.get(&event.job_id).await? else {
                return Ok(Outcome::Recorded { firmware_installed: false });
            };
            let firmware = InstalledFirmware {
                firmware_id: deployment.firmware_id,
                version: deployment.version,
                deployment_id: deployment.deployment_id,
                installed_at: at,
            };
            let installed = deps.devices.set_firmware(thing, &firmware).await?;
            Ok(Outcome::Recorded { firmware_installed: installed })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_event_is_an_iot_job_execution_event() {
        let event: JobExecutionEvent = serde_json::from_str(include_str!("../../../events/job-events.json")).unwrap();
        assert_eq!((event.event_type.as_str(), event.status.as_str()), ("JOB_EXECUTION", "SUCCEEDED"));
        assert!(event.thing_arn.ends_with(":thing/acme-medical-0042"));
        assert_eq!(event.status_details["version"], "1.1.0");
    }
}
