//! Alert routes:
//!
//! | route | function | roles |
//! |---|---|---|
//! | `GET /patients/{patientId}/alerts?limit=&next=` | `patient-alerts` | admin, clinician, the patient |
//! | `POST /patients/{patientId}/alerts/{alertId}/close` | `patient-alerts-close` | admin, clinician |

use chrono::Utc;
use lambda_http::Request;
use serde_json::json;

use super::{Alert, AlertStore};
use crate::access::audit::{record_read, AuditLog};
use crate::access::{require, Role};
use crate::platform::http::{limit_param, path_param, query_param, ApiError, Reply};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};

/// What the alert routes need: the alerts and the audit log (alerts are patient data).
pub struct AlertDeps<A, L> {
    pub alerts: A,
    pub audit: L,
}

impl<A: FromWiring, L: FromWiring> FromWiring for AlertDeps<A, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { alerts: w.build()?, audit: w.build()? })
    }
}

/// `POST /patients/{patientId}/alerts/{alertId}/close`: the alert is dealt with; new readings
/// may raise its kind again.
pub async fn close<A: AlertStore, L: AuditLog>(request: Request, deps: &AlertDeps<A, L>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician])?;
    let patient = path_param(&request, "patientId")?;
    let alert_id = path_param(&request, "alertId")?;
    let at = format_utc(Utc::now());
    let Some(alert) = deps.alerts.close(&patient, &alert_id, &who.subject, &at).await? else {
        record_read(&deps.audit, &request, &who, &[patient.as_str()], 404).await?;
        return Err(ApiError::NotFound(format!("patient {patient} has no alert {alert_id}")));
    };
    record_read(&deps.audit, &request, &who, &[patient.as_str()], 200).await?;
    tracing::info!(alert_id = %alert_id, "alert closed");
    Ok((200, alert.to_json()))
}

/// `GET /patients/{patientId}/alerts`: a page of the patient's alerts, newest first (another
/// patient gets 404, as for Observations).
pub async fn list<A: AlertStore, L: AuditLog>(request: Request, deps: &AlertDeps<A, L>) -> Result<Reply, ApiError> {
    let who = require(&request, &[Role::Admin, Role::Clinician, Role::Patient])?;
    let patient = path_param(&request, "patientId")?;
    let limit = limit_param(&request, 50, 200)?;
    if who.role == Role::Patient && who.patient_id.as_deref() != Some(patient.as_str()) {
        record_read(&deps.audit, &request, &who, &[patient.as_str()], 404).await?;
        return Err(ApiError::NotFound(format!("no patient {patient}")));
    }
    let page = deps.alerts.for_patient(&patient, limit, query_param(&request, "next").as_deref()).await?;
    record_read(&deps.audit, &request, &who, &[patient.as_str()], 200).await?;
    Ok((200, json!({"alerts": page.items.iter().map(Alert::to_json).collect::<Vec<_>>(), "next": page.next})))
}
