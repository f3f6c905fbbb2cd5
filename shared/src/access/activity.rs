//! The activity log of the vitals REST API: one record per request (device, key, source IP,
//! user agent, route, method, status, latency, error), kept `ACTIVITY_RETENTION_DAYS` (90 by
//! default) by a DynamoDB TTL, listed per device newest first by an admin route.

use std::future::Future;

use serde_json::{json, Value};

use crate::StoreError;

/// Days a record is kept unless `ACTIVITY_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_DAYS: i64 = 90;

/// One request.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// The key's device.
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
