//! [`AlertStore`] in the `AlertsTable`: `patientId`, `sortKey` = `ALERT#<readingsAt>#<alertId>`
//! for alerts (listed newest first by the readings' time), `ID#<alertId>` for the guard that
//! makes raising idempotent by id (a reading re-published later, without a device time, has
//! another `readingsAt` but the same alert id), and `OPEN#<kind>` for the de-duplication
//! marker (the highest open alert of that kind and its rank).
//!
//! The alert flow ([`FlowStore`]) keeps, under the same patient: `FLOW#<alertId>` (the flow,
//! its `version`, and `dueShard`/`dueAt` while the sweep has work there: written with the
//! alert, so the next sweep starts it), `STEP#<alertId>#<version>`
//! (the history; `delivered` once its deliveries are done) and `SEND#<deliveryId>` (each message
//! and notification, written over its `attempts`). A single-use answer link is an item of its
//! own partition, `LINK#<token hash>` (`sortKey` = `LINK`), found by the hash alone. A
//! patient's latest NEWS2 set is `NEXTSET` (`lastSetAt`, `severity`, `overall`, and
//! `dueShard`/`dueAt` while the sweep is to check it is not overdue). The patient's current
//! vital signs are `VITALS`: one map attribute per vital sign, `v:<system|code>` =
//! `{at, id, value, unit}`, each written only over an older one.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use super::alerting::{Delivery, Due, FlowStore, LastSet};
use super::flow::{Answer, Flow, Step, StepRecord};
use super::links::AnswerLink;
use super::{Alert, AlertKind, AlertPage, AlertStatus, AlertStore};
use crate::platform::dynamodb::{
    conditional_put, is_condition_failed, lost_to_another_write, n, newest_first_page, only_conditions_failed, opt_bool, opt_s, put_over_version_in, query_all, s,
    Item,
};
use crate::platform::tables::ALERTS_BY_DUE;
use crate::platform::tables::ALERTS;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

#[derive(Debug, Clone)]
pub struct DynamoAlertStore {
    client: Client,
    table: String,
}

impl DynamoAlertStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn record_key(alert: &Alert) -> String {
        format!("ALERT#{}#{}", alert.set_at, alert.alert_id)
    }

    fn guard_key(alert: &Alert) -> String {
        format!("ID#{}", alert.alert_id)
    }

    fn marker_key(kind: AlertKind) -> String {
        format!("OPEN#{}", kind.as_str())
    }

    fn record(&self, alert: &Alert) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("patientId", s(&alert.patient_id))
            .item("sortKey", s(Self::record_key(alert)))
            .item("alertId", s(&alert.alert_id))
            .item("alert", s(alert.to_json().to_string()))
    }

    /// Every alert of the patient, newest first (closing looks an alert up by id).
    async fn all_for_patient(&self, patient_id: &str) -> Result<Vec<Alert>, StoreError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.for_patient(patient_id, 100, after.as_deref()).await?;
            all.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(all),
            }
        }
    }
}

impl FromWiring for DynamoAlertStore {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self::new(w.aws.dynamodb(), w.table(&ALERTS)?))
    }
}

fn alert_of(item: &Item) -> Option<Alert> {
    serde_json::from_str::<Value>(opt_s(item, "alert")?.as_str()).ok().as_ref().and_then(Alert::from_json)
}

/// The current values a `VITALS` item holds.
fn current_values_of(item: &Item) -> Vec<super::CurrentValue> {
    item.iter().filter_map(|(name, value)| current_value(name.strip_prefix("v:")?, value)).collect()
}

/// The `VITALS` attribute of a vital sign.
fn vital_attribute(code_key: &str) -> String {
    format!("v:{code_key}")
}

fn current_value(code_key: &str, value: &aws_sdk_dynamodb::types::AttributeValue) -> Option<super::CurrentValue> {
    let map = value.as_m().ok()?;
    let text = |k: &str| map.get(k).and_then(|v| v.as_s().ok()).cloned();
    Some(super::CurrentValue {
        code_key: code_key.to_owned(),
        observation_id: text("id")?,
        device_id: text("device").unwrap_or_default(),
        effective_at: text("at")?,
        value: text("value")?,
        unit: text("unit").unwrap_or_default(),
    })
}

impl DynamoAlertStore {
    /// One update of `VITALS` writing `values`, each only over an older value: the item's
    /// current values after it, or `None` when a condition failed (some value is newer) and
    /// nothing was written.
    async fn update_current(&self, patient_id: &str, values: &[&super::CurrentValue]) -> Result<Option<Vec<super::CurrentValue>>, StoreError> {
        use aws_sdk_dynamodb::types::AttributeValue;
        let mut update = self.client.update_item().table_name(&self.table).key("patientId", s(patient_id)).key("sortKey", s("VITALS")).expression_attribute_names("#at", "at");
        let (mut sets, mut conditions) = (Vec::new(), Vec::new());
        for (i, v) in values.iter().enumerate() {
            sets.push(format!("#v{i} = :v{i}"));
            conditions.push(format!("(attribute_not_exists(#v{i}) OR #v{i}.#at <= :at{i})"));
            let fields = [("at", &v.effective_at), ("id", &v.observation_id), ("device", &v.device_id), ("value", &v.value), ("unit", &v.unit)];
            // Empty texts (a set's value has no device) are left out.
            let map = fields.into_iter().filter(|(_, text)| !text.is_empty()).map(|(k, text)| (k.to_owned(), s(text)));
            update = update
                .expression_attribute_names(format!("#v{i}"), vital_attribute(&v.code_key))
                .expression_attribute_values(format!(":v{i}"), AttributeValue::M(map.collect()))
                .expression_attribute_values(format!(":at{i}"), s(&v.effective_at));
        }
        let update = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew);
        match update.send().await {
            Ok(out) => Ok(Some(out.attributes().map(current_values_of).unwrap_or_default())),
            Err(e) if is_condition_failed(&e) => Ok(None),
            Err(e) => Err(StoreError::sdk("record current vital signs", &e)),
        }
    }
}

impl AlertStore for DynamoAlertStore {
    async fn record_current(&self, patient_id: &str, values: &[super::CurrentValue]) -> Result<Vec<super::CurrentValue>, StoreError> {
        if values.is_empty() {
            return self.current(patient_id).await;
        }
        // One write for the whole set when each value is the newest (the usual case), which
        // also answers the current values; when one is not, each is written on its own
        // condition, so that the newer ones still land, and the record is read after.
        let all: Vec<&super::CurrentValue> = values.iter().collect();
        if let Some(current) = self.update_current(patient_id, &all).await? {
            return Ok(current);
        }
        if values.len() > 1 {
            for v in all {
                self.update_current(patient_id, &[v]).await?;
            }
        }
        self.current(patient_id).await
    }

    async fn current(&self, patient_id: &str) -> Result<Vec<super::CurrentValue>, StoreError> {
        const OP: &str = "read current vital signs";
        let out = self.client.get_item().table_name(&self.table).key("patientId", s(patient_id)).key("sortKey", s("VITALS")).consistent_read(true).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(out.item().map(current_values_of).unwrap_or_default())
    }

    async fn raise(&self, alert: &Alert) -> Result<bool, StoreError> {
        const OP: &str = "raise alert";
        let rank = n(alert.rank());
        let marker = Put::builder()
            .table_name(&self.table)
            .item("patientId", s(&alert.patient_id))
            .item("sortKey", s(Self::marker_key(alert.kind)))
            .item("alertId", s(&alert.alert_id))
            .item("rank", rank.clone())
            // Raise only above what is open already.
            .condition_expression("attribute_not_exists(sortKey) OR #rank < :rank")
            .expression_attribute_names("#rank", "rank")
            .expression_attribute_values(":rank", rank)
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        let record = Put::builder()
            .table_name(&self.table)
            .item("patientId", s(&alert.patient_id))
            .item("sortKey", s(Self::record_key(alert)))
            .item("alertId", s(&alert.alert_id))
            .item("alert", s(alert.to_json().to_string()))
            .condition_expression("attribute_not_exists(sortKey)")
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        // Once per alert id, whatever its readings time: a retried or re-published reading set
        // does not raise its alert again, also after it was closed.
        let guard = Put::builder()
            .table_name(&self.table)
            .item("patientId", s(&alert.patient_id))
            .item("sortKey", s(Self::guard_key(alert)))
            .item("alertId", s(&alert.alert_id))
            .item("recordKey", s(Self::record_key(alert)))
            .condition_expression("attribute_not_exists(sortKey)")
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        // The flow, due at once: the next sweep starts it.
        let flow = Put::builder()
            .table_name(&self.table)
            .item("patientId", s(&alert.patient_id))
            .item("sortKey", s(flow_key(&alert.alert_id)))
            .item("alertId", s(&alert.alert_id))
            .item(DUE_SHARD, s(DUE))
            .item("dueAt", s(&alert.raised_at))
            .condition_expression("attribute_not_exists(sortKey)")
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(TransactWriteItem::builder().put(record).build())
            .transact_items(TransactWriteItem::builder().put(guard).build())
            .transact_items(TransactWriteItem::builder().put(flow).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            // Only a failed condition means "not raised"; a conflict with a concurrent raise or
            // close is retried by the caller's retry (the invocation fails).
            Err(e) if only_conditions_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(OP, &e)),
        }
    }

    async fn for_patient(&self, patient_id: &str, limit: i32, after: Option<&str>) -> Result<AlertPage, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("patientId = :p AND begins_with(sortKey, :a)")
            .expression_attribute_values(":p", s(patient_id))
            .expression_attribute_values(":a", s("ALERT#"));
        let (items, next) = newest_first_page(query, ("patientId", patient_id), limit, after, "list alerts").await?;
        Ok(AlertPage { items: items.iter().filter_map(alert_of).collect(), next })
    }

    async fn record_set(&self, patient_id: &str, at: &str, severity: super::news2::Severity, overall: u8, due_at: &str) -> Result<(), StoreError> {
        const OP: &str = "record NEWS2 set";
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("patientId", s(patient_id))
            .item("sortKey", s("NEXTSET"))
            .item("lastSetAt", s(at))
            .item("severity", s(severity.as_str()))
            .item("overall", n(overall))
            .item(DUE_SHARD, s(DUE))
            .item("dueAt", s(due_at))
            // Only a later set replaces the latest (readings arrive out of order).
            .condition_expression("attribute_not_exists(lastSetAt) OR lastSetAt < :at")
            .expression_attribute_values(":at", s(at));
        conditional_put(put, OP).await?;
        Ok(())
    }

    async fn open(&self, patient_id: &str) -> Result<Vec<Alert>, StoreError> {
        const OP: &str = "list open alerts";
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("patientId = :p AND begins_with(sortKey, :o)")
            .expression_attribute_values(":p", s(patient_id))
            .expression_attribute_values(":o", s("OPEN#"));
        let ids = query_all(query, OP, |item| opt_s(item, "alertId").ok_or_else(|| StoreError::new(OP, "a marker without alertId"))).await?;
        let mut open = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(alert) = FlowStore::alert(self, patient_id, &id).await?.filter(|a| a.status == AlertStatus::Open) {
                open.push(alert);
            }
        }
        Ok(open)
    }

    async fn close(&self, patient_id: &str, alert_id: &str, closed_by: &str, at: &str) -> Result<Option<Alert>, StoreError> {
        const OP: &str = "close alert";
        let all = self.all_for_patient(patient_id).await?;
        let Some(mut alert) = all.iter().find(|a| a.alert_id == alert_id).cloned() else {
            return Ok(None);
        };
        if alert.status == AlertStatus::Closed {
            return Ok(Some(alert));
        }
        alert.status = AlertStatus::Closed;
        alert.closed_at = Some(at.to_owned());
        alert.closed_by = Some(closed_by.to_owned());
        self.record(&alert).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        // The marker now stands for the highest alert of this kind still open, or goes; only if
        // it was this alert's (a higher one raised meanwhile keeps its own). A failed condition
        // means a higher alert took the marker meanwhile: leave it.
        let marker_key = Self::marker_key(alert.kind);
        let still_open = all
            .iter()
            .filter(|a| a.kind == alert.kind && a.status == AlertStatus::Open && a.alert_id != alert_id)
            .max_by_key(|a| a.rank());
        match still_open {
            Some(open) => {
                let put = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("patientId", s(patient_id))
                    .item("sortKey", s(&marker_key))
                    .item("alertId", s(&open.alert_id))
                    .item("rank", n(open.rank()))
                    .condition_expression("alertId = :closed")
                    .expression_attribute_values(":closed", s(alert_id));
                conditional_put(put, OP).await?;
            }
            None => {
                let removed = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .key("patientId", s(patient_id))
                    .key("sortKey", s(&marker_key))
                    .condition_expression("alertId = :closed")
                    .expression_attribute_values(":closed", s(alert_id))
                    .send()
                    .await;
                match removed {
                    Ok(_) => {}
                    Err(e) if is_condition_failed(&e) => {}
                    Err(e) => return Err(StoreError::sdk(OP, &e)),
                }
            }
        }
        Ok(Some(alert))
    }
}

/// The sweep index's partition attribute, and its one value: every due flow is in one
/// partition (a few writes a minute per open alert; far below a partition's limits).
const DUE_SHARD: &str = "dueShard";
const DUE: &str = "due";

/// Puts an item on the sweep's index at `at`, or takes it off; the update's own condition
/// failing means a newer write scheduled it, which stands.
async fn on_sweep_index(update: aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder, at: Option<&str>, op: &'static str) -> Result<(), StoreError> {
    let update = update.expression_attribute_names("#shard", DUE_SHARD);
    let update = match at {
        Some(at) => update.update_expression("SET #shard = :due, dueAt = :at").expression_attribute_values(":due", s(DUE)).expression_attribute_values(":at", s(at)),
        None => update.update_expression("REMOVE #shard, dueAt"),
    };
    match update.send().await {
        Ok(_) => Ok(()),
        Err(e) if is_condition_failed(&e) => Ok(()),
        Err(e) => Err(StoreError::sdk(op, &e)),
    }
}

fn flow_key(alert_id: &str) -> String {
    format!("FLOW#{alert_id}")
}

fn step_key(alert_id: &str, version: u64) -> String {
    format!("STEP#{alert_id}#{version:010}")
}

fn delivery_key(delivery_id: &str) -> String {
    format!("SEND#{delivery_id}")
}

fn json_of<T: serde::de::DeserializeOwned>(item: &Item, name: &str, op: &'static str) -> Result<T, StoreError> {
    let text = opt_s(item, name).ok_or_else(|| StoreError::new(op, format!("an item without {name}")))?;
    serde_json::from_str(&text).map_err(|e| StoreError::new(op, e))
}

fn text_of<T: serde::Serialize>(value: &T, op: &'static str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::new(op, e))
}

impl DynamoAlertStore {
    fn flow_item(&self, step: &Step, op: &'static str) -> Result<Item, StoreError> {
        let flow = &step.flow;
        let mut item = Item::from([
            ("patientId".to_owned(), s(&flow.patient_id)),
            ("sortKey".to_owned(), s(flow_key(&flow.alert_id))),
            ("alertId".to_owned(), s(&flow.alert_id)),
            ("flow".to_owned(), s(text_of(flow, op)?)),
            ("version".to_owned(), n(flow.version)),
        ]);
        if let Some(due) = step.sweep_at() {
            item.insert(DUE_SHARD.to_owned(), s(DUE));
            item.insert("dueAt".to_owned(), s(due));
        }
        Ok(item)
    }
}

impl FlowStore for DynamoAlertStore {
    async fn alert(&self, patient_id: &str, alert_id: &str) -> Result<Option<Alert>, StoreError> {
        const OP: &str = "read alert";
        let guard = self.client.get_item().table_name(&self.table).key("patientId", s(patient_id)).key("sortKey", s(format!("ID#{alert_id}"))).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        let Some(guard) = guard.item() else { return Ok(None) };
        let Some(record_key) = opt_s(guard, "recordKey") else {
            // Raised before guards named their record.
            return Ok(self.all_for_patient(patient_id).await?.into_iter().find(|a| a.alert_id == alert_id));
        };
        let record = self.client.get_item().table_name(&self.table).key("patientId", s(patient_id)).key("sortKey", s(record_key)).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(record.item().and_then(alert_of))
    }

    async fn flow(&self, patient_id: &str, alert_id: &str) -> Result<Option<Flow>, StoreError> {
        const OP: &str = "read alert flow";
        let out = self.client.get_item().table_name(&self.table).key("patientId", s(patient_id)).key("sortKey", s(flow_key(alert_id))).consistent_read(true).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        match out.item() {
            Some(item) if item.contains_key("flow") => Ok(Some(json_of(item, "flow", OP)?)),
            _ => Ok(None),
        }
    }

    async fn record_step(&self, step: &Step) -> Result<bool, StoreError> {
        const OP: &str = "record alert flow step";
        let flow = put_over_version_in(&self.table, self.flow_item(step, OP)?, step.flow.version, "version", OP)?;
        let record = Put::builder()
            .table_name(&self.table)
            .item("patientId", s(&step.flow.patient_id))
            .item("sortKey", s(step_key(&step.flow.alert_id, step.flow.version)))
            .item("record", s(text_of(&step.record, OP)?))
            .item("delivered", aws_sdk_dynamodb::types::AttributeValue::Bool(step.effects.is_empty()))
            .condition_expression("attribute_not_exists(sortKey)")
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(flow).build())
            .transact_items(TransactWriteItem::builder().put(record).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if lost_to_another_write(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(OP, &e)),
        }
    }

    async fn history(&self, patient_id: &str, alert_id: &str) -> Result<Vec<(StepRecord, bool)>, StoreError> {
        const OP: &str = "read alert history";
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("patientId = :p AND begins_with(sortKey, :s)")
            .expression_attribute_values(":p", s(patient_id))
            .expression_attribute_values(":s", s(format!("STEP#{alert_id}#")))
            .consistent_read(true);
        query_all(query, OP, |item| Ok((json_of(item, "record", OP)?, opt_bool(item, "delivered").unwrap_or(false)))).await
    }

    async fn mark_delivered(&self, patient_id: &str, alert_id: &str, version: u64) -> Result<(), StoreError> {
        const OP: &str = "mark alert step delivered";
        self.client
            .update_item()
            .table_name(&self.table)
            .key("patientId", s(patient_id))
            .key("sortKey", s(step_key(alert_id, version)))
            .update_expression("SET delivered = :t")
            .condition_expression("attribute_exists(sortKey)")
            .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(())
    }

    async fn reschedule(&self, patient_id: &str, alert_id: &str, version: u64, at: Option<&str>) -> Result<(), StoreError> {
        const OP: &str = "reschedule alert flow";
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("patientId", s(patient_id))
            .key("sortKey", s(flow_key(alert_id)));
        // Version 0: the flow has not started (its item has no version yet).
        let update = if version == 0 {
            update.condition_expression("attribute_exists(sortKey) AND attribute_not_exists(version)")
        } else {
            update.condition_expression("version = :v").expression_attribute_values(":v", n(version))
        };
        // A failed condition: a newer step rescheduled it itself.
        on_sweep_index(update, at, OP).await
    }

    async fn due(&self, now: &str, limit: i32) -> Result<Vec<Due>, StoreError> {
        const OP: &str = "find due alert flows";
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ALERTS_BY_DUE.name)
            .key_condition_expression("#shard = :due AND dueAt <= :now")
            .expression_attribute_names("#shard", DUE_SHARD)
            .expression_attribute_values(":due", s(DUE))
            .expression_attribute_values(":now", s(now))
            .limit(limit)
            .send()
            .await
            .map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|item| {
                let patient_id = opt_s(item, "patientId")?;
                match opt_s(item, "sortKey")?.as_str() {
                    "NEXTSET" => Some(Due::Overdue { patient_id }),
                    key => Some(Due::Flow { patient_id, alert_id: key.strip_prefix("FLOW#")?.to_owned() }),
                }
            })
            .collect())
    }

    async fn last_set(&self, patient_id: &str) -> Result<Option<LastSet>, StoreError> {
        const OP: &str = "read NEWS2 set";
        let out = self.client.get_item().table_name(&self.table).key("patientId", s(patient_id)).key("sortKey", s("NEXTSET")).consistent_read(true).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(out.item().and_then(|item| {
            Some(LastSet {
                at: opt_s(item, "lastSetAt")?,
                severity: super::news2::Severity::parse(&opt_s(item, "severity")?)?,
                overall: crate::platform::dynamodb::opt_u64(item, "overall").and_then(|o| u8::try_from(o).ok())?,
            })
        }))
    }

    async fn reschedule_set(&self, patient_id: &str, set_at: &str, at: Option<&str>) -> Result<(), StoreError> {
        const OP: &str = "reschedule NEWS2 set check";
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("patientId", s(patient_id))
            .key("sortKey", s("NEXTSET"))
            .condition_expression("lastSetAt = :set")
            .expression_attribute_values(":set", s(set_at));
        // A failed condition: a later set was recorded meanwhile, with its own schedule.
        on_sweep_index(update, at, OP).await
    }

    async fn deliveries(&self, patient_id: &str, alert_id: &str) -> Result<Vec<Delivery>, StoreError> {
        const OP: &str = "read alert deliveries";
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("patientId = :p AND begins_with(sortKey, :s)")
            .expression_attribute_values(":p", s(patient_id))
            .expression_attribute_values(":s", s(delivery_key(&format!("{alert_id}."))))
            .consistent_read(true);
        query_all(query, OP, |item| json_of(item, "delivery", OP)).await
    }

    async fn add_deliveries(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        const OP: &str = "add alert deliveries";
        for d in deliveries {
            let item = Item::from([
                ("patientId".to_owned(), s(&d.patient_id)),
                ("sortKey".to_owned(), s(delivery_key(&d.delivery_id))),
                ("delivery".to_owned(), s(text_of(d, OP)?)),
                ("attempts".to_owned(), n(d.attempts)),
            ]);
            // Planned again (a retried run): the first stays.
            let put = self.client.put_item().table_name(&self.table).set_item(Some(item)).condition_expression("attribute_not_exists(sortKey)");
            conditional_put(put, OP).await?;
        }
        Ok(())
    }

    async fn put_link(&self, link: &AnswerLink) -> Result<(), StoreError> {
        const OP: &str = "write answer link";
        let item = Item::from([
            ("patientId".to_owned(), s(format!("LINK#{}", link.token_hash))),
            ("sortKey".to_owned(), s("LINK")),
            ("linkPatientId".to_owned(), s(&link.patient_id)),
            ("alertId".to_owned(), s(&link.alert_id)),
            ("expiresAt".to_owned(), s(&link.expires_at)),
        ]);
        crate::platform::dynamodb::put(&self.client, &self.table, item, OP).await
    }

    async fn link(&self, token_hash: &str) -> Result<Option<AnswerLink>, StoreError> {
        const OP: &str = "read answer link";
        let out = self.client.get_item().table_name(&self.table).key("patientId", s(format!("LINK#{token_hash}"))).key("sortKey", s("LINK")).consistent_read(true).send().await.map_err(|e| StoreError::sdk(OP, &e))?;
        Ok(out.item().and_then(|item| {
            Some(AnswerLink {
                token_hash: token_hash.to_owned(),
                patient_id: opt_s(item, "linkPatientId")?,
                alert_id: opt_s(item, "alertId")?,
                expires_at: opt_s(item, "expiresAt")?,
                used_at: opt_s(item, "usedAt"),
                answer: opt_s(item, "answer").as_deref().and_then(Answer::parse),
            })
        }))
    }

    async fn use_link(&self, token_hash: &str, answer: Answer, at: &str) -> Result<bool, StoreError> {
        const OP: &str = "use answer link";
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("patientId", s(format!("LINK#{token_hash}")))
            .key("sortKey", s("LINK"))
            .update_expression("SET usedAt = :at, answer = :answer")
            .condition_expression("attribute_exists(sortKey) AND attribute_not_exists(usedAt)")
            .expression_attribute_values(":at", s(at))
            .expression_attribute_values(":answer", s(answer.as_str()));
        match update.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(StoreError::sdk(OP, &e)),
        }
    }

    async fn update_delivery(&self, d: &Delivery, read_attempts: u32) -> Result<bool, StoreError> {
        const OP: &str = "update alert delivery";
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("patientId", s(&d.patient_id))
            .item("sortKey", s(delivery_key(&d.delivery_id)))
            .item("delivery", s(text_of(d, OP)?))
            .item("attempts", n(d.attempts))
            .condition_expression("attempts = :read")
            .expression_attribute_values(":read", n(read_attempts));
        conditional_put(put, OP).await
    }
}
