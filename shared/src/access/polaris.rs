//! Polaris-compatibility tokens: the HS512 JWTs that Polaris (DHOS) services and their clients
//! sign with a shared key (`HS_KEY`), so that Polaris apps work against Vitalwire unchanged.
//!
//! Their claims are the reference's (`flask-batteries-included`'s `protected_route`): the
//! caller's ids in `metadata` (`patient_id`, `clinician_id`, `system_id`, `device_id`), the
//! space-separated `scope`, and `iss` and `aud`, which must both be the configured issuer (the
//! reference's `HS_ISSUER`, the service's URL ending in `/`). `exp` is required.
//!
//! The issuer is pinned to HS512 and to its key: the authorizer sends a token to this verifier
//! only if its (unverified) `iss` is the Polaris issuer, and this verifier accepts nothing but
//! HS512; the people's issuers accept nothing but RS256 and ES256. An HS512 token naming a
//! Cognito issuer, or an RS256 token naming the Polaris issuer, is refused: no algorithm
//! confusion is possible. The key is read from Secrets Manager on the first Polaris token, not
//! at cold start, and again every five minutes (a rotated key takes effect that soon); with no
//! issuer configured, Polaris tokens are not accepted at all.

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwt::AuthError;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The only algorithm Polaris-compatibility tokens may use.
pub const POLARIS_ALGORITHM: Algorithm = Algorithm::HS512;
/// The shortest key accepted: an HS512 key shorter than 32 bytes is guessable.
pub const MIN_KEY_BYTES: usize = 32;

/// Who a Polaris token stands for: the reference's claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolarisClaims {
    pub subject: Option<String>,
    pub patient_id: Option<String>,
    pub clinician_id: Option<String>,
    pub system_id: Option<String>,
    pub device_id: Option<String>,
    pub scopes: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    scope: Option<String>,
}

/// How long a key read from Secrets Manager is used before it is read again: a rotated key
/// (after a leak) is honoured within this time by every warm function.
pub const KEY_CACHE: std::time::Duration = std::time::Duration::from_secs(300);

/// Where the shared key comes from.
enum HsKey {
    Fixed(Vec<u8>),
    SecretsManager { client: aws_sdk_secretsmanager::Client, secret_id: String, key: tokio::sync::RwLock<Option<(std::sync::Arc<[u8]>, std::time::Instant)>> },
}

impl HsKey {
    async fn bytes(&self) -> Result<std::sync::Arc<[u8]>, StoreError> {
        match self {
            HsKey::Fixed(k) => Ok(k.as_slice().into()),
            HsKey::SecretsManager { client, secret_id, key } => {
                if let Some((bytes, at)) = key.read().await.as_ref() {
                    if at.elapsed() < KEY_CACHE {
                        return Ok(bytes.clone());
                    }
                }
                const OP: &str = "read the Polaris token key";
                let out = client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
                let bytes: std::sync::Arc<[u8]> = out
                    .secret_string()
                    .filter(|s| s.len() >= MIN_KEY_BYTES)
                    .map(|s| s.as_bytes().into())
                    .ok_or_else(|| StoreError::new(OP, "the secret is missing or shorter than 32 characters"))?;
                *key.write().await = Some((bytes.clone(), std::time::Instant::now()));
                Ok(bytes)
            }
        }
    }
}

/// The Polaris issuer, its audience and its key.
struct PolarisIssuer {
    issuer: String,
    audience: String,
    key: HsKey,
}

/// Verifies Polaris-compatibility tokens, when an issuer is configured.
pub struct PolarisVerifier {
    issuer: Option<PolarisIssuer>,
}

impl PolarisVerifier {
    /// Accepts no Polaris token.
    pub fn disabled() -> Self {
        Self { issuer: None }
    }

    /// An issuer whose key is at hand (tests, the local token minter).
    pub fn with_key(issuer: &str, audience: &str, key: &[u8]) -> Self {
        Self { issuer: Some(PolarisIssuer { issuer: issuer.to_owned(), audience: audience.to_owned(), key: HsKey::Fixed(key.to_vec()) }) }
    }

    /// Whether `iss` is the Polaris issuer (then only this verifier may accept the token).
    pub fn issues(&self, iss: &str) -> bool {
        self.issuer.as_ref().is_some_and(|i| i.issuer == iss)
    }

    /// Verifies a token that names the Polaris issuer.
    pub async fn verify(&self, token: &str) -> Result<PolarisClaims, AuthError> {
        let issuer = self.issuer.as_ref().ok_or(AuthError::UnknownIssuer)?;
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if header.alg != POLARIS_ALGORITHM {
            return Err(AuthError::Algorithm);
        }
        let key = issuer.key.bytes().await.map_err(|e| AuthError::Keys(e.to_string()))?;
        let mut validation = Validation::new(POLARIS_ALGORITHM);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&issuer.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Claims>(token, &DecodingKey::from_secret(&key), &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => AuthError::Audience,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        let id = |k: &str| claims.metadata.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        Ok(PolarisClaims {
            subject: claims.sub.clone(),
            patient_id: id("patient_id"),
            clinician_id: id("clinician_id"),
            system_id: id("system_id"),
            device_id: id("device_id"),
            scopes: claims.scope.unwrap_or_default().split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        })
    }
}

impl FromWiring for PolarisVerifier {
    /// `POLARIS_JWT_ISSUER` (empty or unset: Polaris tokens are off), `POLARIS_JWT_AUDIENCE`
    /// (empty: the issuer, as Polaris has it) and the key's secret `POLARIS_HS_KEY_SECRET`.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        // Read together, so that a half-configured issuer fails at start-up, not on a token.
        let (issuer, audience, secret) = ["POLARIS_JWT_ISSUER", "POLARIS_JWT_AUDIENCE", "POLARIS_HS_KEY_SECRET"].map(|n| w.settings.optional(n).filter(|v| !v.is_empty())).into();
        let Some(issuer) = issuer else { return Ok(Self::disabled()) };
        let audience = audience.unwrap_or_else(|| issuer.clone());
        let secret_id = secret.ok_or_else(|| WiringError::Other("POLARIS_JWT_ISSUER is set but POLARIS_HS_KEY_SECRET is not".into()))?;
        let key = HsKey::SecretsManager { client: w.aws.secrets_manager(), secret_id, key: tokio::sync::RwLock::new(None) };
        Ok(Self { issuer: Some(PolarisIssuer { issuer, audience, key }) })
    }
}

/// Signs Polaris-compatibility tokens as the Polaris activation service issues them: HS512
/// with the shared key, exactly `metadata`, `iss` = `aud` = the issuer, `scope` and `exp`.
pub struct PolarisSigner {
    issuer: Option<PolarisIssuer>,
}

/// Why no token could be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("Polaris tokens are not configured (POLARIS_JWT_ISSUER is empty)")]
    NotConfigured,
    #[error(transparent)]
    Key(#[from] StoreError),
    #[error("the token could not be signed: {0}")]
    Sign(String),
}

impl PolarisSigner {
    /// A signer whose key is at hand (tests, the local token minter).
    pub fn with_key(issuer: &str, key: &[u8]) -> Self {
        Self { issuer: Some(PolarisIssuer { issuer: issuer.to_owned(), audience: issuer.to_owned(), key: HsKey::Fixed(key.to_vec()) }) }
    }

    /// A token for `metadata` (the caller's ids) with `scope`, valid `lifetime`.
    pub async fn mint(&self, metadata: &[(&str, &str)], scope: &str, lifetime: chrono::Duration) -> Result<String, SignError> {
        let issuer = self.issuer.as_ref().ok_or(SignError::NotConfigured)?;
        let key = issuer.key.bytes().await?;
        sign(&key, &issuer.issuer, metadata, scope, lifetime).map_err(SignError::Sign)
    }
}

/// A Polaris-compatibility token signed with `key`; `iss` and `aud` are both `issuer`.
pub fn sign(key: &[u8], issuer: &str, metadata: &[(&str, &str)], scope: &str, lifetime: chrono::Duration) -> Result<String, String> {
    let metadata: Map<String, Value> = metadata.iter().map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned()))).collect();
    let exp = (chrono::Utc::now() + lifetime).timestamp();
    let claims = serde_json::json!({"metadata": metadata, "iss": issuer, "aud": issuer, "scope": scope, "exp": exp});
    jsonwebtoken::encode(&jsonwebtoken::Header::new(POLARIS_ALGORITHM), &claims, &jsonwebtoken::EncodingKey::from_secret(key)).map_err(|e| e.to_string())
}

impl FromWiring for PolarisSigner {
    /// The verifier's settings: the same issuer, audience and key.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { issuer: PolarisVerifier::from_wiring(w)?.issuer })
    }
}

/// The `iss` a token names, read without verifying it (to pick the verifier that may check it).
pub fn unverified_issuer(token: &str) -> Result<Option<String>, AuthError> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1).ok_or(AuthError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|_| AuthError::Malformed)?;
    Ok(serde_json::from_slice::<Iss>(&bytes).map_err(|_| AuthError::Malformed)?.iss)
}

#[cfg(test)]
pub(crate) mod tests {
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    use super::*;

    pub(crate) const ISSUER: &str = "http://polaris.test/";
    pub(crate) const KEY: &[u8] = b"a-polaris-hs512-key-of-at-least-32-bytes";

    /// A Polaris token as the reference's integration tests make them (`helpers/jwt.py`).
    pub(crate) fn polaris_token(key: &[u8], alg: Algorithm, claims: Value) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(key)).unwrap()
    }

    pub(crate) fn polaris_claims(metadata: Value, scope: &str, exp_offset: i64) -> Value {
        json!({"metadata": metadata, "iss": ISSUER, "aud": ISSUER, "scope": scope, "exp": chrono::Utc::now().timestamp() + exp_offset})
    }

    #[tokio::test]
    async fn a_polaris_token_gives_its_ids_and_scopes() {
        let v = PolarisVerifier::with_key(ISSUER, ISSUER, KEY);
        let token = polaris_token(KEY, Algorithm::HS512, polaris_claims(json!({"clinician_id": "c-1"}), "read:gdm_message write:gdm_message", 600));
        assert!(v.issues(ISSUER) && !v.issues("https://cognito"));
        let claims = v.verify(&token).await.unwrap();
        assert_eq!(claims.clinician_id.as_deref(), Some("c-1"));
        assert_eq!((claims.patient_id, claims.system_id), (None, None));
        assert_eq!(claims.scopes, ["read:gdm_message", "write:gdm_message"]);
    }

    #[tokio::test]
    async fn expired_tampered_wrong_audience_and_other_algorithms_are_refused() {
        let v = PolarisVerifier::with_key(ISSUER, ISSUER, KEY);
        let claims = || polaris_claims(json!({"patient_id": "p-1"}), "read:gdm_message", 600);
        assert_eq!(v.verify(&polaris_token(KEY, Algorithm::HS512, polaris_claims(json!({"patient_id": "p-1"}), "", -120))).await, Err(AuthError::Expired));
        assert!(matches!(v.verify(&polaris_token(b"another-key-another-key-another-key!!", Algorithm::HS512, claims())).await, Err(AuthError::Invalid(_))));
        // HS256 with the same key: the reference accepts it, the pinned issuer does not.
        assert_eq!(v.verify(&polaris_token(KEY, Algorithm::HS256, claims())).await, Err(AuthError::Algorithm));
        let mut wrong_aud = claims();
        wrong_aud["aud"] = json!("http://elsewhere/");
        assert_eq!(v.verify(&polaris_token(KEY, Algorithm::HS512, wrong_aud)).await, Err(AuthError::Audience));
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(matches!(v.verify(&polaris_token(KEY, Algorithm::HS512, no_exp)).await, Err(AuthError::Invalid(_))));
        // The signature covers the claims: another patient id in the same signature fails.
        let token = polaris_token(KEY, Algorithm::HS512, claims());
        let other = polaris_token(KEY, Algorithm::HS512, polaris_claims(json!({"patient_id": "p-2"}), "read:gdm_message_all", 600));
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = other.split('.').nth(1).unwrap();
        assert!(matches!(v.verify(&parts.join(".")).await, Err(AuthError::Invalid(_))));
        assert_eq!(PolarisVerifier::disabled().verify(&token).await, Err(AuthError::UnknownIssuer));
        assert_eq!(unverified_issuer(&token), Ok(Some(ISSUER.to_owned())));
        assert_eq!(unverified_issuer("nope"), Err(AuthError::Malformed));
    }
}
