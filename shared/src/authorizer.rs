//! The `authorizer` function: the HTTP API's Lambda authorizer (payload format 2.0, simple
//! responses). It verifies the bearer JWT and hands the caller to the routes as context:
//! `{"authenticated": true, "sub", "role", "patientId"}` or `{"authenticated": false, "error"}`.
//!
//! It never denies: an HTTP API turns every denial into a bare 403, while a missing or bad
//! token must be a 401 with a JSON reason, so the routes refuse unauthenticated callers
//! themselves (`api::require`). A request without an `Authorization` header never reaches it:
//! API Gateway answers 401 for a missing identity source.

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use serde_json::{json, Value};

use crate::auth::{bearer, JwtVerifier};

/// Authorizes one request.
pub async fn handle(
    event: &ApiGatewayV2CustomAuthorizerV2Request,
    verifier: &JwtVerifier,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse<Value> {
    let header = event.headers.get("authorization").and_then(|v| v.to_str().ok());
    let context = match bearer(header) {
        Err(e) => json!({"authenticated": false, "error": e.to_string()}),
        Ok(token) => match verifier.verify(token).await {
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
