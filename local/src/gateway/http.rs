//! The IoT HTTP APIs the platform's functions call, so that `AWS_ENDPOINT_URL_IOT_DATA_PLANE`
//! and `AWS_ENDPOINT_URL_IOT` point the unchanged AWS SDK clients at the gateway:
//!
//! - data plane `Publish`: `POST /topics/{topic}?qos=` delivers to subscribed devices;
//! - control plane `UpdateCertificate` (`PUT /certificates/{id}?newStatus=`) and
//!   `DescribeCertificate` (`GET /certificates/{id}`);
//! - control plane IoT Jobs: `CreateJob` (`PUT /jobs/{id}`, targets things or thing groups,
//!   or a `jobTemplateArn`), `DescribeJob`, `GetJobDocument`, `ListJobs`, `CancelJob`
//!   (`PUT /jobs/{id}/cancel?force=`), `DeleteJob` (`?force=`), `ListJobExecutionsForJob`
//!   (`GET /jobs/{id}/things`), `DescribeJobExecution`, `ListJobExecutionsForThing`,
//!   `CancelJobExecution`, `DeleteJobExecution`; job templates (create, describe, list,
//!   delete);
//! - things, thing types and thing groups ([`super::things`]); certificates (`ListCertificates`,
//!   `DeleteCertificate`) and principals (`AttachThingPrincipal`, `DetachThingPrincipal`,
//!   `ListThingPrincipals`, `ListPrincipalThings`);
//! - data plane device shadows ([`super::shadows`]): `GetThingShadow`, `UpdateThingShadow`,
//!   `DeleteThingShadow` (`/things/{thing}/shadow?name=`) and `ListNamedShadowsForThing`;
//! - anything else: AWS's `UnknownOperationException`.
//!
//! Requests are not signature-checked: this serves one developer's machine on loopback.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
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
            "certificateArn": certificate_arn(&c.id),
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
    control_error(invalid_request(message))
}

fn invalid_request(message: impl Into<String>) -> super::jobs::ControlError {
    super::jobs::ControlError { status: 400, kind: "InvalidRequestException", message: message.into() }
}

/// A job's settings from a `CreateJob` or `CreateJobTemplate` body, over `base` (a template's).
fn job_settings(request: &serde_json::Value, base: Option<super::jobs::JobTemplate>, now: i64) -> Result<super::jobs::JobTemplate, super::jobs::ControlError> {
    let document = match request["document"].as_str() {
        Some(d) => serde_json::from_str::<serde_json::Value>(d).map_err(|_| invalid_request("document must be a JSON document in a string"))?,
        None => match &base {
            Some(t) => t.document.clone(),
            None => return Err(invalid_request("document must be a JSON document in a string (documentSource is not served locally)")),
        },
    };
    let abort = request["abortConfig"]["criteriaList"]
        .as_array()
        .and_then(|c| c.first())
        .and_then(|c| Some((c["thresholdPercentage"].as_f64()?, c["minNumberOfExecutedThings"].as_u64()?)))
        .or(base.as_ref().and_then(|t| t.abort));
    Ok(super::jobs::JobTemplate {
        description: request["description"].as_str().map(str::to_owned).or(base.as_ref().map(|t| t.description.clone())).unwrap_or_default(),
        document,
        presigned_url_seconds: request["presignedUrlConfig"]["expiresInSec"].as_u64().or(base.as_ref().map(|t| t.presigned_url_seconds)).unwrap_or(3600),
        in_progress_timeout_minutes: request["timeoutConfig"]["inProgressTimeoutInMinutes"].as_i64().or(base.as_ref().and_then(|t| t.in_progress_timeout_minutes)),
        abort,
        created_at: now,
    })
}

fn valid_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

async fn create_job(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else { return bad_job("the body is not JSON") };
    if !valid_job_id(&job_id) {
        return bad_job(format!("jobId '{job_id}' must be 1-64 of [a-zA-Z0-9_-]"));
    }
    // Targets: things, or thing groups (their members now: SNAPSHOT selection).
    let mut things = Vec::new();
    for target in request["targets"].as_array().into_iter().flatten() {
        let arn = target.as_str().unwrap_or_default();
        if let Some((_, group)) = arn.rsplit_once(":thinggroup/") {
            match gw.things.members(group) {
                Ok(members) => things.extend(members),
                Err(e) => return control_error(e),
            }
        } else {
            match arn.rsplit_once(":thing/") {
                Some((_, thing)) if !thing.is_empty() => things.push(thing.to_owned()),
                _ => return bad_job(format!("target {target} is not a thing or thing group ARN")),
            }
        }
    }
    things.sort();
    things.dedup();
    let template = match request["jobTemplateArn"].as_str().map(|a| a.rsplit_once(":jobtemplate/").map_or(a, |(_, id)| id)) {
        Some(id) => match gw.jobs.template(id) {
            Ok(t) => Some(t),
            Err(e) => return control_error(e),
        },
        None => None,
    };
    let settings = match job_settings(&request, template, gw.jobs.now()) {
        Ok(s) => s,
        Err(e) => return control_error(e),
    };
    let spec = super::jobs::JobSpec {
        job_id,
        thing_names: things,
        document: settings.document,
        description: settings.description,
        presigned_url_seconds: settings.presigned_url_seconds,
        in_progress_timeout_minutes: settings.in_progress_timeout_minutes,
        abort: settings.abort,
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

/// A control-plane answer: its body, or AWS's error.
fn answered(result: Result<serde_json::Value, super::jobs::ControlError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => control_error(e),
    }
}

/// A control-plane change that caused job notifications: they are delivered, then the answer.
async fn with_effects(gw: &Arc<Gateway>, result: Result<Vec<super::jobs::Effect>, super::jobs::ControlError>) -> Response {
    match result {
        Ok(effects) => {
            gw.apply_job_effects(effects).await;
            Json(json!({})).into_response()
        }
        Err(e) => control_error(e),
    }
}

fn force(query: &HashMap<String, String>) -> bool {
    query.get("force").is_some_and(|f| f == "true")
}

async fn describe_job(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>) -> Response {
    answered(gw.jobs.describe_job(&job_id))
}

async fn job_document(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>) -> Response {
    answered(gw.jobs.job_document(&job_id))
}

async fn list_jobs(State(gw): State<Arc<Gateway>>, Query(query): Query<HashMap<String, String>>) -> Response {
    Json(gw.jobs.list_jobs(query.get("status").map(String::as_str))).into_response()
}

async fn delete_job(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>, Query(query): Query<HashMap<String, String>>) -> Response {
    let result = gw.jobs.delete_job(&job_id, force(&query));
    if result.is_ok() {
        tracing::info!(job_id = %job_id, "control plane: DeleteJob");
    }
    with_effects(&gw, result).await
}

async fn describe_job_execution(State(gw): State<Arc<Gateway>>, Path((thing, job_id)): Path<(String, String)>) -> Response {
    answered(gw.jobs.describe_execution(&thing, &job_id))
}

async fn list_thing_job_executions(State(gw): State<Arc<Gateway>>, Path(thing): Path<String>, Query(query): Query<HashMap<String, String>>) -> Response {
    Json(gw.jobs.list_executions_for_thing(&thing, query.get("status").map(String::as_str))).into_response()
}

async fn cancel_job_execution(State(gw): State<Arc<Gateway>>, Path((thing, job_id)): Path<(String, String)>, Query(query): Query<HashMap<String, String>>) -> Response {
    let result = gw.jobs.cancel_execution(&thing, &job_id, force(&query));
    if result.is_ok() {
        tracing::info!(job_id = %job_id, thing_name = %thing, "control plane: CancelJobExecution");
    }
    with_effects(&gw, result).await
}

async fn delete_job_execution(
    State(gw): State<Arc<Gateway>>,
    Path((thing, job_id, number)): Path<(String, String, i64)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    with_effects(&gw, gw.jobs.delete_execution(&thing, &job_id, number, force(&query))).await
}

async fn create_job_template(State(gw): State<Arc<Gateway>>, Path(id): Path<String>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else { return bad_job("the body is not JSON") };
    if !valid_job_id(&id) {
        return bad_job(format!("jobTemplateId '{id}' must be 1-64 of [a-zA-Z0-9_-]"));
    }
    answered(job_settings(&request, None, gw.jobs.now()).and_then(|template| gw.jobs.create_template(&id, template)))
}

async fn describe_job_template(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    answered(gw.jobs.describe_template(&id))
}

async fn list_job_templates(State(gw): State<Arc<Gateway>>) -> Response {
    Json(gw.jobs.list_templates()).into_response()
}

async fn delete_job_template(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    answered(gw.jobs.delete_template(&id))
}

fn json_body(body: &[u8]) -> Result<serde_json::Value, super::jobs::ControlError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body).map_err(|_| invalid_request("the body is not JSON"))
}

async fn create_thing(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, body: Bytes) -> Response {
    let result = json_body(&body).and_then(|request| gw.things.create_thing(&name, &request));
    if result.is_ok() {
        tracing::info!(thing_name = %name, "control plane: CreateThing");
    }
    answered(result)
}

async fn describe_thing(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    answered(gw.things.describe_thing(&name))
}

async fn list_things(State(gw): State<Arc<Gateway>>, Query(query): Query<HashMap<String, String>>) -> Response {
    answered(gw.things.list_things(&query))
}

async fn update_thing(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, body: Bytes) -> Response {
    answered(json_body(&body).and_then(|request| gw.things.update_thing(&name, &request)))
}

async fn delete_thing(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, Query(query): Query<HashMap<String, String>>) -> Response {
    let expected = query.get("expectedVersion").and_then(|v| v.parse().ok());
    let attached = !gw.registry.principals_of(&name).is_empty();
    let result = gw.things.delete_thing(&name, expected, attached);
    if result.is_ok() {
        tracing::info!(thing_name = %name, "control plane: DeleteThing");
    }
    answered(result)
}

/// The certificate id of the `x-amzn-principal` header (a certificate ARN, or its id).
fn principal(headers: &HeaderMap) -> Result<String, super::jobs::ControlError> {
    let arn = headers.get("x-amzn-principal").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let id = certificate_id_of(arn).unwrap_or(arn);
    if id.is_empty() {
        return Err(invalid_request("the x-amzn-principal header must name a certificate ARN"));
    }
    Ok(id.to_owned())
}

/// The certificate id at the end of a certificate ARN (`...:cert/<id>`), if it is one.
fn certificate_id_of(arn: &str) -> Option<&str> {
    arn.rsplit_once("cert/").map(|(_, id)| id).filter(|id| !id.is_empty())
}

fn certificate_arn(id: &str) -> String {
    format!("{}:cert/{id}", super::policy::ARN_PREFIX)
}

async fn set_thing_principal(gw: Arc<Gateway>, thing: String, headers: HeaderMap, attach: bool) -> Response {
    let id = match principal(&headers) {
        Ok(id) => id,
        Err(e) => return control_error(e),
    };
    if attach && !gw.things.exists(&thing) {
        return aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("thing {thing} does not exist"));
    }
    if !gw.registry.set_thing(&id, &thing, attach) {
        return aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("certificate {id} does not exist"));
    }
    tracing::info!(thing_name = %thing, certificate_id = %id, attach, "control plane: thing principal changed");
    Json(json!({})).into_response()
}

async fn attach_thing_principal(State(gw): State<Arc<Gateway>>, Path(thing): Path<String>, headers: HeaderMap) -> Response {
    set_thing_principal(gw, thing, headers, true).await
}

async fn detach_thing_principal(State(gw): State<Arc<Gateway>>, Path(thing): Path<String>, headers: HeaderMap) -> Response {
    set_thing_principal(gw, thing, headers, false).await
}

async fn list_thing_principals(State(gw): State<Arc<Gateway>>, Path(thing): Path<String>) -> Response {
    if !gw.things.exists(&thing) {
        return aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("thing {thing} does not exist"));
    }
    Json(json!({"principals": gw.registry.principals_of(&thing).iter().map(|id| certificate_arn(id)).collect::<Vec<_>>()})).into_response()
}

async fn list_principal_things(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Response {
    let id = match principal(&headers) {
        Ok(id) => id,
        Err(e) => return control_error(e),
    };
    match gw.registry.certificate(&id) {
        Some(c) => Json(json!({"things": c.things})).into_response(),
        None => aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("certificate {id} does not exist")),
    }
}

async fn list_certificates(State(gw): State<Arc<Gateway>>) -> Response {
    let certificates: Vec<serde_json::Value> = gw
        .registry
        .certificates()
        .iter()
        .map(|c| json!({"certificateArn": certificate_arn(&c.id), "certificateId": c.id, "status": c.status.as_str(), "creationDate": c.created_at}))
        .collect();
    Json(json!({"certificates": certificates})).into_response()
}

async fn delete_certificate(State(gw): State<Arc<Gateway>>, Path(id): Path<String>) -> Response {
    match gw.registry.delete_certificate(&id) {
        Ok(true) => {
            tracing::info!(certificate_id = %id, "control plane: DeleteCertificate");
            StatusCode::OK.into_response()
        }
        Ok(false) => aws_error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("certificate {id} does not exist")),
        Err((status, kind, message)) => aws_error(StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT), kind, message),
    }
}

fn policy_error(e: super::registry::PolicyError) -> Response {
    let (status, kind) = e.aws_kind();
    aws_error(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), kind, e.to_string())
}

fn policy_arn(name: &str) -> String {
    format!("{}:policy/{name}", super::policy::ARN_PREFIX)
}

/// `setAsActive=true` makes a new certificate ACTIVE; AWS leaves it INACTIVE otherwise.
fn new_certificate_status(query: &HashMap<String, String>) -> CertificateStatus {
    if query.get("setAsActive").is_some_and(|v| v == "true") {
        CertificateStatus::Active
    } else {
        CertificateStatus::Inactive
    }
}

/// `CreateKeysAndCertificate`: the AWS CLI's and the getting-started guide's way to a device
/// certificate; signed by the local CA.
async fn create_keys_and_certificate(State(gw): State<Arc<Gateway>>, Query(query): Query<HashMap<String, String>>) -> Response {
    let issued = match gw.pki.create_keys_and_certificate() {
        Ok(issued) => issued,
        Err(e) => return aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailureException", e.to_string()),
    };
    let key_pair = json!({"PublicKey": issued.public_key_pem, "PrivateKey": issued.private_key_pem});
    register_issued(&gw, &issued.certificate_pem, &query, "CreateKeysAndCertificate", Some(key_pair))
}

/// Registers a certificate the local CA issued (active if `setAsActive=true`) and answers as
/// the control plane does: its ARN, id and PEM, and the key pair if one was made.
fn register_issued(gw: &Gateway, pem: &str, query: &HashMap<String, String>, operation: &str, key_pair: Option<serde_json::Value>) -> Response {
    let status = new_certificate_status(query);
    let Some(id) = super::fleet::register_certificate(gw, pem, status) else {
        return aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalFailureException", "the issued certificate is not PEM".into());
    };
    tracing::info!(certificate_id = %id, status = status.as_str(), operation, "control plane: certificate issued");
    let mut answer = json!({"certificateArn": certificate_arn(&id), "certificateId": id, "certificatePem": pem});
    if let Some(key_pair) = key_pair {
        answer["keyPair"] = key_pair;
    }
    Json(answer).into_response()
}

/// `CreateCertificateFromCsr`: the local CA signs the device's own key.
async fn create_certificate_from_csr(State(gw): State<Arc<Gateway>>, Query(query): Query<HashMap<String, String>>, body: Bytes) -> Response {
    let request = match json_body(&body) {
        Ok(request) => request,
        Err(e) => return control_error(e),
    };
    let Some(csr) = request.get("certificateSigningRequest").and_then(serde_json::Value::as_str) else {
        return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", "certificateSigningRequest is required".into());
    };
    let pem = match gw.pki.sign_csr(csr) {
        Ok(pem) => pem,
        Err(e) => return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", format!("the certificate signing request is not valid: {e}")),
    };
    register_issued(&gw, &pem, &query, "CreateCertificateFromCsr", None)
}

fn valid_policy_name(name: &str) -> bool {
    (1..=128).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
}

/// `CreatePolicy`: connections made afterwards by certificates it is attached to are judged
/// by it, as the stack's own policies are.
async fn create_policy(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, body: Bytes) -> Response {
    if !valid_policy_name(&name) {
        return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", format!("policy name {name} is not 1 to 128 of [A-Za-z0-9_+=,.@-]"));
    }
    let request = match json_body(&body) {
        Ok(request) => request,
        Err(e) => return control_error(e),
    };
    let Some(text) = request.get("policyDocument").and_then(serde_json::Value::as_str) else {
        return aws_error(StatusCode::BAD_REQUEST, "InvalidRequestException", "policyDocument is required (a JSON document in a string)".into());
    };
    match gw.registry.create_policy(&name, text, gw.jobs.now()) {
        Ok(policy) => {
            tracing::info!(policy_name = %name, "control plane: CreatePolicy");
            Json(json!({"policyName": name, "policyArn": policy_arn(&name), "policyDocument": policy.text, "policyVersionId": "1"})).into_response()
        }
        Err(e) => policy_error(e),
    }
}

async fn get_policy(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    match gw.registry.policy(&name) {
        Some(policy) => Json(json!({
            "policyName": name,
            "policyArn": policy_arn(&name),
            "policyDocument": policy.text,
            "defaultVersionId": "1",
            "creationDate": policy.created_at,
            "lastModifiedDate": policy.created_at,
        }))
        .into_response(),
        None => policy_error(super::registry::PolicyError::UnknownPolicy(name)),
    }
}

fn policy_list(names: impl IntoIterator<Item = String>) -> Response {
    let policies: Vec<serde_json::Value> = names.into_iter().map(|n| json!({"policyArn": policy_arn(&n), "policyName": n})).collect();
    Json(json!({"policies": policies})).into_response()
}

async fn list_policies(State(gw): State<Arc<Gateway>>) -> Response {
    policy_list(gw.registry.policy_names())
}

async fn delete_policy(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    match gw.registry.delete_policy(&name) {
        Ok(()) => {
            tracing::info!(policy_name = %name, "control plane: DeletePolicy");
            StatusCode::OK.into_response()
        }
        Err(e) => policy_error(e),
    }
}

/// A policy target that is not a certificate: only certificates are served locally.
fn not_a_certificate(target: &str) -> Response {
    aws_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestException",
        format!("target {target} is not a certificate ARN (thing groups and Cognito identities are not served locally)"),
    )
}

async fn set_policy_target(gw: Arc<Gateway>, name: String, body: Bytes, attach: bool) -> Response {
    let request = match json_body(&body) {
        Ok(request) => request,
        Err(e) => return control_error(e),
    };
    let target = request.get("target").and_then(serde_json::Value::as_str).unwrap_or_default();
    let Some(id) = certificate_id_of(target).map(str::to_owned) else { return not_a_certificate(target) };
    match gw.registry.set_policy(&id, &name, attach) {
        Ok(()) => {
            tracing::info!(policy_name = %name, certificate_id = %id, attach, "control plane: certificate policy changed");
            StatusCode::OK.into_response()
        }
        Err(e) => policy_error(e),
    }
}

async fn attach_policy(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, body: Bytes) -> Response {
    set_policy_target(gw, name, body, true).await
}

async fn detach_policy(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, body: Bytes) -> Response {
    set_policy_target(gw, name, body, false).await
}

async fn list_attached_policies(State(gw): State<Arc<Gateway>>, Path(target): Path<String>) -> Response {
    let Some(id) = certificate_id_of(&target).map(str::to_owned) else { return not_a_certificate(&target) };
    match gw.registry.certificate(&id) {
        Some(c) => policy_list(c.policies),
        None => policy_error(super::registry::PolicyError::UnknownCertificate(id)),
    }
}

async fn create_thing_type(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, body: Bytes) -> Response {
    answered(json_body(&body).and_then(|request| gw.things.create_thing_type(&name, &request, gw.jobs.now())))
}

async fn describe_thing_type(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    answered(gw.things.describe_thing_type(&name))
}

async fn list_thing_types(State(gw): State<Arc<Gateway>>) -> Response {
    Json(gw.things.list_thing_types()).into_response()
}

async fn create_thing_group(State(gw): State<Arc<Gateway>>, Path(name): Path<String>, body: Bytes) -> Response {
    answered(json_body(&body).and_then(|request| gw.things.create_thing_group(&name, &request, gw.jobs.now())))
}

async fn describe_thing_group(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    answered(gw.things.describe_thing_group(&name))
}

async fn list_thing_groups(State(gw): State<Arc<Gateway>>) -> Response {
    Json(gw.things.list_thing_groups()).into_response()
}

async fn add_thing_to_group(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    answered(json_body(&body).and_then(|request| gw.things.set_membership(&request, true)))
}

async fn remove_thing_from_group(State(gw): State<Arc<Gateway>>, body: Bytes) -> Response {
    answered(json_body(&body).and_then(|request| gw.things.set_membership(&request, false)))
}

async fn list_things_in_group(State(gw): State<Arc<Gateway>>, Path(name): Path<String>) -> Response {
    answered(gw.things.members(&name).map(|things| json!({"things": things})))
}

async fn list_job_executions(State(gw): State<Arc<Gateway>>, Path(job_id): Path<String>) -> Response {
    match gw.jobs.list_executions(&job_id) {
        Ok(reply) => Json(reply).into_response(),
        Err(e) => control_error(e),
    }
}

/// A shadow refusal in the data plane's shape: the status and AWS's error type for its code.
fn shadow_error(e: super::shadows::ShadowError) -> Response {
    let kind = match e.code {
        404 => "ResourceNotFoundException",
        409 => "ConflictException",
        413 => "RequestEntityTooLargeException",
        _ => "InvalidRequestException",
    };
    aws_error(StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_REQUEST), kind, e.message)
}

fn shadow_answer(result: Result<serde_json::Value, super::shadows::ShadowError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => shadow_error(e),
    }
}

async fn get_thing_shadow(State(gw): State<Arc<Gateway>>, Path(thing): Path<String>, Query(query): Query<HashMap<String, String>>) -> Response {
    shadow_answer(gw.shadows.get(&thing, query.get("name").map(String::as_str), gw.jobs.now()))
}

async fn update_thing_shadow(State(gw): State<Arc<Gateway>>, Path(thing): Path<String>, Query(query): Query<HashMap<String, String>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return shadow_error(super::shadows::ShadowError { code: 400, message: "Payload contains invalid json".into() });
    };
    let name = query.get("name").map(String::as_str);
    match gw.shadows.update(&thing, name, &request, gw.jobs.now()) {
        Ok((accepted, effects)) => {
            tracing::info!(thing_name = %thing, shadow = name.unwrap_or("classic"), version = %accepted["version"], "shadow: UpdateThingShadow");
            // Subscribers hear of an update made over HTTP as of one made over MQTT.
            let topic = format!("{}/update/accepted", super::shadows::topic_prefix(&thing, name));
            gw.deliver(&topic, Bytes::from(accepted.to_string()), 1, None);
            gw.publish_shadow_effects(effects);
            Json(accepted).into_response()
        }
        Err(e) => shadow_error(e),
    }
}

async fn delete_thing_shadow(State(gw): State<Arc<Gateway>>, Path(thing): Path<String>, Query(query): Query<HashMap<String, String>>) -> Response {
    let name = query.get("name").map(String::as_str);
    let result = gw.shadows.delete(&thing, name, gw.jobs.now());
    if let Ok(accepted) = &result {
        let topic = format!("{}/delete/accepted", super::shadows::topic_prefix(&thing, name));
        gw.deliver(&topic, Bytes::from(accepted.to_string()), 1, None);
    }
    shadow_answer(result)
}

async fn list_named_shadows(State(gw): State<Arc<Gateway>>, Path(thing): Path<String>) -> Response {
    Json(gw.shadows.named(&thing, gw.jobs.now())).into_response()
}

/// `DescribeEndpoint`: device code and the AWS CLI look up the ATS data endpoint with it; the
/// local gateway's host (its MQTT port is `mqttPort` in `endpoints.json`, 8883 by default).
async fn describe_endpoint() -> Response {
    Json(json!({"endpointAddress": "localhost"})).into_response()
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
        .route("/endpoint", get(describe_endpoint))
        .route("/certificates", get(list_certificates).post(create_certificate_from_csr))
        .route("/keys-and-certificate", post(create_keys_and_certificate))
        .route("/policies", get(list_policies))
        .route("/policies/{name}", post(create_policy).get(get_policy).delete(delete_policy))
        .route("/target-policies/{name}", put(attach_policy).post(detach_policy))
        .route("/attached-policies/{target}", post(list_attached_policies))
        .route("/certificates/{id}", get(describe_certificate).put(update_certificate).delete(delete_certificate))
        .route("/jobs", get(list_jobs))
        .route("/jobs/{id}", put(create_job).get(describe_job).delete(delete_job))
        .route("/jobs/{id}/cancel", put(cancel_job))
        .route("/jobs/{id}/things", get(list_job_executions))
        .route("/jobs/{id}/job-document", get(job_document))
        .route("/job-templates", get(list_job_templates))
        .route("/job-templates/{id}", put(create_job_template).get(describe_job_template).delete(delete_job_template))
        .route("/things", get(list_things))
        .route("/things/{name}", post(create_thing).get(describe_thing).patch(update_thing).delete(delete_thing))
        .route("/things/{name}/shadow", get(get_thing_shadow).post(update_thing_shadow).delete(delete_thing_shadow))
        .route("/api/things/shadow/ListNamedShadowsForThing/{name}", get(list_named_shadows))
        .route("/things/{name}/principals", put(attach_thing_principal).delete(detach_thing_principal).get(list_thing_principals))
        .route("/things/{name}/jobs", get(list_thing_job_executions))
        .route("/things/{name}/jobs/{job}", get(describe_job_execution))
        .route("/things/{name}/jobs/{job}/cancel", put(cancel_job_execution))
        .route("/things/{name}/jobs/{job}/executionNumber/{number}", delete(delete_job_execution))
        .route("/principals/things", get(list_principal_things))
        .route("/thing-types", get(list_thing_types))
        .route("/thing-types/{name}", post(create_thing_type).get(describe_thing_type))
        .route("/thing-groups", get(list_thing_groups))
        .route("/thing-groups/addThingToThingGroup", put(add_thing_to_group))
        .route("/thing-groups/removeThingFromThingGroup", put(remove_thing_from_group))
        .route("/thing-groups/{name}", post(create_thing_group).get(describe_thing_group))
        .route("/thing-groups/{name}/things", get(list_things_in_group))
        .fallback(unknown_operation)
        .method_not_allowed_fallback(unknown_operation)
        .with_state(gateway)
}
