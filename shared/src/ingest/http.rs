//! The vitals REST API for gateways and apps, with device API keys (the seed's routes):
//!
//! | route | function | permission |
//! |---|---|---|
//! | `POST /api/iot/vitals` | `iot-vitals` | `write_vitals` |
//! | `POST /api/iot/vitals/batch` | `iot-vitals-batch` | `write_vitals` |
//! | `GET /api/iot/status` | `iot-status` | `read_status` |
//!
//! Every request with a valid key is rate limited per key (429 with `Retry-After` and
//! `X-RateLimit-*`), counted as the key's use, and written to the activity log; a revoked or
//! expired key whose secret is right is answered 401 and logged against that key; a request
//! naming no key the platform knows is answered 401 without a write (the HTTP API access log
//! keeps it). Errors are `{"success": false, "error", "field"?, "errors"?}`: 401
//! missing/malformed/unknown/expired/revoked key, 403 another device, a device that is not
//! active, a patient it may not name, or a missing permission, 400 invalid reading (each problem
//! with its field) or an unknown or unassigned device, 409 a different reading already filed
//! for the same device, time and measurement, 413 body over 1 MB. Every refused reading is
//! also kept as a dead letter (sources `iot-vitals`, `iot-vitals-batch`) with its reason and
//! its text.

use std::time::Instant;

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::readings::{self, FieldError};
use super::{Filed, Filing, FilingDeps, Refusal};
use crate::access::activity::{Activity, ActivityLog};
use crate::access::api_keys::{ApiKeyStore, Permission};
use crate::access::{device_caller, KeyCaller};
use crate::clinical::AlertStore;
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::{AdmissionRefusal, DeviceRegistry, DeviceStatus};
use crate::observations::ObservationStore;
use crate::platform::http::{body_bytes, json_response, RequestInfo};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Largest body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most readings in one batch.
pub const MAX_BATCH: usize = 100;
/// The dead-letter source of refused single readings.
pub const SOURCE: &str = "iot-vitals";
/// The dead-letter source of refused batch readings.
pub const BATCH_SOURCE: &str = "iot-vitals-batch";

/// What every vitals route needs: the keys (rate limits, use) and the activity log.
pub struct KeyAccess<K, G> {
    pub keys: K,
    pub activity: G,
}

impl<K: FromWiring, G: FromWiring> FromWiring for KeyAccess<K, G> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { keys: w.build()?, activity: w.build()? })
    }
}

/// What the reading routes need.
pub struct VitalsDeps<D, O, A, K, G, L> {
    pub filing: FilingDeps<D, O, A>,
    pub access: KeyAccess<K, G>,
    pub dead_letters: L,
}

impl<D: FromWiring, O: FromWiring, A: FromWiring, K: FromWiring, G: FromWiring, L: FromWiring> FromWiring
    for VitalsDeps<D, O, A, K, G, L>
{
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { filing: w.build()?, access: w.build()?, dead_letters: w.build()? })
    }
}

/// What the status route needs.
pub struct StatusDeps<D, O, K, G> {
    pub devices: D,
    pub observations: O,
    pub access: KeyAccess<K, G>,
}

impl<D: FromWiring, O: FromWiring, K: FromWiring, G: FromWiring> FromWiring for StatusDeps<D, O, K, G> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { devices: w.build()?, observations: w.build()?, access: w.build()? })
    }
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
        let first = errors.first().cloned().unwrap_or_else(|| FieldError::new("body", "is invalid"));
        Self { status: 400, error: first.to_string(), field: Some(first.field), errors }
    }

    fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
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

/// The answer to a filing refusal, decided once for every vitals route (the seed's status codes).
fn refused(refusal: &Refusal) -> Failure {
    let status = match refusal {
        Refusal::Admission(AdmissionRefusal::UnknownDevice(_) | AdmissionRefusal::NoPatient(_)) => 400,
        Refusal::Admission(AdmissionRefusal::NotActive { .. } | AdmissionRefusal::PatientNotAllowed(_)) => 403,
        Refusal::Conflict { .. } => 409,
    };
    Failure::new(status, refusal.to_string())
}

/// A refused reading, as kept for the operator: the reason's code and the reading's text.
struct RefusedReading<'a> {
    code: &'static str,
    failure: Failure,
    text: &'a str,
}

/// What a route answered, and the refused readings to keep.
struct Answer<'a> {
    result: Result<(u16, Value), Failure>,
    refused: Vec<RefusedReading<'a>>,
    /// The error to log for a request that was answered 2xx with some refused readings.
    partial_error: Option<String>,
}

impl<'a> Answer<'a> {
    fn ok(status: u16, body: Value) -> Self {
        Self { result: Ok((status, body)), refused: Vec::new(), partial_error: None }
    }

    fn refused(code: &'static str, failure: Failure, text: &'a str) -> Self {
        Self { result: Err(failure.clone()), refused: vec![RefusedReading { code, failure, text }], partial_error: None }
    }
}

impl From<Failure> for Answer<'_> {
    fn from(f: Failure) -> Self {
        Self { result: Err(f), refused: Vec::new(), partial_error: None }
    }
}

fn rate_headers(limit: u32, count: u64, now: DateTime<Utc>) -> Vec<(&'static str, String)> {
    let reset = (now.timestamp().div_euclid(60) + 1) * 60;
    vec![
        ("X-RateLimit-Limit", limit.to_string()),
        ("X-RateLimit-Remaining", u64::from(limit).saturating_sub(count).to_string()),
        ("X-RateLimit-Reset", reset.to_string()),
    ]
}

fn body_text(request: &Request) -> Result<&str, Failure> {
    std::str::from_utf8(body_bytes(request)).map_err(|_| Failure::new(400, "the body is not UTF-8 JSON"))
}

/// Counts the request against the key's limit; the headers, or 429.
async fn limit<K: ApiKeyStore>(keys: &K, caller: &KeyCaller, now: DateTime<Utc>, headers: &mut Vec<(&'static str, String)>) -> Result<(), Failure> {
    let count = keys.count_in_minute(&caller.key_id, now).await?;
    *headers = rate_headers(caller.rate_limit_per_minute, count, now);
    keys.record_use(&caller.key_id, now).await?;
    if count > u64::from(caller.rate_limit_per_minute) {
        let retry = 60 - now.timestamp().rem_euclid(60);
        headers.push(("Retry-After", retry.to_string()));
        return Err(Failure::new(429, format!("rate limit of {} requests per minute exceeded", caller.rate_limit_per_minute)));
    }
    Ok(())
}

/// What a guarded route did: the response, and the readings it refused, from which device.
struct Guarded<'r> {
    response: Response<Body>,
    device: Option<String>,
    refused: Vec<RefusedReading<'r>>,
}

impl Guarded<'_> {
    /// Keeps the refused readings as dead letters of `source`; the response.
    async fn keeping<L: DeadLetterStore>(self, dead_letters: &L, source: &str) -> Response<Body> {
        if let Some(device) = &self.device {
            let at = Utc::now();
            for r in &self.refused {
                keep_refused(dead_letters, source, device, r, at).await;
            }
        }
        self.response
    }
}

/// Authenticates, rate-limits, checks the permission, runs the route, logs the request.
async fn guarded<'r, K, G, F, Fut>(request: &'r Request, access: &KeyAccess<K, G>, permission: Permission, route: F) -> Guarded<'r>
where
    K: ApiKeyStore,
    G: ActivityLog,
    F: FnOnce(KeyCaller) -> Fut,
    Fut: std::future::Future<Output = Answer<'r>>,
{
    let started = Instant::now();
    let now = Utc::now();
    let caller = match device_caller(request) {
        Ok(c) => c,
        Err(no_key) => {
            let failure = Failure::new(401, no_key.reason);
            // A key the caller holds but may not use any more is logged against it; a request
            // without one is kept by the HTTP API's access log only.
            if let Some((device_id, key_id)) = no_key.known_key {
                log_activity(&access.activity, request, now, started, &device_id, Some(key_id), failure.status, Some(failure.error.clone())).await;
            }
            return Guarded { response: json_response(failure.status, &failure.body(), &[]), device: None, refused: Vec::new() };
        }
    };
    let mut headers = Vec::new();
    let answer = match limit(&access.keys, &caller, now, &mut headers).await {
        Err(f) => Answer::from(f),
        Ok(()) if !caller.permissions.contains(&permission) => {
            Answer::from(Failure::new(403, format!("this API key lacks the {} permission", permission.as_str())))
        }
        Ok(()) if body_bytes(request).len() > MAX_BODY_BYTES => Answer::from(Failure::new(413, format!("the body is over {MAX_BODY_BYTES} bytes"))),
        Ok(()) => route(caller.clone()).await,
    };
    let (status, body, error) = match answer.result {
        Ok((status, body)) => (status, body, answer.partial_error),
        Err(f) => (f.status, f.body(), Some(f.error)),
    };
    log_activity(&access.activity, request, now, started, &caller.device_id, Some(caller.key_id), status, error).await;
    Guarded { response: json_response(status, &body, &headers), device: Some(caller.device_id), refused: answer.refused }
}

async fn keep_refused<L: DeadLetterStore>(dead_letters: &L, source: &str, device: &str, r: &RefusedReading<'_>, at: DateTime<Utc>) {
    let letter = DeadLetter::refused(source, Some(device), r.code, r.failure.error.clone(), r.text.to_owned(), format_utc(at));
    match dead_letters.record(&letter).await {
        Ok(()) => tracing::info!(thing_name = %device, reason_code = r.code, dead_letter_id = %letter.id, "reading refused"),
        // The caller has its answer; losing the operator's copy must not fail the request.
        Err(e) => tracing::error!(error = %e, reason_code = r.code, "refused reading not kept"),
    }
}

#[allow(clippy::too_many_arguments)]
async fn log_activity<G: ActivityLog>(
    log: &G,
    request: &Request,
    now: DateTime<Utc>,
    started: Instant,
    device_id: &str,
    key_id: Option<String>,
    status: u16,
    error: Option<String>,
) {
    let info = RequestInfo::of(request);
    let activity = Activity {
        device_id: device_id.to_owned(),
        key_id,
        request_id: info.request_id,
        at: format_utc(now),
        source_ip: info.source_ip,
        user_agent: info.user_agent,
        route: info.path,
        method: info.method,
        status,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        error,
    };
    if let Err(e) = log.record(&activity).await {
        // The reading was handled; losing its log line must not fail it.
        tracing::error!(error = %e, "activity not recorded");
    }
}

fn check_device(reading_device: &str, caller: &KeyCaller) -> Result<(), Failure> {
    if reading_device == caller.device_id {
        Ok(())
    } else {
        Err(Failure::new(403, format!("device_id {reading_device} is not this API key's device")).with_field("device_id"))
    }
}

/// `POST /api/iot/vitals`: one reading.
pub async fn submit<D, O, A, K, G, L>(request: Request, deps: &VitalsDeps<D, O, A, K, G, L>) -> Response<Body>
where
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    K: ApiKeyStore,
    G: ActivityLog,
    L: DeadLetterStore,
{
    let request = &request;
    guarded(request, &deps.access, Permission::WriteVitals, |caller| async move {
        let text = match body_text(request) {
            Ok(t) => t,
            Err(f) => return f.into(),
        };
        let parsed = match readings::parse(text, None, Utc::now()) {
            Ok(r) => r,
            Err(problems) => return Answer::refused("INVALID_READING", Failure::invalid(problems), text),
        };
        if let Err(f) = check_device(&parsed.reading.device_id, &caller) {
            return Answer::refused("NOT_THIS_KEYS_DEVICE", f, text);
        }
        let filed: Filed = match Filing::new(&deps.filing).file(&parsed.reading).await {
            Err(e) => return Failure::from(e).into(),
            Ok(Err(refusal)) => return Answer::refused(refusal.code(), refused(&refusal), text),
            Ok(Ok(filed)) => filed,
        };
        tracing::info!(thing_name = %caller.device_id, vital_sign_id = %filed.set_id, duplicate = filed.duplicate, "reading filed");
        Answer::ok(
            if filed.duplicate { 200 } else { 201 },
            json!({
                "success": true,
                "message": if filed.duplicate { "Vital signs already received" } else { "Vital signs received successfully" },
                "vital_sign_id": filed.set_id,
                "alerts_triggered": filed.alerts_raised,
                "timestamp": parsed.timestamp,
            }),
        )
    })
    .await
    .keeping(&deps.dead_letters, SOURCE)
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
pub async fn submit_batch<D, O, A, K, G, L>(request: Request, deps: &VitalsDeps<D, O, A, K, G, L>) -> Response<Body>
where
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    K: ApiKeyStore,
    G: ActivityLog,
    L: DeadLetterStore,
{
    let request = &request;
    guarded(request, &deps.access, Permission::WriteVitals, |caller| async move {
        let text = match body_text(request) {
            Ok(t) => t,
            Err(f) => return f.into(),
        };
        let batch: BatchBody = match serde_json::from_str(text) {
            Ok(b) => b,
            Err(e) => return Answer::refused("INVALID_READING", Failure::invalid(vec![FieldError::new("body", format!("is not a batch: {e}"))]), text),
        };
        let device_id = match batch.device_id {
            Some(Value::String(d)) if !d.trim().is_empty() => d,
            _ => return Answer::refused("INVALID_READING", Failure::invalid(vec![FieldError::new("device_id", "is required")]), text),
        };
        if let Err(f) = check_device(&device_id, &caller) {
            return Answer::refused("NOT_THIS_KEYS_DEVICE", f, text);
        }
        let list = batch.readings.unwrap_or_default();
        if list.is_empty() || list.len() > MAX_BATCH {
            let problem = FieldError::new("readings", format!("must hold 1 to {MAX_BATCH} readings"));
            return Answer::refused("INVALID_READING", Failure::invalid(vec![problem]), text);
        }
        file_batch(deps, &device_id, &list, text).await
    })
    .await
    .keeping(&deps.dead_letters, BATCH_SOURCE)
    .await
}

async fn file_batch<'t, D, O, A, K, G, L>(
    deps: &VitalsDeps<D, O, A, K, G, L>,
    device_id: &str,
    list: &[&'t RawValue],
    text: &'t str,
) -> Answer<'t>
where
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
{
    let now = Utc::now();
    let mut filing = Filing::new(&deps.filing);
    // A device that may not file at all is refused once, for the whole batch.
    match filing.admit_device(device_id).await {
        Err(e) => return Failure::from(e).into(),
        Ok(Err(refusal)) => return Answer::refused(refusal.code(), refused(&refusal), text),
        Ok(Ok(())) => {}
    }
    let (mut created, mut errors, mut refused_readings, mut alerts) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for (index, raw) in list.iter().enumerate() {
        let outcome = match readings::parse(raw.get(), Some(device_id), now) {
            Err(problems) => Err(("INVALID_READING", Failure::invalid(problems))),
            Ok(parsed) => match filing.file(&parsed.reading).await {
                Err(e) => return Failure::from(e).into(),
                Ok(Err(refusal)) => Err((refusal.code(), refused(&refusal))),
                Ok(Ok(filed)) => Ok(filed),
            },
        };
        match outcome {
            Ok(filed) => {
                alerts += filed.alerts_raised;
                created.push(filed.set_id);
            }
            Err((code, f)) => {
                errors.push(json!({"index": index, "status": f.status, "error": f.error, "field": f.field, "errors": f.errors}));
                refused_readings.push(RefusedReading { code, failure: f, text: raw.get() });
            }
        }
    }
    let (processed, failed) = (created.len(), errors.len());
    tracing::info!(thing_name = %device_id, processed, failed, "batch filed");
    // The activity log says why by reason code, never with the readings' values.
    let summary = (failed > 0).then(|| {
        let mut codes: Vec<&str> = refused_readings.iter().map(|r| r.code).collect();
        codes.sort_unstable();
        codes.dedup();
        format!("{failed} of {} readings refused: {}", list.len(), codes.join(", "))
    });
    let body = json!({
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
    });
    Answer { result: Ok((if processed == 0 { 400 } else { 200 }, body)), refused: refused_readings, partial_error: summary }
}

/// `GET /api/iot/status`: the key's device.
pub async fn status<D, O, K, G>(request: Request, deps: &StatusDeps<D, O, K, G>) -> Response<Body>
where
    D: DeviceRegistry,
    O: ObservationStore,
    K: ApiKeyStore,
    G: ActivityLog,
{
    guarded(&request, &deps.access, Permission::ReadStatus, |caller| async move {
        let device = match deps.devices.get(&caller.device_id).await {
            Err(e) => return Failure::from(e).into(),
            Ok(None) => return Failure::new(400, format!("device {} is not registered", caller.device_id)).into(),
            Ok(Some(d)) => d,
        };
        let last = match deps.observations.for_device(&device.thing_name, 1).await {
            Err(e) => return Failure::from(e).into(),
            Ok(last) => last,
        };
        Answer::ok(
            200,
            json!({
                "success": true,
                "device_id": device.thing_name,
                "device_name": device.display_name,
                "device_type": device.model,
                "status": device.status.as_str(),
                // What the device may do: only an ACTIVE device files readings.
                "is_active": device.status == DeviceStatus::Active,
                "patient_assigned": device.patient_id.is_some(),
                "patient_id": device.patient_id,
                "api_key_valid": true,
                "last_reading": last.first().map(|o| o.effective_at.clone()),
            }),
        )
    })
    .await
    .response
}
