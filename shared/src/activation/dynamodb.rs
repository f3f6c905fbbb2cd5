use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, NaiveDate, Utc};

use super::clinicians::{ClinicianLogin, ClinicianLoginStore};
use super::devices::{DeviceFilter, EntryDevice, EntryDeviceStore};
use super::{Activation, ActivationStore, Credential, Holder};
use crate::platform::dynamodb::{delete_all, n, put_over_version, put_over_version_in, opt_bool, opt_s, opt_u64, put_opt, query_all, req_s, s, Item};
use crate::platform::tables::{ACTIVATIONS, ACTIVATIONS_COMPLETED, CLINICIANS_BY_IDENTIFIER, ENTRY_DEVICES_BY_LOCATION};
use crate::platform::time::{format_utc, parse_with_offset};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Activations, ward tablets' records and clinicians' login records in the `ActivationsTable`.
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

    /// A put of `item` over `version - 1` (absent when `version` is 1), in a transaction.
    fn versioned_put(&self, item: Item, version: u64, op: &'static str) -> Result<Put, StoreError> {
        put_over_version_in(&self.table, item, version, "pk", op)
    }

    /// Writes `item` over `version - 1` (absent when `version` is 1); false if that failed.
    async fn put_versioned(&self, item: Item, version: u64, op: &'static str) -> Result<bool, StoreError> {
        put_over_version(&self.client, &self.table, item, version, "pk", op).await
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

fn credential_pk(holder: &Holder) -> String {
    match holder {
        Holder::Patient(id) => format!("patient#{id}"),
        Holder::Device(id) => format!("device-credential#{id}"),
    }
}

fn device_pk(uuid: &str) -> String {
    format!("entry-device#{uuid}")
}

fn clinician_pk(clinician_id: &str) -> String {
    format!("clinician#{clinician_id}")
}

fn guesses_pk(hour: &str) -> String {
    format!("device-guesses#{hour}")
}

/// What device records carry so that the listing index holds them (and nothing else).
const DEVICE_LIST: &str = "entry-device";

fn activation_item(a: &Activation) -> Item {
    let mut item = Item::from([
        ("pk".to_owned(), s(activation_pk(&a.code_key))),
        ("uuid".to_owned(), s(&a.uuid)),
        ("attempts".to_owned(), n(a.attempts)),
        ("created".to_owned(), s(format_utc(a.created))),
        ("createdBy".to_owned(), s(&a.created_by)),
        ("modified".to_owned(), s(format_utc(a.modified))),
        ("modifiedBy".to_owned(), s(&a.modified_by)),
        ("expires".to_owned(), s(format_utc(a.expires))),
        ("version".to_owned(), n(a.version)),
    ]);
    // Only patients' activations carry `patientId`, so only they are in the completed index.
    match &a.holder {
        Holder::Patient(id) => item.insert("patientId".to_owned(), s(id)),
        Holder::Device(id) => item.insert("deviceId".to_owned(), s(id)),
    };
    put_opt(&mut item, "otpHash", a.otp_hash.as_deref());
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
        holder: match (opt_s(item, "patientId"), opt_s(item, "deviceId")) {
            (Some(p), _) => Holder::Patient(p),
            (None, Some(d)) => Holder::Device(d),
            (None, None) => return Err(StoreError::new(OP, "the activation names neither a patient nor a device")),
        },
        otp_hash: opt_s(item, "otpHash"),
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

fn credential_item(c: &Credential) -> Item {
    let mut item = Item::from([("pk".to_owned(), s(credential_pk(&c.holder))), ("version".to_owned(), n(c.version))]);
    put_opt(&mut item, "openCodeKey", c.open_code_key.as_deref());
    put_opt(&mut item, "authorisationHash", c.authorisation_hash.as_deref());
    put_opt(&mut item, "authorisationExpires", c.authorisation_expires.map(format_utc).as_deref());
    item
}

fn credential_from(holder: &Holder, item: &Item) -> Credential {
    Credential {
        holder: holder.clone(),
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

    async fn credential(&self, holder: &Holder) -> Result<Option<Credential>, StoreError> {
        Ok(self.item(credential_pk(holder), "read credential").await?.map(|item| credential_from(holder, &item)))
    }

    async fn open(&self, activation: &Activation, replaced: Option<&str>, credential: &Credential) -> Result<bool, StoreError> {
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
        self.put_versioned(activation_item(activation), activation.version, "update activation").await
    }

    async fn complete(&self, activation: &Activation, credential: &Credential) -> Result<bool, StoreError> {
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

    async fn device_guesses(&self, hour: &str) -> Result<u64, StoreError> {
        Ok(self.item(guesses_pk(hour), "read device guesses").await?.and_then(|item| opt_u64(&item, "guesses")).unwrap_or(0))
    }

    async fn count_device_guess(&self, hour: &str) -> Result<(), StoreError> {
        // Kept a day past its hour (DynamoDB's TTL then removes it).
        let expires = Utc::now().timestamp() + 90_000;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(guesses_pk(hour)))
            .update_expression("ADD guesses :one SET expiresAt = :expires")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(expires))
            .return_values(ReturnValue::None)
            .send()
            .await
            .map_err(|e| StoreError::sdk("count a device guess", &e))?;
        Ok(())
    }

    async fn drop_all(&self) -> Result<usize, StoreError> {
        delete_all(&self.client, &self.table, "pk", "drop activations").await
    }
}

fn device_item(d: &EntryDevice) -> Item {
    Item::from([
        ("pk".to_owned(), s(device_pk(&d.uuid))),
        ("listedIn".to_owned(), s(DEVICE_LIST)),
        ("uuid".to_owned(), s(&d.uuid)),
        ("locationId".to_owned(), s(&d.location_id)),
        ("description".to_owned(), s(&d.description)),
        ("active".to_owned(), AttributeValue::Bool(d.active)),
        ("created".to_owned(), s(format_utc(d.created))),
        ("createdBy".to_owned(), s(&d.created_by)),
        ("modified".to_owned(), s(format_utc(d.modified))),
        ("modifiedBy".to_owned(), s(&d.modified_by)),
        ("version".to_owned(), n(d.version)),
    ])
}

fn device_from(item: &Item) -> Result<EntryDevice, StoreError> {
    const OP: &str = "read device";
    Ok(EntryDevice {
        uuid: req_s(item, "uuid", OP)?,
        location_id: req_s(item, "locationId", OP)?,
        description: req_s(item, "description", OP)?,
        active: opt_bool(item, "active").unwrap_or(true),
        created: time(item, "created", OP)?,
        created_by: req_s(item, "createdBy", OP)?,
        modified: time(item, "modified", OP)?,
        modified_by: req_s(item, "modifiedBy", OP)?,
        version: opt_u64(item, "version").unwrap_or(1),
    })
}

impl EntryDeviceStore for DynamoActivationStore {
    async fn device(&self, uuid: &str) -> Result<Option<EntryDevice>, StoreError> {
        self.item(device_pk(uuid), "read device").await?.as_ref().map(device_from).transpose()
    }

    async fn put_device(&self, device: &EntryDevice) -> Result<bool, StoreError> {
        self.put_versioned(device_item(device), device.version, "write device").await
    }

    async fn devices(&self, filter: &DeviceFilter) -> Result<Vec<EntryDevice>, StoreError> {
        const OP: &str = "list devices";
        let query = || {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(ENTRY_DEVICES_BY_LOCATION.name)
                .filter_expression("active = :active")
                .expression_attribute_values(":list", s(DEVICE_LIST))
                .expression_attribute_values(":active", AttributeValue::Bool(filter.active))
        };
        let mut found = Vec::new();
        match &filter.locations {
            None => found = query_all(query().key_condition_expression("listedIn = :list"), OP, device_from).await?,
            Some(locations) => {
                for location in locations {
                    let at = query().key_condition_expression("listedIn = :list AND locationId = :l").expression_attribute_values(":l", s(location));
                    found.extend(query_all(at, OP, device_from).await?);
                }
            }
        }
        Ok(found)
    }
}

fn clinician_item(c: &ClinicianLogin) -> Item {
    let list = |values: &[String]| AttributeValue::L(values.iter().map(s).collect());
    let mut item = Item::from([
        ("pk".to_owned(), s(clinician_pk(&c.clinician_id))),
        ("clinicianId".to_owned(), s(&c.clinician_id)),
        ("uuid".to_owned(), s(&c.uuid)),
        ("loginActive".to_owned(), AttributeValue::Bool(c.login_active)),
        ("products".to_owned(), list(&c.products)),
        ("groups".to_owned(), list(&c.groups)),
        ("created".to_owned(), s(format_utc(c.created))),
        ("createdBy".to_owned(), s(&c.created_by)),
        ("modified".to_owned(), s(format_utc(c.modified))),
        ("modifiedBy".to_owned(), s(&c.modified_by)),
        ("version".to_owned(), n(c.version)),
    ]);
    // Sparse: only clinicians with an identifier are in the sign-in index.
    put_opt(&mut item, "sendEntryIdentifier", c.send_entry_identifier.as_deref().filter(|i| !i.is_empty()));
    put_opt(&mut item, "contractExpiryEodDate", c.contract_expiry_eod_date.map(|d| d.to_string()).as_deref());
    item
}

fn clinician_from(item: &Item) -> Result<ClinicianLogin, StoreError> {
    const OP: &str = "read clinician";
    let list = |name: &str| -> Vec<String> {
        item.get(name).and_then(|v| v.as_l().ok()).map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect()).unwrap_or_default()
    };
    Ok(ClinicianLogin {
        clinician_id: req_s(item, "clinicianId", OP)?,
        uuid: req_s(item, "uuid", OP)?,
        login_active: opt_bool(item, "loginActive").unwrap_or(false),
        send_entry_identifier: opt_s(item, "sendEntryIdentifier"),
        products: list("products"),
        groups: list("groups"),
        contract_expiry_eod_date: opt_s(item, "contractExpiryEodDate").and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()),
        created: time(item, "created", OP)?,
        created_by: req_s(item, "createdBy", OP)?,
        modified: time(item, "modified", OP)?,
        modified_by: req_s(item, "modifiedBy", OP)?,
        version: opt_u64(item, "version").unwrap_or(1),
    })
}

impl ClinicianLoginStore for DynamoActivationStore {
    async fn clinician(&self, clinician_id: &str) -> Result<Option<ClinicianLogin>, StoreError> {
        self.item(clinician_pk(clinician_id), "read clinician").await?.as_ref().map(clinician_from).transpose()
    }

    async fn put_clinician(&self, login: &ClinicianLogin) -> Result<bool, StoreError> {
        self.put_versioned(clinician_item(login), login.version, "write clinician").await
    }

    async fn by_identifier(&self, send_entry_identifier: &str) -> Result<Option<ClinicianLogin>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(CLINICIANS_BY_IDENTIFIER.name)
            .key_condition_expression("sendEntryIdentifier = :i")
            .expression_attribute_values(":i", s(send_entry_identifier));
        // The index is eventually consistent: each record is read again, and says itself
        // whether it still has the identifier.
        let found = query_all(query, "find clinician", |item| req_s(item, "pk", "find clinician")).await?;
        for pk in found {
            if let Some(current) = self.clinician(pk.strip_prefix("clinician#").unwrap_or(&pk)).await? {
                if current.send_entry_identifier.as_deref() == Some(send_entry_identifier) {
                    return Ok(Some(current));
                }
            }
        }
        Ok(None)
    }
}
