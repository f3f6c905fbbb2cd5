//! The `authorizer` function: the HTTP API's Lambda authorizer (payload format 2.0, simple
//! responses). It verifies the bearer token and hands the caller to the routes as context:
//! a person's JWT gives `{"authenticated": true, "sub", "role", "patientId"}`; a device API key
//! (`vwk_...`, see [`super::api_keys`]) gives `{"authenticated": true, "deviceId", "keyId",
//! "permissions", "rateLimitPerMinute"}`; a revoked or expired key whose secret is right gives
//! `{"authenticated": false, "error", "deviceId", "keyId"}` (so the refusal is logged against
//! the key); anything else `{"authenticated": false, "error"}`.
//!
//! It never denies: an HTTP API turns every denial into a bare 403, while a missing or bad
//! token must be a 401 with a JSON reason, so the routes refuse unauthenticated callers
//! themselves (`access::require`). A request without an `Authorization` header never reaches it:
//! API Gateway answers 401 for a missing identity source.

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use serde_json::{json, Value};

use super::api_keys::{ApiKeyStore, KEY_MARKER};
use super::jwt::{bearer, JwtVerifier};
use super::secrets::PepperSource;
use crate::wiring::{FromWiring, Wiring, WiringError};

/// What the authorizer checks tokens against.
pub struct AuthorizerDeps<S, P> {
    pub verifier: JwtVerifier,
    pub keys: S,
    pub pepper: P,
}

impl<S: FromWiring, P: FromWiring> FromWiring for AuthorizerDeps<S, P> {
    /// The JWKS and the API key pepper are fetched on first use, not at cold start.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { verifier: JwtVerifier::from_settings(&w.settings)?, keys: w.build()?, pepper: w.build()? })
    }
}

async fn api_key_context<S: ApiKeyStore, P: PepperSource>(token: &str, deps: &AuthorizerDeps<S, P>) -> Value {
    let hasher = match deps.pepper.hasher().await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "API keys cannot be checked");
            return json!({"authenticated": false, "error": "API keys cannot be checked right now"});
        }
    };
    match super::api_keys::authenticate(token, &deps.keys, hasher, chrono::Utc::now()).await {
        Ok(Ok(key)) => json!({
            "authenticated": true,
            "deviceId": key.thing_name,
            "keyId": key.key_id,
            "permissions": key.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" "),
            "rateLimitPerMinute": key.rate_limit_per_minute,
        }),
        Ok(Err(refusal)) => {
            tracing::info!(reason = %refusal, "API key refused");
            let mut context = json!({"authenticated": false, "error": refusal.to_string()});
            if let Some(key) = refusal.known_key() {
                context["deviceId"] = json!(key.thing_name);
                context["keyId"] = json!(key.key_id);
            }
            context
        }
        Err(e) => {
            tracing::error!(error = %e, "API key lookup failed");
            json!({"authenticated": false, "error": "API keys cannot be checked right now"})
        }
    }
}

/// Authorizes one request.
pub async fn handle<S: ApiKeyStore, P: PepperSource>(
    event: &ApiGatewayV2CustomAuthorizerV2Request,
    deps: &AuthorizerDeps<S, P>,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse<Value> {
    let header = event.headers.get("authorization").and_then(|v| v.to_str().ok());
    let context = match bearer(header) {
        Err(e) => json!({"authenticated": false, "error": e.to_string()}),
        Ok(token) if token.starts_with(KEY_MARKER) => api_key_context(token, deps).await,
        Ok(token) => match deps.verifier.verify(token).await {
            Ok(p) => {
                let mut context = json!({"authenticated": true, "sub": p.subject, "role": p.role.as_str()});
                // Authorizer context values may not be null.
                if let Some(patient) = p.patient_id {
                    context["patientId"] = json!(patient);
                }
                context
            }
            Err(e) => {
                tracing::info!(reason = %e, "token refused");
                json!({"authenticated": false, "error": e.to_string()})
            }
        },
    };
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    response.is_authorized = true;
    response.context = context;
    response
}
