//! Clinical alerts raised after each filed reading set.
//!
//! **NEWS2**: the patient's latest value of each parameter within a window (60 minutes by
//! default, `ALERT_WINDOW_MINUTES`) before the reading is scored ([`crate::news2`]); missing
//! parameters make the set partial (devices never report consciousness or oxygen therapy). An
//! alert is raised when one parameter scores 3 or the aggregate reaches 5, with the NEWS2
//! severity. **Glucose**: below `GLUCOSE_LOW_MG_DL` (70) or above `GLUCOSE_HIGH_MG_DL` (250).
//!
//! Alerts are de-duplicated per patient and kind while one of the same or higher severity is
//! open: an `OPEN#<kind>` marker item is written conditionally, so two readings arriving at
//! once cannot both raise. Alert ids derive from the reading set, so a redelivered reading
//! raises nothing new. The record keeps the contributing readings; the two-stage
//! notification flow (ask the patient, then escalate) starts from it.

use std::future::Future;

use serde_json::{json, Value};

use crate::news2::{self, Severity};
use crate::observations::ObservationStore;
use crate::vitals::LOINC;
use crate::StoreError;

/// Settings of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSettings {
    pub window_minutes: i64,
    pub glucose_low_mg_dl: f64,
    pub glucose_high_mg_dl: f64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self { window_minutes: 60, glucose_low_mg_dl: 70.0, glucose_high_mg_dl: 250.0 }
    }
}

impl AlertSettings {
    /// From `ALERT_WINDOW_MINUTES`, `GLUCOSE_LOW_MG_DL`, `GLUCOSE_HIGH_MG_DL`, defaults otherwise.
    pub fn from_env() -> Self {
        let d = Self::default();
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
        Self {
            window_minutes: var("ALERT_WINDOW_MINUTES").map_or(d.window_minutes, |m| m as i64),
            glucose_low_mg_dl: var("GLUCOSE_LOW_MG_DL").unwrap_or(d.glucose_low_mg_dl),
            glucose_high_mg_dl: var("GLUCOSE_HIGH_MG_DL").unwrap_or(d.glucose_high_mg_dl),
        }
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    News2,
    GlucoseLow,
    GlucoseHigh,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::News2 => "news2",
            Self::GlucoseLow => "glucose_low",
            Self::GlucoseHigh => "glucose_high",
        }
    }
}

/// A reading that contributed to an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub parameter: &'static str,
    pub observation_id: String,
    pub value: String,
    pub unit: String,
    pub effective_at: String,
    pub score: Option<u8>,
}

/// An alert record.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub alert_id: String,
    pub patient_id: String,
    pub device_id: String,
    pub kind: AlertKind,
    pub score: Option<u8>,
    pub severity: Severity,
    pub partial: bool,
    pub contributions: Vec<Contribution>,
    pub raised_at: String,
    /// `open` until a clinician closes it, then `closed`.
    pub status: String,
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
}

impl Alert {
    pub fn to_json(&self) -> Value {
        json!({
            "alertId": self.alert_id, "patientId": self.patient_id, "deviceId": self.device_id,
            "kind": self.kind.as_str(), "score": self.score, "severity": self.severity.as_str(),
            "partialSet": self.partial, "raisedAt": self.raised_at, "status": self.status,
            "closedAt": self.closed_at, "closedBy": self.closed_by,
            "contributingReadings": self.contributions.iter().map(|c| json!({
                "parameter": c.parameter, "observationId": c.observation_id, "value": c.value,
                "unit": c.unit, "effectiveAt": c.effective_at, "score": c.score,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Where alerts are kept.
pub trait AlertStore: Send + Sync {
    /// Records the alert unless an open one of its kind and the same or higher severity
    /// exists for the patient (or this alert exists); true when it was raised.
    fn raise(&self, alert: &Alert) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// The patient's alerts, newest first.
    fn for_patient(&self, patient_id: &str) -> impl Future<Output = Result<Vec<Alert>, StoreError>> + Send;
    /// Closes an alert (a clinician dealt with it), so that new readings may raise its kind
    /// again; the alert as it is now, or `None` if the patient has no such alert.
    fn close(
        &self,
        patient_id: &str,
        alert_id: &str,
        closed_by: &str,
        at: &str,
    ) -> impl Future<Output = Result<Option<Alert>, StoreError>> + Send;
}

/// The latest value of one code for the patient within the window.
async fn latest<O: ObservationStore>(
    store: &O,
    patient: &str,
    code: &str,
    from: &str,
    to: &str,
) -> Result<Option<(crate::observations::StoredObservation, Value)>, StoreError> {
    let found = store.for_patient_code(patient, &format!("{LOINC}|{code}"), from, to).await?;
    Ok(found.into_iter().last().and_then(|o| serde_json::from_str::<Value>(&o.resource).ok().map(|r| (o, r))))
}

fn quantity(q: &Value) -> Option<(f64, String, String)> {
    let value = q.get("value")?;
    let text = value.to_string();
    let number = value.as_f64()?;
    Some((number, text, q.get("code").and_then(Value::as_str).or(q.get("unit").and_then(Value::as_str)).unwrap_or("").to_owned()))
}

/// Evaluates the patient's alerts after a reading set filed at `at` (UTC, `time::format_utc`);
/// returns the alerts raised (de-duplicated ones are not).
pub async fn evaluate<O: ObservationStore, A: AlertStore>(
    observations: &O,
    alerts: &A,
    settings: &AlertSettings,
    patient: &str,
    device: &str,
    set_id: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Alert>, StoreError> {
    let to = crate::time::format_utc(at);
    let from = crate::time::format_utc(at - chrono::Duration::minutes(settings.window_minutes));
    let mut set = news2::Observations::default();
    let mut contributions = Vec::new();
    let mut note = |parameter: &'static str, o: &crate::observations::StoredObservation, text: String, unit: String, score: u8| {
        contributions.push(Contribution {
            parameter,
            observation_id: o.id.clone(),
            value: text,
            unit,
            effective_at: o.effective_at.clone(),
            score: Some(score),
        });
    };
    for (parameter, code) in [("respiratory_rate", "9279-1"), ("oxygen_saturation", "2708-6"), ("heart_rate", "8867-4"), ("temperature", "8310-5")] {
        let Some((o, r)) = latest(observations, patient, code, &from, &to).await? else { continue };
        let Some((value, text, unit)) = quantity(&r["valueQuantity"]) else { continue };
        let score = match parameter {
            "respiratory_rate" => {
                set.respiratory_rate = Some(value);
                news2::respiratory_rate_score(value)
            }
            "oxygen_saturation" => {
                set.oxygen_saturation = Some(value);
                news2::oxygen_saturation_score(value, news2::Spo2Scale::Scale1, false)
            }
            "heart_rate" => {
                set.heart_rate = Some(value);
                news2::heart_rate_score(value)
            }
            _ => {
                // Scored in °C; the stored Observation keeps the device's unit.
                let celsius = if unit == "[degF]" { (value - 32.0) * 5.0 / 9.0 } else { value };
                set.temperature = Some(celsius);
                news2::temperature_score(celsius)
            }
        };
        note(parameter, &o, text, unit, score);
    }
    // Systolic pressure: a blood-pressure panel's component, or a lone 8480-6 from a device.
    let panel = latest(observations, patient, "85354-9", &from, &to).await?;
    let lone = latest(observations, patient, "8480-6", &from, &to).await?;
    let systolic = [panel, lone]
        .into_iter()
        .flatten()
        .filter_map(|(o, r)| {
            let q = if r["component"].is_array() {
                r["component"].as_array()?.iter().find(|c| c["code"]["coding"][0]["code"] == "8480-6")?["valueQuantity"].clone()
            } else {
                r["valueQuantity"].clone()
            };
            quantity(&q).map(|v| (o, v))
        })
        .max_by(|a, b| a.0.effective_at.cmp(&b.0.effective_at));
    if let Some((o, (value, text, unit))) = systolic {
        set.systolic_bp = Some(value);
        note("systolic_blood_pressure", &o, text, unit, news2::systolic_bp_score(value));
    }

    let now = crate::time::format_utc(chrono::Utc::now());
    let alert_id = |kind: AlertKind| {
        use sha2::Digest;
        hex::encode(&sha2::Sha256::digest(format!("{patient}/{kind}/{set_id}", kind = kind.as_str()).as_bytes())[..16])
    };
    let mut candidates = Vec::new();
    if !contributions.is_empty() {
        let score = news2::score(&set);
        if score.highest_parameter() >= 3 || score.overall >= 5 {
            candidates.push(Alert {
                alert_id: alert_id(AlertKind::News2),
                patient_id: patient.to_owned(),
                device_id: device.to_owned(),
                kind: AlertKind::News2,
                score: Some(score.overall),
                severity: score.severity,
                partial: score.partial,
                contributions: contributions.clone(),
                raised_at: now.clone(),
                status: "open".into(),
                closed_at: None,
                closed_by: None,
            });
        }
    }
    if let Some((o, r)) = latest(observations, patient, "2339-0", &from, &to).await? {
        if let Some((value, text, unit)) = quantity(&r["valueQuantity"]) {
            // Below 54 mg/dL is level-2 hypoglycaemia (ADA); above 400 mg/dL needs urgent review.
            let kind_severity = if value < settings.glucose_low_mg_dl {
                Some((AlertKind::GlucoseLow, if value < 54.0 { Severity::High } else { Severity::Medium }))
            } else if value > settings.glucose_high_mg_dl {
                Some((AlertKind::GlucoseHigh, if value > 400.0 { Severity::High } else { Severity::Medium }))
            } else {
                None
            };
            // Only the reading just filed raises a glucose alert, not an older one in the window.
            if let Some((kind, severity)) = kind_severity.filter(|_| o.effective_at == to) {
                candidates.push(Alert {
                    alert_id: alert_id(kind),
                    patient_id: patient.to_owned(),
                    device_id: device.to_owned(),
                    kind,
                    score: None,
                    severity,
                    partial: false,
                    contributions: vec![Contribution {
                        parameter: "glucose",
                        observation_id: o.id.clone(),
                        value: text,
                        unit,
                        effective_at: o.effective_at.clone(),
                        score: None,
                    }],
                    raised_at: now.clone(),
                    status: "open".into(),
                    closed_at: None,
                    closed_by: None,
                });
            }
        }
    }
    let mut raised = Vec::new();
    for alert in candidates {
        if alerts.raise(&alert).await? {
            // No values or patient details in the log line.
            tracing::info!(alert_id = %alert.alert_id, kind = alert.kind.as_str(), severity = alert.severity.as_str(), "alert raised");
            raised.push(alert);
        }
    }
    Ok(raised)
}

/// [`AlertStore`] in the `AlertsTable` (`patientId`, `sortKey` = `ALERT#<raisedAt>#<id>` for
/// alerts, `OPEN#<kind>` for the de-duplication marker).
#[derive(Debug, Clone)]
pub struct DynamoAlertStore {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Low => 0,
        Severity::LowMedium => 1,
        Severity::Medium => 2,
        Severity::High => 3,
    }
}

impl AlertStore for DynamoAlertStore {
    async fn raise(&self, alert: &Alert) -> Result<bool, StoreError> {
        use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
        use crate::dynamo::s;
        const OP: &str = "raise alert";
        let n = |v: u8| AttributeValue::N(v.to_string());
        let marker = Put::builder()
            .table_name(&self.table)
            .item("patientId", s(&alert.patient_id))
            .item("sortKey", s(format!("OPEN#{}", alert.kind.as_str())))
            .item("alertId", s(&alert.alert_id))
            .item("rank", n(severity_rank(alert.severity)))
            // Raise only above what is open already.
            .condition_expression("attribute_not_exists(sortKey) OR #rank < :rank")
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_values(":rank", n(severity_rank(alert.severity)))
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        let record = Put::builder()
            .table_name(&self.table)
            .item("patientId", s(&alert.patient_id))
            .item("sortKey", s(Self::record_key(alert)))
            .item("alertId", s(&alert.alert_id))
            .item("alert", s(alert.to_json().to_string()))
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(TransactWriteItem::builder().put(record).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(aws_sdk_dynamodb::error::SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => Ok(false),
            Err(e) => Err(StoreError::new(OP, crate::dynamo::describe(&e))),
        }
    }

    async fn for_patient(&self, patient_id: &str) -> Result<Vec<Alert>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("patientId = :p AND begins_with(sortKey, :a)")
            .expression_attribute_values(":p", crate::dynamo::s(patient_id))
            .expression_attribute_values(":a", crate::dynamo::s("ALERT#"))
            .scan_index_forward(false)
            .send()
            .await
            .map_err(|e| StoreError::new("list alerts", crate::dynamo::describe(&e)))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| serde_json::from_str::<Value>(crate::dynamo::opt_s(i, "alert")?.as_str()).ok())
            .filter_map(|v| alert_from_json(&v))
            .collect())
    }
    async fn close(&self, patient_id: &str, alert_id: &str, closed_by: &str, at: &str) -> Result<Option<Alert>, StoreError> {
        use crate::dynamo::s;
        const OP: &str = "close alert";
        let all = self.for_patient(patient_id).await?;
        let Some(mut alert) = all.iter().find(|a| a.alert_id == alert_id).cloned() else {
            return Ok(None);
        };
        if alert.status == "closed" {
            return Ok(Some(alert));
        }
        alert.status = "closed".into();
        alert.closed_at = Some(at.to_owned());
        alert.closed_by = Some(closed_by.to_owned());
        self.client
            .put_item()
            .table_name(&self.table)
            .item("patientId", s(patient_id))
            .item("sortKey", s(Self::record_key(&alert)))
            .item("alertId", s(&alert.alert_id))
            .item("alert", s(alert.to_json().to_string()))
            .send()
            .await
            .map_err(|e| StoreError::new(OP, crate::dynamo::describe(&e)))?;
        // The marker now stands for the highest alert of this kind still open, or goes; only if
        // it was this alert's (a higher one raised meanwhile keeps its own).
        let marker_key = format!("OPEN#{}", alert.kind.as_str());
        let still_open = all
            .iter()
            .filter(|a| a.kind == alert.kind && a.status == "open" && a.alert_id != alert_id)
            .max_by_key(|a| severity_rank(a.severity));
        // A condition that fails means a higher alert took the marker meanwhile: leave it.
        match still_open {
            Some(open) => {
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("patientId", s(patient_id))
                    .item("sortKey", s(&marker_key))
                    .item("alertId", s(&open.alert_id))
                    .item("rank", aws_sdk_dynamodb::types::AttributeValue::N(severity_rank(open.severity).to_string()))
                    .condition_expression("alertId = :closed")
                    .expression_attribute_values(":closed", s(alert_id));
                crate::dynamo::put_if_absent(put, OP).await?;
            }
            None => {
                let removed = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .key("patientId", s(patient_id))
                    .key("sortKey", s(&marker_key))
                    .condition_expression("alertId = :closed")
                    .expression_attribute_values(":closed", s(alert_id))
                    .send()
                    .await;
                match removed {
                    Ok(_) => {}
                    Err(e) if e.as_service_error().is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
                    Err(e) => return Err(StoreError::new(OP, crate::dynamo::describe(&e))),
                }
            }
        }
        Ok(Some(alert))
    }
}

impl DynamoAlertStore {
    fn record_key(alert: &Alert) -> String {
        format!("ALERT#{}#{}", alert.raised_at, alert.alert_id)
    }
}

fn alert_from_json(v: &Value) -> Option<Alert> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let kind = match v.get("kind")?.as_str()? {
        "news2" => AlertKind::News2,
        "glucose_low" => AlertKind::GlucoseLow,
        "glucose_high" => AlertKind::GlucoseHigh,
        _ => return None,
    };
    Some(Alert {
        alert_id: text("alertId")?,
        patient_id: text("patientId")?,
        device_id: text("deviceId").unwrap_or_default(),
        kind,
        score: v.get("score").and_then(Value::as_u64).and_then(|s| u8::try_from(s).ok()),
        severity: Severity::parse(v.get("severity")?.as_str()?)?,
        partial: v.get("partialSet").and_then(Value::as_bool).unwrap_or(false),
        contributions: v
            .get("contributingReadings")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|c| Contribution {
                        parameter: match c["parameter"].as_str() {
                            Some("respiratory_rate") => "respiratory_rate",
                            Some("oxygen_saturation") => "oxygen_saturation",
                            Some("heart_rate") => "heart_rate",
                            Some("temperature") => "temperature",
                            Some("systolic_blood_pressure") => "systolic_blood_pressure",
                            _ => "glucose",
                        },
                        observation_id: c["observationId"].as_str().unwrap_or_default().to_owned(),
                        value: c["value"].as_str().unwrap_or_default().to_owned(),
                        unit: c["unit"].as_str().unwrap_or_default().to_owned(),
                        effective_at: c["effectiveAt"].as_str().unwrap_or_default().to_owned(),
                        score: c["score"].as_u64().and_then(|s| u8::try_from(s).ok()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        raised_at: text("raisedAt").unwrap_or_default(),
        status: text("status").unwrap_or_else(|| "open".into()),
        closed_at: text("closedAt"),
        closed_by: text("closedBy"),
    })
}

/// `POST /patients/{patientId}/alerts/{alertId}/close` (admins and clinicians): the alert is
/// dealt with; new readings may raise its kind again.
pub async fn close<A: AlertStore>(request: lambda_http::Request, alerts: &A) -> lambda_http::Response<lambda_http::Body> {
    use crate::api::{path_param, require, respond, ApiError};
    use crate::auth::Role;
    respond(async {
        let who = require(&request, &[Role::Admin, Role::Clinician])?;
        let patient = path_param(&request, "patientId")?;
        let alert_id = path_param(&request, "alertId")?;
        let at = crate::time::format_utc(chrono::Utc::now());
        let alert = alerts
            .close(&patient, &alert_id, &who.subject, &at)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("patient {patient} has no alert {alert_id}")))?;
        tracing::info!(alert_id = %alert_id, "alert closed");
        Ok((200, alert.to_json()))
    }
    .await)
}

/// `GET /patients/{patientId}/alerts`: the patient's alerts, newest first (admins, clinicians,
/// and the patient themself; another patient gets 404, as for Observations).
pub async fn list<A: AlertStore>(request: lambda_http::Request, alerts: &A) -> lambda_http::Response<lambda_http::Body> {
    use crate::api::{path_param, require, respond, ApiError};
    use crate::auth::Role;
    respond(async {
        let who = require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?;
        let patient = path_param(&request, "patientId")?;
        if who.role == Role::Patient && who.patient_id.as_deref() != Some(patient.as_str()) {
            return Err(ApiError::NotFound(format!("no patient {patient}")));
        }
        let list = alerts.for_patient(&patient).await?;
        Ok((200, json!({"alerts": list.iter().map(Alert::to_json).collect::<Vec<_>>()})))
    }
    .await)
}
