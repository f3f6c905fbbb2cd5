//! Firmware deployments: one IoT Job per deployment, its progress kept in DynamoDB.
//!
//! | route | function |
//! |---|---|
//! | `POST /admin/firmware/deployments` | `admin-deployments-create` |
//! | `GET /admin/firmware/deployments/{deploymentId}` | `admin-deployments-get` |
//! | `POST /admin/firmware/deployments/{deploymentId}/cancel` | `admin-deployments-cancel` |
//!
//! The job id is the deployment id, so the job-execution events (`job-events`) find their
//! deployment without a lookup table. The job document is
//! `{"operation":"firmware_update","deploymentId","firmwareId","firmwareUrl","version","sha256","sizeBytes"}`;
//! `firmwareUrl` is an IoT Jobs presigned-URL placeholder that IoT resolves (with the
//! `presignedUrlConfig` role) each time the device reads the document, so no long-lived URL is
//! ever stored; `sha256` lets the device check the image before applying it.

mod dynamodb;

use std::collections::BTreeMap;
use std::future::Future;

use chrono::Utc;
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub use dynamodb::DynamoDeploymentStore;

use crate::api::{json_body, path_param, require, respond, ApiError};
use crate::auth::Role;
use crate::devices::{DeviceRegistry, DeviceStatus};
use crate::firmware::{FirmwareImage, FirmwareStore};
use crate::time::format_utc;
use crate::StoreError;

/// Most things one deployment targets (an IoT Job's target list; larger fleets use groups).
pub const MAX_TARGETS: usize = 100;

/// Where one device's job execution is (the IoT Jobs execution statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExecutionStatus {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    Rejected,
    Canceled,
    TimedOut,
    Removed,
}

impl ExecutionStatus {
    pub const ALL: [Self; 8] = [
        Self::Queued,
        Self::InProgress,
        Self::Succeeded,
        Self::Failed,
        Self::Rejected,
        Self::Canceled,
        Self::TimedOut,
        Self::Removed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "QUEUED",
            Self::InProgress => "IN_PROGRESS",
            Self::Succeeded => "SUCCEEDED",
            Self::Failed => "FAILED",
            Self::Rejected => "REJECTED",
            Self::Canceled => "CANCELED",
            Self::TimedOut => "TIMED_OUT",
            Self::Removed => "REMOVED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::Queued | Self::InProgress)
    }

    /// The camel-case name used for the counters in the progress summary.
    fn counter(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::InProgress => "inProgress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Canceled => "canceled",
            Self::TimedOut => "timedOut",
            Self::Removed => "removed",
        }
    }
}

/// Where a deployment is as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    InProgress,
    /// Every device reached a terminal status.
    Completed,
    Canceled,
    /// The IoT Job could not be created.
    FailedToStart,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Canceled => "CANCELED",
            Self::FailedToStart => "FAILED_TO_START",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::InProgress, Self::Completed, Self::Canceled, Self::FailedToStart].into_iter().find(|s| s.as_str() == text)
    }
}

/// How the job reaches devices: pace, when to give up, how long a device may take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutSettings {
    /// Job executions started per minute at most.
    pub maximum_per_minute: u32,
    /// Cancel the rest once this share of executed devices failed…
    pub abort_failure_percent: f64,
    /// …and at least this many devices executed.
    pub abort_min_executed: u32,
    /// A device IN_PROGRESS longer than this is TIMED_OUT.
    pub timeout_minutes: u32,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        Self { maximum_per_minute: 50, abort_failure_percent: 20.0, abort_min_executed: 5, timeout_minutes: 60 }
    }
}

/// One device of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceExecution {
    pub thing_name: String,
    pub status: ExecutionStatus,
    /// The device's last `statusDetails` (its progress or its reason for failing).
    pub status_details: Map<String, Value>,
    pub updated_at: String,
}

/// A firmware deployment with its devices.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub deployment_id: String,
    pub firmware_id: String,
    pub version: String,
    pub device_model: String,
    pub status: DeploymentStatus,
    pub status_reason: Option<String>,
    pub settings: RolloutSettings,
    pub created_at: String,
    pub updated_at: String,
    pub devices: Vec<DeviceExecution>,
}

impl Deployment {
    /// Counts per status and the share of devices that finished, in whole percent.
    pub fn progress(&self) -> Value {
        let mut counts: BTreeMap<&str, usize> = ExecutionStatus::ALL.iter().map(|s| (s.counter(), 0)).collect();
        for d in &self.devices {
            *counts.entry(d.status.counter()).or_default() += 1;
        }
        let total = self.devices.len();
        let finished = self.devices.iter().filter(|d| d.status.is_terminal()).count();
        let mut progress: Map<String, Value> = counts.into_iter().map(|(k, v)| (k.to_owned(), json!(v))).collect();
        progress.insert("total".into(), json!(total));
        progress.insert("percentComplete".into(), json!(if total == 0 { 0 } else { finished * 100 / total }));
        Value::Object(progress)
    }

    /// The overall status: stored states win; otherwise complete once every device is terminal.
    pub fn effective_status(&self) -> DeploymentStatus {
        match self.status {
            DeploymentStatus::InProgress if self.devices.iter().all(|d| d.status.is_terminal()) => DeploymentStatus::Completed,
            other => other,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "deploymentId": self.deployment_id,
            "jobId": self.deployment_id,
            "firmwareId": self.firmware_id,
            "version": self.version,
            "deviceModel": self.device_model,
            "status": self.effective_status().as_str(),
            "statusReason": self.status_reason,
            "rollout": {
                "maximumPerMinute": self.settings.maximum_per_minute,
                "abortFailurePercent": self.settings.abort_failure_percent,
                "abortMinExecuted": self.settings.abort_min_executed,
                "timeoutMinutes": self.settings.timeout_minutes,
            },
            "progress": self.progress(),
            "devices": self.devices.iter().map(|d| json!({
                "thingName": d.thing_name,
                "status": d.status.as_str(),
                "statusDetails": d.status_details,
                "updatedAt": d.updated_at,
            })).collect::<Vec<_>>(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }
}

/// What recording a device's terminal status did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    Updated,
    /// The device had reached a terminal status already (a redelivered event).
    AlreadyFinal(ExecutionStatus),
    /// The deployment or the device is not part of it.
    Unknown,
}

/// Where deployments and their per-device states are kept.
pub trait DeploymentStore: Send + Sync {
    /// Records a new deployment with its devices QUEUED; false if the id is taken.
    fn create(&self, deployment: &Deployment) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn get(&self, deployment_id: &str) -> impl Future<Output = Result<Option<Deployment>, StoreError>> + Send;
    /// Sets the overall status (cancelled, failed to start) with a reason.
    fn set_status(
        &self,
        deployment_id: &str,
        status: DeploymentStatus,
        reason: Option<&str>,
        at: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a device's terminal status once: later deliveries of the same end change nothing.
    fn record_terminal(
        &self,
        deployment_id: &str,
        thing_name: &str,
        status: ExecutionStatus,
        details: &Map<String, Value>,
        at: &str,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;
}

/// What the platform asks of IoT Jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    pub job_id: String,
    pub thing_names: Vec<String>,
    pub document: String,
    pub description: String,
    pub settings: RolloutSettings,
}

/// The IoT Jobs control plane.
pub trait JobControl: Send + Sync {
    fn create_job(&self, job: &JobRequest) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Cancels the job: queued executions are cancelled, started ones may finish.
    fn cancel_job(&self, job_id: &str, comment: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The live status of every execution of the job, by thing name.
    fn execution_statuses(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, ExecutionStatus>, StoreError>> + Send;
}

/// What the deployment routes need.
pub struct DeploymentDeps<F, D, S, J> {
    pub images: F,
    pub devices: D,
    pub deployments: S,
    pub jobs: J,
    /// `https://s3.<region>.amazonaws.com/<bucket>`: the base of the presigned-URL placeholder.
    pub bucket_url: String,
}

/// The job document a device receives (before IoT resolves the URL placeholder).
pub fn job_document(deployment_id: &str, image: &FirmwareImage, bucket_url: &str) -> Value {
    json!({
        "operation": "firmware_update",
        "deploymentId": deployment_id,
        "firmwareId": image.firmware_id,
        "firmwareUrl": format!("${{aws:iot:s3-presigned-url:{bucket_url}/{}}}", image.object_key),
        "version": image.version,
        "sha256": image.sha256,
        "sizeBytes": image.size_bytes,
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RolloutInput {
    maximum_per_minute: Option<u32>,
    abort_failure_percent: Option<f64>,
    abort_min_executed: Option<u32>,
    timeout_minutes: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateInput {
    firmware_id: String,
    #[serde(default)]
    thing_names: Option<Vec<String>>,
    /// Every active device of the firmware's model.
    #[serde(default)]
    all_devices_of_model: bool,
    #[serde(default)]
    rollout: RolloutInput,
}

fn settings_from(input: &RolloutInput) -> Result<RolloutSettings, ApiError> {
    let d = RolloutSettings::default();
    let s = RolloutSettings {
        maximum_per_minute: input.maximum_per_minute.unwrap_or(d.maximum_per_minute),
        abort_failure_percent: input.abort_failure_percent.unwrap_or(d.abort_failure_percent),
        abort_min_executed: input.abort_min_executed.unwrap_or(d.abort_min_executed),
        timeout_minutes: input.timeout_minutes.unwrap_or(d.timeout_minutes),
    };
    // The ranges IoT Jobs accepts.
    if !(1..=1000).contains(&s.maximum_per_minute) {
        return Err(ApiError::bad("rollout.maximumPerMinute", "must be from 1 to 1000"));
    }
    if !(s.abort_failure_percent > 0.0 && s.abort_failure_percent <= 100.0) {
        return Err(ApiError::bad("rollout.abortFailurePercent", "must be above 0 and at most 100"));
    }
    if s.abort_min_executed == 0 {
        return Err(ApiError::bad("rollout.abortMinExecuted", "must be at least 1"));
    }
    if !(1..=10080).contains(&s.timeout_minutes) {
        return Err(ApiError::bad("rollout.timeoutMinutes", "must be from 1 to 10080 (7 days)"));
    }
    Ok(s)
}

async fn targets<D: DeviceRegistry>(input: &CreateInput, image: &FirmwareImage, devices: &D) -> Result<Vec<String>, ApiError> {
    match (&input.thing_names, input.all_devices_of_model) {
        (Some(_), true) | (None, false) => {
            Err(ApiError::bad("thingNames", "give either thingNames or allDevicesOfModel: true"))
        }
        (Some(names), false) => {
            if names.is_empty() || names.len() > MAX_TARGETS {
                return Err(ApiError::bad("thingNames", format!("must list 1 to {MAX_TARGETS} things")));
            }
            let mut unique = Vec::new();
            for name in names {
                if unique.contains(name) {
                    return Err(ApiError::bad("thingNames", format!("{name} is listed twice")));
                }
                let device = devices.get(name).await?.ok_or_else(|| ApiError::bad("thingNames", format!("no device {name}")))?;
                // Flashing another model's image can brick a device: refuse rather than trust.
                if device.model != image.device_model {
                    return Err(ApiError::bad(
                        "thingNames",
                        format!("{name} is a {} device, the firmware is for {}", device.model, image.device_model),
                    ));
                }
                if device.status != DeviceStatus::Active {
                    return Err(ApiError::bad("thingNames", format!("{name} is {}, not ACTIVE", device.status.as_str())));
                }
                unique.push(name.clone());
            }
            Ok(unique)
        }
        (None, true) => {
            let mut names = Vec::new();
            let mut after = None;
            loop {
                let (page, next) = devices.list(100, after.as_deref()).await?;
                names.extend(
                    page.into_iter()
                        .filter(|d| d.model == image.device_model && d.status == DeviceStatus::Active)
                        .map(|d| d.thing_name),
                );
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if names.is_empty() {
                return Err(ApiError::bad("allDevicesOfModel", format!("no ACTIVE device of model {}", image.device_model)));
            }
            if names.len() > MAX_TARGETS {
                return Err(ApiError::bad(
                    "allDevicesOfModel",
                    format!("{} devices of model {}: at most {MAX_TARGETS} per deployment", names.len(), image.device_model),
                ));
            }
            Ok(names)
        }
    }
}

fn new_deployment_id() -> Result<String, ApiError> {
    let mut random = [0u8; 6];
    getrandom::fill(&mut random).map_err(|e| ApiError::Store(StoreError::new("generate deployment id", e)))?;
    Ok(format!("fw-{}-{}", Utc::now().format("%Y%m%dT%H%M%S"), hex::encode(random)))
}

/// `POST /admin/firmware/deployments` with `{firmwareId, thingNames | allDevicesOfModel, rollout?}`:
/// 201 with the deployment, its IoT Job created.
pub async fn create<F: FirmwareStore, D: DeviceRegistry, S: DeploymentStore, J: JobControl>(
    request: Request,
    deps: &DeploymentDeps<F, D, S, J>,
) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let input: CreateInput = json_body(&request)?;
        let settings = settings_from(&input.rollout)?;
        let image = deps
            .images
            .get(&input.firmware_id)
            .await?
            .ok_or_else(|| ApiError::bad("firmwareId", format!("no firmware {}", input.firmware_id)))?;
        let things = targets(&input, &image, &deps.devices).await?;
        let now = format_utc(Utc::now());
        let mut deployment = Deployment {
            deployment_id: new_deployment_id()?,
            firmware_id: image.firmware_id.clone(),
            version: image.version.clone(),
            device_model: image.device_model.clone(),
            status: DeploymentStatus::InProgress,
            status_reason: None,
            settings,
            created_at: now.clone(),
            updated_at: now.clone(),
            devices: things
                .iter()
                .map(|t| DeviceExecution {
                    thing_name: t.clone(),
                    status: ExecutionStatus::Queued,
                    status_details: Map::new(),
                    updated_at: now.clone(),
                })
                .collect(),
        };
        // Recorded before the job exists, so that no job event can arrive for an unknown deployment.
        if !deps.deployments.create(&deployment).await? {
            return Err(ApiError::Conflict(format!("deployment {} exists", deployment.deployment_id)));
        }
        let job = JobRequest {
            job_id: deployment.deployment_id.clone(),
            thing_names: things,
            document: job_document(&deployment.deployment_id, &image, &deps.bucket_url).to_string(),
            description: format!("firmware {} {}", image.device_model, image.version),
            settings,
        };
        if let Err(e) = deps.jobs.create_job(&job).await {
            let reason = format!("the IoT Job could not be created: {}", e.message);
            deps.deployments.set_status(&deployment.deployment_id, DeploymentStatus::FailedToStart, Some(&reason), &now).await?;
            return Err(ApiError::Store(e));
        }
        tracing::info!(deployment_id = %deployment.deployment_id, devices = deployment.devices.len(), "deployment created");
        deployment.updated_at = now;
        Ok((201, deployment.to_json()))
    }
    .await)
}

async fn load<S: DeploymentStore>(store: &S, id: &str) -> Result<Deployment, ApiError> {
    store.get(id).await?.ok_or_else(|| ApiError::NotFound(format!("no deployment {id}")))
}

/// `GET /admin/firmware/deployments/{deploymentId}`: the deployment with each device's status
/// (terminal ones as recorded from job events, the others live from IoT Jobs) and progress.
pub async fn get<F, D, S: DeploymentStore, J: JobControl>(request: Request, deps: &DeploymentDeps<F, D, S, J>) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let mut deployment = load(&deps.deployments, &path_param(&request, "deploymentId")?).await?;
        let pending = deployment.devices.iter().any(|d| !d.status.is_terminal());
        if pending && deployment.status != DeploymentStatus::FailedToStart {
            match deps.jobs.execution_statuses(&deployment.deployment_id).await {
                Ok(live) => {
                    for d in deployment.devices.iter_mut().filter(|d| !d.status.is_terminal()) {
                        if let Some(status) = live.get(&d.thing_name) {
                            d.status = *status;
                        }
                    }
                }
                // Still worth answering from what is recorded.
                Err(e) => tracing::warn!(error = %e, "live job statuses unavailable"),
            }
        }
        Ok((200, deployment.to_json()))
    }
    .await)
}

/// `POST /admin/firmware/deployments/{deploymentId}/cancel`: cancels the job; devices not
/// started yet get nothing, devices already updating finish. Cancelling twice is harmless.
pub async fn cancel<F, D, S: DeploymentStore, J: JobControl>(request: Request, deps: &DeploymentDeps<F, D, S, J>) -> Response<Body> {
    respond(async {
        let who = require(&request, &[Role::Admin])?;
        let id = path_param(&request, "deploymentId")?;
        let deployment = load(&deps.deployments, &id).await?;
        match deployment.effective_status() {
            DeploymentStatus::Canceled => return Ok((200, deployment.to_json())),
            DeploymentStatus::InProgress => {}
            other => return Err(ApiError::Conflict(format!("deployment {id} is {}", other.as_str()))),
        }
        deps.jobs.cancel_job(&id, &format!("cancelled by {}", who.subject)).await?;
        deps.deployments.set_status(&id, DeploymentStatus::Canceled, Some("cancelled by an operator"), &format_utc(Utc::now())).await?;
        tracing::info!(deployment_id = %id, "deployment cancelled");
        Ok((200, load(&deps.deployments, &id).await?.to_json()))
    }
    .await)
}

/// [`JobControl`] through the AWS IoT control plane.
#[derive(Debug, Clone)]
pub struct IotJobControl {
    pub client: aws_sdk_iot::Client,
    /// `arn:<partition>:iot:<region>:<account>:thing/`
    pub thing_arn_prefix: String,
    /// The role IoT assumes to presign the firmware URL (`s3:GetObject` on `firmware/*`).
    pub presign_role_arn: String,
}

/// How long a resolved firmware URL lasts: the IoT maximum, enough for a slow cellular link to
/// start the download at once.
const PRESIGNED_URL_SECONDS: i64 = 3600;

impl JobControl for IotJobControl {
    async fn create_job(&self, job: &JobRequest) -> Result<(), StoreError> {
        use aws_sdk_iot::types::{
            AbortConfig, AbortCriteria, JobExecutionFailureType, JobExecutionsRolloutConfig, PresignedUrlConfig, TargetSelection,
            TimeoutConfig,
        };
        const OP: &str = "create IoT job";
        let bad = |e: aws_sdk_iot::error::BuildError| StoreError::new(OP, e);
        let abort = AbortCriteria::builder()
            .failure_type(JobExecutionFailureType::All)
            .action(aws_sdk_iot::types::AbortAction::Cancel)
            .threshold_percentage(job.settings.abort_failure_percent)
            .min_number_of_executed_things(i32::try_from(job.settings.abort_min_executed).unwrap_or(i32::MAX))
            .build()
            .map_err(bad)?;
        self.client
            .create_job()
            .job_id(&job.job_id)
            .set_targets(Some(job.thing_names.iter().map(|t| format!("{}{t}", self.thing_arn_prefix)).collect()))
            .target_selection(TargetSelection::Snapshot)
            .document(&job.document)
            .description(&job.description)
            .presigned_url_config(
                PresignedUrlConfig::builder().role_arn(&self.presign_role_arn).expires_in_sec(PRESIGNED_URL_SECONDS).build(),
            )
            .job_executions_rollout_config(
                JobExecutionsRolloutConfig::builder()
                    .maximum_per_minute(i32::try_from(job.settings.maximum_per_minute).unwrap_or(1000))
                    .build(),
            )
            .abort_config(AbortConfig::builder().criteria_list(abort).build().map_err(bad)?)
            .timeout_config(TimeoutConfig::builder().in_progress_timeout_in_minutes(i64::from(job.settings.timeout_minutes)).build())
            .send()
            .await
            .map_err(|e| StoreError::new(OP, crate::dynamo::describe(&e)))?;
        Ok(())
    }

    async fn cancel_job(&self, job_id: &str, comment: &str) -> Result<(), StoreError> {
        self.client
            .cancel_job()
            .job_id(job_id)
            .comment(comment.chars().take(2028).collect::<String>())
            .force(false)
            .send()
            .await
            .map_err(|e| StoreError::new("cancel IoT job", crate::dynamo::describe(&e)))?;
        Ok(())
    }

    async fn execution_statuses(&self, job_id: &str) -> Result<BTreeMap<String, ExecutionStatus>, StoreError> {
        let mut statuses = BTreeMap::new();
        let mut pages = self.client.list_job_executions_for_job().job_id(job_id).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::new("list job executions", crate::dynamo::describe(&e)))?;
            for summary in page.execution_summaries() {
                let thing = summary.thing_arn().and_then(|a| a.rsplit('/').next()).unwrap_or_default();
                let status = summary.job_execution_summary().and_then(|s| s.status()).and_then(|s| ExecutionStatus::parse(s.as_str()));
                if let Some(status) = status {
                    statuses.insert(thing.to_owned(), status);
                }
            }
        }
        Ok(statuses)
    }
}

fn setting(name: &'static str) -> Result<String, crate::tables::MissingSetting> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).ok_or(crate::tables::MissingSetting(name))
}

/// The AWS-backed dependencies, from the function's environment.
pub async fn aws_deps() -> Result<
    DeploymentDeps<crate::firmware::DynamoFirmwareStore, crate::devices::DynamoDeviceRegistry, DynamoDeploymentStore, IotJobControl>,
    crate::tables::MissingSetting,
> {
    let config = crate::aws::load_config().await;
    let dynamodb = crate::aws::dynamodb(&config);
    let region = config.region().map(|r| r.as_ref().to_owned()).unwrap_or_else(|| "us-east-1".into());
    let bucket = setting("DEVICE_FILES_BUCKET")?;
    Ok(DeploymentDeps {
        images: crate::firmware::DynamoFirmwareStore { client: dynamodb.clone(), table: crate::tables::FIRMWARE.name_from_env()? },
        devices: crate::devices::DynamoDeviceRegistry::new(dynamodb.clone(), crate::tables::DEVICES.name_from_env()?),
        deployments: DynamoDeploymentStore::new(dynamodb, crate::tables::DEPLOYMENTS.name_from_env()?),
        jobs: IotJobControl {
            client: aws_sdk_iot::Client::new(&config),
            thing_arn_prefix: setting("THING_ARN_PREFIX")?,
            presign_role_arn: setting("FIRMWARE_DOWNLOAD_ROLE_ARN")?,
        },
        bucket_url: format!("https://s3.{region}.amazonaws.com/{bucket}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(statuses: &[ExecutionStatus]) -> Deployment {
        Deployment {
            deployment_id: "fw-1".into(),
            firmware_id: "bp-200-1.1.0".into(),
            version: "1.1.0".into(),
            device_model: "BP-200".into(),
            status: DeploymentStatus::InProgress,
            status_reason: None,
            settings: RolloutSettings::default(),
            created_at: String::new(),
            updated_at: String::new(),
            devices: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| DeviceExecution {
                    thing_name: format!("t{i}"),
                    status: *s,
                    status_details: Map::new(),
                    updated_at: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn progress_counts_statuses_and_completes_when_all_are_terminal() {
        use ExecutionStatus::*;
        let d = deployment(&[Succeeded, Failed, InProgress]);
        let p = d.progress();
        assert_eq!((p["succeeded"].as_u64(), p["failed"].as_u64(), p["inProgress"].as_u64()), (Some(1), Some(1), Some(1)));
        assert_eq!((p["total"].as_u64(), p["percentComplete"].as_u64()), (Some(3), Some(66)));
        assert_eq!(d.effective_status(), DeploymentStatus::InProgress);
        assert_eq!(deployment(&[Succeeded, TimedOut]).effective_status(), DeploymentStatus::Completed);
        let mut canceled = deployment(&[Canceled, Queued]);
        canceled.status = DeploymentStatus::Canceled;
        assert_eq!(canceled.effective_status(), DeploymentStatus::Canceled);
    }

    #[test]
    fn the_job_document_carries_a_presigned_url_placeholder_and_the_checksum() {
        let image = FirmwareImage {
            firmware_id: "bp-200-1.1.0".into(),
            version: "1.1.0".into(),
            device_model: "BP-200".into(),
            sha256: "ab".repeat(32),
            size_bytes: 10,
            object_key: "firmware/bp-200/1.1.0/bp-200-1.1.0.bin".into(),
            created_at: String::new(),
        };
        let doc = job_document("fw-1", &image, "https://s3.eu-west-1.amazonaws.com/files");
        assert_eq!(
            doc["firmwareUrl"],
            "${aws:iot:s3-presigned-url:https://s3.eu-west-1.amazonaws.com/files/firmware/bp-200/1.1.0/bp-200-1.1.0.bin}"
        );
        assert_eq!((doc["operation"].as_str(), doc["deploymentId"].as_str()), (Some("firmware_update"), Some("fw-1")));
        assert_eq!(doc["sha256"], image.sha256);
    }

    #[test]
    fn rollout_settings_are_checked_against_the_iot_ranges() {
        assert!(settings_from(&RolloutInput::default()).is_ok());
        let bad = RolloutInput { maximum_per_minute: Some(0), ..Default::default() };
        assert!(matches!(settings_from(&bad), Err(ApiError::BadRequest { field, .. }) if field == "rollout.maximumPerMinute"));
        let bad = RolloutInput { abort_failure_percent: Some(120.0), ..Default::default() };
        assert!(settings_from(&bad).is_err());
        let bad = RolloutInput { timeout_minutes: Some(0), ..Default::default() };
        assert!(settings_from(&bad).is_err());
    }
}
