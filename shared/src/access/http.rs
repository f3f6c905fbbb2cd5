//! Admin routes of the access domain (role `admin`):
//!
//! | route | function |
//! |---|---|
//! | `POST /admin/devices/{thingName}/api-keys` | `admin-api-keys-create` |
//! | `GET /admin/devices/{thingName}/api-keys` | `admin-api-keys-list` |
//! | `DELETE /admin/devices/{thingName}/api-keys/{keyId}` | `admin-api-keys-revoke` |
//! | `GET /admin/devices/{thingName}/activity` | `admin-devices-activity` |
//! | `GET /admin/patients/{patientId}/audit` | `admin-patient-audit` |

use chrono::Utc;
use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use super::activity::{Activity, ActivityLog};
use super::audit::{AuditLog, AuditRecord};
use super::api_keys::{ApiKey, ApiKeyStore, GeneratedKey, Permission, DEFAULT_RATE_LIMIT_PER_MINUTE};
use super::secrets::PepperSource;
use super::{require, Role};
use crate::devices::DeviceRegistry;
use crate::platform::http::{json_body, limit_param, path_param, query_param, ApiError, Reply};
use crate::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};

/// What the key admin routes need.
pub struct ApiKeyAdminDeps<D, S, P> {
    pub devices: D,
    pub keys: S,
    pub pepper: P,
}

impl<D: FromWiring, S: FromWiring, P: FromWiring> FromWiring for ApiKeyAdminDeps<D, S, P> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { devices: w.build()?, keys: w.build()?, pepper: w.build()? })
    }
}

#[derive(Deserialize)]
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

async fn device_exists<D: DeviceRegistry>(devices: &D, thing: &str) -> Result<(), ApiError> {
    match devices.get(thing).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("no device {thing}"))),
    }
}

fn permissions(requested: Option<Vec<String>>) -> Result<Vec<Permission>, ApiError> {
    match requested {
        None => Ok(Permission::ALL.to_vec()),
        Some(list) if list.is_empty() => Err(ApiError::bad("permissions", "must name at least one permission")),
        Some(list) => {
            let mut out = Vec::new();
            for p in &list {
                let p = Permission::parse(p).ok_or_else(|| ApiError::bad("permissions", format!("{p} is not write_vitals or read_status")))?;
                if !out.contains(&p) {
                    out.push(p);
                }
            }
            Ok(out)
        }
    }
}

/// `POST /admin/devices/{thingName}/api-keys` with `{name, permissions?, expiresInDays?,
/// rateLimitPerMinute?}`: 201 with the key (`apiKey`), shown this once. A REGISTERED device
/// becomes ACTIVE (a key is its credential); a deactivated one stays as it is.
pub async fn create<D: DeviceRegistry, S: ApiKeyStore, P: PepperSource>(request: Request, deps: &ApiKeyAdminDeps<D, S, P>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let thing = path_param(&request, "thingName")?;
    let r: KeyRequest = json_body(&request)?;
    let name = r.name.trim();
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(ApiError::bad("name", "must be 1 to 128 printable characters"));
    }
    let permissions = permissions(r.permissions)?;
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
    // A key is the device's credential, as a certificate is: a REGISTERED device now may send.
    // Activated first, so that a failure leaves no key whose secret nobody was shown.
    deps.devices.activate_registered(&thing, &key.created_at).await?;
    if !deps.keys.create(&key).await? {
        return Err(ApiError::Conflict("a key with this id exists; try again".into()));
    }
    tracing::info!(thing_name = %thing, key_id = %key.key_id, "API key created");
    let mut body = key.to_json(now);
    body["apiKey"] = json!(generated.text());
    body["notice"] = json!("Store this key now: it is shown only once.");
    Ok((201, body))
}

/// `GET /admin/devices/{thingName}/api-keys`: the device's keys (metadata and daily use).
pub async fn list<D: DeviceRegistry, S: ApiKeyStore, P>(request: Request, deps: &ApiKeyAdminDeps<D, S, P>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let thing = path_param(&request, "thingName")?;
    device_exists(&deps.devices, &thing).await?;
    let now = Utc::now();
    let mut keys = Vec::new();
    for key in deps.keys.list_for_device(&thing).await? {
        let mut body = key.to_json(now);
        let daily: Vec<_> =
            deps.keys.daily_counts(&key.key_id).await?.into_iter().map(|(day, n)| json!({"day": day, "requests": n})).collect();
        body["dailyUse"] = json!(daily);
        keys.push(body);
    }
    Ok((200, json!({"apiKeys": keys})))
}

/// `DELETE /admin/devices/{thingName}/api-keys/{keyId}`: revokes the key (at once for new
/// requests; within the authorizer cache TTL for a caller that used it just before).
pub async fn revoke<D, S: ApiKeyStore, P>(request: Request, deps: &ApiKeyAdminDeps<D, S, P>) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let thing = path_param(&request, "thingName")?;
    let key_id = path_param(&request, "keyId")?;
    let key = deps
        .keys
        .revoke(&thing, &key_id, &format_utc(Utc::now()))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {thing} has no key {key_id}")))?;
    tracing::info!(thing_name = %thing, key_id = %key_id, "API key revoked");
    Ok((200, key.to_json(Utc::now())))
}

/// `GET /admin/devices/{thingName}/activity?limit=&next=`: the device's API requests, newest first.
pub async fn activity<A: ActivityLog>(request: Request, log: &A) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let thing = path_param(&request, "thingName")?;
    let limit = limit_param(&request, 50, 200)?;
    let (items, next) = log.for_device(&thing, limit, query_param(&request, "next").as_deref()).await?;
    Ok((200, json!({"activity": items.iter().map(Activity::to_json).collect::<Vec<_>>(), "next": next})))
}

/// `GET /admin/patients/{patientId}/audit?limit=&next=`: who read the patient's data (and who
/// tried to and was refused), newest first.
pub async fn patient_audit<L: AuditLog>(request: Request, log: &L) -> Result<Reply, ApiError> {
    require(&request, &[Role::Admin])?;
    let patient = path_param(&request, "patientId")?;
    let limit = limit_param(&request, 50, 200)?;
    let (records, next) = log.for_patient(&patient, limit, query_param(&request, "next").as_deref()).await?;
    Ok((200, json!({"audit": records.iter().map(AuditRecord::to_json).collect::<Vec<_>>(), "next": next})))
}
