//! The IoT HTTP APIs the platform's functions call, so that `AWS_ENDPOINT_URL_IOT_DATA_PLANE`
//! and `AWS_ENDPOINT_URL_IOT` point the unchanged AWS SDK clients at the gateway:
//!
//! - data plane `Publish`: `POST /topics/{topic}?qos=` delivers to subscribed devices;
//! - control plane `UpdateCertificate` (`PUT /certificates/{id}?newStatus=`) and
//!   `DescribeCertificate` (`GET /certificates/{id}`).
//!
//! Requests are not signature-checked: this serves one developer's machine on loopback.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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

/// The router for the IoT HTTP APIs.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/topics/{*topic}", post(publish))
        .route("/certificates/{id}", get(describe_certificate).put(update_certificate))
        .with_state(gateway)
}
