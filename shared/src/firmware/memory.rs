//! Firmware images, deployments and IoT Jobs in memory for unit tests, with the DynamoDB
//! stores' conditions: an id is created once, a status is set only on a deployment that
//! exists, a device's first terminal status is the one kept; a job id is created once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::deployments::{
    Deployment, DeploymentStatus, DeploymentStore, DeploymentSummary, ExecutionStatus, JobControl, JobRequest, ListCursor, Recorded,
};
use super::{FirmwareImage, FirmwareStore};
use crate::StoreError;

#[derive(Default)]
pub struct MemoryFirmware(pub Mutex<BTreeMap<String, FirmwareImage>>);

impl FirmwareStore for MemoryFirmware {
    async fn create(&self, image: &FirmwareImage) -> Result<bool, StoreError> {
        let mut all = self.0.lock().expect("lock");
        if all.contains_key(&image.firmware_id) {
            return Ok(false);
        }
        all.insert(image.firmware_id.clone(), image.clone());
        Ok(true)
    }

    async fn get(&self, firmware_id: &str) -> Result<Option<FirmwareImage>, StoreError> {
        Ok(self.0.lock().expect("lock").get(firmware_id).cloned())
    }

    async fn list(&self, device_model: Option<&str>) -> Result<Vec<FirmwareImage>, StoreError> {
        Ok(self.0.lock().expect("lock").values().filter(|i| device_model.is_none_or(|m| i.device_model == m)).cloned().collect())
    }
}

#[derive(Default)]
pub struct MemoryDeployments {
    all: Mutex<BTreeMap<String, Deployment>>,
    /// Makes the next status change fail, as a throttled table would.
    pub fail_next_status: AtomicBool,
}

impl MemoryDeployments {
    pub fn status(&self, id: &str) -> Option<DeploymentStatus> {
        self.all.lock().expect("lock").get(id).map(|d| d.status)
    }

    /// Every deployment recorded, by id.
    pub fn all(&self) -> Vec<Deployment> {
        self.all.lock().expect("lock").values().cloned().collect()
    }

    pub fn insert(&self, deployment: Deployment) {
        self.all.lock().expect("lock").insert(deployment.deployment_id.clone(), deployment);
    }
}

impl DeploymentStore for MemoryDeployments {
    async fn create(&self, deployment: &Deployment) -> Result<bool, StoreError> {
        let mut all = self.all.lock().expect("lock");
        if all.contains_key(&deployment.deployment_id) {
            return Ok(false);
        }
        all.insert(deployment.deployment_id.clone(), deployment.clone());
        Ok(true)
    }

    async fn get(&self, deployment_id: &str) -> Result<Option<Deployment>, StoreError> {
        Ok(self.all.lock().expect("lock").get(deployment_id).cloned())
    }

    async fn list(&self, limit: usize, after: Option<&ListCursor>) -> Result<(Vec<DeploymentSummary>, Option<ListCursor>), StoreError> {
        // As the byCreated index orders them: newest first, ties by id, descending.
        let mut page: Vec<DeploymentSummary> = self.all.lock().expect("lock").values().map(DeploymentSummary::of).collect();
        page.sort_by(|a, b| (&b.created_at, &b.deployment_id).cmp(&(&a.created_at, &a.deployment_id)));
        if let Some(after) = after {
            page.retain(|d| (&d.created_at, &d.deployment_id) < (&after.created_at, &after.deployment_id));
        }
        // As a DynamoDB query with a limit does: a full page has a cursor, even when nothing follows.
        let full = limit > 0 && page.len() >= limit;
        page.truncate(limit);
        let next = if full { page.last().map(ListCursor::after) } else { None };
        Ok((page, next))
    }

    async fn set_status(&self, deployment_id: &str, status: DeploymentStatus, reason: Option<&str>, at: &str) -> Result<(), StoreError> {
        if self.fail_next_status.swap(false, Ordering::SeqCst) {
            return Err(StoreError::new("set deployment status", "simulated throttling"));
        }
        let mut all = self.all.lock().expect("lock");
        let d = all.get_mut(deployment_id).ok_or_else(|| StoreError::new("set deployment status", "the conditional request failed"))?;
        d.status = status;
        if let Some(r) = reason {
            d.status_reason = Some(r.to_owned());
        }
        d.updated_at = at.to_owned();
        Ok(())
    }

    async fn record_terminal(
        &self,
        deployment_id: &str,
        thing_name: &str,
        status: ExecutionStatus,
        details: &Map<String, Value>,
        at: &str,
    ) -> Result<Recorded, StoreError> {
        let mut all = self.all.lock().expect("lock");
        let Some(device) = all.get_mut(deployment_id).and_then(|d| d.devices.iter_mut().find(|e| e.thing_name == thing_name)) else {
            return Ok(Recorded::Unknown);
        };
        if device.status.is_terminal() {
            return Ok(Recorded::AlreadyFinal(device.status));
        }
        device.status = status;
        device.status_details = details.clone();
        device.updated_at = at.to_owned();
        Ok(Recorded::Updated)
    }
}

/// IoT Jobs in memory: job ids, and whether the next creation fails.
#[derive(Default)]
pub struct MemoryJobs {
    pub jobs: Mutex<BTreeSet<String>>,
    pub fail_next_create: AtomicBool,
    /// The next creation succeeds but its answer is lost (a timeout after IoT created the job).
    pub lose_next_answer: AtomicBool,
}

impl JobControl for MemoryJobs {
    async fn create_job(&self, job: &JobRequest) -> Result<(), StoreError> {
        if self.fail_next_create.swap(false, Ordering::SeqCst) {
            return Err(StoreError::new("create IoT job", "LimitExceededException"));
        }
        // A job that exists already counts as created, as the IoT adapter treats it.
        self.jobs.lock().expect("lock").insert(job.job_id.clone());
        if self.lose_next_answer.swap(false, Ordering::SeqCst) {
            return Err(StoreError::new("create IoT job", "dispatch failure: timeout"));
        }
        Ok(())
    }

    async fn job_exists(&self, job_id: &str) -> Result<bool, StoreError> {
        Ok(self.jobs.lock().expect("lock").contains(job_id))
    }

    async fn cancel_job(&self, job_id: &str, _comment: &str) -> Result<(), StoreError> {
        match self.jobs.lock().expect("lock").contains(job_id) {
            true => Ok(()),
            false => Err(StoreError::new("cancel IoT job", "ResourceNotFoundException")),
        }
    }

    async fn execution_statuses(&self, _job_id: &str) -> Result<BTreeMap<String, ExecutionStatus>, StoreError> {
        Ok(BTreeMap::new())
    }
}
