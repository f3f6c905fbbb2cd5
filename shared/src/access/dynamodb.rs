//! Keys in the `ApiKeysTable` (by `keyId`; index `byThing`), and their use in the
//! `ApiKeyUsageTable` (`keyId`, `window` = `minute#<epoch minute>` or `day#<YYYY-MM-DD>`, with a
//! TTL): atomic `ADD` counters, so concurrent requests are all counted. The vitals API's
//! activity log in the `ActivityTable`.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use super::activity::{Activity, ActivityLog, DEFAULT_RETENTION_DAYS};
use super::audit::{AuditLog, AuditRecord};
use super::api_keys::{ApiKey, ApiKeyStore, Permission, DEFAULT_RATE_LIMIT_PER_MINUTE};
use crate::platform::dynamodb::{is_condition_failed, n, opt_s, opt_u64, conditional_put, expires_in_days, newest_first_page, put, put_opt, req_s, s, Item};
use crate::platform::tables::{ACTIVITY, API_KEYS, API_KEYS_BY_THING, API_KEY_USAGE, AUDIT};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Minute windows are kept ten minutes, day counts about thirteen months.
const MINUTE_WINDOW_TTL_SECONDS: i64 = 600;
const DAY_COUNT_TTL_SECONDS: i64 = 400 * 86_400;

/// [`ApiKeyStore`] and the per-key rate counters over DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoApiKeyStore {
    client: Client,
    keys_table: String,
    usage_table: String,
}

impl FromWiring for DynamoApiKeyStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&API_KEYS)?, w.table(&API_KEY_USAGE)?))
    }
}

impl DynamoApiKeyStore {
    pub fn new(client: Client, keys_table: impl Into<String>, usage_table: impl Into<String>) -> Self {
        Self { client, keys_table: keys_table.into(), usage_table: usage_table.into() }
    }

    async fn add(&self, key_id: &str, window: &str, expires_at: i64) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.usage_table)
            .key("keyId", s(key_id))
            .key("window", s(window))
            .update_expression("ADD #count :one SET expiresAt = if_not_exists(expiresAt, :exp)")
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":exp", n(expires_at))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::sdk("count API key use", &e))?;
        Ok(out.attributes().and_then(|a| opt_u64(a, "count")).unwrap_or(0))
    }
}

fn to_item(k: &ApiKey) -> Item {
    let mut item = Item::from([
        ("keyId".into(), s(&k.key_id)),
        ("thingName".into(), s(&k.thing_name)),
        ("name".into(), s(&k.name)),
        ("secretHash".into(), s(&k.secret_hash)),
        ("permissions".into(), AttributeValue::L(k.permissions.iter().map(|p| s(p.as_str())).collect())),
        ("rateLimitPerMinute".into(), n(k.rate_limit_per_minute)),
        ("createdAt".into(), s(&k.created_at)),
    ]);
    put_opt(&mut item, "expiresAt", k.expires_at.as_deref());
    put_opt(&mut item, "revokedAt", k.revoked_at.as_deref());
    put_opt(&mut item, "lastUsedAt", k.last_used_at.as_deref());
    item
}

fn from_item(item: &Item) -> Result<ApiKey, StoreError> {
    const OP: &str = "read API key";
    Ok(ApiKey {
        key_id: req_s(item, "keyId", OP)?,
        thing_name: req_s(item, "thingName", OP)?,
        name: opt_s(item, "name").unwrap_or_default(),
        secret_hash: req_s(item, "secretHash", OP)?,
        permissions: item
            .get("permissions")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|p| p.as_s().ok().and_then(|p| Permission::parse(p))).collect())
            .unwrap_or_default(),
        rate_limit_per_minute: opt_u64(item, "rateLimitPerMinute")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE),
        created_at: opt_s(item, "createdAt").unwrap_or_default(),
        expires_at: opt_s(item, "expiresAt"),
        revoked_at: opt_s(item, "revokedAt"),
        last_used_at: opt_s(item, "lastUsedAt"),
    })
}

impl ApiKeyStore for DynamoApiKeyStore {
    async fn create(&self, key: &ApiKey) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.keys_table)
            .set_item(Some(to_item(key)))
            .condition_expression("attribute_not_exists(keyId)");
        conditional_put(put, "create API key").await
    }

    async fn get(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.keys_table)
            .key("keyId", s(key_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("read API key", &e))?;
        out.item().map(from_item).transpose()
    }

    async fn list_for_device(&self, thing_name: &str) -> Result<Vec<ApiKey>, StoreError> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.keys_table)
            .index_name(API_KEYS_BY_THING.name)
            .key_condition_expression("thingName = :t")
            .expression_attribute_values(":t", s(thing_name))
            .scan_index_forward(false)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk("list API keys", &e))?;
            for item in page.items() {
                keys.push(from_item(item)?);
            }
        }
        Ok(keys)
    }

    async fn revoke(&self, thing_name: &str, key_id: &str, at: &str) -> Result<Option<ApiKey>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.keys_table)
            .key("keyId", s(key_id))
            // Revoking twice keeps the first time.
            .update_expression("SET revokedAt = if_not_exists(revokedAt, :at)")
            .condition_expression("thingName = :t")
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":t", s(thing_name))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => out.attributes.as_ref().map(from_item).transpose(),
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(StoreError::sdk("revoke API key", &e)),
        }
    }

    async fn count_in_minute(&self, key_id: &str, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let minute = at.timestamp().div_euclid(60);
        self.add(key_id, &format!("minute#{minute}"), (minute + 1) * 60 + MINUTE_WINDOW_TTL_SECONDS).await
    }

    async fn record_use(&self, key_id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.keys_table)
            .key("keyId", s(key_id))
            .update_expression("SET lastUsedAt = :at")
            .condition_expression("attribute_exists(keyId)")
            .expression_attribute_values(":at", s(crate::time::format_utc(at)))
            .send()
            .await
            .map_err(|e| StoreError::sdk("record API key use", &e))?;
        let day = at.format("%Y-%m-%d").to_string();
        self.add(key_id, &format!("day#{day}"), at.timestamp() + DAY_COUNT_TTL_SECONDS).await?;
        Ok(())
    }

    async fn daily_counts(&self, key_id: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.usage_table)
            .key_condition_expression("keyId = :k AND begins_with(#window, :day)")
            .expression_attribute_names("#window", "window")
            .expression_attribute_values(":k", s(key_id))
            .expression_attribute_values(":day", s("day#"))
            .scan_index_forward(false)
            .limit(31)
            .send()
            .await
            .map_err(|e| StoreError::sdk("read API key use", &e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| {
                let day = opt_s(i, "window")?.strip_prefix("day#")?.to_owned();
                let count = opt_u64(i, "count")?;
                Some((day, count))
            })
            .collect())
    }
}

/// [`ActivityLog`] in the `ActivityTable` (`deviceId`, `sortKey` = `<at>#<requestId>`, TTL).
#[derive(Debug, Clone)]
pub struct DynamoActivityLog {
    client: Client,
    table: String,
    retention_days: i64,
}

impl DynamoActivityLog {
    pub fn new(client: Client, table: impl Into<String>, retention_days: i64) -> Self {
        Self { client, table: table.into(), retention_days }
    }
}

impl FromWiring for DynamoActivityLog {
    /// The table and `ACTIVITY_RETENTION_DAYS` (90 unless set).
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&ACTIVITY)?, w.settings.parsed("ACTIVITY_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)?))
    }
}

impl ActivityLog for DynamoActivityLog {
    async fn record(&self, a: &Activity) -> Result<(), StoreError> {
        let mut item = Item::from([
            ("deviceId".into(), s(&a.device_id)),
            ("sortKey".into(), s(format!("{}#{}", a.at, a.request_id))),
            ("requestId".into(), s(&a.request_id)),
            ("at".into(), s(&a.at)),
            ("sourceIp".into(), s(&a.source_ip)),
            ("userAgent".into(), s(a.user_agent.chars().take(512).collect::<String>())),
            ("route".into(), s(&a.route)),
            ("method".into(), s(&a.method)),
            ("status".into(), n(a.status)),
            ("latencyMs".into(), n(a.latency_ms)),
            ("expiresAt".into(), expires_in_days(self.retention_days)),
        ]);
        put_opt(&mut item, "keyId", a.key_id.as_deref());
        put_opt(&mut item, "error", a.error.as_deref());
        put(&self.client, &self.table, item, "record activity").await
    }

    async fn for_device(&self, device_id: &str, limit: i32, after: Option<&str>) -> Result<(Vec<Activity>, Option<String>), StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("deviceId = :d")
            .expression_attribute_values(":d", s(device_id));
        let (items, next) = newest_first_page(query, ("deviceId", device_id), limit, after, "list activity").await?;
        let items = items
            .iter()
            .map(|i| Activity {
                device_id: device_id.to_owned(),
                key_id: opt_s(i, "keyId"),
                request_id: opt_s(i, "requestId").unwrap_or_default(),
                at: opt_s(i, "at").unwrap_or_default(),
                source_ip: opt_s(i, "sourceIp").unwrap_or_default(),
                user_agent: opt_s(i, "userAgent").unwrap_or_default(),
                route: opt_s(i, "route").unwrap_or_default(),
                method: opt_s(i, "method").unwrap_or_default(),
                status: opt_u64(i, "status").and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
                latency_ms: opt_u64(i, "latencyMs").unwrap_or(0),
                error: opt_s(i, "error"),
            })
            .collect();
        Ok((items, next))
    }
}

/// [`AuditLog`] in the `AuditTable` (`patientId`, `sortKey` = `<at>#<requestId>#<subject>`, TTL).
#[derive(Debug, Clone)]
pub struct DynamoAuditLog {
    client: Client,
    table: String,
    retention_days: i64,
}

impl DynamoAuditLog {
    pub fn new(client: Client, table: impl Into<String>, retention_days: i64) -> Self {
        Self { client, table: table.into(), retention_days }
    }
}

impl FromWiring for DynamoAuditLog {
    /// The table and `AUDIT_RETENTION_DAYS` (six years unless set).
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        let days = w.settings.parsed("AUDIT_RETENTION_DAYS", super::audit::DEFAULT_RETENTION_DAYS)?;
        Ok(Self::new(w.aws.dynamodb(), w.table(&AUDIT)?, days))
    }
}

impl AuditLog for DynamoAuditLog {
    async fn record(&self, r: &AuditRecord) -> Result<(), StoreError> {
        let item = Item::from([
            ("patientId".into(), s(&r.patient_id)),
            ("sortKey".into(), s(format!("{}#{}#{}", r.at, r.request_id, r.subject))),
            ("at".into(), s(&r.at)),
            ("requestId".into(), s(&r.request_id)),
            ("subject".into(), s(&r.subject)),
            ("role".into(), s(&r.role)),
            ("method".into(), s(&r.method)),
            ("path".into(), s(&r.path)),
            ("sourceIp".into(), s(&r.source_ip)),
            ("status".into(), n(r.status)),
            ("expiresAt".into(), expires_in_days(self.retention_days)),
        ]);
        put(&self.client, &self.table, item, "record audit").await
    }

    async fn for_patient(&self, patient_id: &str, limit: i32, after: Option<&str>) -> Result<(Vec<AuditRecord>, Option<String>), StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("patientId = :p")
            .expression_attribute_values(":p", s(patient_id));
        let (items, next) = newest_first_page(query, ("patientId", patient_id), limit, after, "list audit records").await?;
        let records = items
            .iter()
            .map(|i| AuditRecord {
                patient_id: patient_id.to_owned(),
                at: opt_s(i, "at").unwrap_or_default(),
                request_id: opt_s(i, "requestId").unwrap_or_default(),
                subject: opt_s(i, "subject").unwrap_or_default(),
                role: opt_s(i, "role").unwrap_or_default(),
                method: opt_s(i, "method").unwrap_or_default(),
                path: opt_s(i, "path").unwrap_or_default(),
                source_ip: opt_s(i, "sourceIp").unwrap_or_default(),
                status: opt_u64(i, "status").and_then(|s| u16::try_from(s).ok()).unwrap_or(0),
            })
            .collect();
        Ok((records, next))
    }
}
