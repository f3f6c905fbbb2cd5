//! Firmware images in the `FirmwareTable` (by `firmwareId`), and deployments in the
//! `DeploymentsTable`: one item per deployment (`sk = DEPLOYMENT`) and one per device
//! (`sk = THING#<thingName>`), so a single query reads a deployment whole.

use aws_sdk_dynamodb::types::{PutRequest, TransactWriteItem, Update, WriteRequest};
use aws_sdk_dynamodb::Client;
use serde_json::{Map, Value};

use super::deployments::{
    Deployment, DeploymentStatus, DeploymentStore, DeploymentSummary, DeviceExecution, ExecutionStatus, ListCursor, Recorded, RolloutSettings,
};
use super::{FirmwareImage, FirmwareStore};
use crate::platform::dynamodb::{batch_write, conditional_put, met_another_transaction, n, only_conditions_failed, opt_s, opt_u64, req_s, s, Item};
use crate::platform::tables::{DEPLOYMENTS, DEPLOYMENTS_BY_CREATED, FIRMWARE};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;


/// [`FirmwareStore`] in the `FirmwareTable`.
#[derive(Debug, Clone)]
pub struct DynamoFirmwareStore {
    client: Client,
    table: String,
}

impl DynamoFirmwareStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl FromWiring for DynamoFirmwareStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&FIRMWARE)?))
    }
}

impl FirmwareStore for DynamoFirmwareStore {
    async fn create(&self, i: &FirmwareImage) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("firmwareId", s(&i.firmware_id))
            .item("version", s(&i.version))
            .item("deviceModel", s(&i.device_model))
            .item("sha256", s(&i.sha256))
            .item("sizeBytes", n(i.size_bytes))
            .item("objectKey", s(&i.object_key))
            .item("createdAt", s(&i.created_at))
            .condition_expression("attribute_not_exists(firmwareId)");
        conditional_put(put, "register firmware").await
    }

    async fn get(&self, firmware_id: &str) -> Result<Option<FirmwareImage>, StoreError> {
        const OP: &str = "read firmware";
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("firmwareId", s(firmware_id))
            .send()
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        out.item().map(|i| image_from(i, OP)).transpose()
    }

    async fn list(&self, device_model: Option<&str>) -> Result<Vec<FirmwareImage>, StoreError> {
        const OP: &str = "list firmware";
        let mut request = self.client.scan().table_name(&self.table);
        if let Some(m) = device_model {
            request = request.filter_expression("deviceModel = :m").expression_attribute_values(":m", s(m));
        }
        let mut pages = request.into_paginator().send();
        let mut images = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk(OP, &e))?;
            for item in page.items() {
                images.push(image_from(item, OP)?);
            }
        }
        Ok(images)
    }
}

fn image_from(item: &Item, op: &'static str) -> Result<FirmwareImage, StoreError> {
    Ok(FirmwareImage {
        firmware_id: req_s(item, "firmwareId", op)?,
        version: req_s(item, "version", op)?,
        device_model: req_s(item, "deviceModel", op)?,
        sha256: req_s(item, "sha256", op)?,
        size_bytes: opt_u64(item, "sizeBytes").unwrap_or(0),
        object_key: req_s(item, "objectKey", op)?,
        created_at: req_s(item, "createdAt", op)?,
    })
}

const HEADER: &str = "DEPLOYMENT";
const THING_PREFIX: &str = "THING#";
/// The partition of the byCreated index: only deployment records carry it (a sparse index), so
/// the list reads no device items. Admin traffic only, far below one partition's limits.
const LISTED: &str = "DEPLOYMENT";

/// [`DeploymentStore`] over DynamoDB.
#[derive(Debug, Clone)]
pub struct DynamoDeploymentStore {
    client: Client,
    table: String,
}

impl DynamoDeploymentStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

impl FromWiring for DynamoDeploymentStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&DEPLOYMENTS)?))
    }
}

fn opt_n<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

fn device_item(deployment_id: &str, d: &DeviceExecution) -> Item {
    Item::from([
        ("deploymentId".into(), s(deployment_id)),
        ("sk".into(), s(format!("{THING_PREFIX}{}", d.thing_name))),
        ("thingName".into(), s(&d.thing_name)),
        ("status".into(), s(d.status.as_str())),
        ("statusDetails".into(), s(Value::Object(d.status_details.clone()).to_string())),
        ("updatedAt".into(), s(&d.updated_at)),
    ])
}

fn header_item(d: &Deployment) -> Item {
    let mut item = Item::from([
        ("deploymentId".into(), s(&d.deployment_id)),
        ("sk".into(), s(HEADER)),
        ("firmwareId".into(), s(&d.firmware_id)),
        ("version".into(), s(&d.version)),
        ("deviceModel".into(), s(&d.device_model)),
        ("status".into(), s(d.status.as_str())),
        ("maximumPerMinute".into(), n(d.settings.maximum_per_minute)),
        ("abortFailurePercent".into(), n(d.settings.abort_failure_percent)),
        ("abortMinExecuted".into(), n(d.settings.abort_min_executed)),
        ("timeoutMinutes".into(), n(d.settings.timeout_minutes)),
        ("createdAt".into(), s(&d.created_at)),
        ("updatedAt".into(), s(&d.updated_at)),
        ("listKey".into(), s(LISTED)),
        ("deviceCount".into(), n(d.devices.len())),
        ("finishedCount".into(), n(d.devices.iter().filter(|e| e.status.is_terminal()).count())),
    ]);
    crate::platform::dynamodb::put_opt(&mut item, "statusReason", d.status_reason.as_deref());
    item
}

fn summary_from(item: &Item) -> Result<DeploymentSummary, StoreError> {
    const OP: &str = "list deployments";
    let status = req_s(item, "status", OP)?;
    Ok(DeploymentSummary {
        deployment_id: req_s(item, "deploymentId", OP)?,
        firmware_id: req_s(item, "firmwareId", OP)?,
        version: req_s(item, "version", OP)?,
        device_model: req_s(item, "deviceModel", OP)?,
        status: DeploymentStatus::parse(&status).ok_or_else(|| StoreError::new(OP, format!("unknown status {status}")))?,
        status_reason: opt_s(item, "statusReason"),
        device_count: opt_n(item, "deviceCount").unwrap_or(0),
        finished_count: opt_n(item, "finishedCount").unwrap_or(0),
        created_at: req_s(item, "createdAt", OP)?,
        updated_at: opt_s(item, "updatedAt").unwrap_or_default(),
    })
}

impl DeploymentStore for DynamoDeploymentStore {
    async fn create(&self, d: &Deployment) -> Result<bool, StoreError> {
        const OP: &str = "create deployment";
        let header = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(header_item(d)))
            .condition_expression("attribute_not_exists(deploymentId)");
        if !conditional_put(header, OP).await? {
            return Ok(false);
        }
        let requests = d
            .devices
            .iter()
            .map(|e| {
                let put = PutRequest::builder().set_item(Some(device_item(&d.deployment_id, e))).build();
                put.map(|p| WriteRequest::builder().put_request(p).build()).map_err(|e| StoreError::new(OP, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        batch_write(&self.client, &self.table, requests, OP).await?;
        Ok(true)
    }

    async fn get(&self, deployment_id: &str) -> Result<Option<Deployment>, StoreError> {
        const OP: &str = "read deployment";
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("deploymentId = :d")
            .expression_attribute_values(":d", s(deployment_id))
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut header = None;
        let mut devices = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| StoreError::sdk(OP, &e))?;
            for item in page.items() {
                if opt_s(item, "sk").as_deref() == Some(HEADER) {
                    header = Some(item.clone());
                    continue;
                }
                let status = req_s(item, "status", OP)?;
                devices.push(DeviceExecution {
                    thing_name: req_s(item, "thingName", OP)?,
                    status: ExecutionStatus::parse(&status).ok_or_else(|| StoreError::new(OP, format!("unknown status {status}")))?,
                    status_details: opt_s(item, "statusDetails")
                        .and_then(|t| serde_json::from_str::<Map<String, Value>>(&t).ok())
                        .unwrap_or_default(),
                    updated_at: opt_s(item, "updatedAt").unwrap_or_default(),
                });
            }
        }
        let Some(h) = header else { return Ok(None) };
        let status = req_s(&h, "status", OP)?;
        let d = RolloutSettings::default();
        Ok(Some(Deployment {
            deployment_id: deployment_id.to_owned(),
            firmware_id: req_s(&h, "firmwareId", OP)?,
            version: req_s(&h, "version", OP)?,
            device_model: req_s(&h, "deviceModel", OP)?,
            status: DeploymentStatus::parse(&status).ok_or_else(|| StoreError::new(OP, format!("unknown status {status}")))?,
            status_reason: opt_s(&h, "statusReason"),
            settings: RolloutSettings {
                maximum_per_minute: opt_n(&h, "maximumPerMinute").unwrap_or(d.maximum_per_minute),
                abort_failure_percent: opt_n(&h, "abortFailurePercent").unwrap_or(d.abort_failure_percent),
                abort_min_executed: opt_n(&h, "abortMinExecuted").unwrap_or(d.abort_min_executed),
                timeout_minutes: opt_n(&h, "timeoutMinutes").unwrap_or(d.timeout_minutes),
            },
            created_at: opt_s(&h, "createdAt").unwrap_or_default(),
            updated_at: opt_s(&h, "updatedAt").unwrap_or_default(),
            devices,
        }))
    }

    async fn list(&self, limit: usize, after: Option<&ListCursor>) -> Result<(Vec<DeploymentSummary>, Option<ListCursor>), StoreError> {
        const OP: &str = "list deployments";
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DEPLOYMENTS_BY_CREATED.name)
            .key_condition_expression("listKey = :k")
            .expression_attribute_values(":k", s(LISTED))
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX));
        if let Some(after) = after {
            request = request
                .exclusive_start_key("listKey", s(LISTED))
                .exclusive_start_key("createdAt", s(&after.created_at))
                .exclusive_start_key("deploymentId", s(&after.deployment_id))
                .exclusive_start_key("sk", s(HEADER));
        }
        let out = request.send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        let page = out.items().iter().map(summary_from).collect::<Result<Vec<_>, _>>()?;
        let next = if out.last_evaluated_key().is_some() { page.last().map(ListCursor::after) } else { None };
        Ok((page, next))
    }

    async fn set_status(&self, deployment_id: &str, status: DeploymentStatus, reason: Option<&str>, at: &str) -> Result<(), StoreError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("deploymentId", s(deployment_id))
            .key("sk", s(HEADER))
            .condition_expression("attribute_exists(deploymentId)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .expression_attribute_values(":at", s(at));
        request = match reason {
            Some(r) => request
                .update_expression("SET #status = :s, statusReason = :r, updatedAt = :at")
                .expression_attribute_values(":r", s(r)),
            None => request.update_expression("SET #status = :s, updatedAt = :at"),
        };
        request.send().await.map_err(|e| StoreError::sdk("set deployment status", &e))?;
        Ok(())
    }

    async fn record_terminal(
        &self,
        deployment_id: &str,
        thing_name: &str,
        status: ExecutionStatus,
        details: &Map<String, Value>,
        at: &str,
    ) -> Result<Recorded, StoreError> {
        const OP: &str = "record device result";
        let key = format!("{THING_PREFIX}{thing_name}");
        let device = Update::builder()
            .table_name(&self.table)
            .key("deploymentId", s(deployment_id))
            .key("sk", s(&key))
            .update_expression("SET #status = :s, statusDetails = :d, updatedAt = :at")
            // Only the first terminal status counts: redelivered or late events change nothing.
            .condition_expression("attribute_exists(sk) AND #status IN (:queued, :running)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(status.as_str()))
            .expression_attribute_values(":d", s(Value::Object(details.clone()).to_string()))
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":queued", s(ExecutionStatus::Queued.as_str()))
            .expression_attribute_values(":running", s(ExecutionStatus::InProgress.as_str()))
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        // Counted in the same transaction, so the list's progress never drifts from the devices'.
        let count = Update::builder()
            .table_name(&self.table)
            .key("deploymentId", s(deployment_id))
            .key("sk", s(HEADER))
            .update_expression("ADD finishedCount :one")
            .condition_expression("attribute_exists(deploymentId)")
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        let transaction = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(device).build())
            .transact_items(TransactWriteItem::builder().update(count).build());
        // Devices of one deployment finishing at once all count on its record: a transaction
        // that met another there is sent again (its condition still decides what counts).
        let mut attempt = 0;
        let update = loop {
            match transaction.clone().send().await {
                Err(e) if met_another_transaction(&e) && attempt < 5 => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                other => break other,
            }
        };
        match update {
            Ok(_) => Ok(Recorded::Updated),
            Err(e) if only_conditions_failed(&e) => {
                let item = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("deploymentId", s(deployment_id))
                    .key("sk", s(&key))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| StoreError::sdk(OP, &e))?;
                Ok(match item.item().and_then(|i| opt_s(i, "status")).and_then(|t| ExecutionStatus::parse(&t)) {
                    Some(current) => Recorded::AlreadyFinal(current),
                    None => Recorded::Unknown,
                })
            }
            Err(e) => Err(StoreError::sdk(OP, &e)),
        }
    }
}
