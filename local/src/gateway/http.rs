//! The IoT HTTP APIs the platform's functions call, so that `AWS_ENDPOINT_URL_IOT_DATA_PLANE`
//! and `AWS_ENDPOINT_URL_IOT` point the unchanged AWS SDK clients at the gateway:
//!
//! - data plane `Publish`: `POST /topics/{topic}?qos=` delivers to subscribed devices;
//! - control plane `UpdateCertificate` (`PUT /certificates/{id}?newStatus=`) and
//!   `DescribeCertificate` (`GET /certificates/{id}`);
//! - control plane IoT Jobs: `CreateJob` (`PUT /jobs/{id}`), `DescribeJob` (`GET /jobs/{id}`),
//!   `CancelJob` (`PUT /jobs/{id}/cancel?force=`) and `ListJobExecutionsForJob`
//!   (`GET /jobs/{id}/things`).
//!
//! Requests are not signature-checked: this serves one developer's machine on loopback.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;

use super::registry::CertificateStatus;
use super::Gateway;

fn aws_error(status: StatusCode, kind: &'static str, message: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("x-amzn-errortype", HeaderValue::from_static(kind));
    (status, headers, Json(json!({"message": message}))).into_response()
}

async fn publish(
    State(gw): State<Arc<Gateway>>,
    Path(topic): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let qos = match query.get("qos").map(String::as_str) {
        None | Some("0") => 0,
        Some("1") => 1,
        Some(other) => return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", format!("qos {other} is not 0 or 1")),
    };
    if topic.is_empty() || topic.contains('+') || topic.contains('#') {
        return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", format!("'{topic}' is not a topic name"));
    }
    gw.deliver(&topic, body, qos, None);
    Json(json!({})).into_response()
}

async fn update_certificate(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(status) = query.get("newStatus").and_then(|s| CertificateStatus::parse(s)) else {
        return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", "newStatus is missing or unknown".into());
    };
    if !gw.registry.set_status(&id, status) {
        return aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("certificate {id} does not exist"));
    }
    tracing::info!(certificate_id = %id, status = status.as_str(), "control plane: UpdateCertificate");
    if status != CertificateStatus::Active {
        // A certificate that stops being active loses its live connections too.
        gw.disconnect_certificate(&id);
    }
    StatusCode::OK.into_response()
}

async fn describe_certificate(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match gw.registry.certificate(&id) {
        None => aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("certificate {id} does not exist")),
        Some(c) => Json(json!({"certificateDescription": {
            "certificateId": c.id,
            "certificateArn": format!("{}:cert/{}", super::policy::ARN_PREFIX, c.id),
            "status": c.status.as_str(),
            "certificatePem": c.pem,
        }}))
        .into_response(),
    }
}

fn control_error(e: super::jobs::ControlError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    aws_error(status, e.kind, e.message)
}

fn bad_job(message: impl Into<String>) -> Response {
    aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", message.into())
}

async fn create_job(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else { return bad_job("the body is not JSON") };
    if job_id.is_empty() || job_id.len() > 64 || !job_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return bad_job(format!("jobId '{job_id}' must be 1-64 of [a-zA-Z0-9_-]"));
    }
    let mut things = Vec::new();
    for target in request["targets"].as_array().into_iter().flatten() {
        match target.as_str().and_then(|a| a.rsplit_once(":thing/")) {
            Some((_, thing)) if !thing.is_empty() => things.push(thing.to_owned()),
            _ => return bad_job(format!("target {target} is not a thing ARN (thing groups are not served locally)")),
        }
    }
    let Some(document) = request["document"].as_str().and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()) else {
        return bad_job("document must be a JSON document in a string (documentSource is not served locally)");
    };
    let abort = request["abortConfig"]["criteriaList"]
        .as_array()
        .and_then(|c| c.first())
        .and_then(|c| Some((c["thresholdPercentage"].as_f64()?, c["minNumberOfExecutedThings"].as_u64()?)));
    let spec = super::jobs::JobSpec {
        job_id,
        thing_names: things,
        document,
        description: request["description"].as_str().unwrap_or_default().to_owned(),
        presigned_url_seconds: request["presignedUrlConfig"]["expiresInSec"].as_u64().unwrap_or(3600),
        in_progress_timeout_minutes: request["timeoutConfig"]["inProgressTimeoutInMinutes"].as_i64(),
        abort,
    };
    let (id, targets) = (spec.job_id.clone(), spec.thing_names.len());
    match gw.jobs.create_job(spec) {
        Ok((reply, effects)) => {
            tracing::info!(job_id = %id, targets, "control plane: CreateJob");
            gw.apply_job_effects(effects).await;
            Json(reply).into_response()
        }
        Err(e) => control_error(e),
    }
}

async fn cancel_job(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>, Query(query): Query<HashMap<String, String>>) -> Response {
    let force = query.get("force").is_some_and(|f| f == "true");
    match gw.jobs.cancel_job(&job_id, force) {
        Ok((reply, effects)) => {
            tracing::info!(job_id = %job_id, force, "control plane: CancelJob");
            gw.apply_job_effects(effects).await;
            Json(reply).into_response()
        }
        Err(e) => control_error(e),
    }
}

async fn describe_job(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>) -> Response {
    match gw.jobs.job_status(&job_id) {
        None => aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("job {job_id} does not exist")),
        Some((status, created_at)) => Json(json!({"job": {
            "jobId": job_id,
            "jobArn": format!("{}:job/{job_id}", super::policy::ARN_PREFIX),
            "status": status,
            "createdAt": created_at,
        }}))
        .into_response(),
    }
}

async fn list_job_executions(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>) -> Response {
    match gw.jobs.list_executions(&job_id) {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => control_error(e),
    }
}

/// An operation the local endpoint does not serve, answered in AWS's error shape (the SDKs
/// read `x-amzn-errortype`) rather than a bare 404 or 405.
async fn unknown_operation(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    tracing::info!(%method, path = uri.path(), "IoT endpoint: operation not served locally");
    aws_error(StatusCode::NOT_FOUND, "UnknownOperationException", format!("{method} {} is not an operation the local IoT endpoint serves", uri.path()))
}

/// The router for the IoT HTTP APIs.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/topics/{*topic}", post(publish))
        .route("/certificates/{id}", get(describe_certificate).put(update_certificate))
        .route("/jobs/{id}", put(create_job).get(describe_job))
        .route("/jobs/{id}/cancel", put(cancel_job))
        .route("/jobs/{id}/things", get(list_job_executions))
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        .with_state(gateway)
}
