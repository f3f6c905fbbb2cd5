use aws_sdk_dynamodb::Client;

use super::{Inserted, ObservationStore, StoredObservation};
use crate::platform::dynamodb::{put_if_absent, req_s, s, Item};
use crate::platform::tables::{OBSERVATIONS, OBSERVATIONS_BY_DEVICE, OBSERVATIONS_BY_PATIENT_CODE};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Observations in the `ObservationsTable`.
#[derive(Debug, Clone)]
pub struct DynamoObservationStore {
    client: Client,
    table: String,
}

impl FromWiring for DynamoObservationStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&OBSERVATIONS)?))
    }
}

impl DynamoObservationStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// Runs a query to its end, following DynamoDB's pages (1 MB each), unless `limit` says
    /// how many items are wanted.
    async fn query(
        &self,
        operation: &'static str,
        request: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
        limit: Option<usize>,
    ) -> Result<Vec<StoredObservation>, StoreError> {
        let mut pages = request.table_name(&self.table).into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk(operation, &e))?;
            for item in page.items() {
                found.push(from_item(item)?);
                if limit.is_some_and(|l| found.len() >= l) {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }
}

fn patient_code(patient_id: &str, code_key: &str) -> String {
    format!("{patient_id}#{code_key}")
}

fn to_item(o: &StoredObservation) -> Item {
    Item::from([
        ("id".to_owned(), s(&o.id)),
        ("patientId".to_owned(), s(&o.patient_id)),
        ("deviceId".to_owned(), s(&o.device_id)),
        ("codeKey".to_owned(), s(&o.code_key)),
        ("patientCode".to_owned(), s(patient_code(&o.patient_id, &o.code_key))),
        ("effectiveAt".to_owned(), s(&o.effective_at)),
        ("contentHash".to_owned(), s(&o.content_hash)),
        ("resource".to_owned(), s(&o.resource)),
    ])
}

fn from_item(item: &Item) -> Result<StoredObservation, StoreError> {
    const OP: &str = "read observation";
    Ok(StoredObservation {
        id: req_s(item, "id", OP)?,
        patient_id: req_s(item, "patientId", OP)?,
        device_id: req_s(item, "deviceId", OP)?,
        code_key: req_s(item, "codeKey", OP)?,
        effective_at: req_s(item, "effectiveAt", OP)?,
        content_hash: req_s(item, "contentHash", OP)?,
        resource: req_s(item, "resource", OP)?,
    })
}

impl ObservationStore for DynamoObservationStore {
    async fn insert(&self, obs: &StoredObservation) -> Result<Inserted, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(obs)))
            .condition_expression("attribute_not_exists(id)");
        if put_if_absent(put, "insert observation").await? {
            return Ok(Inserted::New);
        }
        let existing = self
            .get(&obs.id)
            .await?
            .ok_or_else(|| StoreError::new("insert observation", "conditional write failed but no item exists"))?;
        Ok(Inserted::AlreadyExists { content_hash: existing.content_hash })
    }

    async fn get(&self, id: &str) -> Result<Option<StoredObservation>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::sdk("get observation", &e))?;
        out.item.as_ref().map(from_item).transpose()
    }

    async fn for_patient_code(
        &self,
        patient_id: &str,
        code_key: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<StoredObservation>, StoreError> {
        let request = self
            .client
            .query()
            .index_name(OBSERVATIONS_BY_PATIENT_CODE.name)
            .key_condition_expression("patientCode = :pc AND effectiveAt BETWEEN :from AND :to")
            .expression_attribute_values(":pc", s(patient_code(patient_id, code_key)))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to));
        self.query("query observations by patient and code", request, None).await
    }

    async fn for_device(&self, device_id: &str, limit: i32) -> Result<Vec<StoredObservation>, StoreError> {
        let request = self
            .client
            .query()
            .index_name(OBSERVATIONS_BY_DEVICE.name)
            .key_condition_expression("deviceId = :d")
            .expression_attribute_values(":d", s(device_id))
            .scan_index_forward(false)
            .limit(limit);
        self.query("query observations by device", request, usize::try_from(limit).ok()).await
    }
}
