//! Uploads in the `UploadsTable` (by `objectKey`; index `byThing` by `requestedAt`).

use aws_sdk_dynamodb::Client;
use chrono::Utc;

use super::registration::ObjectFacts;
use super::{PendingUpload, UploadRecord, UploadRecordStore, UploadStatus, UploadStore};
use crate::platform::dynamodb::{is_condition_failed, n, opt_s, opt_u64, conditional_put, req_s, s};
use crate::platform::tables::{UPLOADS, UPLOADS_BY_DOCUMENT, UPLOADS_BY_THING};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// [`UploadStore`] and [`UploadRecordStore`] in the `UploadsTable`.
#[derive(Debug, Clone)]
pub struct DynamoUploadStore {
    client: Client,
    table: String,
}

impl DynamoUploadStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl FromWiring for DynamoUploadStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&UPLOADS)?))
    }
}

impl UploadRecordStore for DynamoUploadStore {
    async fn documents_for_device(&self, thing_name: &str, limit: i32) -> Result<Vec<String>, StoreError> {
        // A filter applies after DynamoDB's limit, so pages are followed until enough match.
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(UPLOADS_BY_THING.name)
            .key_condition_expression("thingName = :t")
            .filter_expression("attribute_exists(documentReference)")
            .expression_attribute_values(":t", s(thing_name))
            .scan_index_forward(false)
            .into_paginator()
            .send();
        let wanted = usize::try_from(limit).unwrap_or(0);
        let mut documents = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk("list documents", &e))?;
            documents.extend(page.items().iter().filter_map(|i| opt_s(i, "documentReference")));
            if documents.len() >= wanted {
                documents.truncate(wanted);
                break;
            }
        }
        Ok(documents)
    }

    async fn document(&self, document_id: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(UPLOADS_BY_DOCUMENT.name)
            .key_condition_expression("documentId = :d")
            .expression_attribute_values(":d", s(document_id))
            .limit(1)
            .send()
            .await
            .map_err(|e| StoreError::sdk("read document", &e))?;
        Ok(out.items().first().and_then(|i| opt_s(i, "documentReference")))
    }

    async fn get(&self, object_key: &str) -> Result<Option<UploadRecord>, StoreError> {
        const OP: &str = "read upload";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("objectKey", s(object_key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        let Some(item) = out.item else { return Ok(None) };
        Ok(Some(UploadRecord {
            object_key: req_s(&item, "objectKey", OP)?,
            thing_name: req_s(&item, "thingName", OP)?,
            file_name: opt_s(&item, "fileName").unwrap_or_default(),
            content_type: opt_s(&item, "contentType").unwrap_or_default(),
            declared_size: opt_u64(&item, "declaredSize"),
            requested_at: opt_s(&item, "requestedAt").unwrap_or_default(),
            status: UploadStatus::parse(&req_s(&item, "status", OP)?)
                .ok_or_else(|| StoreError::new(OP, format!("unknown status of upload {object_key}")))?,
            version_id: opt_s(&item, "versionId"),
        }))
    }

    async fn complete(&self, object_key: &str, version_id: Option<&str>, facts: &ObjectFacts, document: &str) -> Result<bool, StoreError> {
        // `documentId` keys the sparse `byDocument` index, by which the FHIR API reads it.
        let mut set = "SET #status = :done, sizeBytes = :size, sha256 = :sha, documentReference = :doc, documentId = :docid, completedAt = :at".to_owned();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("objectKey", s(object_key))
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s(UploadStatus::Completed.as_str()))
            .expression_attribute_values(":pending", s(UploadStatus::Pending.as_str()))
            .expression_attribute_values(":size", n(facts.size))
            .expression_attribute_values(":sha", s(&facts.sha256))
            .expression_attribute_values(":doc", s(document))
            .expression_attribute_values(":docid", s(super::registration::document_id(object_key)))
            .expression_attribute_values(":at", s(format_utc(Utc::now())));
        if let Some(version) = version_id {
            set.push_str(", versionId = :version");
            update = update.expression_attribute_values(":version", s(version));
        }
        match update.update_expression(set).send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("complete upload", &e)),
        }
    }
}

impl UploadStore for DynamoUploadStore {
    async fn record_pending(&self, u: &PendingUpload) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("objectKey", s(&u.object_key))
            .item("thingName", s(&u.thing_name))
            .item("fileName", s(&u.file_name))
            .item("contentType", s(&u.content_type))
            .item("status", s(UploadStatus::Pending.as_str()))
            .item("requestedAt", s(&u.requested_at))
            .item("expiresAt", s(&u.expires_at))
            .condition_expression("attribute_not_exists(objectKey)");
        if let Some(size) = u.declared_size {
            put = put.item("declaredSize", n(size));
        }
        // `false`: a redelivered request, recorded already.
        conditional_put(put, "record pending upload").await.map(|_| ())
    }

    async fn links_since(&self, thing_name: &str, since: &str, except_key: &str, at_most: u32) -> Result<u32, StoreError> {
        // Counting reads at most `at_most + 1` index entries (one may be the request itself).
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(UPLOADS_BY_THING.name)
            .key_condition_expression("thingName = :t AND requestedAt >= :since")
            .filter_expression("objectKey <> :k")
            .expression_attribute_values(":t", s(thing_name))
            .expression_attribute_values(":since", s(since))
            .expression_attribute_values(":k", s(except_key))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .limit(i32::try_from(at_most.saturating_add(1)).unwrap_or(i32::MAX))
            .into_paginator()
            .send();
        let mut count = 0u32;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk("count upload links", &e))?;
            count = count.saturating_add(u32::try_from(page.count()).unwrap_or(0));
            if count >= at_most {
                break;
            }
        }
        Ok(count)
    }
}
