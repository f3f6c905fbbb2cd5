//! `GET /devices/{thingName}/documents?limit=` (`device-documents`): the FHIR
//! `DocumentReference`s of a device's uploaded files as a `searchset` Bundle, newest first.
//! Who may read them is decided as for the device's Observations.

use lambda_http::Request;
use serde_json::{json, Value};

use super::UploadRecordStore;
use crate::access::audit::{record_read, AuditLog};
use crate::access::Role;
use crate::care::CareStore;
use crate::devices::DeviceRegistry;
use crate::observations::http::{readable_device, searchset, DeviceReadDeps};
use crate::platform::http::{ApiError, Reply};
use crate::StoreError;

/// `GET /devices/{thingName}/documents`
pub async fn device_documents<D: DeviceRegistry, U: UploadRecordStore, L: AuditLog, C: CareStore>(
    request: Request,
    deps: &DeviceReadDeps<D, U, L, C>,
) -> Result<Reply, ApiError> {
    let (mut scope, thing, limit) = readable_device(&request, &deps.devices, &deps.audit, &deps.care).await?;
    let mut entries = Vec::new();
    let mut patients = Vec::new();
    for text in deps.store.documents_for_device(&thing, limit).await? {
        let resource: Value = serde_json::from_str(&text).map_err(|e| ApiError::Store(StoreError::new("read document", e)))?;
        // Only documents about patients the caller may read (an admin: all).
        let subject = resource["subject"]["reference"].as_str().map(|r| r.trim_start_matches("Patient/").to_owned());
        let allowed = match &subject {
            Some(patient) => scope.allows(patient).await?,
            None => scope.who().role == Role::Admin,
        };
        if !allowed {
            continue;
        }
        patients.extend(subject);
        let id = resource["id"].as_str().unwrap_or_default().to_owned();
        entries.push(json!({"fullUrl": format!("DocumentReference/{id}"), "resource": resource, "search": {"mode": "match"}}));
    }
    record_read(&deps.audit, &request, scope.who(), &patients, 200).await?;
    Ok((200, searchset(entries)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::memory::MemoryAudit;
    use crate::devices::memory::MemoryDevices;
    use crate::devices::Device;
    use crate::files::memory::MemoryUploads;
    use crate::files::registration::ObjectFacts;
    use crate::files::{PendingUpload, UploadStore};
    use crate::platform::testing::{self, answered, Answered, ApiRequest};

    /// acme-1, now pat-2's, uploaded a document about pat-1 and then one about pat-2.
    async fn deps() -> DeviceReadDeps<MemoryDevices, MemoryUploads, MemoryAudit, crate::care::memory::MemoryCare> {
        let mut device = Device::registered("Acme", "1", "ECG", "", "2026-11-01T00:00:00.000Z");
        device.patient_id = Some("pat-2".into());
        let uploads = MemoryUploads::default();
        for (id, patient, requested_at) in [("doc-1", "pat-1", "2026-11-20T10:00:00.000Z"), ("doc-2", "pat-2", "2026-11-21T10:00:00.000Z")] {
            let object_key = format!("uploads/acme-1/{id}.pdf");
            let pending = PendingUpload {
                object_key: object_key.clone(),
                thing_name: "acme-1".into(),
                file_name: format!("{id}.pdf"),
                content_type: "application/pdf".into(),
                declared_size: Some(10),
                requested_at: requested_at.into(),
                expires_at: requested_at.into(),
            };
            uploads.record_pending(&pending).await.unwrap();
            let document = json!({"resourceType": "DocumentReference", "id": id, "subject": {"reference": format!("Patient/{patient}")}});
            let facts = ObjectFacts { size: 10, sha256: String::new(), sha1_base64: String::new() };
            assert!(uploads.complete(&object_key, Some("v1"), &facts, &document.to_string()).await.unwrap());
        }
        DeviceReadDeps { devices: MemoryDevices::with(vec![device]), store: uploads, audit: MemoryAudit::default(), care: crate::care::memory::MemoryCare::looking_after("clinician-sub", &["pat-1", "pat-2"]) }
    }

    fn read(caller: Value) -> lambda_http::Request {
        ApiRequest::new("GET /devices/{thingName}/documents").path("thingName", "acme-1").caller(caller).build()
    }

    fn documents(answer: &Answered) -> Vec<&str> {
        answer.body["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect()
    }

    fn audited(audit: &MemoryAudit) -> Vec<(String, String, u16)> {
        let mut all: Vec<_> = audit.all().into_iter().map(|r| (r.patient_id, r.subject, r.status)).collect();
        all.sort();
        all
    }

    #[tokio::test]
    async fn staff_read_every_document_and_the_patient_only_those_about_them() {
        let deps = deps().await;
        let all = answered(device_documents(read(testing::clinician()), &deps).await);
        assert_eq!(all.status, 200, "{}", all.body);
        assert_eq!(documents(&all), ["doc-2", "doc-1"], "newest first");
        assert_eq!(all.body["entry"][0]["fullUrl"], json!("DocumentReference/doc-2"));
        assert_eq!(audited(&deps.audit), [("pat-1".into(), "clinician-sub".into(), 200), ("pat-2".into(), "clinician-sub".into(), 200)]);

        let deps = self::deps().await;
        let own = answered(device_documents(read(testing::patient("pat-2")), &deps).await);
        assert_eq!((own.status, documents(&own)), (200, vec!["doc-2"]));
        assert_eq!(audited(&deps.audit), [("pat-2".into(), "pat-2-sub".into(), 200)]);
    }

    #[tokio::test]
    async fn the_former_patient_is_refused_and_the_attempt_audited() {
        let deps = deps().await;
        let refused = answered(device_documents(read(testing::patient("pat-1")), &deps).await);
        assert_eq!((refused.status, refused.error_code()), (404, Some("NOT_FOUND")));
        assert_eq!(audited(&deps.audit), [("pat-2".into(), "pat-1-sub".into(), 404)]);
    }
}
