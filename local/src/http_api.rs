//! The HTTP API on a local port: every route of the registry (which `tests/registry.rs` checks
//! against the template's `HttpApi` routes), with the request and authorizer context shape of
//! API Gateway HTTP APIs (payload format 2.0), run by the same handlers as the Lambda
//! functions, after the same `authorizer` function.
//!
//! People's tokens are signed by a key the local platform creates (`<state-dir>/auth/`), served
//! as a JWKS at `/local-auth/.well-known/jwks.json` (where Cognito would serve its pools' keys;
//! `/.well-known/jwks.json` is the platform's own Polaris issuer's); `vitalwire-local token` mints them.

use std::path::Path;
use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2CustomAuthorizerSimpleResponse;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use vitalwire::access::jwt::{Issuer, JwtVerifier, PATIENT_ROLES, STAFF_ROLES};
use vitalwire::access::Role;
use vitalwire::wiring::Trigger;

use crate::functions::LocalFunctions;

/// Issuers and audience of locally minted tokens: one for staff (admins, clinicians), one for
/// patients, as the two Cognito user pools on AWS.
pub const LOCAL_STAFF_ISSUER: &str = "vitalwire-local-staff";
pub const LOCAL_PATIENT_ISSUER: &str = "vitalwire-local-patients";
pub const LOCAL_AUDIENCE: &str = "vitalwire-local-app";

/// The local signing key and its JWKS.
#[derive(Clone)]
pub struct LocalAuth {
    key: EncodingKey,
    kid: String,
    pub jwks: Value,
}

impl LocalAuth {
    /// Loads the ES256 signing key from `dir`, creating it on first run.
    pub fn load_or_create(dir: &Path) -> Result<Self, String> {
        let path = dir.join("jwt-signing.key");
        let pem = match std::fs::read_to_string(&path) {
            Ok(pem) => {
                crate::private_file::restrict(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                pem
            }
            Err(_) => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let pem = rcgen::KeyPair::generate().map_err(|e| e.to_string())?.serialize_pem();
                crate::private_file::write(&path, pem.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
                pem
            }
        };
        let pair = rcgen::KeyPair::from_pem(&pem).map_err(|e| e.to_string())?;
        let raw = pair.public_key_raw();
        if raw.len() != 65 {
            return Err("the signing key is not a P-256 key".into());
        }
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let kid = hex::encode(&sha2::Sha256::digest(raw)[..8]);
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        }]});
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        Ok(Self { key, kid, jwks })
    }

    /// A verifier for the tokens this key signs.
    pub fn verifier(&self) -> Result<JwtVerifier, String> {
        let set: JwkSet = serde_json::from_value(self.jwks.clone()).map_err(|e| e.to_string())?;
        Ok(JwtVerifier::new(vec![
            Issuer::with_keys(LOCAL_STAFF_ISSUER, LOCAL_AUDIENCE, STAFF_ROLES, set.clone()),
            Issuer::with_keys(LOCAL_PATIENT_ISSUER, LOCAL_AUDIENCE, PATIENT_ROLES, set),
        ]))
    }

    /// The settings that make the authorizer trust these tokens, fetching the keys from the
    /// local HTTP API at `api_url`, as it fetches Cognito's on AWS.
    pub fn authorizer_settings(api_url: &str) -> Vec<(String, String)> {
        let jwks = format!("{api_url}{LOCAL_JWKS_PATH}");
        [
            ("STAFF_JWT_ISSUER", LOCAL_STAFF_ISSUER),
            ("STAFF_JWT_AUDIENCE", LOCAL_AUDIENCE),
            ("STAFF_JWKS_URL", &jwks),
            ("PATIENT_JWT_ISSUER", LOCAL_PATIENT_ISSUER),
            ("PATIENT_JWT_AUDIENCE", LOCAL_AUDIENCE),
            ("PATIENT_JWKS_URL", &jwks),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// A token with Cognito's claim names, valid for `minutes`.
    pub fn mint(&self, subject: &str, role: Role, patient_id: Option<&str>, minutes: i64) -> Result<String, String> {
        self.mint_with(subject, role, patient_id, minutes, Map::new())
    }

    /// [`Self::mint`] with more claims, as the hosted UI's id tokens carry (`cognito:username`,
    /// `nonce`). They never replace the claims `mint` sets: issuer, audience, role and expiry
    /// stay what the authorizer is meant to check.
    pub fn mint_with(&self, subject: &str, role: Role, patient_id: Option<&str>, minutes: i64, extra: Map<String, Value>) -> Result<String, String> {
        let mut claims = json!({
            "sub": subject, "iss": if role == Role::Patient { LOCAL_PATIENT_ISSUER } else { LOCAL_STAFF_ISSUER },
            "aud": LOCAL_AUDIENCE, "token_use": "id",
            "iat": chrono::Utc::now().timestamp(), "exp": chrono::Utc::now().timestamp() + minutes * 60,
            "cognito:groups": [role.as_str()],
        });
        if let Some(p) = patient_id {
            claims["custom:patientId"] = json!(p);
        }
        if let Value::Object(claims) = &mut claims {
            for (name, value) in extra {
                claims.entry(name).or_insert(value);
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        encode(&header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

use sha2::Digest;

/// Where the local stand-in for Cognito serves its keys.
pub const LOCAL_JWKS_PATH: &str = "/local-auth/.well-known/jwks.json";

/// The template's secrets holding the Polaris issuer's HS512 key and RSA private key.
pub const POLARIS_KEY_SECRET: &str = "PolarisHsKeySecret";
pub const POLARIS_RSA_KEY_SECRET: &str = "PolarisRsKeySecret";

/// Polaris-compatibility tokens on the local platform: the keys are kept in the state dir and
/// put into the stack's `PolarisHsKeySecret` and `PolarisRsKeySecret`, the issuer and audience
/// the HTTP API's URL with a trailing slash, as Polaris services require (`HS_ISSUER =
/// PROXY_URL + "/"`). HS512 unless `up --polaris-rs256`. The development routes (`/drop_data`,
/// `/create_messages`) are on, as in a Polaris test environment.
#[derive(Debug, Clone)]
pub struct PolarisCompat {
    pub key: String,
    pub issuer: String,
    /// The RSA private key (PEM), and whether the issuer signs with it (RS256) rather than the key.
    pub rsa_pem: String,
    pub rs256: bool,
    /// Where the local HTTP API publishes the issuer's RS256 keys, whatever the issuer is.
    pub jwks_url: String,
}

/// The file at `path`, or, made with `make` on first run (so Polaris clients configured with it
/// keep working across restarts), the owner's only: whoever reads it can mint any token.
fn kept_key(path: &Path, usable: impl Fn(&str) -> bool, make: impl Fn() -> Result<String, String>) -> Result<String, String> {
    if let Ok(key) = std::fs::read_to_string(path) {
        if usable(key.trim()) {
            crate::private_file::restrict(path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(key.trim().to_owned());
        }
    }
    let key = make()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::private_file::write(path, key.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(key)
}

impl PolarisCompat {
    /// The keys kept in `dir`, put into the stack's secrets, where the functions read them.
    /// The issuer is `issuer` if given (a Polaris deployment's `HS_ISSUER`, which its clients
    /// may have built in), else the HTTP API's URL with its `/`.
    pub async fn load_or_create(dir: &Path, stack: &crate::stack::LocalStack, config: &aws_config::SdkConfig, api_url: &str, issuer: Option<&str>, rs256: bool) -> Result<Self, String> {
        let key = kept_key(&dir.join("polaris-hs512.key"), |k| k.len() >= vitalwire::access::polaris::MIN_KEY_BYTES, || {
            let mut random = [0u8; 32];
            getrandom::fill(&mut random).map_err(|e| e.to_string())?;
            Ok(hex::encode(random))
        })?;
        let rsa_pem = kept_key(&dir.join("polaris-rs256.pem"), |k| k.starts_with("-----BEGIN PRIVATE KEY-----"), vitalwire::access::polaris::generate_rsa_pem)?;
        let secrets = aws_sdk_secretsmanager::Client::new(config);
        for (name, value) in [(POLARIS_KEY_SECRET, &key), (POLARIS_RSA_KEY_SECRET, &rsa_pem)] {
            let secret = stack.secrets.get(name).ok_or_else(|| format!("template.yaml has no {name}"))?;
            secrets.put_secret_value().secret_id(secret).secret_string(value.as_str()).send().await.map_err(|e| format!("the Polaris key {name}: {e}"))?;
        }
        let issuer = issuer.map_or_else(|| format!("{api_url}/"), str::to_owned);
        Ok(Self { key, issuer, rsa_pem, rs256, jwks_url: format!("{api_url}/.well-known/jwks.json") })
    }

    /// The settings that make the authorizer accept these tokens, and switch the development
    /// routes on.
    pub fn settings(&self) -> Vec<(String, String)> {
        let algorithm = if self.rs256 { "RS256" } else { "HS512" };
        [
            ("POLARIS_JWT_ISSUER", self.issuer.as_str()),
            ("POLARIS_JWT_AUDIENCE", self.issuer.as_str()),
            ("POLARIS_JWT_ALGORITHM", algorithm),
            ("POLARIS_JWKS_URL", self.jwks_url.as_str()),
            ("DEVELOPMENT_ROUTES", "true"),
        ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// A token as Polaris services mint them: the caller's ids under `metadata` (`patient_id`,
    /// `clinician_id`, `system_id`), space-separated `scope`, `iss` = `aud`; HS512, or RS256
    /// when the issuer signs so.
    pub fn mint(&self, metadata: &[(&str, &str)], scope: &str, minutes: i64) -> Result<String, String> {
        let lifetime = chrono::Duration::minutes(minutes);
        if self.rs256 {
            vitalwire::access::polaris::sign_rsa(self.rsa_pem.as_bytes(), &self.issuer, metadata, scope, lifetime).map_err(|e| e.to_string())
        } else {
            vitalwire::access::polaris::sign(self.key.as_bytes(), &self.issuer, metadata, scope, lifetime)
        }
    }
}

/// A route of the registry: method, path template split in segments, function.
struct Route {
    method: &'static str,
    segments: Vec<&'static str>,
    path: &'static str,
    function: &'static str,
    /// Takes no token: no authorizer runs (`Auth: {Authorizer: NONE}`).
    public: bool,
}

impl Route {
    /// The path parameters, if `path` matches this route's template.
    fn matches(&self, method: &str, path: &str) -> Option<Map<String, Value>> {
        if self.method != method {
            return None;
        }
        // Exact, as API Gateway matches: `/a/` is another route than `/a`.
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Map::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) if !part.is_empty() => {
                    params.insert(name.to_owned(), Value::String(part.to_owned()));
                }
                None if *segment == part => {}
                _ => return None,
            }
        }
        Some(params)
    }
}

/// The largest request API Gateway takes.
pub const API_GATEWAY_PAYLOAD_LIMIT: usize = 10 * 1024 * 1024;
/// The largest request and answer of a synchronously invoked Lambda function (a binary answer
/// counts base64-encoded): beyond it, API Gateway answers 413 or 500 instead.
pub const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

/// The local HTTP API.
pub struct LocalApi {
    routes: Vec<Route>,
    functions: Arc<LocalFunctions>,
    /// The function of the HTTP API's authorizer.
    authorizer: &'static str,
    jwks: Value,
}

impl LocalApi {
    /// The registry's routes and authorizer, run by the built functions; `jwks` is served at
    /// [`LOCAL_JWKS_PATH`] for the authorizer to fetch, as Cognito serves its keys.
    pub fn new(functions: Arc<LocalFunctions>, jwks: Value) -> Result<Arc<Self>, String> {
        let routes = functions
            .specs()
            .flat_map(|spec| {
                let (routes, public) = match spec.trigger {
                    Trigger::Http(routes) => (routes, false),
                    Trigger::PublicHttp(routes) => (routes, true),
                    _ => (&[][..], false),
                };
                routes.iter().map(move |r| Route { method: r.method, segments: r.path.split('/').collect(), path: r.path, function: spec.name, public })
            })
            .collect();
        let authorizer = functions
            .triggered_by(|t| matches!(t, Trigger::HttpAuthorizer))
            .next()
            .map(|s| s.name)
            .ok_or("the registry has no HTTP API authorizer")?;
        Ok(Arc::new(Self { routes, functions, authorizer, jwks }))
    }

    /// The router: JWKS, then every route; bodies up to API Gateway's 10 MB.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(LOCAL_JWKS_PATH, get(jwks))
            .fallback(handle)
            // `handle` reads at most API Gateway's limit itself, to answer in API Gateway's JSON.
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(self)
    }

    /// The authorizer's answer for a request, as API Gateway gets it.
    async fn authorize(&self, event: &Value) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse<Value>, String> {
        let answer = self.functions.invoke(self.authorizer, &event.to_string()).await?;
        serde_json::from_str(answer.get()).map_err(|e| format!("the authorizer's answer: {e}"))
    }
}

async fn jwks(State(api): State<Arc<LocalApi>>) -> Json<Value> {
    Json(api.jwks.clone())
}

fn gateway_message(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

fn headers_json(headers: &HeaderMap) -> Map<String, Value> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), Value::String(v.to_str().ok()?.to_owned()))))
        .collect()
}

/// Serves one request as API Gateway and the route's function would, and logs it by its route
/// (paths carry patient ids and activation codes, so they are not logged).
async fn handle(State(api): State<Arc<LocalApi>>, method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Body) -> Response {
    let started = std::time::Instant::now();
    let path = uri.path();
    // The most specific route, as API Gateway chooses: literal segments win over parameters.
    let Some((route, params)) = api.routes.iter().filter_map(|r| r.matches(method.as_str(), path).map(|p| (r, p))).min_by_key(|(_, p)| p.len()) else {
        tracing::info!(%method, status = 404, "HTTP API: no route");
        return gateway_message(StatusCode::NOT_FOUND, "Not Found");
    };
    let answer = match axum::body::to_bytes(body, API_GATEWAY_PAYLOAD_LIMIT).await {
        Ok(body) => call_route(&api, route, params, &uri, &headers, body).await,
        // Over API Gateway's 10 MB: its own JSON answer, as for a body over Lambda's 6 MB.
        Err(_) => gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
    };
    let status = answer.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    tracing::info!(route = %format!("{} {}", route.method, route.path), function = route.function, status, ms, "HTTP API");
    answer
}

/// The route's answer: the authorizer (unless public), then the function with API Gateway's
/// payload 2.0 event.
async fn call_route(api: &LocalApi, route: &Route, params: Map<String, Value>, uri: &Uri, headers: &HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    if body.len() > LAMBDA_PAYLOAD_LIMIT {
        return gateway_message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    let route_key = format!("{} {}", route.method, route.path);
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let context = if route.public {
        Value::Null
    } else {
        // API Gateway answers 401 itself when the identity source is missing.
        let Some(authorization) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return gateway_message(StatusCode::UNAUTHORIZED, "Unauthorized");
        };
        let authorizer_event = json!({
            "version": "2.0", "type": "REQUEST", "routeArn": format!("arn:aws:execute-api:us-east-1:000000000000:local/$default/{}{}", route.method, path),
            "identitySource": [authorization], "routeKey": route_key, "rawPath": path, "rawQueryString": raw_query,
            "headers": headers_json(headers), "requestContext": {"http": {"method": route.method, "path": path}},
        });
        let authorized = match api.authorize(&authorizer_event).await {
            Ok(a) => a,
            Err(e) => return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, &e),
        };
        if !authorized.is_authorized {
            return gateway_message(StatusCode::FORBIDDEN, "Forbidden");
        }
        json!({"lambda": authorized.context})
    };
    let query: Map<String, Value> =
        form_urlencoded::parse(raw_query.as_bytes()).into_owned().map(|(k, v)| (k, Value::String(v))).collect();
    // API Gateway tells the function how the client called it; lambda_http builds the
    // request's URI (and the FHIR API its links) from these.
    let mut forwarded = headers_json(headers);
    forwarded.entry("x-forwarded-proto").or_insert_with(|| json!("http"));
    let event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": forwarded,
        "queryStringParameters": query,
        "pathParameters": params,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("localhost"), "domainPrefix": "localhost",
            "requestId": format!("local-{}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()),
            "routeKey": route_key, "stage": "$default", "time": chrono::Utc::now().to_rfc2822(),
            "timeEpoch": chrono::Utc::now().timestamp_millis(),
            "http": {"method": route.method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                     "userAgent": headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("")},
            "authorizer": context,
        },
        "body": String::from_utf8_lossy(&body),
        "isBase64Encoded": false,
    });
    let request = match lambda_http::request::from_str(&event.to_string()) {
        Ok(r) => r,
        Err(e) => return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let Some(handler) = api.functions.http(route.function) else {
        return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, &format!("{} is not an HTTP function", route.function));
    };
    let (parts, body) = handler.call(request).await.into_parts();
    let (bytes, encoded_len) = match body {
        lambda_http::Body::Text(t) => {
            let len = t.len();
            (t.into_bytes(), len)
        }
        lambda_http::Body::Binary(b) => {
            let len = b.len().div_ceil(3) * 4;
            (b, len)
        }
        _ => (Vec::new(), 0),
    };
    if encoded_len > LAMBDA_PAYLOAD_LIMIT {
        tracing::warn!(function = route.function, bytes = encoded_len, "the answer exceeds Lambda's 6 MB response limit");
        return gateway_message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    }
    (parts.status, parts.headers, bytes).into_response()
}
