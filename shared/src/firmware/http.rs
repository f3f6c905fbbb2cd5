//! Firmware admin routes (role `admin`):
//!
//! | route | function |
//! |---|---|
//! | `POST /admin/firmware` | `admin-firmware-register` |
//! | `GET /admin/firmware?deviceModel=` | `admin-firmware-list` |
//! | `POST /admin/firmware/deployments` | `admin-deployments-create` |
//! | `GET /admin/firmware/deployments?limit=&next=` | `admin-deployments-list` |
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
    job_document, resume, start, Deployment, DeploymentStatus, DeploymentStore, DeploymentSummary, DeviceExecution, ExecutionStatus,
    JobControl, JobRequest, ListCursor, RolloutSettings, MAX_TARGETS,
};
use super::{FirmwareImage, FirmwareStore, MAX_FIRMWARE_BYTES};
use crate::access::{require, Role};
use crate::devices::{slug, DeviceRegistry, DeviceStatus};
use crate::files::UploadSigner;
use crate::platform::http::{json_body, limit_param, path_param, query_param, ApiError, Reply};
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
    // Counted in characters, as the device registry counts a device's model.
    if model.is_empty() || model.chars().count() > 128 {
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
                // An API key or an operator activates a gateway that has no IoT thing to run a job.
                if device.certificate_id.is_none() {
                    return Err(ApiError::bad("thingNames", format!("{name} has not provisioned with IoT Core: it has no thing to update")));
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
                        .filter(|d| d.model == image.device_model && d.status == DeviceStatus::Active && d.certificate_id.is_some())
                        .map(|d| d.thing_name),
                );
                match next {
                    Some(n) => after = Some(n),
                    None => break,
                }
            }
            if names.is_empty() {
                return Err(ApiError::bad("allDevicesOfModel", format!("no ACTIVE provisioned device of model {}", image.device_model)));
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

/// `GET /admin/firmware/deployments?limit=&next=`: deployments newest first, each with its
/// status and how many of its devices finished (the devices themselves: the deployment's own route).
pub async fn list_deployments<S: DeploymentStore>(request: Request, deployments: &S) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let limit = limit_param(&request, 25, 100)?;
    let after = match query_param(&request, "next") {
        None => None,
        Some(token) => Some(ListCursor::parse(&token).ok_or_else(|| ApiError::bad("next", "is not a cursor this list gave"))?),
    };
    let (page, next) = deployments.list(usize::try_from(limit).unwrap_or(25), after.as_ref()).await?;
    Ok((200, json!({
        "deployments": page.iter().map(DeploymentSummary::to_json).collect::<Vec<_>>(),
        "next": next.map(|c| c.token()),
    })))
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
    use std::sync::atomic::Ordering;

    use serde_json::Value;

    use super::*;
    use crate::devices::memory::MemoryDevices;
    use crate::devices::Device;
    use crate::files::memory::NamingSigner;
    use crate::firmware::memory::{MemoryDeployments, MemoryFirmware, MemoryJobs};
    use crate::platform::testing::{self, answered, Answered, ApiRequest};

    const SHA256: &str = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";

    fn registration(version: &str, model: &str, sha256: &str, size: Value) -> ApiRequest {
        ApiRequest::new("POST /admin/firmware")
            .json(json!({"version": version, "deviceModel": model, "sha256": sha256, "sizeBytes": size}))
            .caller(testing::admin())
    }

    fn firmware_deps() -> FirmwareDeps<MemoryFirmware, NamingSigner> {
        FirmwareDeps { images: MemoryFirmware::default(), signer: NamingSigner }
    }

    #[tokio::test]
    async fn an_image_is_registered_once_with_an_upload_link_for_exactly_its_size() {
        let deps = firmware_deps();
        let answer = answered(register(registration("1.2.0", " BP 200 ", SHA256, json!(1000)).build(), &deps).await);
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert_eq!(answer.body["firmwareId"], json!("bp-200-1.2.0"));
        assert_eq!(answer.body["deviceModel"], json!("BP 200"), "trimmed");
        assert_eq!(answer.body["sha256"], json!(SHA256.to_ascii_lowercase()));
        let stored = deps.images.get("bp-200-1.2.0").await.unwrap().unwrap();
        assert_eq!(stored.object_key, "firmware/bp-200/1.2.0/bp-200-1.2.0.bin");
        let expected_link = NamingSigner.presign_put(&stored.object_key, "application/octet-stream", Some(1000)).await.unwrap();
        assert_eq!(answer.body["uploadUrl"], json!(expected_link));
        let mut shown = answer.body.clone();
        shown.as_object_mut().unwrap().remove("uploadUrl");
        assert_eq!(shown, stored.to_json());

        let other_sha = "0".repeat(64);
        for (version, model) in [("1.2.0", "BP 200"), ("1.2.0", "bp-200"), ("1.2.0", "BP  200!")] {
            let again = answered(register(registration(version, model, &other_sha, json!(2000)).build(), &deps).await);
            assert_eq!((again.status, again.error_code()), (409, Some("CONFLICT")), "{model} {version}");
        }
        assert_eq!(deps.images.get("bp-200-1.2.0").await.unwrap().unwrap(), stored, "the first registration stays");
    }

    #[tokio::test]
    async fn a_bad_registration_names_its_field_and_registers_nothing() {
        let deps = firmware_deps();
        let cases = [
            registration("", "BP", SHA256, json!(1)),
            registration("1 2", "BP", SHA256, json!(1)),
            registration(&"1".repeat(65), "BP", SHA256, json!(1)),
            registration("1.0", "   ", SHA256, json!(1)),
            registration("1.0", &"m".repeat(129), SHA256, json!(1)),
            registration("1.0", &"é".repeat(129), SHA256, json!(1)),
            registration("1.0", "BP", &SHA256[1..], json!(1)),
            registration("1.0", "BP", &format!("{}g", &SHA256[1..]), json!(1)),
            registration("1.0", "BP", SHA256, json!(0)),
            registration("1.0", "BP", SHA256, json!(MAX_FIRMWARE_BYTES + 1)),
            registration("1.0", "BP", SHA256, json!(-1)),
            ApiRequest::new("POST /admin/firmware").json(json!({"version": "1.0", "deviceModel": "BP", "sha256": SHA256})).caller(testing::admin()),
        ];
        let fields = [
            "version",
            "version",
            "version",
            "deviceModel",
            "deviceModel",
            "deviceModel",
            "sha256",
            "sha256",
            "sizeBytes",
            "sizeBytes",
            "body",
            "body",
        ];
        for (request, field) in cases.into_iter().zip(fields) {
            let answer = answered(register(request.build(), &deps).await);
            assert_eq!((answer.status, answer.error_field()), (400, Some(field)), "{}", answer.body);
        }
        assert!(deps.images.list(None).await.unwrap().is_empty());
        // A model the device registry accepts (128 characters, not bytes) takes firmware too.
        let long_model = format!("Oxímetro {}", "é".repeat(119));
        assert_eq!(long_model.chars().count(), 128);
        assert_eq!(answered(register(registration("1.0", &long_model, SHA256, json!(1)).build(), &deps).await).status, 201);
    }

    #[tokio::test]
    async fn images_are_listed_by_model_and_time_and_filtered_by_model() {
        let deps = firmware_deps();
        for (version, model) in [("2.0", "BP 200"), ("1.0", "Oximeter"), ("1.0", "BP 200")] {
            assert_eq!(answered(register(registration(version, model, SHA256, json!(10)).build(), &deps).await).status, 201);
            // Registered in turn: a later image has a later createdAt.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let ids =
            |a: &Answered| a.body["firmware"].as_array().unwrap().iter().map(|i| i["firmwareId"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
        let all = answered(list(ApiRequest::new("GET /admin/firmware").caller(testing::admin()).build(), &deps.images).await);
        assert_eq!(all.status, 200);
        assert_eq!(ids(&all), ["bp-200-2.0", "bp-200-1.0", "oximeter-1.0"], "by model, then in the order registered");
        let bp = answered(
            list(ApiRequest::new("GET /admin/firmware").query("deviceModel", "BP 200").caller(testing::admin()).build(), &deps.images).await,
        );
        assert_eq!(ids(&bp), ["bp-200-2.0", "bp-200-1.0"]);
        let none = answered(
            list(ApiRequest::new("GET /admin/firmware").query("deviceModel", "bp-200").caller(testing::admin()).build(), &deps.images).await,
        );
        assert_eq!(ids(&none), Vec::<String>::new(), "the model as registered, not its slug");
    }

    #[tokio::test]
    async fn only_admins_register_and_list_firmware() {
        let deps = firmware_deps();
        for (caller, status) in [(testing::clinician(), 403), (testing::patient("pat-1"), 403), (json!({}), 401)] {
            let registered = answered(register(registration("1.0", "BP", SHA256, json!(1)).caller(caller.clone()).build(), &deps).await);
            let listed = answered(list(ApiRequest::new("GET /admin/firmware").caller(caller.clone()).build(), &deps.images).await);
            assert_eq!((registered.status, listed.status), (status, status), "{caller}");
        }
        assert!(deps.images.list(None).await.unwrap().is_empty());
    }

    type Deploying = DeploymentDeps<MemoryFirmware, MemoryDevices, MemoryDeployments, MemoryJobs>;

    /// A provisioned device (it has a certificate, so an IoT thing).
    fn device(serial: &str, model: &str, status: DeviceStatus) -> Device {
        let mut d = Device::registered("Acme", serial, model, "", "2026-11-01T00:00:00.000Z");
        d.status = status;
        d.certificate_id = Some(format!("cert-{serial}"));
        d
    }

    /// Image `bp-1.0` of model BP; acme-1 an active BP, acme-2 an active oximeter, acme-3 an
    /// inactive BP, acme-4 an active BP gateway that only has an API key (no IoT thing).
    async fn deploying() -> Deploying {
        let deps = DeploymentDeps {
            images: MemoryFirmware::default(),
            devices: MemoryDevices::with(vec![
                device("1", "BP", DeviceStatus::Active),
                device("2", "Oximeter", DeviceStatus::Active),
                device("3", "BP", DeviceStatus::Inactive),
                Device { certificate_id: None, ..device("4", "BP", DeviceStatus::Active) },
            ]),
            deployments: MemoryDeployments::default(),
            jobs: MemoryJobs::default(),
            bucket_url: "https://s3.eu-west-1.amazonaws.com/device-files".into(),
        };
        let image = FirmwareImage {
            firmware_id: "bp-1.0".into(),
            version: "1.0".into(),
            device_model: "BP".into(),
            sha256: SHA256.to_ascii_lowercase(),
            size_bytes: 10,
            object_key: "firmware/bp/1.0/bp-1.0.bin".into(),
            created_at: "2026-11-01T00:00:00.000Z".into(),
        };
        assert!(deps.images.create(&image).await.unwrap());
        deps
    }

    async fn deploy(deps: &Deploying, body: Value) -> Answered {
        answered(create(ApiRequest::new("POST /admin/firmware/deployments").json(body).caller(testing::admin()).build(), deps).await)
    }

    fn targets_of(answer: &Answered) -> Vec<&str> {
        answer.body["devices"].as_array().unwrap().iter().map(|d| d["thingName"].as_str().unwrap()).collect()
    }

    #[tokio::test]
    async fn a_deployment_reaches_only_active_devices_of_the_images_model() {
        let deps = deploying().await;
        let listed = deploy(&deps, json!({"firmwareId": "bp-1.0", "thingNames": ["acme-1"]})).await;
        assert_eq!(listed.status, 201, "{}", listed.body);
        assert_eq!((listed.body["status"].as_str(), targets_of(&listed)), (Some("IN_PROGRESS"), vec!["acme-1"]));
        let id = listed.body["deploymentId"].as_str().unwrap();
        assert!(deps.jobs.job_exists(id).await.unwrap(), "its IoT Job exists");
        assert_eq!(deps.deployments.status(id), Some(DeploymentStatus::InProgress));

        let whole_model = deploy(&deps, json!({"firmwareId": "bp-1.0", "allDevicesOfModel": true})).await;
        assert_eq!(
            (whole_model.status, targets_of(&whole_model)),
            (201, vec!["acme-1"]),
            "not the oximeter, not the inactive BP, not the keyed gateway without a thing"
        );
        assert_eq!(deps.jobs.jobs.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_deployment_that_could_brick_or_miss_a_device_is_refused_before_anything_starts() {
        let deps = deploying().await;
        let cases = [
            (json!({"firmwareId": "bp-1.0", "thingNames": ["acme-2"]}), "thingNames"),
            (json!({"firmwareId": "bp-1.0", "thingNames": ["acme-3"]}), "thingNames"),
            (json!({"firmwareId": "bp-1.0", "thingNames": ["acme-4"]}), "thingNames"),
            (json!({"firmwareId": "bp-1.0", "thingNames": ["acme-1", "acme-1"]}), "thingNames"),
            (json!({"firmwareId": "bp-1.0", "thingNames": ["acme-9"]}), "thingNames"),
            (json!({"firmwareId": "bp-1.0", "thingNames": []}), "thingNames"),
            (json!({"firmwareId": "bp-1.0", "thingNames": ["acme-1"], "allDevicesOfModel": true}), "thingNames"),
            (json!({"firmwareId": "bp-1.0"}), "thingNames"),
            (json!({"firmwareId": "bp-9.9", "thingNames": ["acme-1"]}), "firmwareId"),
            (json!({"firmwareId": "bp-1.0", "thingNames": ["acme-1"], "rollout": {"maximumPerMinute": 0}}), "rollout.maximumPerMinute"),
        ];
        for (body, field) in cases {
            let answer = deploy(&deps, body.clone()).await;
            assert_eq!((answer.status, answer.error_field()), (400, Some(field)), "{body}: {}", answer.body);
        }
        assert!(deps.jobs.jobs.lock().unwrap().is_empty(), "no job was created");
    }

    #[tokio::test]
    async fn a_deployment_whose_job_cannot_be_created_failed_to_start() {
        let deps = deploying().await;
        deps.jobs.fail_next_create.store(true, Ordering::SeqCst);
        let answer = deploy(&deps, json!({"firmwareId": "bp-1.0", "thingNames": ["acme-1"]})).await;
        assert_eq!((answer.status, answer.error_code()), (503, Some("UNAVAILABLE")));
        assert!(deps.jobs.jobs.lock().unwrap().is_empty());
        let recorded = deps.deployments.all();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].status, DeploymentStatus::FailedToStart, "never followed");
        assert!(recorded[0].status_reason.as_deref().is_some_and(|r| r.contains("could not be created")), "{:?}", recorded[0].status_reason);
    }

    #[tokio::test]
    async fn a_deployment_is_read_and_cancelled_once() {
        let deps = deploying().await;
        let created = deploy(&deps, json!({"firmwareId": "bp-1.0", "thingNames": ["acme-1"]})).await;
        let id = created.body["deploymentId"].as_str().unwrap().to_owned();
        let jobs = JobDeps { deployments: deps.deployments, jobs: deps.jobs };
        let on = |route: &str, id: &str| ApiRequest::new(route).path("deploymentId", id).caller(testing::admin()).build();
        let read = answered(get(on("GET /admin/firmware/deployments/{deploymentId}", &id), &jobs).await);
        assert_eq!((read.status, read.body["status"].as_str()), (200, Some("IN_PROGRESS")));
        for _ in 0..2 {
            let cancelled = answered(cancel(on("POST /admin/firmware/deployments/{deploymentId}/cancel", &id), &jobs).await);
            assert_eq!((cancelled.status, cancelled.body["status"].as_str()), (200, Some("CANCELED")));
        }
        assert_eq!(jobs.deployments.status(&id), Some(DeploymentStatus::Canceled));
        assert_eq!(answered(get(on("GET /admin/firmware/deployments/{deploymentId}", "fw-none"), &jobs).await).status, 404);
        let by_clinician =
            ApiRequest::new("POST /admin/firmware/deployments/{deploymentId}/cancel").path("deploymentId", &id).caller(testing::clinician());
        assert_eq!(answered(cancel(by_clinician.build(), &jobs).await).status, 403);
    }

    #[tokio::test]
    async fn deployments_are_listed_newest_first_in_pages_with_their_progress() {
        let deps = deploying().await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            let created = deploy(&deps, json!({"firmwareId": "bp-1.0", "thingNames": ["acme-1"]})).await;
            assert_eq!(created.status, 201, "{}", created.body);
            ids.push(created.body["deploymentId"].as_str().unwrap().to_owned());
        }
        let finished = deps.deployments.record_terminal(&ids[0], "acme-1", ExecutionStatus::Succeeded, &Map::new(), "2026-12-06T10:00:00.000Z").await;
        assert_eq!(finished.unwrap(), super::super::deployments::Recorded::Updated);
        let page = |next: Option<&str>, caller| {
            let request = ApiRequest::new("GET /admin/firmware/deployments").query("limit", "2").caller(caller);
            match next {
                Some(n) => request.query("next", n).build(),
                None => request.build(),
            }
        };
        let first = answered(list_deployments(page(None, testing::admin()), &deps.deployments).await);
        assert_eq!(first.status, 200, "{}", first.body);
        let second = answered(list_deployments(page(first.body["next"].as_str(), testing::admin()), &deps.deployments).await);
        let listed: Vec<&Value> = first.body["deployments"].as_array().unwrap().iter().chain(second.body["deployments"].as_array().unwrap()).collect();
        let mut newest_first = listed.iter().map(|d| (d["createdAt"].as_str().unwrap(), d["deploymentId"].as_str().unwrap())).collect::<Vec<_>>();
        assert_eq!(newest_first.len(), 3, "each deployment once: {newest_first:?}");
        let shown = newest_first.clone();
        newest_first.sort_by(|a, b| b.cmp(a));
        assert_eq!(shown, newest_first);
        assert_eq!(second.body["next"], Value::Null, "nothing follows a short page");
        let oldest = listed.iter().find(|d| d["deploymentId"] == ids[0].as_str()).unwrap();
        assert_eq!((oldest["status"].as_str(), oldest["devices"].as_u64(), oldest["finished"].as_u64()), (Some("COMPLETED"), Some(1), Some(1)));
        let other = listed.iter().find(|d| d["deploymentId"] == ids[1].as_str()).unwrap();
        assert_eq!((other["status"].as_str(), other["finished"].as_u64(), other["version"].as_str()), (Some("IN_PROGRESS"), Some(0), Some("1.0")));

        let forged = answered(list_deployments(page(Some("not-a-cursor"), testing::admin()), &deps.deployments).await);
        assert_eq!((forged.status, forged.error_field()), (400, Some("next")));
        assert_eq!(answered(list_deployments(page(None, testing::clinician()), &deps.deployments).await).status, 403);
    }

    #[test]
    fn list_cursors_round_trip_and_refuse_what_they_did_not_make() {
        let cursor = ListCursor { created_at: "2026-12-06T10:00:00.000Z".into(), deployment_id: "fw-20261206T100000-ab12".into() };
        assert_eq!(ListCursor::parse(&cursor.token()), Some(cursor));
        use base64::Engine;
        let encode = |t: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t);
        for bad in [encode("yesterday|fw-1"), encode("2026-12-06T10:00:00.000Z|"), encode("no separator"), "%%%".to_owned()] {
            assert_eq!(ListCursor::parse(&bad), None, "{bad}");
        }
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
