use aws_sdk_dynamodb::Client;

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use super::{judge, Along, Inserted, ObservationStore, SearchPage, StoredObservation};
use crate::platform::dynamodb::{conditional_put, req_s, s, Item};
use crate::platform::tables::{IndexSpec, OBSERVATIONS, OBSERVATIONS_BY_DEVICE, OBSERVATIONS_BY_PATIENT, OBSERVATIONS_BY_PATIENT_CODE};
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
    /// Writes each Observation if its id is free, all in one transaction (one alone as a
    /// conditional put); false when a condition failed and nothing was written.
    async fn write_all_or_none(&self, set: &[&StoredObservation]) -> Result<bool, StoreError> {
        const OP: &str = "insert observations";
        if let [one] = set {
            let put = self.client.put_item().table_name(&self.table).set_item(Some(to_item(one))).condition_expression("attribute_not_exists(id)");
            return conditional_put(put, OP).await;
        }
        let mut request = self.client.transact_write_items();
        for o in set {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(to_item(o)))
                .condition_expression("attribute_not_exists(id)")
                .build()
                .map_err(|e| StoreError::new(OP, e))?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if crate::platform::dynamodb::only_conditions_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(OP, &e)),
        }
    }

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

/// The index a search runs on, and the value of its partition key.
fn index_of(along: &Along) -> (&'static IndexSpec, String) {
    match along {
        Along::Patient(p) => (&OBSERVATIONS_BY_PATIENT, p.clone()),
        Along::PatientCode { patient, code_key } => (&OBSERVATIONS_BY_PATIENT_CODE, patient_code(patient, code_key)),
        Along::Device(d) => (&OBSERVATIONS_BY_DEVICE, d.clone()),
    }
}

/// A query of the search's index keyed by its partition value and, when given, the bounds on
/// `effectiveAt`.
fn search_query(
    client: &Client,
    table: &str,
    along: &Along,
    from: Option<&str>,
    to: Option<&str>,
) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
    let (index, partition) = index_of(along);
    let condition = match (from, to) {
        (Some(_), Some(_)) => "#pk = :pk AND effectiveAt BETWEEN :from AND :to",
        (Some(_), None) => "#pk = :pk AND effectiveAt >= :from",
        (None, Some(_)) => "#pk = :pk AND effectiveAt <= :to",
        (None, None) => "#pk = :pk",
    };
    let mut query = client
        .query()
        .table_name(table)
        .index_name(index.name)
        .key_condition_expression(condition)
        .expression_attribute_names("#pk", index.partition_key)
        .expression_attribute_values(":pk", s(partition));
    if let Some(from) = from {
        query = query.expression_attribute_values(":from", s(from));
    }
    if let Some(to) = to {
        query = query.expression_attribute_values(":to", s(to));
    }
    query
}

fn patient_code(patient_id: &str, code_key: &str) -> String {
    format!("{patient_id}#{code_key}")
}

fn to_item(o: &StoredObservation) -> Item {
    let mut item = Item::from([
        ("id".to_owned(), s(&o.id)),
        ("patientId".to_owned(), s(&o.patient_id)),
        ("codeKey".to_owned(), s(&o.code_key)),
        ("patientCode".to_owned(), s(patient_code(&o.patient_id, &o.code_key))),
        ("effectiveAt".to_owned(), s(&o.effective_at)),
        ("contentHash".to_owned(), s(&o.content_hash)),
        ("resource".to_owned(), s(&o.resource)),
    ]);
    // A value a person entered has no device: DynamoDB refuses an empty index key, and leaving
    // the attribute out keeps it off the byDevice index.
    if !o.device_id.is_empty() {
        item.insert("deviceId".to_owned(), s(&o.device_id));
    }
    item
}

fn from_item(item: &Item) -> Result<StoredObservation, StoreError> {
    const OP: &str = "read observation";
    Ok(StoredObservation {
        id: req_s(item, "id", OP)?,
        patient_id: req_s(item, "patientId", OP)?,
        device_id: item.get("deviceId").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default(),
        code_key: req_s(item, "codeKey", OP)?,
        effective_at: req_s(item, "effectiveAt", OP)?,
        content_hash: req_s(item, "contentHash", OP)?,
        resource: req_s(item, "resource", OP)?,
    })
}

impl ObservationStore for DynamoObservationStore {
    async fn replace(&self, observation: &StoredObservation, previous_hash: &str) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(observation)))
            .condition_expression("contentHash = :previous")
            .expression_attribute_values(":previous", s(previous_hash));
        conditional_put(put, "replace observation").await
    }

    async fn insert_set(&self, set: &[StoredObservation]) -> Result<Inserted, StoreError> {
        const OP: &str = "insert observations";
        // Only the ones not there yet (after an interrupted write, some are).
        let mut missing: Vec<&StoredObservation> = set.iter().collect();
        for _ in 0..3 {
            if missing.is_empty() {
                break;
            }
            if self.write_all_or_none(&missing).await? {
                return Ok(Inserted::New);
            }
            // A condition failed: some exist. Compare them, then write only what is missing.
            let mut existing = Vec::new();
            for o in set {
                if let Some(found) = self.get(&o.id).await? {
                    existing.push(found);
                }
            }
            match judge(set, &existing) {
                Inserted::New => missing = set.iter().filter(|o| !existing.iter().any(|e| e.id == o.id)).collect(),
                verdict => return Ok(verdict),
            }
        }
        Err(StoreError::new(OP, "the set kept changing while it was written"))
    }

    async fn insert_new_sets(&self, sets: &[&[StoredObservation]]) -> Result<bool, StoreError> {
        let all: Vec<&StoredObservation> = sets.iter().flat_map(|s| s.iter()).collect();
        if all.is_empty() {
            return Ok(true);
        }
        self.write_all_or_none(&all).await
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

    async fn search_page(&self, page: &SearchPage<'_>) -> Result<(Vec<StoredObservation>, bool), StoreError> {
        const OP: &str = "search observations";
        let mut query = search_query(&self.client, &self.table, page.along, page.from, page.to)
            .scan_index_forward(!page.newest_first)
            .limit(i32::try_from(page.limit).unwrap_or(i32::MAX));
        if let Some(after) = page.after {
            // The index's key of the Observation the last page ended on, with the table's.
            let (index, partition) = index_of(page.along);
            query = query
                .exclusive_start_key("id", s(&after.id))
                .exclusive_start_key("effectiveAt", s(&after.effective_at))
                .exclusive_start_key(index.partition_key, s(partition));
        }
        let out = query.send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        let found = out.items().iter().map(from_item).collect::<Result<Vec<_>, _>>()?;
        Ok((found, out.last_evaluated_key.is_some()))
    }

    async fn count(&self, along: &Along, from: Option<&str>, to: Option<&str>) -> Result<usize, StoreError> {
        let query = search_query(&self.client, &self.table, along, from, to).select(aws_sdk_dynamodb::types::Select::Count);
        let mut pages = query.into_paginator().send();
        let mut count = 0;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk("count observations", &e))?;
            count += usize::try_from(page.count()).unwrap_or(0);
        }
        Ok(count)
    }
}
