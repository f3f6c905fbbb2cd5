//! [`AlertStore`] in the `AlertsTable`: `patientId`, `sortKey` = `ALERT#<readingsAt>#<alertId>`
//! for alerts (listed newest first by the readings' time), `ID#<alertId>` for the guard that
//! makes raising idempotent by id (a reading re-published later, without a device time, has
//! another `readingsAt` but the same alert id), and `OPEN#<kind>` for the de-duplication
//! marker (the highest open alert of that kind and its rank).

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use super::{Alert, AlertKind, AlertPage, AlertStatus, AlertStore};
use crate::platform::dynamodb::{is_condition_failed, n, newest_first_page, only_conditions_failed, opt_s, conditional_put, s, Item};
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

impl AlertStore for DynamoAlertStore {
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
            .condition_expression("attribute_not_exists(sortKey)")
            .build()
            .map_err(|e| StoreError::new(OP, e))?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker).build())
            .transact_items(TransactWriteItem::builder().put(record).build())
            .transact_items(TransactWriteItem::builder().put(guard).build())
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
