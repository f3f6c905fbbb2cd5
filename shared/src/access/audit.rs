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
    record_read_by(log, request, &caller.subject, caller.role.as_str(), patients, status).await
}

/// Records a read by a caller who is not a platform user (a Polaris token's patient,
/// clinician or system), with the id and the kind of caller it names.
pub async fn record_read_by<L: AuditLog, P: AsRef<str> + Sync>(
    log: &L,
    request: &Request,
    subject: &str,
    role: &str,
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
            subject: subject.to_owned(),
            role: role.to_owned(),
            method: info.method.clone(),
            path: info.path.clone(),
            source_ip: info.source_ip.clone(),
            status,
        };
        log.record(&record).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::memory::MemoryAudit;
    use crate::access::Role;
    use crate::platform::testing::{ApiRequest, SOURCE_IP};
    use crate::time::parse_with_offset;

    #[tokio::test]
    async fn a_read_is_recorded_once_per_patient_with_the_request_and_the_caller() {
        let log = MemoryAudit::default();
        let request = ApiRequest::new("GET /devices/{thingName}/observations").path("thingName", "acme-1").request_id("req-7").build();
        let caller = Principal { subject: "nurse-1".into(), role: Role::Clinician, patient_id: None };
        let before = chrono::Utc::now();
        record_read(&log, &request, &caller, &["pat-1", "pat-2", "pat-1"], 200).await.unwrap();
        let after = chrono::Utc::now();
        let records = log.all();
        assert_eq!(records.iter().map(|r| r.patient_id.as_str()).collect::<Vec<_>>(), ["pat-1", "pat-2"]);
        for r in &records {
            let at = parse_with_offset(&r.at).unwrap();
            // Millisecond precision: `at` may be up to 1 ms before `before`.
            assert!(before - chrono::Duration::milliseconds(1) <= at && at <= after, "{}", r.at);
            let expected = AuditRecord {
                patient_id: r.patient_id.clone(),
                at: r.at.clone(),
                request_id: "req-7".into(),
                subject: "nurse-1".into(),
                role: "clinician".into(),
                method: "GET".into(),
                path: "/devices/acme-1/observations".into(),
                source_ip: SOURCE_IP.into(),
                status: 200,
            };
            assert_eq!(r, &expected);
        }
        assert_eq!(records[0].at, records[1].at, "one read, one time");
    }

    #[tokio::test]
    async fn a_refusal_is_recorded_with_its_status_and_no_patient_means_no_record() {
        let log = MemoryAudit::default();
        let request = ApiRequest::new("GET /patients/{patientId}/alerts").path("patientId", "pat-2").build();
        let caller = Principal { subject: "pat-1-sub".into(), role: Role::Patient, patient_id: Some("pat-1".into()) };
        record_read(&log, &request, &caller, &["pat-2"], 404).await.unwrap();
        record_read::<_, &str>(&log, &request, &caller, &[], 200).await.unwrap();
        let records = log.all();
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].patient_id.as_str(), records[0].role.as_str(), records[0].status), ("pat-2", "patient", 404));
    }
}
