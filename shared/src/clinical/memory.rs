//! Alerts in memory for unit tests, with the DynamoDB store's conditions: a record is written
//! once per (patient, alert id), whatever its readings time, together with the `OPEN#<kind>` marker, which
//! is taken only by a higher rank than the open alert it stands for; closing moves the marker
//! to the highest alert of the kind still open, or removes it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Alert, AlertKind, AlertPage, AlertStatus, AlertStore};
use crate::StoreError;

#[derive(Default)]
struct Table {
    /// (patient, `<readingsAt>#<alertId>`) → alert.
    records: BTreeMap<(String, String), Alert>,
    /// (patient, kind) → (alert id, rank).
    markers: BTreeMap<(String, &'static str), (String, u8)>,
}

#[derive(Default)]
pub struct MemoryAlerts(Mutex<Table>);

fn record_key(alert: &Alert) -> (String, String) {
    (alert.patient_id.clone(), format!("{}#{}", alert.set_at, alert.alert_id))
}

fn marker_key(patient: &str, kind: AlertKind) -> (String, &'static str) {
    (patient.to_owned(), kind.as_str())
}

impl MemoryAlerts {
    pub fn len(&self) -> usize {
        self.0.lock().expect("lock").records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The marker of a kind: the alert id it stands for.
    pub fn marker(&self, patient: &str, kind: AlertKind) -> Option<String> {
        self.0.lock().expect("lock").markers.get(&marker_key(patient, kind)).map(|(id, _)| id.clone())
    }
}

impl AlertStore for MemoryAlerts {
    async fn raise(&self, alert: &Alert) -> Result<bool, StoreError> {
        let mut table = self.0.lock().expect("lock");
        let marker = marker_key(&alert.patient_id, alert.kind);
        let marker_ok = table.markers.get(&marker).is_none_or(|(_, rank)| *rank < alert.rank());
        // The `ID#<alertId>` guard: once per alert id, whatever its readings time.
        let record_ok = !table.records.values().any(|a| a.patient_id == alert.patient_id && a.alert_id == alert.alert_id);
        // One transaction: both or neither.
        if !(marker_ok && record_ok) {
            return Ok(false);
        }
        table.markers.insert(marker, (alert.alert_id.clone(), alert.rank()));
        table.records.insert(record_key(alert), alert.clone());
        Ok(true)
    }

    async fn for_patient(&self, patient_id: &str, limit: i32, after: Option<&str>) -> Result<AlertPage, StoreError> {
        let table = self.0.lock().expect("lock");
        let mut items: Vec<(String, Alert)> = table
            .records
            .iter()
            .rev()
            .filter(|((p, k), _)| p == patient_id && after.is_none_or(|a| k.as_str() < a.trim_start_matches("ALERT#")))
            .map(|((_, k), a)| (k.clone(), a.clone()))
            .collect();
        let limit = usize::try_from(limit).unwrap_or(0);
        // As DynamoDB does: a full page has a cursor, even when nothing follows it.
        let next = (items.len() >= limit && limit > 0).then(|| format!("ALERT#{}", items[limit - 1].0));
        items.truncate(limit);
        Ok(AlertPage { items: items.into_iter().map(|(_, a)| a).collect(), next })
    }

    async fn close(&self, patient_id: &str, alert_id: &str, closed_by: &str, at: &str) -> Result<Option<Alert>, StoreError> {
        let mut table = self.0.lock().expect("lock");
        let Some(key) = table.records.iter().find(|((p, _), a)| p == patient_id && a.alert_id == alert_id).map(|(k, _)| k.clone()) else {
            return Ok(None);
        };
        let alert = table.records.get_mut(&key).expect("found above");
        if alert.status == AlertStatus::Closed {
            return Ok(Some(alert.clone()));
        }
        alert.status = AlertStatus::Closed;
        alert.closed_at = Some(at.to_owned());
        alert.closed_by = Some(closed_by.to_owned());
        let closed = alert.clone();
        let marker = marker_key(patient_id, closed.kind);
        if table.markers.get(&marker).is_some_and(|(id, _)| id == alert_id) {
            let still_open = table
                .records
                .values()
                .filter(|a| a.patient_id == patient_id && a.kind == closed.kind && a.status == AlertStatus::Open)
                .max_by_key(|a| a.rank())
                .map(|a| (a.alert_id.clone(), a.rank()));
            match still_open {
                Some(open) => table.markers.insert(marker, open),
                None => table.markers.remove(&marker),
            };
        }
        Ok(Some(closed))
    }
}
