use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};

use super::{Activation, ActivationStore, PatientCredential};
use crate::platform::dynamodb::{n, opt_s, opt_u64, put_opt, put_over_version, query_all, req_s, s, Item};
use crate::platform::tables::{ACTIVATIONS, ACTIVATIONS_COMPLETED};
use crate::platform::time::{format_utc, parse_with_offset};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Activations in the `ActivationsTable`.
#[derive(Debug, Clone)]
pub struct DynamoActivationStore {
    client: Client,
    table: String,
}

impl DynamoActivationStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    async fn item(&self, pk: String, op: &'static str) -> Result<Option<Item>, StoreError> {
        let out = self.client.get_item().table_name(&self.table).key("pk", s(pk)).consistent_read(true).send().await.map_err(|e| StoreError::sdk(op, &e))?;
        Ok(out.item)
    }

    /// A put of `item` over `version - 1` (absent when `version` is 1).
    fn versioned_put(&self, item: Item, version: u64, op: &'static str) -> Result<Put, StoreError> {
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = if version <= 1 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :previous").expression_attribute_values(":previous", n(version - 1))
        };
        put.build().map_err(|e| StoreError::new(op, e))
    }

    async fn transact(&self, items: Vec<TransactWriteItem>, op: &'static str) -> Result<bool, StoreError> {
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(true),
            Err(e) if crate::platform::dynamodb::lost_to_another_write(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(op, &e)),
        }
    }
}

impl FromWiring for DynamoActivationStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&ACTIVATIONS)?))
    }
}

fn activation_pk(code_key: &str) -> String {
    format!("code#{code_key}")
}

fn credential_pk(patient_id: &str) -> String {
    format!("patient#{patient_id}")
}

fn activation_item(a: &Activation) -> Item {
    let mut item = Item::from([
        ("pk".to_owned(), s(activation_pk(&a.code_key))),
        ("uuid".to_owned(), s(&a.uuid)),
        ("patientId".to_owned(), s(&a.patient_id)),
        ("otpHash".to_owned(), s(&a.otp_hash)),
        ("attempts".to_owned(), n(a.attempts)),
        ("created".to_owned(), s(format_utc(a.created))),
        ("createdBy".to_owned(), s(&a.created_by)),
        ("modified".to_owned(), s(format_utc(a.modified))),
        ("modifiedBy".to_owned(), s(&a.modified_by)),
        ("expires".to_owned(), s(format_utc(a.expires))),
        ("version".to_owned(), n(a.version)),
    ]);
    put_opt(&mut item, "completedAt", a.completed.map(format_utc).as_deref());
    item
}

fn time(item: &Item, key: &str, op: &'static str) -> Result<DateTime<Utc>, StoreError> {
    parse_with_offset(&req_s(item, key, op)?).ok_or_else(|| StoreError::new(op, format!("`{key}` is not a time")))
}

fn activation_from(item: &Item) -> Result<Activation, StoreError> {
    const OP: &str = "read activation";
    let pk = req_s(item, "pk", OP)?;
    Ok(Activation {
        code_key: pk.strip_prefix("code#").unwrap_or(&pk).to_owned(),
        uuid: req_s(item, "uuid", OP)?,
        patient_id: req_s(item, "patientId", OP)?,
        otp_hash: req_s(item, "otpHash", OP)?,
        attempts: opt_u64(item, "attempts").and_then(|a| u32::try_from(a).ok()).unwrap_or(0),
        created: time(item, "created", OP)?,
        created_by: req_s(item, "createdBy", OP)?,
        modified: time(item, "modified", OP)?,
        modified_by: req_s(item, "modifiedBy", OP)?,
        expires: time(item, "expires", OP)?,
        completed: opt_s(item, "completedAt").and_then(|t| parse_with_offset(&t)),
        version: opt_u64(item, "version").unwrap_or(1),
    })
}

fn credential_item(c: &PatientCredential) -> Item {
    let mut item = Item::from([("pk".to_owned(), s(credential_pk(&c.patient_id))), ("version".to_owned(), n(c.version))]);
    put_opt(&mut item, "openCodeKey", c.open_code_key.as_deref());
    put_opt(&mut item, "authorisationHash", c.authorisation_hash.as_deref());
    put_opt(&mut item, "authorisationExpires", c.authorisation_expires.map(format_utc).as_deref());
    item
}

fn credential_from(patient_id: &str, item: &Item) -> PatientCredential {
    PatientCredential {
        patient_id: patient_id.to_owned(),
        open_code_key: opt_s(item, "openCodeKey"),
        authorisation_hash: opt_s(item, "authorisationHash"),
        authorisation_expires: opt_s(item, "authorisationExpires").and_then(|t| parse_with_offset(&t)),
        version: opt_u64(item, "version").unwrap_or(1),
    }
}

impl ActivationStore for DynamoActivationStore {
    async fn activation(&self, code_key: &str) -> Result<Option<Activation>, StoreError> {
        self.item(activation_pk(code_key), "read activation").await?.as_ref().map(activation_from).transpose()
    }

    async fn credential(&self, patient_id: &str) -> Result<Option<PatientCredential>, StoreError> {
        Ok(self.item(credential_pk(patient_id), "read patient credential").await?.map(|item| credential_from(patient_id, &item)))
    }

    async fn open(&self, activation: &Activation, replaced: Option<&str>, credential: &PatientCredential) -> Result<bool, StoreError> {
        const OP: &str = "open activation";
        let mut items = vec![
            TransactWriteItem::builder().put(self.versioned_put(activation_item(activation), 1, OP)?).build(),
            TransactWriteItem::builder().put(self.versioned_put(credential_item(credential), credential.version, OP)?).build(),
        ];
        if let Some(old) = replaced.filter(|old| *old != activation.code_key) {
            // The replaced activation goes unless it was used meanwhile (then it is history).
            let delete = Delete::builder()
                .table_name(&self.table)
                .key("pk", s(activation_pk(old)))
                .condition_expression("attribute_not_exists(completedAt)")
                .build()
                .map_err(|e| StoreError::new(OP, e))?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        self.transact(items, OP).await
    }

    async fn update(&self, activation: &Activation) -> Result<bool, StoreError> {
        put_over_version(&self.client, &self.table, activation_item(activation), activation.version, "update activation").await
    }

    async fn complete(&self, activation: &Activation, credential: &PatientCredential) -> Result<bool, StoreError> {
        const OP: &str = "complete activation";
        let items = vec![
            TransactWriteItem::builder().put(self.versioned_put(activation_item(activation), activation.version, OP)?).build(),
            TransactWriteItem::builder().put(self.versioned_put(credential_item(credential), credential.version, OP)?).build(),
        ];
        self.transact(items, OP).await
    }

    async fn completed_of(&self, patient_id: &str) -> Result<Vec<Activation>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ACTIVATIONS_COMPLETED.name)
            .key_condition_expression("patientId = :p")
            .expression_attribute_values(":p", s(patient_id))
            .scan_index_forward(false);
        query_all(query, "list activations", activation_from).await
    }
}
