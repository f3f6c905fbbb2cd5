//! Who may call, and what is kept of who did: people's tokens (JWTs with roles), devices' API
//! keys, the HTTP API's authorizer that checks both, the vitals API's activity log, and the
//! audit log of who read which patient's data.
//!
//! The authorizer never denies (an HTTP API turns a denial into a bare 403): it hands the
//! routes a context saying who the caller is or why they are not anyone, and every route
//! refuses unauthenticated callers itself, with a 401 and the reason ([`require`],
//! [`device_caller`]).

pub mod activity;
pub mod api_keys;
pub mod audit;
pub mod authorizer;
pub mod dynamodb;
pub mod http;
pub mod jwt;
pub mod polaris;
#[cfg(test)]
pub(crate) mod memory;
pub mod secrets;

use lambda_http::Request;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::platform::http::{authorizer_context, ApiError};

use self::api_keys::{Permission, DEFAULT_RATE_LIMIT_PER_MINUTE};

/// What a person may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Clinician,
    Patient,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Clinician, Role::Patient];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clinician => "clinician",
            Role::Patient => "patient",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// A verified person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    /// Set for patients: the only patient whose data they may see.
    pub patient_id: Option<String>,
}

fn text(context: &std::collections::HashMap<String, Value>, key: &str) -> Option<String> {
    context.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The person calling. Routes must call this (through [`require`]) before anything else.
pub fn principal(request: &Request) -> Result<Principal, ApiError> {
    let context = authorizer_context(request);
    if context.get("authenticated").and_then(Value::as_bool) != Some(true) {
        let reason = text(&context, "error").unwrap_or_else(|| "no bearer token".to_owned());
        return Err(ApiError::Unauthenticated(reason));
    }
    if context.contains_key("keyId") {
        return Err(ApiError::Forbidden("device API keys may only call the /api/iot routes".into()));
    }
    if context.contains_key("polaris") {
        return Err(ApiError::Forbidden("Polaris-compatibility tokens may only call the Polaris routes (/dhos/...)".into()));
    }
    let role = text(&context, "role").and_then(|r| Role::parse(&r)).ok_or_else(|| ApiError::Unauthenticated("no role".into()))?;
    Ok(Principal { subject: text(&context, "sub").unwrap_or_default(), role, patient_id: text(&context, "patientId") })
}

/// The person calling, if they have one of `roles` (401 without a valid token, 403 with another role).
pub fn require(request: &Request, roles: &[Role]) -> Result<Principal, ApiError> {
    let p = principal(request)?;
    if roles.contains(&p.role) {
        Ok(p)
    } else {
        let wanted: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::Forbidden(format!("this route needs the role {}", wanted.join(" or "))))
    }
}

/// The device a valid API key speaks for.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCaller {
    pub device_id: String,
    pub key_id: String,
    pub permissions: Vec<Permission>,
    pub rate_limit_per_minute: u32,
}

/// Why a request to the device routes has no valid key. When the caller proved it holds a
/// key that is revoked or expired, the key and its device are known, and logged as such.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoValidKey {
    pub reason: String,
    /// (device, key id) of a known but unusable key.
    pub known_key: Option<(String, String)>,
}

/// The device calling the `/api/iot` routes, from the authorizer's context.
pub fn device_caller(request: &Request) -> Result<KeyCaller, NoValidKey> {
    let context = authorizer_context(request);
    let known_key = text(&context, "deviceId").zip(text(&context, "keyId"));
    if context.get("authenticated").and_then(Value::as_bool) != Some(true) {
        let reason = text(&context, "error").unwrap_or_else(|| "an API key is required".into());
        return Err(NoValidKey { reason, known_key });
    }
    let Some((device_id, key_id)) = known_key else {
        return Err(NoValidKey { reason: "these routes take a device API key (Authorization: Bearer vwk_...)".into(), known_key: None });
    };
    let permissions = text(&context, "permissions").unwrap_or_default().split_whitespace().filter_map(Permission::parse).collect();
    let rate_limit_per_minute = context
        .get("rateLimitPerMinute")
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE);
    Ok(KeyCaller { device_id, key_id, permissions, rate_limit_per_minute })
}
