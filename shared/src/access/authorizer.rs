//! The `authorizer` function: the HTTP API's Lambda authorizer (payload format 2.0, simple
//! responses). It verifies the bearer token and hands the caller to the routes as context:
//! a person's JWT gives `{"authenticated": true, "sub", "role", "patientId"}`; a device API key
//! (`vwk_...`, see [`super::api_keys`]) gives `{"authenticated": true, "deviceId", "keyId",
//! "permissions", "rateLimitPerMinute"}`; a revoked or expired key whose secret is right gives
//! `{"authenticated": false, "error", "deviceId", "keyId"}` (so the refusal is logged against
//! the key); a Polaris-compatibility token (see [`super::polaris`]) gives `{"authenticated":
//! true, "polaris": true, "scope", "patientId" | "clinicianId" | "systemId" | "deviceId"}`;
//! anything else `{"authenticated": false, "error"}`, with `"bearer": false` when the header is
//! not a bearer token at all (the Polaris routes answer that with 401, a bad token with 403).
//!
//! Each kind of token has its own verifier, chosen by what the token is: `vwk_` keys by the
//! key store, JWTs by their (unverified) issuer: the Polaris issuer's tokens only by the
//! HS512 verifier, every other issuer's only by the RS256/ES256 verifier.
//!
//! It never denies: an HTTP API turns every denial into a bare 403, while a missing or bad
//! token must be a 401 with a JSON reason, so the routes refuse unauthenticated callers
//! themselves (`access::require`). A request without an `Authorization` header never reaches it:
//! API Gateway answers 401 for a missing identity source.

use aws_lambda_events::apigw::{ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request};
use serde_json::{json, Value};

use super::api_keys::{ApiKeyStore, KEY_MARKER};
use super::jwt::{bearer, JwtVerifier};
use super::polaris::{unverified_issuer, PolarisVerifier};
use super::secrets::PepperSource;
use super::Role;
use crate::care::CareStore;
use crate::wiring::{FromWiring, Wiring, WiringError};

/// What the authorizer checks tokens against.
pub struct AuthorizerDeps<S, P, C> {
    pub verifier: JwtVerifier,
    pub polaris: PolarisVerifier,
    pub keys: S,
    pub pepper: P,
    /// Clinicians' records: the locations a clinician works at.
    pub care: C,
}

impl<S: FromWiring, P: FromWiring, C: FromWiring> FromWiring for AuthorizerDeps<S, P, C> {
    /// The JWKS and the API key pepper are fetched on first use, not at cold start.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { verifier: JwtVerifier::from_settings(&w.settings)?, polaris: w.build()?, keys: w.build()?, pepper: w.build()?, care: w.build()? })
    }
}

async fn api_key_context<S: ApiKeyStore, P: PepperSource, C>(token: &str, deps: &AuthorizerDeps<S, P, C>) -> Value {
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

async fn polaris_context(token: &str, verifier: &PolarisVerifier) -> Value {
    match verifier.verify(token).await {
        Ok(claims) => {
            let mut context = json!({"authenticated": true, "polaris": true, "scope": claims.scopes.join(" ")});
            for (key, value) in [("sub", claims.subject), ("patientId", claims.patient_id), ("clinicianId", claims.clinician_id), ("systemId", claims.system_id), ("deviceId", claims.device_id)] {
                if let Some(v) = value {
                    context[key] = json!(v);
                }
            }
            context
        }
        Err(e) => {
            tracing::info!(reason = %e, "Polaris token refused");
            json!({"authenticated": false, "error": e.to_string()})
        }
    }
}

/// Authorizes one request.
pub async fn handle<S: ApiKeyStore, P: PepperSource, C: CareStore>(
    event: &ApiGatewayV2CustomAuthorizerV2Request,
    deps: &AuthorizerDeps<S, P, C>,
) -> ApiGatewayV2CustomAuthorizerSimpleResponse<Value> {
    let header = event.headers.get("authorization").and_then(|v| v.to_str().ok());
    let context = match bearer(header) {
        Err(e) => json!({"authenticated": false, "error": e.to_string(), "bearer": false}),
        Ok(token) if token.starts_with(KEY_MARKER) => api_key_context(token, deps).await,
        Ok(token) if unverified_issuer(token).ok().flatten().is_some_and(|iss| deps.polaris.issues(&iss)) => polaris_context(token, &deps.polaris).await,
        Ok(token) => match deps.verifier.verify(token).await {
            Ok(p) => {
                let mut context = json!({"authenticated": true, "sub": p.subject, "role": p.role.as_str()});
                // Authorizer context values may not be null.
                if let Some(patient) = p.patient_id {
                    context["patientId"] = json!(patient);
                }
                // The locations a clinician works at, the only ones their X-Location-Ids
                // may name (comma-separated: context values are strings). Unreadable: none, so
                // the header is refused rather than trusted.
                if p.role == Role::Clinician {
                    match deps.care.clinician(&p.subject).await {
                        Ok(record) => context["locationIds"] = json!(record.map(|c| c.location_ids.join(",")).unwrap_or_default()),
                        Err(e) => tracing::warn!(error = %e, "a clinician's locations could not be read"),
                    }
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

#[cfg(test)]
mod tests {
    use chrono::{Duration, Utc};
    use serde_json::json;

    use super::*;
    use crate::access::api_keys::{ApiKey, GeneratedKey, KeyHasher, Permission};
    use crate::access::jwt::tests::{signer, token};
    use crate::access::polaris::tests::{self as polaris_tests, polaris_claims, polaris_token};
    use crate::access::jwt::{Issuer, JwtVerifier, PATIENT_ROLES, STAFF_ROLES};
    use crate::access::memory::MemoryApiKeys;
    use crate::access::{device_caller, principal, KeyCaller, NoValidKey, Principal, Role};
    use crate::platform::testing::{self, ApiRequest};
    use crate::time::format_utc;

    const PEPPER: &[u8] = b"unit-test-pepper-of-32-bytes-or-more";

    fn deps(verifier: JwtVerifier) -> AuthorizerDeps<MemoryApiKeys, KeyHasher, crate::care::memory::MemoryCare> {
        AuthorizerDeps { verifier, polaris: PolarisVerifier::with_key(polaris_tests::ISSUER, polaris_tests::ISSUER, polaris_tests::KEY), keys: MemoryApiKeys::default(), pepper: KeyHasher::new(PEPPER), care: crate::care::memory::MemoryCare::default() }
    }

    /// Stores a key of `thing`, changed by `adjust`; the key as stored and its full text.
    async fn stored_key(deps: &AuthorizerDeps<MemoryApiKeys, KeyHasher, crate::care::memory::MemoryCare>, thing: &str, adjust: impl FnOnce(&mut ApiKey)) -> (ApiKey, String) {
        let generated = GeneratedKey::new().unwrap();
        let mut key = ApiKey {
            key_id: generated.key_id.clone(),
            thing_name: thing.to_owned(),
            name: "gateway".into(),
            secret_hash: deps.pepper.hash(&generated.secret),
            permissions: vec![Permission::WriteVitals],
            rate_limit_per_minute: 60,
            created_at: format_utc(Utc::now() - Duration::days(1)),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        };
        adjust(&mut key);
        assert!(deps.keys.create(&key).await.unwrap());
        (key, generated.text())
    }

    /// The authorizer's event for a request with this `Authorization` header.
    fn event(authorization: &str) -> ApiGatewayV2CustomAuthorizerV2Request {
        serde_json::from_value(json!({
            "version": "2.0", "type": "REQUEST", "routeKey": "POST /api/iot/vitals", "rawPath": "/api/iot/vitals",
            "rawQueryString": "", "identitySource": [authorization], "headers": {"authorization": authorization},
            "requestContext": {"http": {"method": "POST", "path": "/api/iot/vitals"}},
        }))
        .unwrap()
    }

    /// The authorizer's context for this header; it never denies.
    async fn context(deps: &AuthorizerDeps<MemoryApiKeys, KeyHasher, crate::care::memory::MemoryCare>, authorization: &str) -> Value {
        let answer = handle(&event(authorization), deps).await;
        assert!(answer.is_authorized, "the authorizer never denies: the routes answer 401 with the reason");
        answer.context
    }

    /// The device a vitals route sees behind this context.
    fn device_seen_by_routes(context: &Value) -> Result<KeyCaller, NoValidKey> {
        device_caller(&ApiRequest::new("POST /api/iot/vitals").caller(context.clone()).build())
    }

    #[tokio::test]
    async fn a_valid_key_hands_its_device_permissions_and_limit_to_the_routes() {
        let deps = deps(JwtVerifier::new(Vec::new()));
        let (key, text) = stored_key(&deps, "acme-gw-1", |k| {
            k.permissions = vec![Permission::ReadStatus, Permission::WriteVitals];
            k.rate_limit_per_minute = 30;
            k.expires_at = Some(format_utc(Utc::now() + Duration::days(1)));
        })
        .await;
        let context = context(&deps, &format!("Bearer {text}")).await;
        let caller = device_seen_by_routes(&context).unwrap();
        assert_eq!(
            caller,
            KeyCaller { device_id: "acme-gw-1".into(), key_id: key.key_id.clone(), permissions: key.permissions.clone(), rate_limit_per_minute: 30 }
        );
        // The route tests' stand-in for this context says the same.
        assert_eq!(context, testing::device_key("acme-gw-1", &key.key_id, &key.permissions, 30));
        // A device key is not a person: the people's routes refuse it.
        let as_person = principal(&ApiRequest::new("GET /admin/devices").caller(context).build()).unwrap_err();
        assert_eq!(as_person.status(), 403);
    }

    #[tokio::test]
    async fn a_revoked_or_expired_key_is_refused_naming_the_key() {
        let deps = deps(JwtVerifier::new(Vec::new()));
        let yesterday = format_utc(Utc::now() - Duration::days(1));
        let (revoked, revoked_text) = stored_key(&deps, "acme-gw-1", |k| k.revoked_at = Some(yesterday.clone())).await;
        let (expired, expired_text) = stored_key(&deps, "acme-gw-2", |k| k.expires_at = Some(yesterday.clone())).await;
        for (key, text, reason) in [(&revoked, &revoked_text, "the API key has been revoked"), (&expired, &expired_text, "the API key has expired")] {
            let context = context(&deps, &format!("Bearer {text}")).await;
            assert_eq!(context["authenticated"], json!(false));
            assert_eq!(context["error"], json!(reason));
            let refused = device_seen_by_routes(&context).unwrap_err();
            assert_eq!(refused, NoValidKey { reason: reason.into(), known_key: Some((key.thing_name.clone(), key.key_id.clone())) });
        }
    }

    #[tokio::test]
    async fn an_unknown_key_or_a_wrong_secret_names_no_key() {
        let deps = deps(JwtVerifier::new(Vec::new()));
        let (key, _) = stored_key(&deps, "acme-gw-1", |_| {}).await;
        let never_stored = GeneratedKey::new().unwrap().text();
        let wrong_secret = format!("vwk_{}_{}", key.key_id, GeneratedKey::new().unwrap().secret);
        for presented in [never_stored, wrong_secret] {
            let context = context(&deps, &format!("Bearer {presented}")).await;
            assert_eq!(context, json!({"authenticated": false, "error": "the API key is unknown"}), "{presented}");
            assert_eq!(device_seen_by_routes(&context).unwrap_err().known_key, None);
        }
        let malformed = context(&deps, "Bearer vwk_0123").await;
        assert_eq!(malformed, json!({"authenticated": false, "error": "the API key is malformed"}));
        let not_bearer = context(&deps, "Basic dXNlcjpwYXNz").await;
        assert_eq!(not_bearer["authenticated"], json!(false));
        assert_eq!(device_seen_by_routes(&not_bearer).unwrap_err().known_key, None);
    }

    #[tokio::test]
    async fn a_persons_token_gives_their_role_and_patient_and_no_device() {
        let (signing_key, jwks) = signer();
        let verifier = JwtVerifier::new(vec![
            Issuer::with_keys("https://staff", "app", STAFF_ROLES, jwks.clone()),
            Issuer::with_keys("https://patients", "app", PATIENT_ROLES, jwks),
        ]);
        let deps = deps(verifier);
        let exp = Utc::now().timestamp() + 600;
        let claims = |iss: &str, group: &str| json!({"sub": "u-1", "iss": iss, "aud": "app", "token_use": "id", "exp": exp, "cognito:groups": [group], "custom:patientId": "pat-1"});
        let patient = context(&deps, &format!("Bearer {}", token(&signing_key, claims("https://patients", "patient")))).await;
        let request = ApiRequest::new("GET /patients/{patientId}/alerts").path("patientId", "pat-1").caller(patient.clone()).build();
        assert_eq!(principal(&request).unwrap(), Principal { subject: "u-1".into(), role: Role::Patient, patient_id: Some("pat-1".into()) });
        assert!(device_seen_by_routes(&patient).unwrap_err().reason.contains("device API key"), "a person may not call the device routes");

        let mut clinician_claims = claims("https://staff", "clinician");
        clinician_claims.as_object_mut().unwrap().remove("custom:patientId");
        let clinician = context(&deps, &format!("Bearer {}", token(&signing_key, clinician_claims))).await;
        assert_eq!(clinician.get("patientId"), None, "context values may not be null: absent instead");
        assert_eq!(clinician["locationIds"], "", "no clinician record: no locations");
        let request = ApiRequest::new("GET /admin/devices").caller(clinician).build();
        assert_eq!(principal(&request).unwrap().role, Role::Clinician);
        let record = crate::care::Clinician {
            clinician_id: "u-1".into(),
            name: "N".into(),
            role: crate::care::ClinicianRole::Nurse,
            email: None,
            phone: None,
            location_ids: vec!["ward-7".into(), "ward-8".into()],
        };
        deps.care.put_clinician(&record, None).await.unwrap();
        let mut clinician_claims = claims("https://staff", "clinician");
        clinician_claims.as_object_mut().unwrap().remove("custom:patientId");
        let clinician = context(&deps, &format!("Bearer {}", token(&signing_key, clinician_claims))).await;
        assert_eq!(clinician["locationIds"], "ward-7,ward-8", "the locations of their record, for X-Location-Ids");
        assert_eq!(patient.get("locationIds"), None, "only clinicians have locations");

        let expired = json!({"sub": "u-1", "iss": "https://staff", "aud": "app", "token_use": "id", "exp": exp - 1200, "cognito:groups": ["admin"]});
        let refused = context(&deps, &format!("Bearer {}", token(&signing_key, expired))).await;
        let answer = principal(&ApiRequest::new("GET /admin/devices").caller(refused).build()).unwrap_err();
        assert_eq!((answer.status(), answer.to_string()), (401, "the token has expired".to_owned()));
    }

    #[tokio::test]
    async fn each_issuer_is_pinned_to_its_algorithm_and_a_polaris_token_is_not_a_person() {
        let (signing_key, jwks) = signer();
        let deps = deps(JwtVerifier::new(vec![Issuer::with_keys("https://staff", "app", STAFF_ROLES, jwks)]));
        let scope = "read:gdm_message write:gdm_message";
        let polaris = polaris_token(polaris_tests::KEY, jsonwebtoken::Algorithm::HS512, polaris_claims(json!({"clinician_id": "c-1"}), scope, 600));
        let seen = context(&deps, &format!("Bearer {polaris}")).await;
        assert_eq!(seen, json!({"authenticated": true, "polaris": true, "scope": scope, "clinicianId": "c-1"}));
        let as_person = principal(&ApiRequest::new("GET /admin/devices").caller(seen).build()).unwrap_err();
        assert_eq!(as_person.status(), 403, "a Polaris token calls only the Polaris routes");

        // An HS512 token naming the people's issuer, signed with the Polaris key: refused.
        let staff = json!({"sub": "u-1", "iss": "https://staff", "aud": "app", "token_use": "id", "exp": Utc::now().timestamp() + 600, "cognito:groups": ["admin"]});
        let confused = polaris_token(polaris_tests::KEY, jsonwebtoken::Algorithm::HS512, staff);
        assert_eq!(context_error(&deps, &confused).await, "the token is signed with an unsupported algorithm");
        // An ES256 token naming the Polaris issuer: refused, whatever it claims.
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("k1".into());
        let es256 = jsonwebtoken::encode(&header, &polaris_claims(json!({"system_id": "dhos-robot"}), "read:gdm_message_all", 600), &signing_key).unwrap();
        assert_eq!(context_error(&deps, &es256).await, "the token is signed with an unsupported algorithm");
        let not_bearer = context(&deps, "Basic dXNlcjpwYXNz").await;
        assert_eq!(not_bearer["bearer"], json!(false), "the Polaris routes answer 401 for a header that is no bearer token");
    }

    async fn context_error(deps: &AuthorizerDeps<MemoryApiKeys, KeyHasher, crate::care::memory::MemoryCare>, token: &str) -> String {
        let context = context(deps, &format!("Bearer {token}")).await;
        assert_eq!(context["authenticated"], json!(false));
        context["error"].as_str().unwrap().to_owned()
    }
}
