//! Firmware admin routes (role `admin`):
//!
//! | route | function |
//! |---|---|
//! | `POST /admin/firmware` | `admin-firmware-register` |
//! | `GET /admin/firmware?deviceModel=` | `admin-firmware-list` |
//! | `POST /admin/firmware/deployments` | `admin-deployments-create` |
//! | `GET /admin/firmware/deployments/{deploymentId}` | `admin-deployments-get` |
//! | `POST /admin/firmware/deployments/{deploymentId}/cancel` | `admin-deployments-cancel` |
//!
//! Registering an image records its version, device model, SHA-256 and size, and answers a
//! presigned PUT (15 minutes) for `firmware/<model>/<version>/<file>`; the device later checks
//! the SHA-256 before applying.

use chrono::Utc;
use lambda_http::Request;
use serde::Deserialize;
use serde_json::{json, Map};

use super::deployments::{
    job_document, resume, start, Deployment, DeploymentStatus, DeploymentStore, DeviceExecution, ExecutionStatus, JobControl,
    JobRequest, RolloutSettings, MAX_TARGETS,
};
use super::{FirmwareImage, FirmwareStore, MAX_FIRMWARE_BYTES};
use crate::access::{require, Role};
use crate::devices::{slug, DeviceRegistry, DeviceStatus};
use crate::files::UploadSigner;
use crate::platform::http::{json_body, path_param, query_param, ApiError, Reply};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// What registering an image needs.
pub struct FirmwareDeps<F, S> {
    pub images: F,
    pub signer: S,
}

impl<F: FromWiring, S: FromWiring> FromWiring for FirmwareDeps<F, S> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { images: w.build()?, signer: w.build()? })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Registration {
    version: String,
    device_model: String,
    sha256: String,
    size_bytes: u64,
}

fn version_ok(v: &str) -> bool {
    (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
}

/// `POST /admin/firmware` with `{version, deviceModel, sha256, sizeBytes}`: 201 with the image
/// and its `uploadUrl`.
pub async fn register<F: FirmwareStore, S: UploadSigner>(request: Request, deps: &FirmwareDeps<F, S>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let r: Registration = json_body(&request)?;
    if !version_ok(&r.version) {
        return Err(ApiError::bad("version", "must be 1-64 of letters, digits, '.', '-', '_' or '+'"));
    }
    let model = r.device_model.trim();
    if model.is_empty() || model.len() > 128 {
        return Err(ApiError::bad("deviceModel", "must be 1-128 characters"));
    }
    let sha256 = r.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad("sha256", "must be 64 hexadecimal characters"));
    }
    if r.size_bytes == 0 || r.size_bytes > MAX_FIRMWARE_BYTES {
        return Err(ApiError::bad("sizeBytes", format!("must be from 1 to {MAX_FIRMWARE_BYTES}")));
    }
    let model_slug = slug(model);
    let firmware_id = format!("{model_slug}-{}", r.version.to_ascii_lowercase());
    let image = FirmwareImage {
        object_key: format!("firmware/{model_slug}/{}/{firmware_id}.bin", r.version),
        firmware_id,
        version: r.version,
        device_model: model.to_owned(),
        sha256,
        size_bytes: r.size_bytes,
        created_at: format_utc(Utc::now()),
    };
    if !deps.images.create(&image).await? {
        return Err(ApiError::Conflict(format!("firmware {} {} is already registered", image.device_model, image.version)));
    }
    // The link takes exactly the registered size: S3 refuses a body of any other length.
    let upload_url = deps.signer.presign_put(&image.object_key, "application/octet-stream", Some(image.size_bytes)).await?;
    let mut body = image.to_json();
    body["uploadUrl"] = json!(upload_url);
    Ok((201, body))
}

/// `GET /admin/firmware?deviceModel=`
pub async fn list<F: FirmwareStore>(request: Request, images: &F) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let mut images = images.list(query_param(&request, "deviceModel").as_deref()).await?;
    images.sort_by(|a, b| (&a.device_model, &a.created_at).cmp(&(&b.device_model, &b.created_at)));
    Ok((200, json!({"firmware": images.iter().map(FirmwareImage::to_json).collect::<Vec<_>>()})))
}

/// What creating a deployment needs.
pub struct DeploymentDeps<F, D, S, J> {
    pub images: F,
    pub devices: D,
    pub deployments: S,
    pub jobs: J,
    /// `https://s3.<region>.amazonaws.com/<bucket>`: the base of the presigned-URL placeholder.
    pub bucket_url: String,
}

impl<F: FromWiring, D: FromWiring, S: FromWiring, J: FromWiring> FromWiring for DeploymentDeps<F, D, S, J> {
    /// The firmware bucket from `DEVICE_FILES_BUCKET`.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        let bucket = w.settings.required("DEVICE_FILES_BUCKET")?;
        Ok(Self {
            images: w.build()?,
            devices: w.build()?,
            deployments: w.build()?,
            jobs: w.build()?,
            bucket_url: format!("https://s3.{}.amazonaws.com/{bucket}", w.aws.region()),
        })
    }
}

/// What following and cancelling a deployment need.
pub struct JobDeps<S, J> {
    pub deployments: S,
    pub jobs: J,
}

impl<S: FromWiring, J: FromWiring> FromWiring for JobDeps<S, J> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { deployments: w.build()?, jobs: w.build()? })
    }
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
) -> Result<Reply, ApiError> {
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
        status: DeploymentStatus::Starting,
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
    // Recorded (STARTING) before the job exists, so that no job event can arrive for an unknown
    // deployment; followed only once the job exists.
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
    start(&deps.deployments, &deps.jobs, &mut deployment, &job, &now).await?;
    tracing::info!(deployment_id = %deployment.deployment_id, devices = deployment.devices.len(), "deployment created");
    Ok((201, deployment.to_json()))
}

async fn load<S: DeploymentStore>(store: &S, id: &str) -> Result<Deployment, ApiError> {
    store.get(id).await?.ok_or_else(|| ApiError::NotFound(format!("no deployment {id}")))
}

/// `GET /admin/firmware/deployments/{deploymentId}`: the deployment with each device's status
/// (terminal ones as recorded from job events, the others live from IoT Jobs) and progress.
pub async fn get<S: DeploymentStore, J: JobControl>(request: Request, deps: &JobDeps<S, J>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let mut deployment = load(&deps.deployments, &path_param(&request, "deploymentId")?).await?;
    resume(&deps.deployments, &deps.jobs, &mut deployment, Utc::now()).await?;
    let pending = deployment.devices.iter().any(|d| !d.status.is_terminal());
    if pending && deployment.status == DeploymentStatus::InProgress {
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

/// `POST /admin/firmware/deployments/{deploymentId}/cancel`: cancels the job; devices not
/// started yet get nothing, devices already updating finish. Cancelling twice is harmless.
pub async fn cancel<S: DeploymentStore, J: JobControl>(request: Request, deps: &JobDeps<S, J>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin])?;
    let id = path_param(&request, "deploymentId")?;
    let mut deployment = load(&deps.deployments, &id).await?;
    resume(&deps.deployments, &deps.jobs, &mut deployment, Utc::now()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
