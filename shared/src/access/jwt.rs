//! JWT verification for people: Cognito user pools on AWS; locally, tokens signed by a key the
//! local platform creates.
//!
//! People sign in to one of two pools: staff (admins and clinicians), where MFA is required,
//! and patients. Each is a trusted [`Issuer`] with its app client and the roles its tokens may
//! carry, so a clinician role can only come from the pool that enforced MFA. The verifier
//! accepts RS256 (Cognito) and ES256 (local) tokens whose key is in the issuer's JWKS, whose
//! `token_use` is `id` (then `aud` is the app client) or `access` (then `client_id` is), and
//! whose role is one the issuer may grant. Roles come from the `cognito:groups` claim; a
//! patient's own id from `custom:patientId`.
//!
//! The issuer's keys are fetched on first use (not at cold start), with a timeout, and again
//! when a token names a key not seen yet (key rotation), but at most once a minute: a stream of
//! tokens with made-up key ids does not become a stream of fetches.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::{Principal, Role};
use crate::wiring::{Settings, WiringError};

/// How long a JWKS fetch may take.
pub const JWKS_TIMEOUT: Duration = Duration::from_secs(3);
/// The least time between two JWKS fetches.
pub const JWKS_MIN_REFETCH: Duration = Duration::from_secs(60);
/// The least time between a failed JWKS fetch and the next.
pub const JWKS_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Why a token was not accepted (each a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with an unsupported algorithm")]
    Algorithm,
    #[error("the token's issuer is not trusted")]
    UnknownIssuer,
    #[error("the token's signing key is unknown")]
    UnknownKey,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token is neither an ID token nor an access token (token_use)")]
    TokenUse,
    #[error("the token was issued for another application")]
    Audience,
    #[error("the token carries no role (admin, clinician or patient)")]
    NoRole,
    #[error("the token's issuer may not grant the role {0}")]
    RoleNotFromIssuer(&'static str),
    #[error("a patient token needs custom:patientId")]
    NoPatientId,
    #[error("the issuer's keys could not be fetched: {0}")]
    Keys(String),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    token_use: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(rename = "cognito:groups", default)]
    groups: Vec<String>,
    #[serde(rename = "custom:patientId", default)]
    patient_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Audience::One(a) => a == wanted,
            Audience::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// Where an issuer's public keys come from: at hand, or a JWKS URL fetched on first use and
/// again (at most every `min_refetch`) when a token names a key not yet seen.
pub(crate) enum KeySource {
    Fixed(JwkSet),
    Url { url: String, http: reqwest::Client, min_refetch: Duration, cached: RwLock<Option<Fetched>> },
}

/// The last JWKS fetch: the keys it got (kept from before when it failed), when, and why it
/// failed if it did.
pub(crate) struct Fetched {
    keys: JwkSet,
    at: Instant,
    failure: Option<String>,
}

/// One trusted token issuer: a user pool and its app client.
pub struct Issuer {
    issuer: String,
    audience: String,
    /// The roles its tokens may carry.
    roles: &'static [Role],
    keys: KeySource,
}

impl Issuer {
    /// An issuer whose keys are at hand (the local platform, tests).
    pub fn with_keys(issuer: &str, audience: &str, roles: &'static [Role], keys: JwkSet) -> Self {
        Self { issuer: issuer.to_owned(), audience: audience.to_owned(), roles, keys: KeySource::Fixed(keys) }
    }

    /// An issuer whose keys are fetched from `jwks_url` on first use, each fetch bounded by
    /// `timeout`. Fails only if no HTTP client can be built (never one without the timeout).
    pub fn with_jwks_url(
        issuer: &str,
        audience: &str,
        roles: &'static [Role],
        jwks_url: &str,
        timeout: Duration,
        min_refetch: Duration,
    ) -> Result<Self, reqwest::Error> {
        let keys = KeySource::url(jwks_url, timeout, min_refetch)?;
        Ok(Self { issuer: issuer.to_owned(), audience: audience.to_owned(), roles, keys })
    }

    /// From the settings `<PREFIX>_JWT_ISSUER`, `<PREFIX>_JWT_AUDIENCE`, `<PREFIX>_JWKS_URL`.
    fn from_settings(settings: &Settings, names: [&'static str; 3], roles: &'static [Role]) -> Result<Self, WiringError> {
        let [issuer, audience, url] = names.map(|n| settings.required(n));
        Self::with_jwks_url(&issuer?, &audience?, roles, &url?, JWKS_TIMEOUT, JWKS_MIN_REFETCH)
            .map_err(|e| WiringError::Other(format!("JWKS client: {e}")))
    }

    async fn key_for(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        self.keys.key(kid).await
    }
}

impl KeySource {
    /// Keys fetched from `url`, each fetch bounded by `timeout`.
    pub(crate) fn url(url: &str, timeout: Duration, min_refetch: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self::Url { url: url.to_owned(), http, min_refetch, cached: RwLock::new(None) })
    }

    pub(crate) async fn key(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let from = |set: &JwkSet| set.find(kid).map(|jwk| DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Invalid(e.to_string())));
        match self {
            Self::Fixed(set) => from(set).ok_or(AuthError::UnknownKey)?,
            Self::Url { url, http, min_refetch, cached } => {
                if let Some(last) = cached.read().await.as_ref() {
                    if let Some(key) = from(&last.keys) {
                        return key;
                    }
                    let wait = if last.failure.is_some() { JWKS_RETRY_AFTER_FAILURE.min(*min_refetch) } else { *min_refetch };
                    if last.at.elapsed() < wait {
                        return Err(last.failure.clone().map_or(AuthError::UnknownKey, AuthError::Keys));
                    }
                }
                let fetched: Result<JwkSet, AuthError> = async {
                    http.get(url)
                        .send()
                        .await
                        .and_then(reqwest::Response::error_for_status)
                        .map_err(|e| AuthError::Keys(e.to_string()))?
                        .json()
                        .await
                        .map_err(|e| AuthError::Keys(e.to_string()))
                }
                .await;
                match fetched {
                    Ok(keys) => {
                        let key = from(&keys);
                        *cached.write().await = Some(Fetched { keys, at: Instant::now(), failure: None });
                        key.ok_or(AuthError::UnknownKey)?
                    }
                    Err(e) => {
                        // A failed fetch counts too: the next try waits a few seconds.
                        let mut cached = cached.write().await;
                        let keys = cached.take().map_or(JwkSet { keys: Vec::new() }, |last| last.keys);
                        let failure = match &e {
                            AuthError::Keys(why) => why.clone(),
                            other => other.to_string(),
                        };
                        *cached = Some(Fetched { keys, at: Instant::now(), failure: Some(failure) });
                        Err(e)
                    }
                }
            }
        }
    }
}

/// Verifies bearer tokens of the trusted issuers.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
}

/// The roles of staff (the pool that requires MFA), and of patients.
pub const STAFF_ROLES: &[Role] = &[Role::Admin, Role::Clinician];
pub const PATIENT_ROLES: &[Role] = &[Role::Patient];

impl JwtVerifier {
    pub fn new(issuers: Vec<Issuer>) -> Self {
        Self { issuers }
    }

    /// The staff pool (`STAFF_JWT_ISSUER`, `STAFF_JWT_AUDIENCE`, `STAFF_JWKS_URL`) and the
    /// patient pool (`PATIENT_JWT_ISSUER`, ...).
    pub fn from_settings(settings: &Settings) -> Result<Self, WiringError> {
        Ok(Self::new(vec![
            Issuer::from_settings(settings, ["STAFF_JWT_ISSUER", "STAFF_JWT_AUDIENCE", "STAFF_JWKS_URL"], STAFF_ROLES)?,
            Issuer::from_settings(settings, ["PATIENT_JWT_ISSUER", "PATIENT_JWT_AUDIENCE", "PATIENT_JWKS_URL"], PATIENT_ROLES)?,
        ]))
    }

    /// The trusted issuer the token names (read before verifying, to know which keys verify it).
    fn issuer_of(&self, token: &str) -> Result<&Issuer, AuthError> {
        let iss = super::polaris::unverified_issuer(token)?.ok_or(AuthError::UnknownIssuer)?;
        self.issuers.iter().find(|i| i.issuer == iss).ok_or(AuthError::UnknownIssuer)
    }

    /// Verifies a bearer token and returns who it stands for.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::Algorithm);
        }
        let issuer = self.issuer_of(token)?;
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let key = issuer.key_for(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        // Cognito: an ID token names its app client in `aud`, an access token in `client_id`.
        let audience_ok = match claims.token_use.as_deref() {
            Some("id") => claims.aud.as_ref().is_some_and(|a| a.contains(&issuer.audience)),
            Some("access") => claims.client_id.as_deref() == Some(issuer.audience.as_str()),
            _ => return Err(AuthError::TokenUse),
        };
        if !audience_ok {
            return Err(AuthError::Audience);
        }
        let role = Role::ALL.into_iter().find(|r| claims.groups.iter().any(|g| g == r.as_str())).ok_or(AuthError::NoRole)?;
        if !issuer.roles.contains(&role) {
            return Err(AuthError::RoleNotFromIssuer(role.as_str()));
        }
        let patient_id = claims.patient_id.filter(|p| !p.is_empty());
        if role == Role::Patient && patient_id.is_none() {
            return Err(AuthError::NoPatientId);
        }
        Ok(Principal { subject: claims.sub, role, patient_id })
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    /// A signing key and its JWKS, as the local platform makes them.
    pub(crate) fn signer() -> (EncodingKey, JwkSet) {
        let key = rcgen::KeyPair::generate().unwrap();
        let raw = key.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let jwks: JwkSet = serde_json::from_value(json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        }]}))
        .unwrap();
        (EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap(), jwks)
    }

    pub(crate) fn token(key: &EncodingKey, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        encode(&header, &claims, key).unwrap()
    }

    const STAFF: &str = "https://staff";
    const PATIENTS: &str = "https://patients";

    fn claims(iss: &str, groups: &[&str], exp_offset: i64) -> serde_json::Value {
        json!({"sub": "u1", "iss": iss, "aud": "app", "token_use": "id", "exp": chrono::Utc::now().timestamp() + exp_offset,
               "cognito:groups": groups, "custom:patientId": "pat-1"})
    }

    fn verifier(jwks: &JwkSet) -> JwtVerifier {
        JwtVerifier::new(vec![
            Issuer::with_keys(STAFF, "app", STAFF_ROLES, jwks.clone()),
            Issuer::with_keys(PATIENTS, "app", PATIENT_ROLES, jwks.clone()),
        ])
    }

    #[tokio::test]
    async fn valid_tokens_give_the_role_and_patient() {
        let (key, jwks) = signer();
        let v = verifier(&jwks);
        let p = v.verify(&token(&key, claims(STAFF, &["admin"], 600))).await.unwrap();
        assert_eq!((p.subject.as_str(), p.role), ("u1", Role::Admin));
        let p = v.verify(&token(&key, claims(PATIENTS, &["patient"], 600))).await.unwrap();
        assert_eq!(p.patient_id.as_deref(), Some("pat-1"));
        // An access token names its app in client_id.
        let mut access = claims(STAFF, &["clinician"], 600);
        access.as_object_mut().unwrap().remove("aud");
        access["client_id"] = json!("app");
        access["token_use"] = json!("access");
        assert_eq!(v.verify(&token(&key, access)).await.unwrap().role, Role::Clinician);
    }

    #[tokio::test]
    async fn a_staff_role_comes_only_from_the_pool_that_requires_mfa() {
        let (key, jwks) = signer();
        let v = verifier(&jwks);
        for staff in ["admin", "clinician"] {
            let from_patients = v.verify(&token(&key, claims(PATIENTS, &[staff], 600))).await;
            assert!(matches!(from_patients, Err(AuthError::RoleNotFromIssuer(_))), "{staff}: {from_patients:?}");
        }
        assert_eq!(v.verify(&token(&key, claims(STAFF, &["patient"], 600))).await, Err(AuthError::RoleNotFromIssuer("patient")));
    }

    #[tokio::test]
    async fn bad_tokens_are_refused_with_the_reason() {
        let (key, jwks) = signer();
        let (other_key, _) = signer();
        let v = verifier(&jwks);
        assert_eq!(v.verify(&token(&key, claims(STAFF, &["admin"], -120))).await, Err(AuthError::Expired));
        assert_eq!(v.verify(&token(&key, claims(STAFF, &[], 600))).await, Err(AuthError::NoRole));
        assert!(matches!(v.verify(&token(&other_key, claims(STAFF, &["admin"], 600))).await, Err(AuthError::Invalid(_))));
        let mut wrong_aud = claims(STAFF, &["admin"], 600);
        wrong_aud["aud"] = json!("other-app");
        assert_eq!(v.verify(&token(&key, wrong_aud)).await, Err(AuthError::Audience));
        assert_eq!(v.verify(&token(&key, claims("https://evil", &["admin"], 600))).await, Err(AuthError::UnknownIssuer));
        assert_eq!(v.verify("not.a.jwt").await, Err(AuthError::Malformed));
        let hs = encode(&Header::new(Algorithm::HS256), &claims(STAFF, &["admin"], 600), &EncodingKey::from_secret(b"s")).unwrap();
        assert_eq!(v.verify(&hs).await, Err(AuthError::Algorithm));
        // token_use must say which kind of token it is, and the audience claim must match it.
        let mut no_use = claims(STAFF, &["admin"], 600);
        no_use.as_object_mut().unwrap().remove("token_use");
        assert_eq!(v.verify(&token(&key, no_use)).await, Err(AuthError::TokenUse));
        let mut refresh = claims(STAFF, &["admin"], 600);
        refresh["token_use"] = json!("refresh");
        assert_eq!(v.verify(&token(&key, refresh)).await, Err(AuthError::TokenUse));
        let mut access_with_aud_only = claims(STAFF, &["admin"], 600);
        access_with_aud_only["token_use"] = json!("access");
        assert_eq!(v.verify(&token(&key, access_with_aud_only)).await, Err(AuthError::Audience), "an access token names its client in client_id");
    }

    /// A JWKS endpoint on loopback that counts its requests; `stall` makes it never answer.
    async fn jwks_server(jwks: JwkSet, stall: bool) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        let body = serde_json::to_string(&jwks).unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else { return };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    if stall {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    let reply = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn keys_are_fetched_once_and_made_up_key_ids_do_not_cause_fetches() {
        let (key, jwks) = signer();
        let (url, hits) = jwks_server(jwks, false).await;
        let v = JwtVerifier::new(vec![Issuer::with_jwks_url(STAFF, "app", STAFF_ROLES, &url, Duration::from_secs(2), Duration::from_secs(60)).unwrap()]);
        assert!(v.verify(&token(&key, claims(STAFF, &["admin"], 600))).await.is_ok());
        assert!(v.verify(&token(&key, claims(STAFF, &["admin"], 600))).await.is_ok());
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "the keys are kept");
        for i in 0..5 {
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(format!("made-up-{i}"));
            let forged = encode(&header, &claims(STAFF, &["admin"], 600), &key).unwrap();
            assert_eq!(v.verify(&forged).await, Err(AuthError::UnknownKey));
        }
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "unknown key ids within a minute fetch nothing");
    }

    #[tokio::test]
    async fn a_jwks_endpoint_that_does_not_answer_times_out() {
        let (key, jwks) = signer();
        let (url, _) = jwks_server(jwks, true).await;
        let v = JwtVerifier::new(vec![Issuer::with_jwks_url(STAFF, "app", STAFF_ROLES, &url, Duration::from_millis(300), Duration::from_secs(60)).unwrap()]);
        let started = std::time::Instant::now();
        assert!(matches!(v.verify(&token(&key, claims(STAFF, &["admin"], 600))).await, Err(AuthError::Keys(_))));
        assert!(started.elapsed() < Duration::from_secs(5), "the fetch gave up");
        // And the next token does not wait on it again at once: it hears why, a few seconds long.
        let started = std::time::Instant::now();
        assert!(matches!(v.verify(&token(&key, claims(STAFF, &["admin"], 600))).await, Err(AuthError::Keys(_))));
        assert!(started.elapsed() < Duration::from_millis(200));
    }

    #[test]
    fn bearer_headers_are_parsed_strictly() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Ok("abc"));
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Malformed));
        assert_eq!(bearer(Some("Bearer")), Err(AuthError::Malformed));
    }
}
