//! The audit log: who read which patient's data. Every route that answers with a patient's
//! data (Observations, documents, alerts) records, per patient concerned, the caller, their
//! role, the route, the answer's status and when, before it answers, so that the platform can
//! say who saw a patient's data, and who tried to and was refused. A read whose audit record
//! cannot be written fails. Records are kept `AUDIT_RETENTION_DAYS` (six years by default).

use std::future::Future;

use lambda_http::Request;
use serde_json::{json, Value};

use super::Principal;
use crate::platform::http::RequestInfo;
use crate::platform::time::format_utc;
use crate::StoreError;

/// Days an audit record is kept unless `AUDIT_RETENTION_DAYS` says otherwise.
pub const DEFAULT_RETENTION_DAYS: i64 = 2192;

/// One read (or refused attempt) of one patient's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub patient_id: String,
    pub at: String,
    pub request_id: String,
    /// The caller's subject (the user's id in its pool).
    pub subject: String,
    pub role: String,
    /// `GET /devices/{thingName}/observations`, with the path as called.
    pub method: String,
    pub path: String,
    pub source_ip: String,
    /// The answer's status: 200 for data shown, 403 or 404 for an attempt refused.
    pub status: u16,
}

impl AuditRecord {
    pub fn to_json(&self) -> Value {
        json!({
            "patientId": self.patient_id, "at": self.at, "requestId": self.request_id, "subject": self.subject,
            "role": self.role, "method": self.method, "path": self.path, "sourceIp": self.source_ip, "status": self.status,
        })
    }
}

/// Where audit records are kept.
pub trait AuditLog: Send + Sync {
    fn record(&self, record: &AuditRecord) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A patient's records, newest first, after the cursor; and the next cursor.
    fn for_patient(
        &self,
        patient_id: &str,
        limit: i32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<(Vec<AuditRecord>, Option<String>), StoreError>> + Send;
}

/// Records that `caller` was answered `status` for the data of each of `patients`.
pub async fn record_read<L: AuditLog, P: AsRef<str> + Sync>(
    log: &L,
    request: &Request,
    caller: &Principal,
    patients: &[P],
    status: u16,
) -> Result<(), StoreError> {
    let info = RequestInfo::of(request);
    let at = format_utc(chrono::Utc::now());
    let mut seen: Vec<&str> = Vec::new();
    for patient in patients.iter().map(AsRef::as_ref) {
        if seen.contains(&patient) {
            continue;
        }
        seen.push(patient);
        let record = AuditRecord {
            patient_id: patient.to_owned(),
            at: at.clone(),
            request_id: info.request_id.clone(),
            subject: caller.subject.clone(),
            role: caller.role.as_str().to_owned(),
            method: info.method.clone(),
            path: info.path.clone(),
            source_ip: info.source_ip.clone(),
            status,
        };
        log.record(&record).await?;
    }
    Ok(())
}
