//! The activity log of the vitals REST API: one record per request (device, key, source IP,
//! user agent, route, method, status, latency, error), kept `ACTIVITY_RETENTION_DAYS` (90 by
//! default) by a DynamoDB TTL, listed per device newest first by an admin route.

use std::future::Future;

use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Request, Response};
use serde_json::{json, Value};

use crate::api::{limit_param, path_param, query_param, require, respond};
use crate::auth::Role;
use crate::dynamo::{describe, opt_s, put_opt, s, Item};
use crate::StoreError;

/// Days a record is kept unless `ACTIVITY_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_DAYS: i64 = 90;

/// The partition of requests that named no valid key (so no device).
pub const UNAUTHENTICATED: &str = "-unauthenticated";

/// One request.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// The key's device, or [`UNAUTHENTICATED`].
    pub device_id: String,
    pub key_id: Option<String>,
    pub request_id: String,
    pub at: String,
    pub source_ip: String,
    pub user_agent: String,
    pub route: String,
    pub method: String,
    pub status: u16,
    pub latency_ms: u64,
    pub error: Option<String>,
}

impl Activity {
    pub fn to_json(&self) -> Value {
        json!({
            "deviceId": self.device_id, "keyId": self.key_id, "requestId": self.request_id, "at": self.at,
            "sourceIp": self.source_ip, "userAgent": self.user_agent, "route": self.route, "method": self.method,
            "status": self.status, "latencyMs": self.latency_ms, "error": self.error,
        })
    }
}

/// Where activity is kept.
pub trait ActivityLog: Send + Sync {
    fn record(&self, activity: &Activity) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A device's activity, newest first, after the cursor; and the next cursor.
    fn for_device(
        &self,
        device_id: &str,
        limit: i32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<(Vec<Activity>, Option<String>), StoreError>> + Send;
}

/// [`ActivityLog`] in the `ActivityTable` (`deviceId`, `sortKey` = `<at>#<requestId>`, TTL).
#[derive(Debug, Clone)]
pub struct DynamoActivityLog {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
    pub retention_days: i64,
}

fn n(item: &Item, name: &str) -> u64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl ActivityLog for DynamoActivityLog {
    async fn record(&self, a: &Activity) -> Result<(), StoreError> {
        let expires = chrono::Utc::now().timestamp() + self.retention_days * 86_400;
        let mut item = Item::from([
            ("deviceId".into(), s(&a.device_id)),
            ("sortKey".into(), s(format!("{}#{}", a.at, a.request_id))),
            ("requestId".into(), s(&a.request_id)),
            ("at".into(), s(&a.at)),
            ("sourceIp".into(), s(&a.source_ip)),
            ("userAgent".into(), s(a.user_agent.chars().take(512).collect::<String>())),
            ("route".into(), s(&a.route)),
            ("method".into(), s(&a.method)),
            ("status".into(), AttributeValue::N(a.status.to_string())),
            ("latencyMs".into(), AttributeValue::N(a.latency_ms.to_string())),
            ("expiresAt".into(), AttributeValue::N(expires.to_string())),
        ]);
        put_opt(&mut item, "keyId", a.key_id.as_deref());
        put_opt(&mut item, "error", a.error.as_deref());
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| StoreError::new("record activity", describe(&e)))?;
        Ok(())
    }

    async fn for_device(&self, device_id: &str, limit: i32, after: Option<&str>) -> Result<(Vec<Activity>, Option<String>), StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("deviceId = :d")
            .expression_attribute_values(":d", s(device_id))
            .scan_index_forward(false)
            .limit(limit);
        if let Some(after) = after {
            query = query.exclusive_start_key("deviceId", s(device_id)).exclusive_start_key("sortKey", s(after));
        }
        let out = query.send().await.map_err(|e| StoreError::new("list activity", describe(&e)))?;
        let items = out
            .items()
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
                status: u16::try_from(n(i, "status")).unwrap_or(0),
                latency_ms: n(i, "latencyMs"),
                error: opt_s(i, "error"),
            })
            .collect();
        let next = out.last_evaluated_key().and_then(|k| k.get("sortKey")).and_then(|v| v.as_s().ok()).cloned();
        Ok((items, next))
    }
}

/// `GET /admin/devices/{thingName}/activity?limit=&next=`: the device's API requests, newest first.
pub async fn list<A: ActivityLog>(request: Request, log: &A) -> Response<Body> {
    respond(async {
        require(&request, &[Role::Admin])?;
        let thing = path_param(&request, "thingName")?;
        let limit = limit_param(&request, 50, 200)?;
        let (items, next) = log.for_device(&thing, limit, query_param(&request, "next").as_deref()).await?;
        Ok((200, json!({"activity": items.iter().map(Activity::to_json).collect::<Vec<_>>(), "next": next})))
    }
    .await)
}

/// The activity log of the function's environment.
pub fn aws_log(dynamodb: aws_sdk_dynamodb::Client) -> Result<DynamoActivityLog, crate::tables::MissingSetting> {
    let retention_days = std::env::var("ACTIVITY_RETENTION_DAYS").ok().and_then(|d| d.parse().ok()).unwrap_or(DEFAULT_RETENTION_DAYS);
    Ok(DynamoActivityLog { client: dynamodb, table: crate::tables::ACTIVITY.name_from_env()?, retention_days })
}
