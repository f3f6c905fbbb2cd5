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

mod dynamodb;

use std::future::Future;

use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use dynamodb::DynamoApiKeyStore;

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
    /// The metadata an admin may see.
    pub fn to_json(&self) -> serde_json::Value {
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
            "active": self.revoked_at.is_none(),
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

/// The pepper, fetched from Secrets Manager on first use and kept for the life of the process.
pub struct SecretsManagerPepper {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    hasher: tokio::sync::OnceCell<KeyHasher>,
}

impl SecretsManagerPepper {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        Self { client, secret_id: secret_id.into(), hasher: tokio::sync::OnceCell::new() }
    }

    pub async fn hasher(&self) -> Result<&KeyHasher, StoreError> {
        self.hasher
            .get_or_try_init(|| async {
                let out = self
                    .client
                    .get_secret_value()
                    .secret_id(&self.secret_id)
                    .send()
                    .await
                    .map_err(|e| StoreError::new("read the API key pepper", crate::dynamo::describe(&e)))?;
                let pepper = out.secret_string().filter(|s| s.len() >= 32).ok_or_else(|| {
                    StoreError::new("read the API key pepper", "the secret is missing or shorter than 32 characters")
                })?;
                Ok(KeyHasher::new(pepper.as_bytes()))
            })
            .await
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("the API key is malformed")]
    Malformed,
    #[error("the API key is unknown")]
    Unknown,
    #[error("the API key has expired")]
    Expired,
    #[error("the API key has been revoked")]
    Revoked,
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
        return Ok(Err(KeyRefusal::Revoked));
    }
    let expired = key.expires_at.as_deref().and_then(crate::time::parse_with_offset).is_some_and(|at| at <= now);
    if expired {
        return Ok(Err(KeyRefusal::Expired));
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

/// What the key admin routes need.
pub struct ApiKeyAdminDeps<D, S> {
    pub devices: D,
    pub keys: S,
    pub pepper: SecretsManagerPepper,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyRequest {
    name: String,
    #[serde(default)]
    permissions: Option<Vec<String>>,
    #[serde(default)]
    expires_in_days: Option<u32>,
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
}

mod routes {
    use chrono::Utc;
    use lambda_http::{Body, Request, Response};
    use serde_json::json;

    use super::*;
    use crate::api::{json_body, path_param, require, respond, ApiError};
    use crate::auth::Role;
    use crate::devices::DeviceRegistry;
    use crate::time::format_utc;

    async fn device_exists<D: DeviceRegistry>(devices: &D, thing: &str) -> Result<(), ApiError> {
        match devices.get(thing).await? {
            Some(_) => Ok(()),
            None => Err(ApiError::NotFound(format!("no device {thing}"))),
        }
    }

    /// `POST /admin/devices/{thingName}/api-keys` with `{name, permissions?, expiresInDays?,
    /// rateLimitPerMinute?}`: 201 with the key (`apiKey`), shown this once.
    pub async fn create<D: DeviceRegistry, S: ApiKeyStore>(request: Request, deps: &ApiKeyAdminDeps<D, S>) -> Response<Body> {
        respond(async {
            require(&request, &[Role::Admin])?;
            let thing = path_param(&request, "thingName")?;
            let r: KeyRequest = json_body(&request)?;
            let name = r.name.trim();
            if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
                return Err(ApiError::bad("name", "must be 1 to 128 printable characters"));
            }
            let permissions = match r.permissions {
                None => Permission::ALL.to_vec(),
                Some(list) if list.is_empty() => return Err(ApiError::bad("permissions", "must name at least one permission")),
                Some(list) => {
                    let mut out = Vec::new();
                    for p in &list {
                        let p = Permission::parse(p)
                            .ok_or_else(|| ApiError::bad("permissions", format!("{p} is not write_vitals or read_status")))?;
                        if !out.contains(&p) {
                            out.push(p);
                        }
                    }
                    out
                }
            };
            if r.expires_in_days.is_some_and(|d| !(1..=3650).contains(&d)) {
                return Err(ApiError::bad("expiresInDays", "must be from 1 to 3650"));
            }
            let rate = r.rate_limit_per_minute.unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE);
            if !(1..=10_000).contains(&rate) {
                return Err(ApiError::bad("rateLimitPerMinute", "must be from 1 to 10000"));
            }
            device_exists(&deps.devices, &thing).await?;
            let hasher = deps.pepper.hasher().await?;
            let generated = GeneratedKey::new()?;
            let now = Utc::now();
            let key = ApiKey {
                key_id: generated.key_id.clone(),
                thing_name: thing.clone(),
                name: name.to_owned(),
                secret_hash: hasher.hash(&generated.secret),
                permissions,
                rate_limit_per_minute: rate,
                created_at: format_utc(now),
                expires_at: r.expires_in_days.map(|d| format_utc(now + chrono::Duration::days(i64::from(d)))),
                revoked_at: None,
                last_used_at: None,
            };
            if !deps.keys.create(&key).await? {
                return Err(ApiError::Conflict("a key with this id exists; try again".into()));
            }
            tracing::info!(thing_name = %thing, key_id = %key.key_id, "API key created");
            let mut body = key.to_json();
            body["apiKey"] = json!(generated.text());
            body["notice"] = json!("Store this key now: it is shown only once.");
            Ok((201, body))
        }
        .await)
    }

    /// `GET /admin/devices/{thingName}/api-keys`: the device's keys (metadata and daily use).
    pub async fn list<D: DeviceRegistry, S: ApiKeyStore>(request: Request, deps: &ApiKeyAdminDeps<D, S>) -> Response<Body> {
        respond(async {
            require(&request, &[Role::Admin])?;
            let thing = path_param(&request, "thingName")?;
            device_exists(&deps.devices, &thing).await?;
            let mut keys = Vec::new();
            for key in deps.keys.list_for_device(&thing).await? {
                let mut body = key.to_json();
                let daily: Vec<_> = deps.keys.daily_counts(&key.key_id).await?.into_iter().map(|(day, n)| json!({"day": day, "requests": n})).collect();
                body["dailyUse"] = json!(daily);
                keys.push(body);
            }
            Ok((200, json!({"apiKeys": keys})))
        }
        .await)
    }

    /// `DELETE /admin/devices/{thingName}/api-keys/{keyId}`: revokes the key (at once for new
    /// requests; within the authorizer cache TTL for a caller that used it just before).
    pub async fn revoke<D: DeviceRegistry, S: ApiKeyStore>(request: Request, deps: &ApiKeyAdminDeps<D, S>) -> Response<Body> {
        respond(async {
            require(&request, &[Role::Admin])?;
            let thing = path_param(&request, "thingName")?;
            let key_id = path_param(&request, "keyId")?;
            let key = deps
                .keys
                .revoke(&thing, &key_id, &format_utc(Utc::now()))
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("device {thing} has no key {key_id}")))?;
            tracing::info!(thing_name = %thing, key_id = %key_id, "API key revoked");
            Ok((200, key.to_json()))
        }
        .await)
    }
}

pub use routes::{create, list, revoke};

/// The AWS-backed dependencies of the key admin routes, from the function's environment.
pub async fn aws_admin_deps(
) -> Result<ApiKeyAdminDeps<crate::devices::DynamoDeviceRegistry, DynamoApiKeyStore>, crate::tables::MissingSetting> {
    let config = crate::aws::load_config().await;
    let dynamodb = crate::aws::dynamodb(&config);
    Ok(ApiKeyAdminDeps {
        devices: crate::devices::DynamoDeviceRegistry::new(dynamodb.clone(), crate::tables::DEVICES.name_from_env()?),
        keys: aws_key_store(dynamodb)?,
        pepper: aws_pepper(&config)?,
    })
}

/// The key store over the tables named in the environment.
pub fn aws_key_store(dynamodb: aws_sdk_dynamodb::Client) -> Result<DynamoApiKeyStore, crate::tables::MissingSetting> {
    Ok(DynamoApiKeyStore::new(dynamodb, crate::tables::API_KEYS.name_from_env()?, crate::tables::API_KEY_USAGE.name_from_env()?))
}

/// The pepper of the secret named by `API_KEY_PEPPER_SECRET` (fetched on first use).
pub fn aws_pepper(config: &aws_config::SdkConfig) -> Result<SecretsManagerPepper, crate::tables::MissingSetting> {
    let secret = std::env::var("API_KEY_PEPPER_SECRET").ok().filter(|s| !s.is_empty()).ok_or(crate::tables::MissingSetting("API_KEY_PEPPER_SECRET"))?;
    Ok(SecretsManagerPepper::new(aws_sdk_secretsmanager::Client::new(config), secret))
}
