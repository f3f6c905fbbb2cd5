//! Device API keys for the vitals REST API (`/api/iot/...`).
//!
//! A key reads `vwk_<keyId>_<secret>`: `keyId` (16 hex characters) finds the record, the
//! secret (32 random bytes, base64url) proves possession. Only
//! `HMAC-SHA-256(pepper, secret)` is stored; the pepper is a server-side secret in AWS Secrets
//! Manager, read once per cold start on first use. A keyed hash rather than a slow one: the
//! secret has 256 bits of entropy, so stretching adds no protection against guessing and would
//! cost every request (and every authorizer cold start) tens of milliseconds; the pepper makes a
//! copy of the table useless without the secret store. Hashes are compared in constant time.
//!
//! Keys belong to one device, may expire, can be revoked, carry permissions (`write_vitals`,
//! `read_status`) and a rate limit, and record their last use and daily counts.

use std::future::Future;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::StoreError;

/// The start of every key, so that the authorizer tells keys from JWTs at a glance.
pub const KEY_MARKER: &str = "vwk_";

/// Requests per minute a key may make unless configured otherwise.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u32 = 60;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    WriteVitals,
    ReadStatus,
}

impl Permission {
    pub const ALL: [Self; 2] = [Self::WriteVitals, Self::ReadStatus];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WriteVitals => "write_vitals",
            Self::ReadStatus => "read_status",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// A key's record (never its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKey {
    pub key_id: String,
    pub thing_name: String,
    pub name: String,
    /// Hex HMAC-SHA-256 of the secret.
    pub secret_hash: String,
    pub permissions: Vec<Permission>,
    pub rate_limit_per_minute: u32,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl ApiKey {
    /// Whether the key still works at `now`: not revoked, not expired.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && !self.is_expired(now)
    }

    /// Whether the key's expiry has passed at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.as_deref().and_then(crate::time::parse_with_offset).is_some_and(|at| at <= now)
    }

    /// The metadata an admin may see, as of `now`.
    pub fn to_json(&self, now: DateTime<Utc>) -> serde_json::Value {
        serde_json::json!({
            "keyId": self.key_id,
            "thingName": self.thing_name,
            "name": self.name,
            "permissions": self.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "rateLimitPerMinute": self.rate_limit_per_minute,
            "createdAt": self.created_at,
            "expiresAt": self.expires_at,
            "revokedAt": self.revoked_at,
            "lastUsedAt": self.last_used_at,
            "active": self.is_active(now),
        })
    }
}

/// A freshly generated key: the full text is shown once, then only its hash exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKey {
    pub key_id: String,
    pub secret: String,
}

impl GeneratedKey {
    pub fn new() -> Result<Self, StoreError> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        getrandom::fill(&mut id).and_then(|()| getrandom::fill(&mut secret)).map_err(|e| StoreError::new("generate API key", e))?;
        Ok(Self { key_id: hex::encode(id), secret: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret) })
    }

    /// `vwk_<keyId>_<secret>`.
    pub fn text(&self) -> String {
        format!("{KEY_MARKER}{}_{}", self.key_id, self.secret)
    }
}

/// Splits a presented key into (key id, secret); `None` if it is not shaped like one.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(KEY_MARKER)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == 43 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// Hashes and checks secrets with the server-side pepper.
#[derive(Clone)]
pub struct KeyHasher {
    pepper: Vec<u8>,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(..)")
    }
}

impl KeyHasher {
    pub fn new(pepper: impl Into<Vec<u8>>) -> Self {
        Self { pepper: pepper.into() }
    }

    fn mac(&self, secret: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.pepper).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(secret.as_bytes());
        mac
    }

    pub fn hash(&self, secret: &str) -> String {
        hex::encode(self.mac(secret).finalize().into_bytes())
    }

    /// Constant-time comparison with a stored hash.
    pub fn verify(&self, secret: &str, stored_hex: &str) -> bool {
        match hex::decode(stored_hex) {
            Ok(stored) => self.mac(secret).verify_slice(&stored).is_ok(),
            Err(_) => false,
        }
    }
}

/// Where keys are kept.
pub trait ApiKeyStore: Send + Sync {
    /// Records a new key; false if its id is taken.
    fn create(&self, key: &ApiKey) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn get(&self, key_id: &str) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;
    /// A device's keys, newest first.
    fn list_for_device(&self, thing_name: &str) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;
    /// Revokes a key of this device; the key as it is now, or `None` if the device has no such key.
    fn revoke(&self, thing_name: &str, key_id: &str, at: &str) -> impl Future<Output = Result<Option<ApiKey>, StoreError>> + Send;
    /// Counts one request in the key's current UTC minute (atomically, so concurrent requests
    /// are all counted) and returns the minute's count so far.
    fn count_in_minute(&self, key_id: &str, at: DateTime<Utc>) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Records a use: last-used time and the day's count.
    fn record_use(&self, key_id: &str, at: DateTime<Utc>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Uses per UTC day (`YYYY-MM-DD`), most recent first.
    fn daily_counts(&self, key_id: &str) -> impl Future<Output = Result<Vec<(String, u64)>, StoreError>> + Send;
}

/// Why a presented key was refused (all answered 401).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("the API key is malformed")]
    Malformed,
    #[error("the API key is unknown")]
    Unknown,
    /// The caller holds the key (its secret verified), but it has expired.
    #[error("the API key has expired")]
    Expired(Box<ApiKey>),
    /// The caller holds the key (its secret verified), but it was revoked.
    #[error("the API key has been revoked")]
    Revoked(Box<ApiKey>),
}

impl KeyRefusal {
    /// The key, when the caller proved to hold it.
    pub fn known_key(&self) -> Option<&ApiKey> {
        match self {
            KeyRefusal::Expired(k) | KeyRefusal::Revoked(k) => Some(k),
            KeyRefusal::Malformed | KeyRefusal::Unknown => None,
        }
    }
}

/// Checks a presented key: shape, record, secret (constant time), revocation, expiry.
pub async fn authenticate<S: ApiKeyStore>(
    token: &str,
    store: &S,
    hasher: &KeyHasher,
    now: DateTime<Utc>,
) -> Result<Result<ApiKey, KeyRefusal>, StoreError> {
    let Some((key_id, secret)) = split(token) else { return Ok(Err(KeyRefusal::Malformed)) };
    let Some(key) = store.get(key_id).await? else { return Ok(Err(KeyRefusal::Unknown)) };
    if !hasher.verify(secret, &key.secret_hash) {
        // A wrong secret for a real id says no more than an unknown id.
        return Ok(Err(KeyRefusal::Unknown));
    }
    if key.revoked_at.is_some() {
        return Ok(Err(KeyRefusal::Revoked(Box::new(key))));
    }
    if key.is_expired(now) {
        return Ok(Err(KeyRefusal::Expired(Box::new(key))));
    }
    Ok(Ok(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_split_back_and_only_their_hash_verifies() {
        let key = GeneratedKey::new().unwrap();
        let text = key.text();
        assert!(text.starts_with("vwk_"));
        assert_eq!(split(&text), Some((key.key_id.as_str(), key.secret.as_str())));
        assert_ne!(GeneratedKey::new().unwrap(), key, "random");
        let hasher = KeyHasher::new(b"pepper-pepper-pepper-pepper-pepper".to_vec());
        let hash = hasher.hash(&key.secret);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&key.secret));
        assert!(hasher.verify(&key.secret, &hash));
        assert!(!hasher.verify(&GeneratedKey::new().unwrap().secret, &hash));
        assert!(!KeyHasher::new(b"another pepper, another hash......".to_vec()).verify(&key.secret, &hash), "the pepper is part of the hash");
        assert!(!hasher.verify(&key.secret, "not hex"));
    }

    #[test]
    fn malformed_keys_are_told_apart() {
        for bad in ["", "vwk_", "vwk_abc_def", "Bearer x", "vwk_0123456789abcdef_short", "eyJhbGciOi.x.y"] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
