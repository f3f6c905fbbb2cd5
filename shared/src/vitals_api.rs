//! The vitals REST API for gateways and apps, with device API keys (the seed's routes):
//!
//! | route | function | permission |
//! |---|---|---|
//! | `POST /api/iot/vitals` | `iot-vitals` | `write_vitals` |
//! | `POST /api/iot/vitals/batch` | `iot-vitals-batch` | `write_vitals` |
//! | `GET /api/iot/status` | `iot-status` | `read_status` |
//!
//! Every request is rate limited per key (429 with `Retry-After` and `X-RateLimit-*`), counted
//! as the key's use, and written to the activity log. Errors are `{"success": false, "error",
//! "field"?, "errors"?}`: 401 missing/malformed/unknown/expired/revoked key, 403 another device
//! or a missing permission, 400 invalid reading (each problem with its field), 409 a different
//! reading already filed for the same device, time and measurement, 413 body over 1 MB, 429.

use std::time::Instant;

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::activity::{Activity, ActivityLog, UNAUTHENTICATED};
use crate::alerts::{AlertSettings, AlertStore};
use crate::api_keys::{ApiKeyStore, Permission};
use crate::devices::{Device, DeviceRegistry, DeviceStatus};
use crate::observations::ObservationStore;
use crate::pipeline::{self, Filed};
use crate::readings::{self, FieldError, Reading, SetContext};
use crate::time::format_utc;
use crate::StoreError;

/// Largest body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most readings in one batch.
pub const MAX_BATCH: usize = 100;

/// What the vitals routes need.
pub struct VitalsDeps<D, O, K, A, L> {
    pub devices: D,
    pub observations: O,
    pub keys: K,
    pub activity: A,
    pub alerts: L,
    pub alert_settings: AlertSettings,
}

/// The device a key speaks for, from the authorizer's context.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub device_id: String,
    pub key_id: String,
    pub permissions: Vec<Permission>,
    pub rate_limit_per_minute: u32,
}

/// A refusal: status, message, the field at fault, every problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub error: String,
    pub field: Option<String>,
    pub errors: Vec<FieldError>,
}

impl Failure {
    fn new(status: u16, error: impl Into<String>) -> Self {
        Self { status, error: error.into(), field: None, errors: Vec::new() }
    }

    fn invalid(errors: Vec<FieldError>) -> Self {
        let first = errors.first().cloned().unwrap_or(FieldError { field: "body".into(), reason: "is invalid".into() });
        Self { status: 400, error: format!("{} {}", first.field, first.reason), field: Some(first.field), errors }
    }

    fn body(&self) -> Value {
        let mut body = json!({"success": false, "error": self.error});
        if let Some(f) = &self.field {
            body["field"] = json!(f);
        }
        if !self.errors.is_empty() {
            body["errors"] = json!(self.errors);
        }
        body
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        // Details stay in the logs.
        tracing::error!(error = %e, "vitals route failed");
        Failure::new(503, "the service is unavailable; retry with backoff")
    }
}

fn context(request: &Request) -> std::collections::HashMap<String, Value> {
    match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().map(|a| a.fields.clone()).unwrap_or_default()
        }
        _ => Default::default(),
    }
}

/// The caller's key, or 401.
pub fn caller(request: &Request) -> Result<Caller, Failure> {
    let ctx = context(request);
    let text = |k: &str| ctx.get(k).and_then(Value::as_str).map(str::to_owned);
    if ctx.get("authenticated").and_then(Value::as_bool) != Some(true) {
        return Err(Failure::new(401, text("error").unwrap_or_else(|| "an API key is required".into())));
    }
    let (Some(device_id), Some(key_id)) = (text("deviceId"), text("keyId")) else {
        return Err(Failure::new(401, "these routes take a device API key (Authorization: Bearer vwk_...)"));
    };
    let permissions = text("permissions").unwrap_or_default().split_whitespace().filter_map(Permission::parse).collect();
    let rate_limit_per_minute = ctx
        .get("rateLimitPerMinute")
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(crate::api_keys::DEFAULT_RATE_LIMIT_PER_MINUTE);
    Ok(Caller { device_id, key_id, permissions, rate_limit_per_minute })
}

fn body_bytes(request: &Request) -> &[u8] {
    match request.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

fn body_text(request: &Request) -> Result<&str, Failure> {
    std::str::from_utf8(body_bytes(request)).map_err(|_| Failure::new(400, "the body is not UTF-8 JSON"))
}

fn rate_headers(limit: u32, count: u64, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
    let reset = (now.timestamp().div_euclid(60) + 1) * 60;
    vec![
        ("X-RateLimit-Limit", limit.to_string()),
        ("X-RateLimit-Remaining", u64::from(limit).saturating_sub(count).to_string()),
        ("X-RateLimit-Reset", reset.to_string()),
    ]
}

fn respond_with(status: u16, body: &Value, headers: &[(&'static str, String)]) -> Response<Body> {
    let mut builder = Response::builder().status(status).header("content-type", "application/json");
    for (k, v) in headers {
        builder = builder.header(*k, v);
    }
    builder.body(Body::Text(body.to_string())).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// Authenticates, rate-limits, checks the permission, runs the route, logs the request.
async fn guarded<D, O, K, A, L, F, Fut>(request: &Request, deps: &VitalsDeps<D, O, K, A, L>, permission: Permission, route: F) -> Response<Body>
where
    K: ApiKeyStore,
    A: ActivityLog,
    F: FnOnce(Caller) -> Fut,
    Fut: std::future::Future<Output = Result<(u16, Value), Failure>>,
{
    let started = Instant::now();
    let now = Utc::now();
    let caller = caller(request);
    let (device_id, key_id) = match &caller {
        Ok(c) => (c.device_id.clone(), Some(c.key_id.clone())),
        Err(_) => (UNAUTHENTICATED.to_owned(), None),
    };
    let mut headers = Vec::new();
    let result = async {
        let caller = caller?;
        let count = deps.keys.count_in_minute(&caller.key_id, now).await?;
        headers = rate_headers(caller.rate_limit_per_minute, count, now);
        deps.keys.record_use(&caller.key_id, now).await?;
        if count > u64::from(caller.rate_limit_per_minute) {
            let retry = 60 - now.timestamp().rem_euclid(60);
            headers.push(("Retry-After", retry.to_string()));
            return Err(Failure::new(429, format!("rate limit of {} requests per minute exceeded", caller.rate_limit_per_minute)));
        }
        if !caller.permissions.contains(&permission) {
            return Err(Failure::new(403, format!("this API key lacks the {} permission", permission.as_str())));
        }
        if body_bytes(request).len() > MAX_BODY_BYTES {
            return Err(Failure::new(413, format!("the body is over {MAX_BODY_BYTES} bytes")));
        }
        route(caller).await
    }
    .await;
    let (status, body, error) = match result {
        Ok((status, body)) => (status, body, None),
        Err(f) => (f.status, f.body(), Some(f.error)),
    };
    let ctx = request.request_context_ref();
    let (source_ip, request_id) = match ctx {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => {
            (c.http.source_ip.clone().unwrap_or_default(), c.request_id.clone().unwrap_or_default())
        }
        _ => (String::new(), String::new()),
    };
    let activity = Activity {
        device_id,
        key_id,
        request_id,
        at: format_utc(now),
        source_ip,
        user_agent: request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        route: request.uri().path().to_owned(),
        method: request.method().as_str().to_owned(),
        status,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error,
    };
    if let Err(e) = deps.activity.record(&activity).await {
        // The reading was handled; losing its log line must not fail it.
        tracing::error!(error = %e, "activity not recorded");
    }
    respond_with(status, &body, &headers)
}

/// The device, if it may send readings, and its patient; shared with the S3 inbox.
pub async fn sending_device<D: DeviceRegistry>(devices: &D, device_id: &str) -> Result<Result<(Device, String), Failure>, StoreError> {
    Ok(check_sending_device(devices.get(device_id).await?, device_id))
}

fn check_sending_device(device: Option<Device>, device_id: &str) -> Result<(Device, String), Failure> {
    let device = device.ok_or_else(|| Failure::new(400, format!("device {device_id} is not registered")))?;
    if matches!(device.status, DeviceStatus::Inactive | DeviceStatus::Blocked) {
        return Err(Failure::new(403, format!("device {} is {}", device.thing_name, device.status.as_str())));
    }
    let patient = device
        .patient_id
        .clone()
        .ok_or_else(|| Failure::new(400, format!("device {} is not assigned to a patient", device.thing_name)))?;
    Ok((device, patient))
}

/// What filing one reading did.
#[derive(Debug, Clone, PartialEq)]
pub struct FiledReading {
    pub vital_sign_id: String,
    /// Every Observation was filed before (a redelivered reading).
    pub duplicate: bool,
    pub alerts_triggered: usize,
}

/// Files a validated reading for the device's patient (one Observation per vital sign and the
/// grouping panel, through the shared pipeline), then evaluates the patient's alerts. Shared
/// with the S3 inbox.
pub async fn file_reading<O: ObservationStore, L: AlertStore>(
    observations: &O,
    alerts: &L,
    settings: &AlertSettings,
    reading: &Reading,
    device: &Device,
    patient: &str,
) -> Result<Result<FiledReading, Failure>, StoreError> {
    let issued = format_utc(Utc::now());
    let ctx = SetContext { thing_name: &device.thing_name, patient_id: patient, issued: &issued };
    let effective_utc = format_utc(reading.timestamp.at);
    let mut duplicate = true;
    let mut vital_sign_id = String::new();
    for (observation, code_key) in readings::observations(reading, &ctx) {
        match pipeline::file(observations, &observation, code_key, effective_utc.clone()).await? {
            Filed::Stored { id } => {
                duplicate = false;
                vital_sign_id = id;
            }
            Filed::Duplicate { id } => vital_sign_id = id,
            Filed::Conflict { .. } => {
                return Ok(Err(Failure::new(
                    409,
                    format!("a different reading of {} at {} is already filed", device.thing_name, reading.timestamp.text),
                )));
            }
        }
    }
    // Evaluated for a repeated reading too: if the first delivery failed after filing, its
    // alert is raised now; an alert already raised is de-duplicated by the store.
    let alerts_triggered =
        crate::alerts::evaluate(observations, alerts, settings, patient, &device.thing_name, &vital_sign_id, reading.timestamp.at).await?.len();
    Ok(Ok(FiledReading { vital_sign_id, duplicate, alerts_triggered }))
}

fn check_device(reading_device: &str, caller: &Caller) -> Result<(), Failure> {
    if reading_device == caller.device_id {
        Ok(())
    } else {
        let mut f = Failure::new(403, format!("device_id {reading_device} is not this API key's device"));
        f.field = Some("device_id".into());
        Err(f)
    }
}

/// `POST /api/iot/vitals`: one reading.
pub async fn submit<D: DeviceRegistry, O: ObservationStore, K: ApiKeyStore, A: ActivityLog, L: AlertStore>(
    request: Request,
    deps: &VitalsDeps<D, O, K, A, L>,
) -> Response<Body> {
    let request = &request;
    guarded(request, deps, Permission::WriteVitals, |caller| async move {
        let text = body_text(request)?;
        let reading = readings::parse(text, None, Utc::now()).map_err(Failure::invalid)?;
        check_device(&reading.device_id, &caller)?;
        let (device, patient) = sending_device(&deps.devices, &caller.device_id).await??;
        let filed = file_reading(&deps.observations, &deps.alerts, &deps.alert_settings, &reading, &device, &patient).await??;
        tracing::info!(thing_name = %device.thing_name, vital_sign_id = %filed.vital_sign_id, duplicate = filed.duplicate, "reading filed");
        let status = if filed.duplicate { 200 } else { 201 };
        Ok((
            status,
            json!({
                "success": true,
                "message": if filed.duplicate { "Vital signs already received" } else { "Vital signs received successfully" },
                "vital_sign_id": filed.vital_sign_id,
                "alerts_triggered": filed.alerts_triggered,
                "timestamp": reading.timestamp.text,
            }),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(default)]
    device_id: Option<Value>,
    #[serde(borrow, default)]
    readings: Option<Vec<&'a RawValue>>,
}

/// `POST /api/iot/vitals/batch`: `{device_id, readings: [...]}`, 1 to 100 readings, each
/// validated and filed on its own; per-reading errors.
pub async fn submit_batch<D: DeviceRegistry, O: ObservationStore, K: ApiKeyStore, A: ActivityLog, L: AlertStore>(
    request: Request,
    deps: &VitalsDeps<D, O, K, A, L>,
) -> Response<Body> {
    let request = &request;
    guarded(request, deps, Permission::WriteVitals, |caller| async move {
        let text = body_text(request)?;
        let batch: BatchBody = serde_json::from_str(text).map_err(|e| Failure::invalid(vec![FieldError { field: "body".into(), reason: format!("is not a batch: {e}") }]))?;
        let device_id = match batch.device_id {
            Some(Value::String(d)) if !d.trim().is_empty() => d,
            _ => return Err(Failure::invalid(vec![FieldError { field: "device_id".into(), reason: "is required".into() }])),
        };
        check_device(&device_id, &caller)?;
        let list = batch.readings.unwrap_or_default();
        if list.is_empty() || list.len() > MAX_BATCH {
            return Err(Failure::invalid(vec![FieldError { field: "readings".into(), reason: format!("must hold 1 to {MAX_BATCH} readings") }]));
        }
        let (device, patient) = sending_device(&deps.devices, &caller.device_id).await??;
        let now = Utc::now();
        let (mut created, mut errors, mut alerts) = (Vec::new(), Vec::new(), 0);
        for (index, raw) in list.iter().enumerate() {
            let outcome = match readings::parse(raw.get(), Some(&device_id), now) {
                Err(problems) => Err(Failure::invalid(problems)),
                Ok(reading) => file_reading(&deps.observations, &deps.alerts, &deps.alert_settings, &reading, &device, &patient).await?,
            };
            match outcome {
                Ok(filed) => {
                    alerts += filed.alerts_triggered;
                    created.push(filed.vital_sign_id);
                }
                Err(f) => errors.push(json!({"index": index, "status": f.status, "error": f.error, "field": f.field, "errors": f.errors})),
            }
        }
        let (processed, failed) = (created.len(), errors.len());
        tracing::info!(thing_name = %device.thing_name, processed, failed, "batch filed");
        let status = if processed == 0 { 400 } else { 200 };
        Ok((
            status,
            json!({
                "success": failed == 0,
                "message": match (processed, failed) {
                    (_, 0) => "Batch submitted successfully",
                    (0, _) => "No reading of the batch was valid",
                    _ => "Batch partly submitted: see errors",
                },
                "total_readings": list.len(),
                "processed": processed,
                "failed": failed,
                "vitals_created": created,
                "alerts_triggered": alerts,
                "errors": errors,
            }),
        ))
    })
    .await
}

/// `GET /api/iot/status`: the key's device.
pub async fn status<D: DeviceRegistry, O: ObservationStore, K: ApiKeyStore, A: ActivityLog, L: AlertStore>(
    request: Request,
    deps: &VitalsDeps<D, O, K, A, L>,
) -> Response<Body> {
    guarded(&request, deps, Permission::ReadStatus, |caller| async move {
        let device = deps
            .devices
            .get(&caller.device_id)
            .await?
            .ok_or_else(|| Failure::new(400, format!("device {} is not registered", caller.device_id)))?;
        let last = deps.observations.for_device(&device.thing_name, 1).await?;
        Ok((
            200,
            json!({
                "success": true,
                "device_id": device.thing_name,
                "device_name": device.display_name,
                "device_type": device.model,
                "is_active": matches!(device.status, DeviceStatus::Active | DeviceStatus::Registered),
                "patient_assigned": device.patient_id.is_some(),
                "patient_id": device.patient_id,
                "api_key_valid": true,
                "last_reading": last.first().map(|o| o.effective_at.clone()),
            }),
        ))
    })
    .await
}

/// The AWS-backed dependencies, from the function's environment.
pub async fn aws_deps() -> Result<
    VitalsDeps<
        crate::devices::DynamoDeviceRegistry,
        crate::observations::DynamoObservationStore,
        crate::api_keys::DynamoApiKeyStore,
        crate::activity::DynamoActivityLog,
        crate::alerts::DynamoAlertStore,
    >,
    crate::tables::MissingSetting,
> {
    let config = crate::aws::load_config().await;
    let dynamodb = crate::aws::dynamodb(&config);
    Ok(VitalsDeps {
        devices: crate::devices::DynamoDeviceRegistry::new(dynamodb.clone(), crate::tables::DEVICES.name_from_env()?),
        observations: crate::observations::DynamoObservationStore::new(dynamodb.clone(), crate::tables::OBSERVATIONS.name_from_env()?),
        keys: crate::api_keys::aws_key_store(dynamodb.clone())?,
        activity: crate::activity::aws_log(dynamodb.clone())?,
        alerts: crate::alerts::DynamoAlertStore { client: dynamodb, table: crate::tables::ALERTS.name_from_env()? },
        alert_settings: AlertSettings::from_env(),
    })
}
