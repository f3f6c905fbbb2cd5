//! JWT verification for people: Cognito user pools on AWS; locally, tokens signed by a key the
//! local platform creates.
//!
//! The verifier accepts RS256 (Cognito) and ES256 (local) tokens whose key is in the issuer's
//! JWKS, whose issuer is the configured one and whose audience (`aud` of an ID token, or
//! `client_id` of an access token) is the configured app client. Roles come from the
//! `cognito:groups` claim; a patient's own id from `custom:patientId`.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::{Principal, Role};
use crate::wiring::{Settings, WiringError};

/// Why a token was not accepted (each a 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with an unsupported algorithm")]
    Algorithm,
    #[error("the token's signing key is unknown")]
    UnknownKey,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
    #[error("the token was issued for another application")]
    Audience,
    #[error("the token carries no role (admin, clinician or patient)")]
    NoRole,
    #[error("a patient token needs custom:patientId")]
    NoPatientId,
    #[error("the issuer's keys could not be fetched: {0}")]
    Keys(String),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
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

/// Where the verifier gets the issuer's public keys.
enum KeySource {
    Fixed(JwkSet),
    Url { url: String, http: reqwest::Client, cached: RwLock<Option<JwkSet>> },
}

/// Verifies bearer tokens of one issuer and audience.
pub struct JwtVerifier {
    issuer: String,
    audience: String,
    keys: KeySource,
}

impl JwtVerifier {
    /// A verifier with the issuer's keys at hand (the local platform, tests).
    pub fn with_keys(issuer: &str, audience: &str, keys: JwkSet) -> Self {
        Self { issuer: issuer.to_owned(), audience: audience.to_owned(), keys: KeySource::Fixed(keys) }
    }

    /// From the settings `JWT_ISSUER`, `JWT_AUDIENCE` and `JWKS_URL`. The keys are fetched on first use, not
    /// at cold start, and again when a token names a key not seen yet (key rotation).
    pub fn from_settings(settings: &Settings) -> Result<Self, WiringError> {
        Ok(Self {
            issuer: settings.required("JWT_ISSUER")?,
            audience: settings.required("JWT_AUDIENCE")?,
            keys: KeySource::Url { url: settings.required("JWKS_URL")?, http: reqwest::Client::new(), cached: RwLock::new(None) },
        })
    }

    async fn key_for(&self, kid: &str) -> Result<DecodingKey, AuthError> {
        let from = |set: &JwkSet| set.find(kid).map(|jwk| DecodingKey::from_jwk(jwk).map_err(|e| AuthError::Invalid(e.to_string())));
        match &self.keys {
            KeySource::Fixed(set) => from(set).ok_or(AuthError::UnknownKey)?,
            KeySource::Url { url, http, cached } => {
                if let Some(key) = cached.read().await.as_ref().and_then(from) {
                    return key;
                }
                let fetched: JwkSet = http
                    .get(url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(|e| AuthError::Keys(e.to_string()))?
                    .json()
                    .await
                    .map_err(|e| AuthError::Keys(e.to_string()))?;
                let key = from(&fetched);
                *cached.write().await = Some(fetched);
                key.ok_or(AuthError::UnknownKey)?
            }
        }
    }

    /// Verifies a bearer token and returns who it stands for.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|_| AuthError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::Algorithm);
        }
        let kid = header.kid.ok_or(AuthError::UnknownKey)?;
        let key = self.key_for(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_aud = false;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?
            .claims;
        let audience_ok = match (&claims.aud, &claims.client_id) {
            (Some(Audience::One(a)), _) => *a == self.audience,
            (Some(Audience::Many(all)), _) => all.iter().any(|a| *a == self.audience),
            (None, Some(client)) => *client == self.audience,
            (None, None) => false,
        };
        if !audience_ok {
            return Err(AuthError::Audience);
        }
        let role = [Role::Admin, Role::Clinician, Role::Patient]
            .into_iter()
            .find(|r| claims.groups.iter().any(|g| g == r.as_str()))
            .ok_or(AuthError::NoRole)?;
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

    fn claims(groups: &[&str], exp_offset: i64) -> serde_json::Value {
        json!({"sub": "u1", "iss": "https://issuer", "aud": "app", "exp": chrono::Utc::now().timestamp() + exp_offset,
               "cognito:groups": groups, "custom:patientId": "pat-1"})
    }

    #[tokio::test]
    async fn valid_tokens_give_the_role_and_patient() {
        let (key, jwks) = signer();
        let v = JwtVerifier::with_keys("https://issuer", "app", jwks);
        let p = v.verify(&token(&key, claims(&["admin"], 600))).await.unwrap();
        assert_eq!((p.subject.as_str(), p.role), ("u1", Role::Admin));
        let p = v.verify(&token(&key, claims(&["patient"], 600))).await.unwrap();
        assert_eq!(p.patient_id.as_deref(), Some("pat-1"));
        // An access token names its app in client_id.
        let mut access = claims(&["clinician"], 600);
        access.as_object_mut().unwrap().remove("aud");
        access["client_id"] = json!("app");
        assert_eq!(v.verify(&token(&key, access)).await.unwrap().role, Role::Clinician);
    }

    #[tokio::test]
    async fn bad_tokens_are_refused_with_the_reason() {
        let (key, jwks) = signer();
        let (other_key, _) = signer();
        let v = JwtVerifier::with_keys("https://issuer", "app", jwks);
        assert_eq!(v.verify(&token(&key, claims(&["admin"], -120))).await, Err(AuthError::Expired));
        assert_eq!(v.verify(&token(&key, claims(&[], 600))).await, Err(AuthError::NoRole));
        assert!(matches!(v.verify(&token(&other_key, claims(&["admin"], 600))).await, Err(AuthError::Invalid(_))));
        let mut wrong_aud = claims(&["admin"], 600);
        wrong_aud["aud"] = json!("other-app");
        assert_eq!(v.verify(&token(&key, wrong_aud)).await, Err(AuthError::Audience));
        let mut wrong_iss = claims(&["admin"], 600);
        wrong_iss["iss"] = json!("https://evil");
        assert!(matches!(v.verify(&token(&key, wrong_iss)).await, Err(AuthError::Invalid(_))));
        assert_eq!(v.verify("not.a.jwt").await, Err(AuthError::Malformed));
        let hs = encode(&Header::new(Algorithm::HS256), &claims(&["admin"], 600), &EncodingKey::from_secret(b"s")).unwrap();
        assert_eq!(v.verify(&hs).await, Err(AuthError::Algorithm));
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
