//! Unit-test helpers for the HTTP routes: requests as the HTTP API hands them to a route
//! function, callers as the `authorizer` function describes them, and answers as a client
//! reads them.
//!
//! A request is the JSON event API Gateway (HTTP API, payload format 2.0) sends after the
//! authorizer, parsed by `lambda_http` as in a Lambda: path parameters, the query string (from
//! `rawQueryString`, as `lambda_http` reads it), headers, the request id, the source IP and the
//! authorizer's context (`requestContext.authorizer.lambda`) reach the route the way they do
//! deployed.

use std::sync::atomic::{AtomicU64, Ordering};

use lambda_http::http::HeaderMap;
use lambda_http::{Body, Request, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value};

use super::http::HttpAnswer;
use crate::access::api_keys::Permission;

/// The user agent every test request carries unless told otherwise.
pub const USER_AGENT: &str = "vitalwire-unit-tests/1.0";
/// The caller's address every test request carries unless told otherwise (TEST-NET-2).
pub const SOURCE_IP: &str = "198.51.100.7";

/// What a client percent-encodes in a path segment or a query value: all but the unreserved
/// characters (RFC 3986).
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A request id of its own for every request, as API Gateway gives (logs key records by it).
fn next_request_id() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    format!("unit-test-request-{}", COUNT.fetch_add(1, Ordering::Relaxed))
}

/// One HTTP API request to a route, built step by step.
#[derive(Debug, Clone)]
pub struct ApiRequest {
    method: String,
    /// The route's path as the template declares it, e.g. `/admin/devices/{thingName}`.
    route_path: String,
    path_parameters: Vec<(String, String)>,
    query: Vec<(String, String)>,
    headers: Map<String, Value>,
    body: Option<String>,
    authorizer_context: Map<String, Value>,
    request_id: String,
}

impl ApiRequest {
    /// A request to a route given as its route key, `"GET /admin/devices/{thingName}"`. It has
    /// no authorizer context until [`Self::caller`] gives one.
    pub fn new(route_key: &str) -> Self {
        let (method, route_path) = route_key.split_once(' ').expect("a route key is `METHOD /path`");
        let headers = Map::from_iter([
            // API Gateway only calls the authorizer (and the route) with an identity source.
            ("authorization".to_owned(), json!("Bearer unit-test")),
            ("user-agent".to_owned(), json!(USER_AGENT)),
        ]);
        Self {
            method: method.to_owned(),
            route_path: route_path.to_owned(),
            path_parameters: Vec::new(),
            query: Vec::new(),
            headers,
            body: None,
            authorizer_context: Map::new(),
            request_id: next_request_id(),
        }
    }

    /// Fills the route's `{name}` with `value`.
    pub fn path(mut self, name: &str, value: &str) -> Self {
        self.path_parameters.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds a query string parameter.
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A request header (names are lower case, as API Gateway passes them).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), json!(value));
        self
    }

    /// A JSON body.
    pub fn json(self, body: Value) -> Self {
        self.body_text(&body.to_string())
    }

    /// A body as sent, JSON or not.
    pub fn body_text(mut self, text: &str) -> Self {
        self.headers.insert("content-type".into(), json!("application/json"));
        self.body = Some(text.to_owned());
        self
    }

    /// The authorizer's context for this request: who the caller is (see [`admin`],
    /// [`clinician`], [`patient`], [`device_key`], or an authorizer's actual answer).
    pub fn caller(mut self, context: Value) -> Self {
        self.authorizer_context = match context {
            Value::Object(map) => map,
            other => panic!("an authorizer context is a JSON object, not {other}"),
        };
        self
    }

    pub fn request_id(mut self, id: &str) -> Self {
        self.request_id = id.to_owned();
        self
    }

    /// The path as called: the route's path with its parameters filled in (encoded as a client
    /// would send them).
    fn raw_path(&self) -> String {
        let mut path = self.route_path.clone();
        for (name, value) in &self.path_parameters {
            let placeholder = format!("{{{name}}}");
            assert!(path.contains(&placeholder), "the route {} has no path parameter {name}", self.route_path);
            path = path.replace(&placeholder, &utf8_percent_encode(value, ENCODED).to_string());
        }
        assert!(!path.contains('{'), "path parameters of {} left unfilled: {path}", self.route_path);
        path
    }

    /// The API Gateway event for this request.
    fn event(&self) -> Value {
        let raw_path = self.raw_path();
        let route_key = format!("{} {}", self.method, self.route_path);
        let raw_query: Vec<String> =
            self.query.iter().map(|(k, v)| format!("{}={}", utf8_percent_encode(k, ENCODED), utf8_percent_encode(v, ENCODED))).collect();
        let query: Map<String, Value> = self.query.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let path_parameters: Map<String, Value> = self.path_parameters.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        let mut event = json!({
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": raw_path,
            "rawQueryString": raw_query.join("&"),
            "headers": self.headers,
            "requestContext": {
                "accountId": "000000000000", "apiId": "unit", "domainName": "api.example.test", "domainPrefix": "api",
                "requestId": self.request_id, "routeKey": route_key, "stage": "$default",
                "time": "22/Nov/2026:12:00:00 +0000", "timeEpoch": 1_795_348_800_000_i64,
                "http": {"method": self.method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": SOURCE_IP,
                         "userAgent": self.headers.get("user-agent").cloned().unwrap_or(Value::Null)},
                "authorizer": {"lambda": self.authorizer_context},
            },
            "isBase64Encoded": false,
        });
        // API Gateway leaves out what a request does not have.
        if !query.is_empty() {
            event["queryStringParameters"] = Value::Object(query);
        }
        if !path_parameters.is_empty() {
            event["pathParameters"] = Value::Object(path_parameters);
        }
        if let Some(body) = &self.body {
            event["body"] = json!(body);
        }
        event
    }

    /// The request as the route function receives it.
    pub fn build(&self) -> Request {
        lambda_http::request::from_str(&self.event().to_string()).expect("an API Gateway v2 event")
    }
}

/// An admin, as the authorizer describes a verified staff token.
pub fn admin() -> Value {
    json!({"authenticated": true, "sub": "admin-sub", "role": "admin"})
}

/// A clinician, as the authorizer describes a verified staff token.
pub fn clinician() -> Value {
    json!({"authenticated": true, "sub": "clinician-sub", "role": "clinician"})
}

/// A patient, as the authorizer describes a verified patient token.
pub fn patient(patient_id: &str) -> Value {
    json!({"authenticated": true, "sub": format!("{patient_id}-sub"), "role": "patient", "patientId": patient_id})
}

/// A caller whose token was refused, with the authorizer's reason.
pub fn refused_token(reason: &str) -> Value {
    json!({"authenticated": false, "error": reason})
}

/// A device's valid API key, as the authorizer describes it.
pub fn device_key(thing_name: &str, key_id: &str, permissions: &[Permission], rate_limit_per_minute: u32) -> Value {
    json!({
        "authenticated": true,
        "deviceId": thing_name,
        "keyId": key_id,
        "permissions": permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" "),
        "rateLimitPerMinute": rate_limit_per_minute,
    })
}

/// What a client receives.
#[derive(Debug)]
pub struct Answered {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answered {
    /// `error.code` of an [`super::http::ApiError`] body.
    pub fn error_code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }

    /// `error.field` of an [`super::http::ApiError`] body.
    pub fn error_field(&self) -> Option<&str> {
        self.body["error"]["field"].as_str()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A route's answer as the client receives it: through the one place answers become responses.
pub fn answered(answer: impl HttpAnswer) -> Answered {
    let response: Response<Body> = answer.into_response();
    let (parts, body) = response.into_parts();
    let body = match body {
        Body::Text(t) if t.is_empty() => Value::Null,
        Body::Text(t) => serde_json::from_str(&t).expect("a JSON body"),
        Body::Binary(b) => serde_json::from_slice(&b).expect("a JSON body"),
        _ => Value::Null,
    };
    Answered { status: parts.status.as_u16(), headers: parts.headers, body }
}

#[cfg(test)]
mod tests {
    use lambda_http::RequestExt;

    use super::*;
    use crate::platform::http::{authorizer_context, json_body, path_param, query_param, RequestInfo};

    #[test]
    fn a_request_reaches_the_route_as_api_gateway_delivers_it() {
        let cursor = "2026-11-22T10:00:00.000Z#abc|iot-vitals";
        let request = ApiRequest::new("POST /patients/{patientId}/alerts/{alertId}/close")
            .path("patientId", "pat-1")
            .path("alertId", "al 1")
            .query("next", cursor)
            .query("limit", "2")
            .json(json!({"a": 1}))
            .caller(patient("pat-1"))
            .request_id("req-42")
            .build();
        assert_eq!(path_param(&request, "patientId").unwrap(), "pat-1");
        assert_eq!(path_param(&request, "alertId").unwrap(), "al 1", "decoded, as API Gateway gives it");
        assert_eq!(request.path_parameters().first("alertId"), Some("al 1"));
        assert_eq!(query_param(&request, "next").as_deref(), Some(cursor), "a cursor survives the query string");
        assert_eq!(request.query_string_parameters().first("limit"), Some("2"));
        assert_eq!(json_body::<Value>(&request).unwrap(), json!({"a": 1}));
        assert_eq!(authorizer_context(&request).get("patientId"), Some(&json!("pat-1")));
        let info = RequestInfo::of(&request);
        assert_eq!(
            info,
            RequestInfo {
                request_id: "req-42".into(),
                source_ip: SOURCE_IP.into(),
                user_agent: USER_AGENT.into(),
                method: "POST".into(),
                path: "/patients/pat-1/alerts/al%201/close".into(),
            }
        );
        let bare = ApiRequest::new("GET /admin/devices").build();
        assert!(authorizer_context(&bare).is_empty());
        assert_eq!(query_param(&bare, "next"), None);
    }

    #[test]
    fn an_empty_query_value_is_no_value() {
        let request = ApiRequest::new("GET /admin/dead-letters").query("next", "").query("source", "iot-vitals").build();
        assert_eq!(crate::platform::http::query_param(&request, "next"), None);
        assert_eq!(crate::platform::http::query_param(&request, "source").as_deref(), Some("iot-vitals"));
    }

    #[test]
    #[should_panic(expected = "has no path parameter")]
    fn a_path_parameter_the_route_does_not_have_is_a_mistake_in_the_test() {
        ApiRequest::new("GET /admin/devices").path("thingName", "x").build();
    }
}
