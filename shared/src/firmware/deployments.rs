//! Firmware deployments: one IoT Job per deployment, its progress kept in DynamoDB.
//!
//! The job id is the deployment id, so the job-execution events (`job-events`) find their
//! deployment without a lookup table. The job document is
//! `{"operation":"firmware_update","deploymentId","firmwareId","firmwareUrl","version","sha256","sizeBytes"}`;
//! `firmwareUrl` is an IoT Jobs presigned-URL placeholder that IoT resolves (with the
//! `presignedUrlConfig` role) each time the device reads the document, so no long-lived URL is
//! ever stored; `sha256` lets the device check the image before applying it.

use std::collections::BTreeMap;
use std::future::Future;

use serde_json::{json, Map, Value};

use super::FirmwareImage;
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
    /// Recorded, its IoT Job being created (or interrupted while it was: see [`resume`]).
    Starting,
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
            Self::Starting => "STARTING",
            Self::InProgress => "IN_PROGRESS",
            Self::Completed => "COMPLETED",
            Self::Canceled => "CANCELED",
            Self::FailedToStart => "FAILED_TO_START",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Starting, Self::InProgress, Self::Completed, Self::Canceled, Self::FailedToStart].into_iter().find(|s| s.as_str() == text)
    }

    /// The status as shown: a running deployment whose devices have all finished is COMPLETED
    /// (no event says so; it is read from the devices).
    pub fn once_finished(self, every_device_finished: bool) -> Self {
        match self {
            Self::InProgress if every_device_finished => Self::Completed,
            other => other,
        }
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
        progress.insert("percentComplete".into(), json!((finished * 100).checked_div(total).unwrap_or(0)));
        Value::Object(progress)
    }

    /// The overall status: stored states win; otherwise complete once every device is terminal.
    pub fn effective_status(&self) -> DeploymentStatus {
        self.status.once_finished(self.devices.iter().all(|d| d.status.is_terminal()))
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

/// A deployment as the list shows it: its record without its devices, and how many of its
/// devices finished (kept on the record by each terminal status, so a list reads one item per
/// deployment).
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSummary {
    pub deployment_id: String,
    pub firmware_id: String,
    pub version: String,
    pub device_model: String,
    pub status: DeploymentStatus,
    pub status_reason: Option<String>,
    pub device_count: usize,
    pub finished_count: usize,
    pub created_at: String,
    pub updated_at: String,
}

impl DeploymentSummary {
    pub fn of(d: &Deployment) -> Self {
        Self {
            deployment_id: d.deployment_id.clone(),
            firmware_id: d.firmware_id.clone(),
            version: d.version.clone(),
            device_model: d.device_model.clone(),
            status: d.status,
            status_reason: d.status_reason.clone(),
            device_count: d.devices.len(),
            finished_count: d.devices.iter().filter(|e| e.status.is_terminal()).count(),
            created_at: d.created_at.clone(),
            updated_at: d.updated_at.clone(),
        }
    }

    /// COMPLETED once every device finished, as [`Deployment::effective_status`] says.
    pub fn effective_status(&self) -> DeploymentStatus {
        self.status.once_finished(self.finished_count >= self.device_count)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "deploymentId": self.deployment_id,
            "firmwareId": self.firmware_id,
            "version": self.version,
            "deviceModel": self.device_model,
            "status": self.effective_status().as_str(),
            "statusReason": self.status_reason,
            "devices": self.device_count,
            "finished": self.finished_count,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }
}

/// Where a page of the deployment list (newest first) resumes: after this deployment. Its token
/// is opaque to callers (base64url), and a token that does not decode is refused, not ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: String,
    pub deployment_id: String,
}

impl ListCursor {
    pub fn after(last: &DeploymentSummary) -> Self {
        Self { created_at: last.created_at.clone(), deployment_id: last.deployment_id.clone() }
    }

    pub fn token(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}|{}", self.created_at, self.deployment_id))
    }

    pub fn parse(token: &str) -> Option<Self> {
        use base64::Engine;
        let text = String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let (created_at, deployment_id) = text.split_once('|')?;
        let valid = chrono::DateTime::parse_from_rfc3339(created_at).is_ok() && !deployment_id.is_empty();
        valid.then(|| Self { created_at: created_at.to_owned(), deployment_id: deployment_id.to_owned() })
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
    /// Up to `limit` deployments, newest first, after `after`; and where the next page starts,
    /// when more may follow.
    fn list(
        &self,
        limit: usize,
        after: Option<&ListCursor>,
    ) -> impl Future<Output = Result<(Vec<DeploymentSummary>, Option<ListCursor>), StoreError>> + Send;
    /// Sets the overall status (cancelled, failed to start) with a reason.
    fn set_status(
        &self,
        deployment_id: &str,
        status: DeploymentStatus,
        reason: Option<&str>,
        at: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records a device's terminal status once, and counts it on the deployment's record, in one
    /// step: later deliveries of the same end change nothing.
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
    /// Creates the job; a job of this id that exists already counts as created (a retry).
    fn create_job(&self, job: &JobRequest) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Whether a job of this id exists (`DescribeJob`).
    fn job_exists(&self, job_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Cancels the job: queued executions are cancelled, started ones may finish.
    fn cancel_job(&self, job_id: &str, comment: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The live status of every execution of the job, by thing name.
    fn execution_statuses(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<BTreeMap<String, ExecutionStatus>, StoreError>> + Send;
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

/// How long a deployment may stay STARTING: the create function's time limit and then some.
/// Past it without an IoT Job, its creation was interrupted.
pub const START_DEADLINE: chrono::Duration = chrono::Duration::minutes(2);

/// Creates a recorded (STARTING) deployment's IoT Job and marks it IN_PROGRESS, or
/// FAILED_TO_START with the reason. All or nothing as far as anyone sees: a deployment is
/// followed (IN_PROGRESS) only once its job exists; a creation cut short half-way is finished
/// by [`resume`].
pub async fn start<S: DeploymentStore, J: JobControl>(
    deployments: &S,
    jobs: &J,
    deployment: &mut Deployment,
    job: &JobRequest,
    at: &str,
) -> Result<(), StoreError> {
    if let Err(e) = jobs.create_job(job).await {
        // A timeout or a throttled answer may come after IoT created the job: ask before saying
        // it failed, and when even that cannot be told, leave it STARTING for `resume`.
        match jobs.job_exists(&deployment.deployment_id).await {
            Ok(true) => {}
            Ok(false) => {
                let reason = format!("the IoT Job could not be created: {}", e.message);
                deployments.set_status(&deployment.deployment_id, DeploymentStatus::FailedToStart, Some(&reason), at).await?;
                return Err(e);
            }
            Err(_) => return Err(e),
        }
    }
    deployments.set_status(&deployment.deployment_id, DeploymentStatus::InProgress, None, at).await?;
    deployment.status = DeploymentStatus::InProgress;
    deployment.updated_at = at.to_owned();
    Ok(())
}

/// Finishes a deployment left STARTING by an interrupted creation: IN_PROGRESS when its IoT Job
/// exists, FAILED_TO_START once [`START_DEADLINE`] has passed without one.
pub async fn resume<S: DeploymentStore, J: JobControl>(
    deployments: &S,
    jobs: &J,
    deployment: &mut Deployment,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    if deployment.status != DeploymentStatus::Starting {
        return Ok(());
    }
    let at = crate::platform::time::format_utc(now);
    if jobs.job_exists(&deployment.deployment_id).await? {
        deployments.set_status(&deployment.deployment_id, DeploymentStatus::InProgress, None, &at).await?;
        deployment.status = DeploymentStatus::InProgress;
    } else if crate::platform::time::parse_with_offset(&deployment.created_at).is_none_or(|created| now - created > START_DEADLINE) {
        let reason = "its creation was interrupted before the IoT Job was created";
        deployments.set_status(&deployment.deployment_id, DeploymentStatus::FailedToStart, Some(reason), &at).await?;
        deployment.status = DeploymentStatus::FailedToStart;
        deployment.status_reason = Some(reason.to_owned());
    } else {
        return Ok(());
    }
    deployment.updated_at = at;
    Ok(())
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


    fn job(d: &Deployment) -> JobRequest {
        JobRequest {
            job_id: d.deployment_id.clone(),
            thing_names: d.devices.iter().map(|e| e.thing_name.clone()).collect(),
            document: "{}".into(),
            description: String::new(),
            settings: d.settings,
        }
    }

    fn starting(created_at: &str) -> Deployment {
        let mut d = deployment(&[ExecutionStatus::Queued]);
        d.status = DeploymentStatus::Starting;
        d.created_at = created_at.into();
        d
    }

    #[tokio::test]
    async fn a_deployment_is_followed_only_once_its_job_exists() {
        use crate::firmware::memory::{MemoryDeployments, MemoryJobs};
        let (store, jobs) = (MemoryDeployments::default(), MemoryJobs::default());
        let now = chrono::Utc::now();
        let at = crate::platform::time::format_utc(now);
        let mut d = starting(&at);
        store.create(&d).await.unwrap();
        let request = job(&d);
        start(&store, &jobs, &mut d, &request, &at).await.unwrap();
        assert_eq!((d.status, store.status("fw-1")), (DeploymentStatus::InProgress, Some(DeploymentStatus::InProgress)));

        // The job cannot be created: FAILED_TO_START with the reason, and the error.
        let mut failed = starting(&at);
        failed.deployment_id = "fw-2".into();
        store.create(&failed).await.unwrap();
        jobs.fail_next_create.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(start(&store, &jobs, &mut failed.clone(), &job(&failed), &at).await.is_err());
        assert_eq!(store.status("fw-2"), Some(DeploymentStatus::FailedToStart));
        assert!(store.get("fw-2").await.unwrap().unwrap().status_reason.unwrap().contains("IoT Job could not be created"));

        // The job was created but the answer was lost: it is running, so it is followed.
        let mut lost = starting(&at);
        lost.deployment_id = "fw-4".into();
        store.create(&lost).await.unwrap();
        jobs.lose_next_answer.store(true, std::sync::atomic::Ordering::SeqCst);
        let request = job(&lost);
        start(&store, &jobs, &mut lost, &request, &at).await.unwrap();
        assert_eq!((lost.status, store.status("fw-4")), (DeploymentStatus::InProgress, Some(DeploymentStatus::InProgress)));
    }

    #[tokio::test]
    async fn a_creation_cut_short_half_way_is_finished_when_next_read() {
        use crate::firmware::memory::{MemoryDeployments, MemoryJobs};
        let (store, jobs) = (MemoryDeployments::default(), MemoryJobs::default());
        let now = chrono::Utc::now();
        let at = crate::platform::time::format_utc(now);
        // The job was created, then recording IN_PROGRESS failed.
        let d = starting(&at);
        store.create(&d).await.unwrap();
        store.fail_next_status.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(start(&store, &jobs, &mut d.clone(), &job(&d), &at).await.is_err());
        assert_eq!(store.status("fw-1"), Some(DeploymentStatus::Starting));
        let mut read = store.get("fw-1").await.unwrap().unwrap();
        resume(&store, &jobs, &mut read, now).await.unwrap();
        assert_eq!((read.status, store.status("fw-1")), (DeploymentStatus::InProgress, Some(DeploymentStatus::InProgress)));

        // The function died before the job: STARTING until the deadline, then FAILED_TO_START.
        let mut orphan = starting(&at);
        orphan.deployment_id = "fw-3".into();
        store.insert(orphan.clone());
        resume(&store, &jobs, &mut orphan, now).await.unwrap();
        assert_eq!(orphan.status, DeploymentStatus::Starting, "it may still be on its way");
        resume(&store, &jobs, &mut orphan, now + START_DEADLINE + chrono::Duration::seconds(1)).await.unwrap();
        assert_eq!(store.status("fw-3"), Some(DeploymentStatus::FailedToStart));
        assert!(orphan.status_reason.unwrap().contains("interrupted"));
    }
}
