//! Uploads in the `UploadsTable` (by `objectKey`; index `byThing` by `requestedAt`).

use aws_sdk_dynamodb::Client;
use chrono::Utc;

use super::registration::ObjectFacts;
use super::{PendingUpload, UploadRecord, UploadRecordStore, UploadStore};
use crate::platform::dynamodb::{is_condition_failed, n, opt_s, put_if_absent, req_s, s};
use crate::platform::tables::{UPLOADS, UPLOADS_BY_THING};
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
            requested_at: opt_s(&item, "requestedAt").unwrap_or_default(),
            status: req_s(&item, "status", OP)?,
        }))
    }

    async fn complete(&self, object_key: &str, facts: &ObjectFacts, document: &str) -> Result<bool, StoreError> {
                let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("objectKey", s(object_key))
            .update_expression("SET #status = :done, sizeBytes = :size, sha256 = :sha, documentReference = :doc, completedAt = :at")
            .condition_expression("#status = :pending")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":done", s("COMPLETED"))
            .expression_attribute_values(":pending", s("PENDING"))
            .expression_attribute_values(":size", n(facts.size))
            .expression_attribute_values(":sha", s(&facts.sha256))
            .expression_attribute_values(":doc", s(document))
            .expression_attribute_values(":at", s(format_utc(Utc::now())))
            .send()
            .await;
        match update {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk("complete upload", &e)),
        }
    }
}


impl UploadStore for DynamoUploadStore {
    async fn record_pending(&self, u: &PendingUpload) -> Result<(), StoreError> {
                let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("objectKey", s(&u.object_key))
            .item("thingName", s(&u.thing_name))
            .item("fileName", s(&u.file_name))
            .item("contentType", s(&u.content_type))
            .item("status", s("PENDING"))
            .item("requestedAt", s(&u.requested_at))
            .item("expiresAt", s(&u.expires_at))
            .condition_expression("attribute_not_exists(objectKey)");
        // `false`: a redelivered request, recorded already.
        put_if_absent(put, "record pending upload").await.map(|_| ())
    }
}

