//! HTTP API plumbing shared by every route: one error type mapped once to a status and a JSON
//! body, the authorizer's context, and request helpers.
//!
//! Error body: `{"error": {"code": "...", "message": "...", "field"?: "..."}}`.

use std::collections::HashMap;

use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

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
    #[error("{0}")]
    TooLarge(String),
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
            ApiError::TooLarge(_) => 413,
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
            ApiError::TooLarge(_) => "PAYLOAD_TOO_LARGE",
            ApiError::Store(_) => "UNAVAILABLE",
        }
    }

    /// The response; storage details stay in the logs, not in the body.
    pub fn into_response(self) -> Response<Body> {
        let message = match &self {
            ApiError::Store(e) => unavailable(e),
            other => other.to_string(),
        };
        let mut body = json!({"error": {"code": self.code(), "message": message}});
        if let ApiError::BadRequest { field, .. } = &self {
            body["error"]["field"] = json!(field);
        }
        json_response(self.status(), &body, &[])
    }
}

/// What a client is told of a storage failure; the failure itself goes to the logs.
pub fn unavailable(e: &StoreError) -> String {
    tracing::error!(error = %e, "storage failure");
    "the service is temporarily unavailable; retry later".to_owned()
}

/// A route's success: status and JSON body.
pub type Reply = (u16, Value);

/// What a route function answers; turned into the response in one place.
pub trait HttpAnswer {
    fn into_response(self) -> Response<Body>;
}

impl HttpAnswer for Result<Reply, ApiError> {
    fn into_response(self) -> Response<Body> {
        match self {
            Ok((status, body)) => json_response(status, &body, &[]),
            Err(e) => e.into_response(),
        }
    }
}

impl HttpAnswer for Result<Response<Body>, ApiError> {
    fn into_response(self) -> Response<Body> {
        self.unwrap_or_else(ApiError::into_response)
    }
}

impl HttpAnswer for Response<Body> {
    fn into_response(self) -> Response<Body> {
        self
    }
}

/// `204 No Content`.
pub fn no_content() -> Response<Body> {
    Response::builder().status(204).body(Body::Empty).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// A JSON response with extra headers.
pub fn json_response(status: u16, body: &Value, headers: &[(&'static str, String)]) -> Response<Body> {
    json_text_response(status, body.to_string(), headers)
}

/// A JSON answer already serialized (a stored document, or one that embeds stored JSON exactly
/// as it is kept), with extra headers.
pub fn json_text_response(status: u16, body: String, headers: &[(&'static str, String)]) -> Response<Body> {
    text_response(status, "application/json", body, headers)
}

/// A text answer of this content type, with extra headers.
pub fn text_response(status: u16, content_type: &str, body: String, headers: &[(&'static str, String)]) -> Response<Body> {
    builder(status, content_type, headers).body(Body::Text(body)).unwrap_or_else(|_| Response::new(Body::Empty))
}

fn builder(status: u16, content_type: &str, headers: &[(&'static str, String)]) -> lambda_http::http::response::Builder {
    let mut builder = Response::builder().status(status).header("content-type", content_type);
    for (k, v) in headers {
        builder = builder.header(*k, v);
    }
    builder
}

/// Answers larger than this are sent gzip-compressed to clients that accept it.
pub const COMPRESS_ABOVE_BYTES: usize = 64 * 1024;

/// A JSON answer already serialized, gzip-compressed when it is large and the client accepts
/// gzip (`Accept-Encoding`). A Lambda function's answer through API Gateway may not exceed 6 MB,
/// so a long listing (Polaris lists every message, unpaged) fits only compressed.
pub fn json_text_response_for(request: &Request, status: u16, content_type: &str, body: String, headers: &[(&'static str, String)]) -> Response<Body> {
    let mut builder = builder(status, content_type, headers);
    let accepts_gzip = accepts_gzip(request);
    builder = builder.header("vary", "accept-encoding");
    let body = if accepts_gzip && body.len() > COMPRESS_ABOVE_BYTES {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
        match encoder.write_all(body.as_bytes()).and_then(|()| encoder.finish()) {
            Ok(gzipped) => {
                builder = builder.header("content-encoding", "gzip");
                Body::Binary(gzipped)
            }
            Err(_) => Body::Text(body),
        }
    } else {
        Body::Text(body)
    };
    builder.body(body).unwrap_or_else(|_| Response::new(Body::Empty))
}

/// Whether `Accept-Encoding` allows gzip (by name or `*`, with a q-value above 0; RFC 9110 §12.5.3).
fn accepts_gzip(request: &Request) -> bool {
    let mut gzip: Option<bool> = None;
    let mut any = false;
    for coding in request.headers().get_all("accept-encoding").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')) {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let allowed = !parts.any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
        if name.eq_ignore_ascii_case("gzip") {
            gzip = Some(allowed);
        } else if name == "*" {
            any = allowed;
        }
    }
    gzip.unwrap_or(any)
}

/// The `authorizer` function's context for this request (`requestContext.authorizer.lambda`).
pub fn authorizer_context(request: &Request) -> HashMap<String, Value> {
    match request.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().map(|a| a.fields.clone()).unwrap_or_default()
        }
        _ => HashMap::new(),
    }
}

/// Where a request came from, for the activity and audit logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub request_id: String,
    pub source_ip: String,
    pub user_agent: String,
    pub method: String,
    pub path: String,
}

impl RequestInfo {
    pub fn of(request: &Request) -> Self {
        let (request_id, source_ip) = match request.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => {
                (c.request_id.clone().unwrap_or_default(), c.http.source_ip.clone().unwrap_or_default())
            }
            _ => (String::new(), String::new()),
        };
        Self {
            request_id,
            source_ip,
            user_agent: request.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
            method: request.method().as_str().to_owned(),
            path: request.uri().path().to_owned(),
        }
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
    // `?next=` is no cursor: an empty value is absent (DynamoDB refuses empty key values).
    request.query_string_parameters_ref().and_then(|q| q.first(name)).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// The body's bytes (empty when there is none).
pub fn body_bytes(request: &Request) -> &[u8] {
    match request.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// The JSON body as `T`; a 400 naming the problem otherwise.
pub fn json_body<T: DeserializeOwned>(request: &Request) -> Result<T, ApiError> {
    let bytes = body_bytes(request);
    if bytes.is_empty() {
        return Err(ApiError::bad("body", "a JSON body is required"));
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::ApiRequest;

    #[test]
    fn gzip_is_sent_only_to_clients_that_accept_it() {
        let accepts = |header: &str| accepts_gzip(&ApiRequest::new("GET /x").header("accept-encoding", header).build());
        assert!(accepts("gzip, deflate") && accepts("br;q=1, GZIP;q=0.5") && accepts("*"));
        assert!(!accepts("gzip;q=0") && !accepts("deflate") && !accepts("*;q=0") && !accepts("gzip;q=0, *"));
        assert!(!accepts_gzip(&ApiRequest::new("GET /x").build()));
        let big = "x".repeat(COMPRESS_ABOVE_BYTES + 1);
        let response = json_text_response_for(&ApiRequest::new("GET /x").header("accept-encoding", "gzip").build(), 200, "application/json", big.clone(), &[]);
        assert_eq!(response.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"));
        let Body::Binary(gz) = response.body() else { panic!("a compressed body") };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
        assert_eq!(text, big);
        let plain = json_text_response_for(&ApiRequest::new("GET /x").build(), 200, "application/json", big, &[]);
        assert!(plain.headers().get("content-encoding").is_none() && plain.headers().get("vary").is_some());
    }
}
