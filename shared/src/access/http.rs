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

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use serde_json::Value;

    use super::*;
    use crate::access::api_keys::{authenticate, split, KeyHasher, KeyRefusal};
    use crate::access::memory::{MemoryActivity, MemoryApiKeys, MemoryAudit};
    use crate::devices::memory::MemoryDevices;
    use crate::devices::{Device, DeviceStatus};
    use crate::platform::testing::{self, answered, ApiRequest};
    use crate::time::parse_with_offset;

    const PEPPER: &[u8] = b"unit-test-pepper-of-32-bytes-or-more";
    const THING: &str = "acme-gw-1";

    type Deps = ApiKeyAdminDeps<MemoryDevices, MemoryApiKeys, KeyHasher>;

    fn deps(status: DeviceStatus) -> Deps {
        let mut device = Device::registered("Acme", "GW-1", "Gateway", "", "2026-11-01T00:00:00.000Z");
        device.status = status;
        assert_eq!(device.thing_name, THING);
        ApiKeyAdminDeps { devices: MemoryDevices::with(vec![device]), keys: MemoryApiKeys::default(), pepper: KeyHasher::new(PEPPER) }
    }

    fn create_request(thing: &str, body: Value) -> ApiRequest {
        ApiRequest::new("POST /admin/devices/{thingName}/api-keys").path("thingName", thing).json(body).caller(testing::admin())
    }

    async fn device_status(deps: &Deps) -> DeviceStatus {
        deps.devices.get(THING).await.unwrap().unwrap().status
    }

    /// A key record of `THING`, stored directly.
    async fn stored(keys: &MemoryApiKeys, key_id: &str, created_at: &str, expires_at: Option<&str>, revoked_at: Option<&str>) {
        let key = ApiKey {
            key_id: key_id.into(),
            thing_name: THING.into(),
            name: key_id.into(),
            secret_hash: KeyHasher::new(PEPPER).hash("not used"),
            permissions: vec![Permission::WriteVitals],
            rate_limit_per_minute: 60,
            created_at: created_at.into(),
            expires_at: expires_at.map(Into::into),
            revoked_at: revoked_at.map(Into::into),
            last_used_at: None,
        };
        assert!(keys.create(&key).await.unwrap());
    }

    #[tokio::test]
    async fn a_new_key_is_shown_once_works_and_activates_a_registered_device() {
        let deps = deps(DeviceStatus::Registered);
        let body = json!({"name": " gateway ", "permissions": ["write_vitals"], "expiresInDays": 30, "rateLimitPerMinute": 120});
        let answer = answered(create(create_request(THING, body).build(), &deps).await);
        assert_eq!(answer.status, 201, "{}", answer.body);
        let text = answer.body["apiKey"].as_str().unwrap();
        let (key_id, secret) = split(text).unwrap();
        assert_eq!(answer.body["keyId"], json!(key_id));
        assert_eq!((answer.body["name"].as_str(), answer.body["active"].as_bool()), (Some("gateway"), Some(true)));
        assert_eq!(answer.body["permissions"], json!(["write_vitals"]));
        let created = parse_with_offset(answer.body["createdAt"].as_str().unwrap()).unwrap();
        let expires = parse_with_offset(answer.body["expiresAt"].as_str().unwrap()).unwrap();
        assert_eq!(expires - created, Duration::days(30));

        let kept = deps.keys.get(key_id).await.unwrap().unwrap();
        assert_ne!(kept.secret_hash, secret, "only the hash is kept");
        assert_eq!((kept.thing_name.as_str(), kept.rate_limit_per_minute), (THING, 120));
        assert_eq!(device_status(&deps).await, DeviceStatus::Active, "a key is the device's credential");
        let authenticated = authenticate(text, &deps.keys, &deps.pepper, Utc::now()).await.unwrap().unwrap();
        assert_eq!(authenticated.key_id, key_id);

        let listed = answered(
            list(ApiRequest::new("GET /admin/devices/{thingName}/api-keys").path("thingName", THING).caller(testing::admin()).build(), &deps).await,
        );
        assert_eq!(listed.status, 200);
        assert!(!listed.body.to_string().contains(secret), "the secret is never shown again");
    }

    #[tokio::test]
    async fn a_key_for_a_deactivated_device_leaves_it_as_it_is() {
        for status in [DeviceStatus::Inactive, DeviceStatus::Blocked, DeviceStatus::Active] {
            let deps = deps(status);
            let answer = answered(create(create_request(THING, json!({"name": "gateway"})).build(), &deps).await);
            assert_eq!(answer.status, 201);
            assert_eq!(answer.body["permissions"], json!(["write_vitals", "read_status"]), "both unless told");
            assert_eq!(answer.body["rateLimitPerMinute"], json!(DEFAULT_RATE_LIMIT_PER_MINUTE));
            assert_eq!(answer.body["expiresAt"], Value::Null);
            assert_eq!(device_status(&deps).await, status);
        }
    }

    #[tokio::test]
    async fn a_bad_key_request_names_its_field_and_changes_nothing() {
        let deps = deps(DeviceStatus::Registered);
        let cases = [
            (json!({"name": "  "}), "name"),
            (json!({"name": "x".repeat(129)}), "name"),
            (json!({"name": "tab\there"}), "name"),
            (json!({"name": "g", "permissions": []}), "permissions"),
            (json!({"name": "g", "permissions": ["write_vitals", "delete_everything"]}), "permissions"),
            (json!({"name": "g", "expiresInDays": 0}), "expiresInDays"),
            (json!({"name": "g", "expiresInDays": 3651}), "expiresInDays"),
            (json!({"name": "g", "rateLimitPerMinute": 0}), "rateLimitPerMinute"),
            (json!({"name": "g", "rateLimitPerMinute": 10_001}), "rateLimitPerMinute"),
            (json!({"name": "g", "owner": "me"}), "body"),
            (json!({}), "body"),
        ];
        for (body, field) in cases {
            let answer = answered(create(create_request(THING, body.clone()).build(), &deps).await);
            assert_eq!((answer.status, answer.error_code(), answer.error_field()), (400, Some("BAD_REQUEST"), Some(field)), "{body}");
        }
        let no_body = ApiRequest::new("POST /admin/devices/{thingName}/api-keys").path("thingName", THING).caller(testing::admin());
        assert_eq!(answered(create(no_body.build(), &deps).await).error_field(), Some("body"));
        let unknown = answered(create(create_request("acme-gw-9", json!({"name": "g"})).build(), &deps).await);
        assert_eq!((unknown.status, unknown.error_code()), (404, Some("NOT_FOUND")));
        assert!(deps.keys.list_for_device(THING).await.unwrap().is_empty());
        assert_eq!(device_status(&deps).await, DeviceStatus::Registered);
    }

    #[tokio::test]
    async fn the_list_says_which_keys_still_work_and_how_much_each_was_used() {
        let deps = deps(DeviceStatus::Active);
        let past = format_utc(Utc::now() - Duration::hours(1));
        let future = format_utc(Utc::now() + Duration::days(1));
        stored(&deps.keys, "0000000000000001", "2026-11-01T00:00:00.000Z", Some(&future), None).await;
        stored(&deps.keys, "0000000000000002", "2026-11-02T00:00:00.000Z", Some(&past), None).await;
        stored(&deps.keys, "0000000000000003", "2026-11-03T00:00:00.000Z", None, Some(&past)).await;
        let used_at = Utc::now();
        for _ in 0..2 {
            deps.keys.record_use("0000000000000001", used_at).await.unwrap();
        }
        let request = ApiRequest::new("GET /admin/devices/{thingName}/api-keys").path("thingName", THING).caller(testing::admin());
        let answer = answered(list(request.build(), &deps).await);
        assert_eq!(answer.status, 200);
        let keys = answer.body["apiKeys"].as_array().unwrap();
        let ids: Vec<_> = keys.iter().map(|k| k["keyId"].as_str().unwrap()).collect();
        assert_eq!(ids, ["0000000000000003", "0000000000000002", "0000000000000001"], "newest first");
        let active: Vec<_> = keys.iter().map(|k| k["active"].as_bool().unwrap()).collect();
        assert_eq!(active, [false, false, true], "revoked, expired, valid");
        assert_eq!(keys[2]["dailyUse"], json!([{"day": used_at.format("%Y-%m-%d").to_string(), "requests": 2}]));
        assert_eq!(keys[0]["dailyUse"], json!([]));
        let unknown = ApiRequest::new("GET /admin/devices/{thingName}/api-keys").path("thingName", "acme-gw-9").caller(testing::admin());
        assert_eq!(answered(list(unknown.build(), &deps).await).status, 404);
    }

    #[tokio::test]
    async fn a_key_is_revoked_only_through_its_device_and_keeps_its_first_revocation() {
        let deps = deps(DeviceStatus::Active);
        let answer = answered(create(create_request(THING, json!({"name": "gateway"})).build(), &deps).await);
        let text = answer.body["apiKey"].as_str().unwrap().to_owned();
        let key_id = answer.body["keyId"].as_str().unwrap().to_owned();
        let revoke_request = |thing: &str| {
            ApiRequest::new("DELETE /admin/devices/{thingName}/api-keys/{keyId}")
                .path("thingName", thing)
                .path("keyId", &key_id)
                .caller(testing::admin())
        };
        let other_device = answered(revoke(revoke_request("acme-gw-2").build(), &deps).await);
        assert_eq!((other_device.status, other_device.error_code()), (404, Some("NOT_FOUND")));
        assert!(authenticate(&text, &deps.keys, &deps.pepper, Utc::now()).await.unwrap().is_ok(), "still works");

        let revoked = answered(revoke(revoke_request(THING).build(), &deps).await);
        assert_eq!(revoked.status, 200);
        assert_eq!(revoked.body["active"], json!(false));
        let first = revoked.body["revokedAt"].as_str().unwrap().to_owned();
        let refused = authenticate(&text, &deps.keys, &deps.pepper, Utc::now()).await.unwrap().unwrap_err();
        assert!(matches!(refused, KeyRefusal::Revoked(_)), "{refused:?}");

        // Revoked again later: the first time stays.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let again = answered(revoke(revoke_request(THING).build(), &deps).await);
        assert_eq!((again.status, again.body["revokedAt"].as_str()), (200, Some(first.as_str())));
        let missing =
            ApiRequest::new("DELETE /admin/devices/{thingName}/api-keys/{keyId}").path("thingName", THING).path("keyId", "ffffffffffffffff");
        assert_eq!(answered(revoke(missing.caller(testing::admin()).build(), &deps).await).status, 404);
    }

    #[tokio::test]
    async fn only_admins_manage_keys_and_read_the_logs() {
        let deps = deps(DeviceStatus::Registered);
        let activity_log = MemoryActivity::default();
        let audit_log = MemoryAudit::default();
        let callers = [
            (testing::clinician(), 403, "FORBIDDEN"),
            (testing::patient("pat-1"), 403, "FORBIDDEN"),
            (testing::device_key(THING, "0000000000000001", &Permission::ALL, 60), 403, "FORBIDDEN"),
            (testing::refused_token("the token has expired"), 401, "UNAUTHENTICATED"),
            (json!({}), 401, "UNAUTHENTICATED"),
        ];
        for (caller, status, code) in callers {
            let key_route = |route: &str| ApiRequest::new(route).path("thingName", THING).caller(caller.clone());
            let answers = [
                answered(create(key_route("POST /admin/devices/{thingName}/api-keys").json(json!({"name": "g"})).build(), &deps).await),
                answered(list(key_route("GET /admin/devices/{thingName}/api-keys").build(), &deps).await),
                answered(
                    revoke(key_route("DELETE /admin/devices/{thingName}/api-keys/{keyId}").path("keyId", "0000000000000001").build(), &deps).await,
                ),
                answered(activity(key_route("GET /admin/devices/{thingName}/activity").build(), &activity_log).await),
                answered(
                    patient_audit(
                        ApiRequest::new("GET /admin/patients/{patientId}/audit").path("patientId", "pat-1").caller(caller.clone()).build(),
                        &audit_log,
                    )
                    .await,
                ),
            ];
            for answer in answers {
                assert_eq!((answer.status, answer.error_code()), (status, Some(code)), "{caller}: {}", answer.body);
            }
        }
        let expired = ApiRequest::new("GET /admin/devices/{thingName}/api-keys")
            .path("thingName", THING)
            .caller(testing::refused_token("the token has expired"));
        assert_eq!(
            answered(list(expired.build(), &deps).await).body["error"]["message"],
            json!("the token has expired"),
            "the reason reaches the caller"
        );
        assert!(deps.keys.list_for_device(THING).await.unwrap().is_empty());
        assert_eq!(device_status(&deps).await, DeviceStatus::Registered);
    }

    fn activity_at(device: &str, at: &str, request_id: &str) -> Activity {
        Activity {
            device_id: device.into(),
            key_id: Some("0000000000000001".into()),
            request_id: request_id.into(),
            at: at.into(),
            source_ip: testing::SOURCE_IP.into(),
            user_agent: testing::USER_AGENT.into(),
            route: "/api/iot/vitals".into(),
            method: "POST".into(),
            status: 201,
            latency_ms: 12,
            error: None,
        }
    }

    #[tokio::test]
    async fn a_devices_activity_pages_newest_first() {
        let log = MemoryActivity::default();
        for (device, at, id) in [
            (THING, "2026-11-22T10:00:00.000Z", "r1"),
            (THING, "2026-11-22T10:02:00.000Z", "r3"),
            ("acme-gw-2", "2026-11-22T10:03:00.000Z", "r4"),
            (THING, "2026-11-22T10:01:00.000Z", "r2"),
        ] {
            log.record(&activity_at(device, at, id)).await.unwrap();
        }
        let page = |next: Option<&str>| {
            let request = ApiRequest::new("GET /admin/devices/{thingName}/activity").path("thingName", THING).query("limit", "2");
            let request = match next {
                Some(n) => request.query("next", n),
                None => request,
            };
            request.caller(testing::admin()).build()
        };
        let ids = |answer: &testing::Answered| -> Vec<String> {
            answer.body["activity"].as_array().unwrap().iter().map(|a| a["requestId"].as_str().unwrap().to_owned()).collect()
        };
        let first = answered(activity(page(None), &log).await);
        assert_eq!((first.status, ids(&first)), (200, vec!["r3".to_owned(), "r2".to_owned()]));
        assert_eq!(first.body["activity"][0], activity_at(THING, "2026-11-22T10:02:00.000Z", "r3").to_json());
        let next = first.body["next"].as_str().unwrap().to_owned();
        let second = answered(activity(page(Some(&next)), &log).await);
        assert_eq!(ids(&second), vec!["r1".to_owned()], "the other device's request is not listed");
        assert_eq!(second.body["next"], Value::Null);
        let too_many = ApiRequest::new("GET /admin/devices/{thingName}/activity").path("thingName", THING).query("limit", "201");
        assert_eq!(answered(activity(too_many.caller(testing::admin()).build(), &log).await).error_field(), Some("limit"));
    }

    fn audit_at(patient: &str, at: &str, subject: &str) -> AuditRecord {
        AuditRecord {
            patient_id: patient.into(),
            at: at.into(),
            request_id: format!("req-{at}"),
            subject: subject.into(),
            role: "clinician".into(),
            method: "GET".into(),
            path: format!("/patients/{patient}/alerts"),
            source_ip: testing::SOURCE_IP.into(),
            status: 200,
        }
    }

    #[tokio::test]
    async fn a_patients_audit_pages_newest_first() {
        let log = MemoryAudit::default();
        for (patient, at) in [
            ("pat-1", "2026-11-22T10:00:00.000Z"),
            ("pat-1", "2026-11-22T10:05:00.000Z"),
            ("pat-2", "2026-11-22T10:06:00.000Z"),
            ("pat-1", "2026-11-22T10:03:00.000Z"),
        ] {
            log.record(&audit_at(patient, at, "clinician-sub")).await.unwrap();
        }
        let page = |next: Option<&str>| {
            let request = ApiRequest::new("GET /admin/patients/{patientId}/audit").path("patientId", "pat-1").query("limit", "2");
            match next {
                Some(n) => request.query("next", n),
                None => request,
            }
            .caller(testing::admin())
            .build()
        };
        let times = |answer: &testing::Answered| -> Vec<String> {
            answer.body["audit"].as_array().unwrap().iter().map(|r| r["at"].as_str().unwrap().to_owned()).collect()
        };
        let first = answered(patient_audit(page(None), &log).await);
        assert_eq!(first.status, 200);
        assert_eq!(times(&first), ["2026-11-22T10:05:00.000Z", "2026-11-22T10:03:00.000Z"]);
        assert_eq!(first.body["audit"][0], audit_at("pat-1", "2026-11-22T10:05:00.000Z", "clinician-sub").to_json());
        let second = answered(patient_audit(page(first.body["next"].as_str()), &log).await);
        assert_eq!(times(&second), ["2026-11-22T10:00:00.000Z"], "pat-2's record is not listed");
        assert_eq!(second.body["next"], Value::Null);
    }
}
