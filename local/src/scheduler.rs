//! Scheduled functions on a controllable clock. AWS runs each `Schedule` event of the template
//! (the alert sweep: `rate(1 minute)`); locally each runs every `tick` of real time (2 s by
//! default, so a developer sees a new alert's messages at once) and whenever the clock is moved:
//!
//! - `GET /local/clock`: the platform's time;
//! - `POST /local/clock` `{"advanceMinutes": 15}`: moves it forward (every function built by the
//!   local platform goes by it), then runs every scheduled function once and answers what each
//!   said, so a deadline passes without waiting for it;
//! - `GET /local/outbox`: every SMS and email the alert flow sent (to moto's SNS and SES) or
//!   held, newest first, with its status and the provider's message id.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use vitalwire::platform::time::{format_utc, Clock};
use vitalwire::wiring::Trigger;

use crate::functions::LocalFunctions;

/// The scheduled functions and the clock they go by.
pub struct Scheduler {
    functions: Arc<LocalFunctions>,
    clock: Clock,
    dynamodb: aws_sdk_dynamodb::Client,
    alerts_table: String,
}

impl Scheduler {
    pub fn new(functions: Arc<LocalFunctions>, clock: Clock, dynamodb: aws_sdk_dynamodb::Client, alerts_table: String) -> Arc<Self> {
        Arc::new(Self { functions, clock, dynamodb, alerts_table })
    }

    /// The event EventBridge hands a scheduled function.
    fn event(&self, name: &str) -> Value {
        json!({
            "version": "0", "id": uuid::Uuid::new_v4().to_string(), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": crate::stack::LOCAL_ACCOUNT, "time": format_utc(self.clock.now()), "region": crate::stack::LOCAL_REGION,
            "resources": [format!("arn:aws:events:{}:{}:rule/{name}", crate::stack::LOCAL_REGION, crate::stack::LOCAL_ACCOUNT)], "detail": {},
        })
    }

    /// Runs every scheduled function once; each one's answer (or failure) by name.
    pub async fn run_all(&self) -> Value {
        let mut answers = serde_json::Map::new();
        for spec in self.functions.triggered_by(|t| matches!(t, Trigger::Schedule(_))) {
            let answer = match self.functions.invoke(spec.name, &self.event(spec.name).to_string()).await {
                Ok(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
                Err(e) => {
                    tracing::warn!(function = spec.name, error = %e, "scheduled function failed");
                    json!({"error": e})
                }
            };
            answers.insert(spec.name.to_owned(), answer);
        }
        Value::Object(answers)
    }

    /// Runs the scheduled functions every `tick`.
    pub fn spawn(self: &Arc<Self>, tick: Duration) -> tokio::task::JoinHandle<()> {
        let scheduler = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            loop {
                interval.tick().await;
                scheduler.run_all().await;
            }
        })
    }

    /// `/local/clock` and `/local/outbox`.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new().route("/local/clock", get(clock).post(advance)).route("/local/outbox", get(outbox)).with_state(self.clone())
    }
}

async fn clock(State(s): State<Arc<Scheduler>>) -> Json<Value> {
    Json(json!({"now": format_utc(s.clock.now())}))
}

async fn advance(State(s): State<Arc<Scheduler>>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let Some(minutes) = body.get("advanceMinutes").and_then(Value::as_i64).filter(|m| (0..=100_000).contains(m)) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "advanceMinutes: a whole number of minutes, 0 to 100000"})));
    };
    s.clock.advance(chrono::Duration::minutes(minutes));
    let ran = s.run_all().await;
    (StatusCode::OK, Json(json!({"now": format_utc(s.clock.now()), "ran": ran})))
}

async fn outbox(State(s): State<Arc<Scheduler>>) -> (StatusCode, Json<Value>) {
    // A development view: a scan is fine here; the platform's own reads are keyed.
    let mut pages = s
        .dynamodb
        .scan()
        .table_name(&s.alerts_table)
        .filter_expression("begins_with(sortKey, :send)")
        .expression_attribute_values(":send", aws_sdk_dynamodb::types::AttributeValue::S("SEND#".into()))
        .into_paginator()
        .send();
    let mut sent: Vec<Value> = Vec::new();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": vitalwire::platform::describe(&e)}))),
        };
        for item in page.items() {
            let delivery = item.get("delivery").and_then(|v| v.as_s().ok()).and_then(|t| serde_json::from_str::<Value>(t).ok());
            if let Some(d) = delivery.filter(|d| d["channel"] != "message") {
                sent.push(d);
            }
        }
    }
    sent.sort_by(|a, b| b["updatedAt"].as_str().cmp(&a["updatedAt"].as_str()));
    (StatusCode::OK, Json(json!({"notifications": sent})))
}
