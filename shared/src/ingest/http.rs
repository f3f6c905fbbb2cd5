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
    crate::dead_letters::keep_for_operator(dead_letters, &letter, "reading").await;
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

#[cfg(test)]
mod tests {
    use chrono::{Duration, SecondsFormat};

    use super::*;
    use crate::access::api_keys::{ApiKey, KeyHasher};
    use crate::access::memory::{MemoryActivity, MemoryApiKeys};
    use crate::clinical::memory::MemoryAlerts;
    use crate::clinical::{AlertKind, AlertSettings};
    use crate::dead_letters::memory::MemoryDeadLetters;
    use crate::devices::memory::MemoryDevices;
    use crate::devices::Device;
    use crate::observations::memory::MemoryObservations;
    use crate::platform::testing::{self, answered, Answered, ApiRequest};

    type Vitals = VitalsDeps<MemoryDevices, MemoryObservations, MemoryAlerts, MemoryApiKeys, MemoryActivity, MemoryDeadLetters>;
    type Status = StatusDeps<MemoryDevices, MemoryObservations, MemoryApiKeys, MemoryActivity>;

    /// acme-1: ACTIVE, for pat-1; acme-2: INACTIVE; acme-3: REGISTERED; acme-4: BLOCKED.
    fn devices() -> MemoryDevices {
        let device = |serial: &str, status: DeviceStatus, patient: Option<&str>| {
            let mut d = Device::registered("Acme", serial, "BP-200", "Home cuff", "2026-11-01T00:00:00.000Z");
            d.status = status;
            d.patient_id = patient.map(Into::into);
            d
        };
        MemoryDevices::with(vec![
            device("1", DeviceStatus::Active, Some("pat-1")),
            device("2", DeviceStatus::Inactive, Some("pat-2")),
            device("3", DeviceStatus::Registered, Some("pat-3")),
            device("4", DeviceStatus::Blocked, None),
        ])
    }

    fn vitals() -> Vitals {
        VitalsDeps {
            filing: FilingDeps {
                devices: devices(),
                observations: MemoryObservations::default(),
                alerts: MemoryAlerts::default(),
                alert_settings: AlertSettings::default(),
                metrics: Default::default(),
            },
            access: KeyAccess { keys: MemoryApiKeys::default(), activity: MemoryActivity::default() },
            dead_letters: MemoryDeadLetters::default(),
        }
    }

    /// Stores a key of `thing` and answers the authorizer's context for it.
    async fn key(keys: &MemoryApiKeys, thing: &str, permissions: &[Permission], rate_limit_per_minute: u32) -> Value {
        let key_id = format!("{:0>16}", thing.replace('-', ""));
        let key = ApiKey {
            key_id: key_id.clone(),
            thing_name: thing.into(),
            name: "gateway".into(),
            secret_hash: KeyHasher::new(b"unit-test-pepper-of-32-bytes-or-more".to_vec()).hash("not presented here"),
            permissions: permissions.to_vec(),
            rate_limit_per_minute,
            created_at: "2026-11-01T00:00:00.000Z".into(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        assert!(keys.create(&key).await.unwrap());
        testing::device_key(thing, &key_id, permissions, rate_limit_per_minute)
    }

    /// A time the platform accepts: `minutes` ago, as a device writes it.
    fn minutes_ago(minutes: i64) -> String {
        (Utc::now() - Duration::minutes(minutes)).to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    async fn submit_as(deps: &Vitals, caller: &Value, body: &str) -> Answered {
        answered(submit(ApiRequest::new("POST /api/iot/vitals").body_text(body).caller(caller.clone()).build(), deps).await)
    }

    async fn batch_as(deps: &Vitals, caller: &Value, body: &str) -> Answered {
        answered(submit_batch(ApiRequest::new("POST /api/iot/vitals/batch").body_text(body).caller(caller.clone()).build(), deps).await)
    }

    /// The dead letters as (source, thing, reason code, the message as received).
    fn dead_letters(deps: &Vitals) -> Vec<(String, Option<String>, String, String)> {
        let mut all: Vec<_> = deps.dead_letters.all().into_iter().map(|l| (l.source, l.thing_name, l.reason_code, l.raw_payload)).collect();
        all.sort();
        all
    }

    #[tokio::test]
    async fn a_valid_reading_is_filed_once_counted_and_logged() {
        let deps = vitals();
        let caller = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 60).await;
        let at = minutes_ago(10);
        let body = json!({"device_id": "acme-1", "timestamp": at, "heart_rate": 72, "oxygen_saturation": 97}).to_string();
        let filed = submit_as(&deps, &caller, &body).await;
        assert_eq!(filed.status, 201, "{}", filed.body);
        assert_eq!((filed.body["success"].as_bool(), filed.body["alerts_triggered"].as_u64()), (Some(true), Some(0)));
        assert_eq!(filed.body["timestamp"], json!(at), "as the device wrote it");
        let set_id = filed.body["vital_sign_id"].as_str().unwrap().to_owned();
        let panel = deps.filing.observations.get_sync(&set_id).unwrap();
        assert_eq!((panel.patient_id.as_str(), panel.device_id.as_str()), ("pat-1", "acme-1"));
        assert_eq!(deps.filing.observations.len(), 3, "heart rate, SpO2 and their panel");
        assert_eq!(filed.header("X-RateLimit-Limit"), Some("60"));
        assert_eq!(filed.header("X-RateLimit-Remaining"), Some("59"));

        let again = submit_as(&deps, &caller, &body).await;
        assert_eq!((again.status, again.body["vital_sign_id"].as_str()), (200, Some(set_id.as_str())), "a resent reading is no new reading");
        assert_eq!(again.body["message"], json!("Vital signs already received"));
        assert_eq!(deps.filing.observations.len(), 3);

        let key_id = caller["keyId"].as_str().unwrap();
        let log = deps.access.activity.all();
        assert_eq!(log.iter().map(|a| a.status).collect::<Vec<_>>(), [201, 200]);
        let first = &log[0];
        assert_eq!((first.device_id.as_str(), first.key_id.as_deref(), first.error.as_deref()), ("acme-1", Some(key_id), None));
        assert_eq!((first.route.as_str(), first.method.as_str()), ("/api/iot/vitals", "POST"));
        assert_eq!((first.source_ip.as_str(), first.user_agent.as_str()), (testing::SOURCE_IP, testing::USER_AGENT));
        let used = deps.access.keys.get(key_id).await.unwrap().unwrap();
        assert!(used.last_used_at.is_some());
        assert_eq!(deps.access.keys.daily_counts(key_id).await.unwrap().first().map(|(_, n)| *n), Some(2));
        assert!(deps.dead_letters.all().is_empty());
    }

    #[tokio::test]
    async fn a_reading_that_raises_an_alert_says_so() {
        let deps = vitals();
        let caller = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 60).await;
        let filed = submit_as(&deps, &caller, &json!({"device_id": "acme-1", "timestamp": minutes_ago(1), "glucose": 45}).to_string()).await;
        assert_eq!((filed.status, filed.body["alerts_triggered"].as_u64()), (201, Some(1)));
        let alerts = deps.filing.alerts.for_patient("pat-1", 10, None).await.unwrap().items;
        assert_eq!(alerts.iter().map(|a| a.kind).collect::<Vec<_>>(), [AlertKind::GlucoseLow]);
    }

    #[tokio::test]
    async fn a_refused_reading_is_answered_with_its_reason_and_kept_as_a_dead_letter() {
        let deps = vitals();
        let acme_1 = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 60).await;
        let acme_2 = key(&deps.access.keys, "acme-2", &[Permission::WriteVitals], 60).await;
        let unregistered = key(&deps.access.keys, "acme-9", &[Permission::WriteVitals], 60).await;
        let at = minutes_ago(5);
        assert_eq!(submit_as(&deps, &acme_1, &json!({"device_id": "acme-1", "timestamp": at, "heart_rate": 72}).to_string()).await.status, 201);
        let cases = [
            (&acme_1, json!({"device_id": "acme-1", "timestamp": at, "heart_rate": 350}), 400, Some("heart_rate"), "INVALID_READING"),
            (&acme_1, json!({"device_id": "acme-2", "timestamp": at, "heart_rate": 72}), 403, Some("device_id"), "NOT_THIS_KEYS_DEVICE"),
            (&acme_2, json!({"device_id": "acme-2", "timestamp": at, "heart_rate": 72}), 403, None, "DEVICE_NOT_ACTIVE"),
            (&acme_1, json!({"device_id": "acme-1", "patient_id": "pat-9", "timestamp": at, "heart_rate": 72}), 403, None, "PATIENT_NOT_ALLOWED"),
            (&unregistered, json!({"device_id": "acme-9", "timestamp": at, "heart_rate": 72}), 400, None, "UNKNOWN_DEVICE"),
            (&acme_1, json!({"device_id": "acme-1", "timestamp": at, "heart_rate": 73}), 409, None, "CONFLICTING_DUPLICATE"),
        ];
        let mut expected_letters = Vec::new();
        for (caller, body, status, field, code) in cases {
            let text = body.to_string();
            let answer = submit_as(&deps, caller, &text).await;
            assert_eq!((answer.status, answer.body["success"].as_bool()), (status, Some(false)), "{code}: {}", answer.body);
            assert_eq!(answer.body["field"].as_str(), field, "{code}");
            let logged = deps.access.activity.all().pop().unwrap();
            assert_eq!((logged.status, logged.error.as_deref()), (status, answer.body["error"].as_str()), "{code}");
            expected_letters.push((SOURCE.to_owned(), caller["deviceId"].as_str().map(str::to_owned), code.to_owned(), text));
        }
        expected_letters.sort();
        assert_eq!(dead_letters(&deps), expected_letters);
        assert_eq!(deps.filing.observations.len(), 2, "only the first reading and its panel");
    }

    #[tokio::test]
    async fn every_problem_of_an_invalid_reading_is_named() {
        let deps = vitals();
        let caller = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 60).await;
        let answer = submit_as(&deps, &caller, &json!({"device_id": "acme-1", "heart_rate": 350, "colour": "red"}).to_string()).await;
        assert_eq!(answer.status, 400);
        let mut fields: Vec<&str> = answer.body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["colour", "heart_rate", "timestamp"]);
        assert!(fields.contains(&answer.body["field"].as_str().unwrap()), "the first problem's field");
        let not_json = submit_as(&deps, &caller, "heart_rate=72").await;
        assert_eq!((not_json.status, not_json.body["field"].as_str()), (400, Some("body")));
    }

    #[tokio::test]
    async fn a_key_without_the_permission_or_with_too_big_a_body_files_nothing() {
        let deps = vitals();
        let status_only = key(&deps.access.keys, "acme-1", &[Permission::ReadStatus], 60).await;
        let reading = json!({"device_id": "acme-1", "timestamp": minutes_ago(1), "heart_rate": 72}).to_string();
        let refused = submit_as(&deps, &status_only, &reading).await;
        assert_eq!(refused.status, 403);
        assert!(refused.body["error"].as_str().unwrap().contains("write_vitals"), "{}", refused.body);
        assert_eq!(batch_as(&deps, &status_only, &reading).await.status, 403);

        let writer = key(&deps.access.keys, "acme-2", &[Permission::WriteVitals], 60).await;
        let huge = format!("{reading}{}", " ".repeat(MAX_BODY_BYTES));
        assert_eq!(submit_as(&deps, &writer, &huge).await.status, 413);
        assert_eq!(deps.filing.observations.len(), 0);
        assert!(deps.dead_letters.all().is_empty(), "refused before the reading was read");
        assert_eq!(deps.access.activity.all().iter().map(|a| a.status).collect::<Vec<_>>(), [403, 403, 413]);
    }

    #[tokio::test]
    async fn a_key_over_its_rate_limit_is_told_when_to_retry() {
        // Counted per UTC minute: run again if the minute turned during the requests.
        for _ in 0..3 {
            let deps = vitals();
            let caller = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 2).await;
            let minute = Utc::now().timestamp().div_euclid(60);
            let mut answers = Vec::new();
            for seconds in 1..=3 {
                let reading = json!({"device_id": "acme-1", "timestamp": minutes_ago(seconds), "heart_rate": 72});
                answers.push(submit_as(&deps, &caller, &reading.to_string()).await);
            }
            if Utc::now().timestamp().div_euclid(60) != minute {
                continue;
            }
            assert_eq!(answers.iter().map(|a| a.status).collect::<Vec<_>>(), [201, 201, 429]);
            let limited = &answers[2];
            assert_eq!(limited.header("X-RateLimit-Remaining"), Some("0"));
            let retry: i64 = limited.header("Retry-After").unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            assert_eq!(answers[1].header("Retry-After"), None);
            assert_eq!(deps.filing.observations.len(), 4, "two readings of two Observations each");
            assert_eq!(deps.access.activity.all().last().map(|a| a.status), Some(429));
            return;
        }
        panic!("the minute turned during every attempt");
    }

    #[tokio::test]
    async fn an_unusable_key_is_answered_401_and_logged_only_against_a_key_the_caller_holds() {
        let deps = vitals();
        let reading = json!({"device_id": "acme-1", "timestamp": minutes_ago(1), "heart_rate": 72}).to_string();
        let revoked = json!({"authenticated": false, "error": "the API key has been revoked", "deviceId": "acme-1", "keyId": "0000000000acme1"});
        let answer = submit_as(&deps, &revoked, &reading).await;
        assert_eq!((answer.status, &answer.body), (401, &json!({"success": false, "error": "the API key has been revoked"})));
        let logged = deps.access.activity.all();
        assert_eq!(logged.len(), 1);
        assert_eq!(
            (logged[0].key_id.as_deref(), logged[0].status, logged[0].error.as_deref()),
            (Some("0000000000acme1"), 401, Some("the API key has been revoked"))
        );

        for caller in [testing::refused_token("the API key is unknown"), testing::clinician(), json!({})] {
            let answer = submit_as(&deps, &caller, &reading).await;
            assert_eq!(answer.status, 401, "{caller}");
            assert_eq!(answer.header("X-RateLimit-Limit"), None);
        }
        assert_eq!(deps.access.activity.all().len(), 1, "no key the platform knows: nothing to log it against");
        assert_eq!(deps.filing.observations.len(), 0);
        assert!(deps.dead_letters.all().is_empty());
    }

    #[tokio::test]
    async fn a_batch_files_each_valid_reading_and_reports_and_keeps_each_refused_one() {
        let deps = vitals();
        let caller = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 60).await;
        let t1 = minutes_ago(30);
        let readings = [
            json!({"timestamp": t1, "heart_rate": 70}).to_string(),
            json!({"timestamp": minutes_ago(20), "heart_rate": 350}).to_string(),
            json!({"device_id": "acme-1", "timestamp": minutes_ago(10), "heart_rate": 71}).to_string(),
            json!({"device_id": "acme-2", "timestamp": minutes_ago(5), "heart_rate": 72}).to_string(),
            json!({"timestamp": t1, "heart_rate": 99}).to_string(),
        ];
        let body = format!(r#"{{"device_id": "acme-1", "readings": [{}]}}"#, readings.join(", "));
        let answer = batch_as(&deps, &caller, &body).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(
            (
                answer.body["success"].as_bool(),
                answer.body["total_readings"].as_u64(),
                answer.body["processed"].as_u64(),
                answer.body["failed"].as_u64()
            ),
            (Some(false), Some(5), Some(2), Some(3))
        );
        let refusals: Vec<(u64, u64, Option<&str>)> = answer.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["index"].as_u64().unwrap(), e["status"].as_u64().unwrap(), e["field"].as_str()))
            .collect();
        assert_eq!(refusals, [(1, 400, Some("heart_rate")), (3, 400, Some("device_id")), (4, 409, None)]);
        for id in answer.body["vitals_created"].as_array().unwrap() {
            assert!(deps.filing.observations.get_sync(id.as_str().unwrap()).is_some(), "{id}");
        }
        let mut expected = vec![
            (BATCH_SOURCE.to_owned(), Some("acme-1".to_owned()), "INVALID_READING".to_owned(), readings[1].clone()),
            (BATCH_SOURCE.to_owned(), Some("acme-1".to_owned()), "INVALID_READING".to_owned(), readings[3].clone()),
            (BATCH_SOURCE.to_owned(), Some("acme-1".to_owned()), "CONFLICTING_DUPLICATE".to_owned(), readings[4].clone()),
        ];
        expected.sort();
        assert_eq!(dead_letters(&deps), expected, "each refused reading as it was in the batch");
        let logged = deps.access.activity.all().pop().unwrap();
        assert_eq!((logged.status, logged.error.as_deref()), (200, Some("3 of 5 readings refused: CONFLICTING_DUPLICATE, INVALID_READING")));
    }

    #[tokio::test]
    async fn a_batch_with_no_valid_reading_is_a_400() {
        let deps = vitals();
        let caller = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 60).await;
        let body = json!({"device_id": "acme-1", "readings": [{"heart_rate": 72}]}).to_string();
        let answer = batch_as(&deps, &caller, &body).await;
        assert_eq!((answer.status, answer.body["processed"].as_u64(), answer.body["failed"].as_u64()), (400, Some(0), Some(1)));
        assert_eq!(deps.dead_letters.len(), 1);
    }

    #[tokio::test]
    async fn a_batch_the_device_may_not_send_is_refused_once_as_a_whole() {
        let deps = vitals();
        let acme_1 = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 60).await;
        let inactive = key(&deps.access.keys, "acme-2", &[Permission::WriteVitals], 60).await;
        let one = json!({"timestamp": minutes_ago(1), "heart_rate": 72});
        let too_many = json!({"device_id": "acme-1", "readings": vec![one.clone(); MAX_BATCH + 1]});
        let cases = [
            (&inactive, json!({"device_id": "acme-2", "readings": [one, one]}).to_string(), 403, None, "DEVICE_NOT_ACTIVE"),
            (&acme_1, json!({"device_id": "acme-2", "readings": [one]}).to_string(), 403, Some("device_id"), "NOT_THIS_KEYS_DEVICE"),
            (&acme_1, json!({"readings": [one]}).to_string(), 400, Some("device_id"), "INVALID_READING"),
            (&acme_1, json!({"device_id": "acme-1", "readings": []}).to_string(), 400, Some("readings"), "INVALID_READING"),
            (&acme_1, too_many.to_string(), 400, Some("readings"), "INVALID_READING"),
            (&acme_1, "[1, 2]".to_owned(), 400, Some("body"), "INVALID_READING"),
        ];
        let mut expected = Vec::new();
        for (caller, body, status, field, code) in cases {
            let answer = batch_as(&deps, caller, &body).await;
            assert_eq!((answer.status, answer.body["field"].as_str()), (status, field), "{code}: {}", answer.body);
            expected.push((BATCH_SOURCE.to_owned(), caller["deviceId"].as_str().map(str::to_owned), code.to_owned(), body));
        }
        expected.sort();
        assert_eq!(dead_letters(&deps), expected, "one dead letter per batch, with the whole batch");
        assert_eq!(deps.filing.observations.len(), 0);
    }

    fn status_deps(vitals: Vitals) -> Status {
        StatusDeps { devices: vitals.filing.devices, observations: vitals.filing.observations, access: vitals.access }
    }

    async fn status_as(deps: &Status, caller: &Value) -> Answered {
        answered(status(ApiRequest::new("GET /api/iot/status").caller(caller.clone()).build(), deps).await)
    }

    #[tokio::test]
    async fn the_status_says_whether_the_device_may_send_and_its_last_reading() {
        let filed = vitals();
        let writer = key(&filed.access.keys, "acme-1", &[Permission::WriteVitals, Permission::ReadStatus], 60).await;
        let (older, newer) = (minutes_ago(20), minutes_ago(10));
        for at in [&newer, &older] {
            let reading = json!({"device_id": "acme-1", "timestamp": at, "heart_rate": 72}).to_string();
            assert_eq!(submit_as(&filed, &writer, &reading).await.status, 201);
        }
        let deps = status_deps(filed);
        let active = status_as(&deps, &writer).await;
        assert_eq!(active.status, 200, "{}", active.body);
        assert_eq!(
            (active.body["device_id"].as_str(), active.body["status"].as_str(), active.body["is_active"].as_bool()),
            (Some("acme-1"), Some("ACTIVE"), Some(true))
        );
        assert_eq!((active.body["patient_assigned"].as_bool(), active.body["patient_id"].as_str()), (Some(true), Some("pat-1")));
        let newest = crate::platform::time::parse_with_offset(&newer).map(format_utc);
        assert_eq!(active.body["last_reading"].as_str(), newest.as_deref());

        for (thing, status) in [("acme-2", "INACTIVE"), ("acme-3", "REGISTERED"), ("acme-4", "BLOCKED")] {
            let caller = key(&deps.access.keys, thing, &[Permission::ReadStatus], 60).await;
            let answer = status_as(&deps, &caller).await;
            assert_eq!(
                (answer.status, answer.body["status"].as_str(), answer.body["is_active"].as_bool()),
                (200, Some(status), Some(false)),
                "{thing}"
            );
            assert_eq!(answer.body["last_reading"], Value::Null);
        }
        let logged = deps.access.activity.all().pop().unwrap();
        assert_eq!((logged.route.as_str(), logged.method.as_str(), logged.status), ("/api/iot/status", "GET", 200));
    }

    #[tokio::test]
    async fn the_status_needs_read_status_and_a_registered_device() {
        let deps = status_deps(vitals());
        let writer = key(&deps.access.keys, "acme-1", &[Permission::WriteVitals], 60).await;
        assert_eq!(status_as(&deps, &writer).await.status, 403);
        let unregistered = key(&deps.access.keys, "acme-9", &[Permission::ReadStatus], 60).await;
        assert_eq!(status_as(&deps, &unregistered).await.status, 400);
        assert_eq!(status_as(&deps, &testing::admin()).await.status, 401, "a person's token is no device key");
    }
}
