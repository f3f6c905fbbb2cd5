//! Polaris-compatibility tokens: the HS512 JWTs that Polaris (DHOS) services and their clients
//! sign with a shared key (`HS_KEY`), so that Polaris apps work against Vitalwire unchanged.
//!
//! Their claims are the reference's (`flask-batteries-included`'s `protected_route`): the
//! caller's ids in `metadata` (`patient_id`, `clinician_id`, `system_id`, `device_id`), the
//! space-separated `scope`, and `iss` and `aud`, which must both be the configured issuer (the
//! reference's `HS_ISSUER`, the service's URL ending in `/`). `exp` is required.
//!
//! The issuer is pinned to one algorithm and its key, chosen per stack: HS512 with the shared
//! key (the default, so Polaris clients can mint their own), or RS256 with the platform's RSA
//! key, whose public part is published as a JWKS. The authorizer sends a token to this verifier
//! only if its (unverified) `iss` is the Polaris issuer, and this verifier accepts nothing but
//! the pinned algorithm; the people's issuers accept nothing but RS256 and ES256 with their
//! own keys. An HS512 token naming a Cognito issuer, an RS256 token naming an HS512 Polaris
//! issuer, or an HS512 one naming an RS256 issuer, is refused: no algorithm confusion is
//! possible. The key is read from Secrets Manager on the first Polaris token, not
//! at cold start, and again every five minutes (a rotated key takes effect that soon); with no
//! issuer configured, Polaris tokens are not accepted at all.

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::jwt::{AuthError, KeySource, JWKS_MIN_REFETCH, JWKS_TIMEOUT};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The shortest key accepted: an HS512 key shorter than 32 bytes is guessable.
pub const MIN_KEY_BYTES: usize = 32;

/// The one algorithm the Polaris issuer signs and accepts, as the stack chooses it
/// (`POLARIS_JWT_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolarisAlgorithm {
    /// One shared key signs and verifies: Polaris services and clients can mint their own
    /// tokens with it (the reference's default).
    Hs512,
    /// Only the platform signs, with an RSA key in Secrets Manager; everyone verifies with the
    /// public keys it publishes at `<issuer>.well-known/jwks.json`.
    Rs256,
}

impl PolarisAlgorithm {
    fn from_setting(value: Option<&str>) -> Result<Self, WiringError> {
        match value.unwrap_or("HS512") {
            "" | "HS512" => Ok(Self::Hs512),
            "RS256" => Ok(Self::Rs256),
            other => Err(WiringError::Other(format!("POLARIS_JWT_ALGORITHM is {other}: HS512 or RS256"))),
        }
    }
}

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

/// A key kept in Secrets Manager (the HS512 key, or the RSA private key as PEM).
enum SecretKey {
    Fixed(Vec<u8>),
    SecretsManager { client: aws_sdk_secretsmanager::Client, secret_id: String, key: tokio::sync::RwLock<Option<(std::sync::Arc<[u8]>, std::time::Instant)>> },
}

impl SecretKey {
    fn from_secret(w: &Wiring, secret_id: String) -> Self {
        Self::SecretsManager { client: w.aws.secrets_manager(), secret_id, key: tokio::sync::RwLock::new(None) }
    }

    async fn bytes(&self) -> Result<std::sync::Arc<[u8]>, StoreError> {
        match self {
            Self::Fixed(k) => Ok(k.as_slice().into()),
            Self::SecretsManager { client, secret_id, key } => {
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

/// The Polaris settings, all read at once so that a half-configured issuer fails at start-up,
/// not on a token.
struct IssuerSettings {
    issuer: String,
    audience: String,
    algorithm: PolarisAlgorithm,
    hs_key_secret: Option<String>,
    rs_key_secret: Option<String>,
    jwks_url: Option<String>,
}

impl IssuerSettings {
    /// None when `POLARIS_JWT_ISSUER` is empty: Polaris tokens are off.
    fn read(w: &Wiring) -> Result<Option<Self>, WiringError> {
        let setting = |n: &'static str| w.settings.optional(n).filter(|v| !v.is_empty());
        let [issuer, audience, algorithm, hs_key_secret, rs_key_secret, jwks_url] =
            ["POLARIS_JWT_ISSUER", "POLARIS_JWT_AUDIENCE", "POLARIS_JWT_ALGORITHM", "POLARIS_HS_KEY_SECRET", "POLARIS_RS_KEY_SECRET", "POLARIS_JWKS_URL"].map(setting);
        let algorithm = PolarisAlgorithm::from_setting(algorithm.as_deref())?;
        let Some(issuer) = issuer else { return Ok(None) };
        let audience = audience.unwrap_or_else(|| issuer.clone());
        Ok(Some(Self { issuer, audience, algorithm, hs_key_secret, rs_key_secret, jwks_url }))
    }

    /// The secret the algorithm's key is kept in.
    fn key_secret(&self) -> Result<String, WiringError> {
        let (name, secret) = match self.algorithm {
            PolarisAlgorithm::Hs512 => ("POLARIS_HS_KEY_SECRET", &self.hs_key_secret),
            PolarisAlgorithm::Rs256 => ("POLARIS_RS_KEY_SECRET", &self.rs_key_secret),
        };
        secret.clone().ok_or_else(|| WiringError::Other(format!("POLARIS_JWT_ISSUER is set but {name} is not")))
    }
}

/// What verifies the Polaris issuer's tokens.
enum VerifyingKey {
    Shared(SecretKey),
    Published(KeySource),
}

/// The Polaris issuer, its audience and its key.
struct PolarisIssuer {
    issuer: String,
    audience: String,
    key: VerifyingKey,
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

    /// An HS512 issuer whose key is at hand (tests, the local token minter).
    pub fn with_key(issuer: &str, audience: &str, key: &[u8]) -> Self {
        Self { issuer: Some(PolarisIssuer { issuer: issuer.to_owned(), audience: audience.to_owned(), key: VerifyingKey::Shared(SecretKey::Fixed(key.to_vec())) }) }
    }

    /// An RS256 issuer whose public keys are at hand (tests).
    pub fn with_public_keys(issuer: &str, keys: JwkSet) -> Self {
        Self { issuer: Some(PolarisIssuer { issuer: issuer.to_owned(), audience: issuer.to_owned(), key: VerifyingKey::Published(KeySource::Fixed(keys)) }) }
    }

    /// Whether `iss` is the Polaris issuer (then only this verifier may accept the token).
    pub fn issues(&self, iss: &str) -> bool {
        self.issuer.as_ref().is_some_and(|i| i.issuer == iss)
    }

    /// Verifies a token that names the Polaris issuer, with the one algorithm it is pinned to.
    pub async fn verify(&self, token: &str) -> Result<PolarisClaims, AuthError> {
        let issuer = self.issuer.as_ref().ok_or(AuthError::UnknownIssuer)?;
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        let (algorithm, key) = match &issuer.key {
            VerifyingKey::Shared(secret) => {
                if header.alg != Algorithm::HS512 {
                    return Err(AuthError::Algorithm);
                }
                (Algorithm::HS512, DecodingKey::from_secret(&secret.bytes().await.map_err(|e| AuthError::Keys(e.to_string()))?))
            }
            VerifyingKey::Published(keys) => {
                if header.alg != Algorithm::RS256 {
                    return Err(AuthError::Algorithm);
                }
                (Algorithm::RS256, keys.key(header.kid.as_deref().ok_or(AuthError::UnknownKey)?).await?)
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&issuer.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Claims>(token, &key, &validation)
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
    /// (empty: the issuer, as Polaris has it), `POLARIS_JWT_ALGORITHM` (HS512, the default, with
    /// the key in `POLARIS_HS_KEY_SECRET`; or RS256 with the keys published at
    /// `POLARIS_JWKS_URL`, by default `<issuer>.well-known/jwks.json`).
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        let Some(s) = IssuerSettings::read(w)? else { return Ok(Self::disabled()) };
        let key = match s.algorithm {
            PolarisAlgorithm::Hs512 => VerifyingKey::Shared(SecretKey::from_secret(w, s.key_secret()?)),
            PolarisAlgorithm::Rs256 => {
                let url = s.jwks_url.clone().unwrap_or_else(|| jwks_url(&s.issuer));
                VerifyingKey::Published(KeySource::url(&url, JWKS_TIMEOUT, JWKS_MIN_REFETCH).map_err(|e| WiringError::Other(format!("JWKS client: {e}")))?)
            }
        };
        Ok(Self { issuer: Some(PolarisIssuer { issuer: s.issuer, audience: s.audience, key }) })
    }
}

/// Where the issuer's public keys are published: `<issuer>.well-known/jwks.json` (the issuer
/// ends with `/`, as Polaris requires).
pub fn jwks_url(issuer: &str) -> String {
    format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
}

/// Signs Polaris-compatibility tokens as the Polaris activation service issues them: exactly
/// `metadata`, `iss` = `aud` = the issuer, `scope` and `exp`; HS512 with the shared key, or
/// RS256 with the RSA key (then with its `kid`, the key's RFC 7638 thumbprint).
pub struct PolarisSigner {
    issuer: Option<(String, PolarisAlgorithm, SecretKey)>,
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

/// An RSA private key (PEM) as a signing key and its public JWK, `kid` set.
fn rsa_key(pem: &[u8]) -> Result<(EncodingKey, Jwk), SignError> {
    let key = EncodingKey::from_rsa_pem(pem).map_err(|e| SignError::Sign(format!("the RSA key is not a PEM private key: {e}")))?;
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).map_err(|e| SignError::Sign(e.to_string()))?;
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256).map_err(|e| SignError::Sign(e.to_string()))?);
    jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
    Ok((key, jwk))
}

impl PolarisSigner {
    /// An HS512 signer whose key is at hand (tests, the local token minter).
    pub fn with_key(issuer: &str, key: &[u8]) -> Self {
        Self { issuer: Some((issuer.to_owned(), PolarisAlgorithm::Hs512, SecretKey::Fixed(key.to_vec()))) }
    }

    /// An RS256 signer whose private key (PEM) is at hand (tests, the local token minter).
    pub fn with_rsa_pem(issuer: &str, pem: &[u8]) -> Self {
        Self { issuer: Some((issuer.to_owned(), PolarisAlgorithm::Rs256, SecretKey::Fixed(pem.to_vec()))) }
    }

    /// A token for `metadata` (the caller's ids) with `scope`, valid `lifetime`.
    pub async fn mint(&self, metadata: &[(&str, &str)], scope: &str, lifetime: chrono::Duration) -> Result<String, SignError> {
        let (issuer, algorithm, secret) = self.issuer.as_ref().ok_or(SignError::NotConfigured)?;
        let secret = secret.bytes().await?;
        match algorithm {
            PolarisAlgorithm::Hs512 => sign(&secret, issuer, metadata, scope, lifetime).map_err(SignError::Sign),
            PolarisAlgorithm::Rs256 => sign_rsa(&secret, issuer, metadata, scope, lifetime),
        }
    }

    /// The public keys that verify this signer's tokens: its RSA key's, or none for HS512 (a
    /// shared key is never published).
    pub async fn jwks(&self) -> Result<JwkSet, SignError> {
        match &self.issuer {
            Some((_, PolarisAlgorithm::Rs256, secret)) => Ok(JwkSet { keys: vec![rsa_key(&secret.bytes().await?)?.1] }),
            _ => Ok(JwkSet { keys: Vec::new() }),
        }
    }
}

fn encode_claims(header: &Header, key: &EncodingKey, issuer: &str, metadata: &[(&str, &str)], scope: &str, lifetime: chrono::Duration) -> Result<String, String> {
    let metadata: Map<String, Value> = metadata.iter().map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned()))).collect();
    let exp = (chrono::Utc::now() + lifetime).timestamp();
    let claims = serde_json::json!({"metadata": metadata, "iss": issuer, "aud": issuer, "scope": scope, "exp": exp});
    jsonwebtoken::encode(header, &claims, key).map_err(|e| e.to_string())
}

/// A Polaris-compatibility HS512 token signed with `key`; `iss` and `aud` are both `issuer`.
pub fn sign(key: &[u8], issuer: &str, metadata: &[(&str, &str)], scope: &str, lifetime: chrono::Duration) -> Result<String, String> {
    encode_claims(&Header::new(Algorithm::HS512), &EncodingKey::from_secret(key), issuer, metadata, scope, lifetime)
}

/// A Polaris-compatibility RS256 token signed with the RSA private key `pem`, its `kid` the
/// key's thumbprint; `iss` and `aud` are both `issuer`.
pub fn sign_rsa(pem: &[u8], issuer: &str, metadata: &[(&str, &str)], scope: &str, lifetime: chrono::Duration) -> Result<String, SignError> {
    let (key, jwk) = rsa_key(pem)?;
    let header = Header { kid: jwk.common.key_id, ..Header::new(Algorithm::RS256) };
    encode_claims(&header, &key, issuer, metadata, scope, lifetime).map_err(SignError::Sign)
}

impl FromWiring for PolarisSigner {
    /// The verifier's issuer and algorithm; the key from `POLARIS_HS_KEY_SECRET` (HS512) or
    /// `POLARIS_RS_KEY_SECRET` (RS256, an RSA private key as PEM), read on first use.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        let Some(s) = IssuerSettings::read(w)? else { return Ok(Self { issuer: None }) };
        let secret = SecretKey::from_secret(w, s.key_secret()?);
        Ok(Self { issuer: Some((s.issuer, s.algorithm, secret)) })
    }
}

/// A fresh 2048-bit RSA private key as PKCS#8 PEM, as `openssl genpkey` writes it (the local
/// platform's RS256 key; tests).
pub fn generate_rsa_pem() -> Result<String, String> {
    use aws_lc_rs::encoding::AsDer;
    use base64::Engine;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|e| format!("an RSA key: {e}"))?;
    let der = pair.as_der().map_err(|e| format!("an RSA key: {e}"))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    Ok(format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n")))
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

    pub(crate) fn rsa_pem() -> String {
        generate_rsa_pem().unwrap()
    }

    #[tokio::test]
    async fn rs256_tokens_verify_with_the_published_keys_and_nothing_else_passes_for_them() {
        let pem = rsa_pem();
        let signer = PolarisSigner::with_rsa_pem(ISSUER, pem.as_bytes());
        let jwks = signer.jwks().await.unwrap();
        assert_eq!(jwks.keys.len(), 1);
        let published = serde_json::to_value(&jwks).unwrap();
        assert!(published["keys"][0].get("d").is_none(), "only the public part: {published}");
        assert_eq!((published["keys"][0]["kty"].clone(), published["keys"][0]["use"].clone()), (json!("RSA"), json!("sig")));
        let v = PolarisVerifier::with_public_keys(ISSUER, jwks.clone());
        let token = signer.mint(&[("patient_id", "p-1")], "read:gdm_message", chrono::Duration::minutes(5)).await.unwrap();
        let header = decode_header(&token).unwrap();
        assert_eq!((header.alg, header.kid.as_deref()), (Algorithm::RS256, jwks.keys[0].common.key_id.as_deref()));
        assert_eq!(v.verify(&token).await.unwrap().patient_id.as_deref(), Some("p-1"));
        // An HS512 token for the RS256 issuer is refused, whatever key signed it, and so is the
        // classic confusion: HS256 with the public key as the shared secret.
        assert_eq!(v.verify(&polaris_token(KEY, Algorithm::HS512, polaris_claims(json!({"patient_id": "p-1"}), "", 600))).await, Err(AuthError::Algorithm));
        let n = published["keys"][0]["n"].as_str().unwrap().as_bytes().to_vec();
        assert_eq!(v.verify(&polaris_token(&n, Algorithm::HS256, polaris_claims(json!({"patient_id": "p-1"}), "", 600))).await, Err(AuthError::Algorithm));
        // Another RSA key's token (a kid the issuer never published) is refused.
        let stranger = PolarisSigner::with_rsa_pem(ISSUER, rsa_pem().as_bytes()).mint(&[("patient_id", "p-1")], "", chrono::Duration::minutes(5)).await.unwrap();
        assert_eq!(v.verify(&stranger).await, Err(AuthError::UnknownKey));
        // And the HS512 issuer refuses the RS256 token.
        assert_eq!(PolarisVerifier::with_key(ISSUER, ISSUER, KEY).verify(&token).await, Err(AuthError::Algorithm));
        assert!(PolarisSigner::with_key(ISSUER, KEY).jwks().await.unwrap().keys.is_empty(), "a shared key is never published");
    }
}
