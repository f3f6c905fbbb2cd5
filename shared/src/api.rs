//! HTTP API plumbing shared by every route: one error type mapped once to a status and a JSON
//! body, the caller from the authorizer's context, and request helpers.
//!
//! Error body: `{"error": {"code": "...", "message": "..."}}`.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::auth::{Principal, Role};
use crate::StoreError;

/// Everything a route can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{field}: {message}")]
    BadRequest { field: String, message: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { field: field.to_owned(), message: message.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::Unauthenticated(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::BadRequest { .. } => 400,
            ApiError::Conflict(_) => 409,
            ApiError::Store(_) => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::BadRequest { .. } => "BAD_REQUEST",
            ApiError::Conflict(_) => "CONFLICT",
            ApiError::Store(_) => "UNAVAILABLE",
        }
    }

    /// The response; storage details stay in the logs, not in the body.
    pub fn into_response(self) -> Response<Body> {
        let message = match &self {
            ApiError::Store(e) => {
                tracing::error!(error = %e, "storage failure");
                "the service is temporarily unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({"error": {"code": self.code(), "message": message}});
        if let ApiError::BadRequest { field, .. } = &self {
            body["error"]["field"] = json!(field);
        }
        json_response(self.status(), &body)
    }
}

/// A JSON response.
pub fn json_response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// Turns a route's result into its response.
pub fn respond(result: Result<(u16, Value), ApiError>) -> Response<Body> {
    match result {
        Ok((status, body)) => json_response(status, &body),
        Err(e) => e.into_response(),
    }
}

/// The caller, from the `authorizer` function's context (`requestContext.authorizer.lambda`).
///
/// HTTP APIs answer 403 whenever a Lambda authorizer denies, so the authorizer passes a bad
/// token through as `authenticated: false` with the reason, and every route refuses it here
/// with 401. Routes must call this (through [`require`]) before anything else.
pub fn principal(request: &Request) -> Result<Principal, ApiError> {
    let context = match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().map(|a| a.fields.clone()).unwrap_or_default()
        }
        _ => Default::default(),
    };
    let text = |k: &str| context.get(k).and_then(Value::as_str).map(str::to_owned);
    if context.get("authenticated").and_then(Value::as_bool) != Some(true) {
        let reason = text("error").unwrap_or_else(|| "no bearer token".to_owned());
        return Err(ApiError::Unauthenticated(reason));
    }
    if context.contains_key("keyId") {
        return Err(ApiError::Forbidden("device API keys may only call the /api/iot routes".into()));
    }
    let role = text("role").and_then(|r| Role::parse(&r)).ok_or_else(|| ApiError::Unauthenticated("no role".into()))?;
    Ok(Principal { subject: text("sub").unwrap_or_default(), role, patient_id: text("patientId") })
}

/// The caller, if it has one of `roles` (401 without a valid token, 403 with another role).
pub fn require(request: &Request, roles: &[Role]) -> Result<Principal, ApiError> {
    let p = principal(request)?;
    if roles.contains(&p.role) {
        Ok(p)
    } else {
        let wanted: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden(format!("this route needs the role {}", wanted.join(" or "))))
    }
}

/// A path parameter of the route.
pub fn path_param(request: &Request, name: &str) -> Result<String, ApiError> {
    request
        .path_parameters_ref()
        .and_then(|p| p.first(name))
        .map(str::to_owned)
        .ok_or_else(|| ApiError::bad(name, "missing path parameter"))
}

/// A query parameter, if given.
pub fn query_param(request: &Request, name: &str) -> Option<String> {
    request.query_string_parameters_ref().and_then(|q| q.first(name)).map(str::to_owned)
}

/// The JSON body as `T`; a 400 naming the problem otherwise.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => return Err(ApiError::bad("body", "a JSON body is required")),
    };
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad("body", e.to_string()))
}

/// `limit` query parameter: 1 to `max`, default `default`.
pub fn limit_param(request: &Request, default: i32, max: i32) -> Result<i32, ApiError> {
    match query_param(request, "limit") {
        None => Ok(default),
        Some(text) => text
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=max).contains(l))
            .ok_or_else(|| ApiError::bad("limit", format!("must be a whole number from 1 to {max}"))),
    }
}
