//! [`JobControl`] through the AWS IoT control plane.

use std::collections::BTreeMap;

use super::deployments::{ExecutionStatus, JobControl, JobRequest};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// [`JobControl`] through the AWS IoT control plane.
#[derive(Debug, Clone)]
pub struct IotJobControl {
    client: aws_sdk_iot::Client,
    /// `arn:<partition>:iot:<region>:<account>:thing/`
    thing_arn_prefix: String,
    /// The role IoT assumes to presign the firmware URL (`s3:GetObject` on `firmware/*`).
    presign_role_arn: String,
}

impl IotJobControl {
    pub fn new(client: aws_sdk_iot::Client, thing_arn_prefix: impl Into<String>, presign_role_arn: impl Into<String>) -> Self {
        Self { client, thing_arn_prefix: thing_arn_prefix.into(), presign_role_arn: presign_role_arn.into() }
    }
}

impl FromWiring for IotJobControl {
    /// `THING_ARN_PREFIX` and `FIRMWARE_DOWNLOAD_ROLE_ARN`.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.iot(), w.settings.required("THING_ARN_PREFIX")?, w.settings.required("FIRMWARE_DOWNLOAD_ROLE_ARN")?))
    }
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
        let created = self
            .client
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
            .await;
        match created {
            Ok(_) => Ok(()),
            // Created by an earlier attempt that did not live to record it.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_already_exists_exception()) => Ok(()),
            Err(e) => Err(StoreError::sdk(OP, &e)),
        }
    }

    async fn job_exists(&self, job_id: &str) -> Result<bool, StoreError> {
        match self.client.describe_job().job_id(job_id).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
            Err(e) => Err(StoreError::sdk("describe IoT job", &e)),
        }
    }

    async fn cancel_job(&self, job_id: &str, comment: &str) -> Result<(), StoreError> {
        self.client
            .cancel_job()
            .job_id(job_id)
            .comment(comment.chars().take(2028).collect::<String>())
            .force(false)
            .send()
            .await
            .map_err(|e| StoreError::sdk("cancel IoT job", &e))?;
        Ok(())
    }

    async fn execution_statuses(&self, job_id: &str) -> Result<BTreeMap<String, ExecutionStatus>, StoreError> {
        let mut statuses = BTreeMap::new();
        let mut pages = self.client.list_job_executions_for_job().job_id(job_id).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk("list job executions", &e))?;
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
