//! Alerts in memory for unit tests, with the DynamoDB store's conditions: a record is written
//! once per (patient, alert id), whatever its readings time, together with the `OPEN#<kind>` marker, which
//! is taken only by a higher rank than the open alert it stands for; closing moves the marker
//! to the highest alert of the kind still open, or removes it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::alerting::{Delivery, Due, FlowStore, LastSet};
use super::flow::{Answer, Flow, Step, StepRecord};
use super::links::AnswerLink;
use super::{Alert, AlertKind, AlertPage, AlertStatus, AlertStore};
use crate::StoreError;

#[derive(Default)]
struct Table {
    /// (patient, `<readingsAt>#<alertId>`) → alert.
    records: BTreeMap<(String, String), Alert>,
    /// (patient, kind) → (alert id, rank).
    markers: BTreeMap<(String, &'static str), (String, u8)>,
    /// (patient, alert id) → the flow (none until it started) and when the sweep is due.
    flows: BTreeMap<(String, String), (Option<Flow>, Option<String>)>,
    /// (patient, alert id, version) → a step's record and whether it was delivered.
    steps: BTreeMap<(String, String, u64), (StepRecord, bool)>,
    /// (patient, delivery id) → delivery.
    deliveries: BTreeMap<(String, String), Delivery>,
    /// Token hash → answer link.
    links: BTreeMap<String, AnswerLink>,
    /// Patient → their latest NEWS2 set and when the sweep looks at it.
    sets: BTreeMap<String, (LastSet, Option<String>)>,
    /// (patient, code key) → the current value of that vital sign.
    current: BTreeMap<(String, String), super::CurrentValue>,
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

    /// How many answer links were issued.
    pub fn links(&self) -> usize {
        self.0.lock().expect("lock").links.len()
    }

    /// The marker of a kind: the alert id it stands for.
    pub fn marker(&self, patient: &str, kind: AlertKind) -> Option<String> {
        self.0.lock().expect("lock").markers.get(&marker_key(patient, kind)).map(|(id, _)| id.clone())
    }
}

impl AlertStore for MemoryAlerts {
    async fn record_current(&self, patient_id: &str, values: &[super::CurrentValue]) -> Result<Vec<super::CurrentValue>, StoreError> {
        {
            let mut table = self.0.lock().expect("lock");
            for v in values {
                let key = (patient_id.to_owned(), v.code_key.clone());
                // As the DynamoDB condition: only one at least as new replaces it.
                if table.current.get(&key).is_none_or(|kept| kept.effective_at <= v.effective_at) {
                    table.current.insert(key, v.clone());
                }
            }
        }
        self.current(patient_id).await
    }

    async fn current(&self, patient_id: &str) -> Result<Vec<super::CurrentValue>, StoreError> {
        let table = self.0.lock().expect("lock");
        Ok(table.current.iter().filter(|((p, _), _)| p == patient_id).map(|(_, v)| v.clone()).collect())
    }

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
        // Its flow is due at once: the next sweep starts it.
        table.flows.insert((alert.patient_id.clone(), alert.alert_id.clone()), (None, Some(alert.raised_at.clone())));
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

    async fn record_set(&self, patient_id: &str, at: &str, severity: super::news2::Severity, overall: u8, due_at: &str) -> Result<(), StoreError> {
        let mut table = self.0.lock().expect("lock");
        // Only a later set replaces the latest (readings arrive out of order).
        if table.sets.get(patient_id).is_none_or(|(set, _)| set.at.as_str() < at) {
            table.sets.insert(patient_id.to_owned(), (LastSet { at: at.to_owned(), severity, overall }, Some(due_at.to_owned())));
        }
        Ok(())
    }

    async fn open(&self, patient_id: &str) -> Result<Vec<Alert>, StoreError> {
        let table = self.0.lock().expect("lock");
        let ids: Vec<&String> = table.markers.iter().filter(|((p, _), _)| p == patient_id).map(|(_, (id, _))| id).collect();
        Ok(table.records.values().filter(|a| a.patient_id == patient_id && a.status == AlertStatus::Open && ids.contains(&&a.alert_id)).cloned().collect())
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

/// The same conditions as the DynamoDB store: a step is written only over the version it was
/// decided from; a delivery only over the attempt count it was read with, and added once.
impl FlowStore for MemoryAlerts {
    async fn alert(&self, patient_id: &str, alert_id: &str) -> Result<Option<Alert>, StoreError> {
        Ok(self.0.lock().expect("lock").records.values().find(|a| a.patient_id == patient_id && a.alert_id == alert_id).cloned())
    }

    async fn flow(&self, patient_id: &str, alert_id: &str) -> Result<Option<Flow>, StoreError> {
        Ok(self.0.lock().expect("lock").flows.get(&(patient_id.to_owned(), alert_id.to_owned())).and_then(|(f, _)| f.clone()))
    }

    async fn record_step(&self, step: &Step) -> Result<bool, StoreError> {
        let mut table = self.0.lock().expect("lock");
        let key = (step.flow.patient_id.clone(), step.flow.alert_id.clone());
        let stored = table.flows.get(&key).and_then(|(f, _)| f.as_ref()).map(|f| f.version);
        let expected = (step.flow.version > 1).then(|| step.flow.version - 1);
        if stored != expected {
            return Ok(false);
        }
        table.flows.insert(key.clone(), (Some(step.flow.clone()), step.sweep_at()));
        table.steps.insert((key.0, key.1, step.flow.version), (step.record.clone(), step.effects.is_empty()));
        Ok(true)
    }

    async fn history(&self, patient_id: &str, alert_id: &str) -> Result<Vec<(StepRecord, bool)>, StoreError> {
        let table = self.0.lock().expect("lock");
        Ok(table.steps.iter().filter(|((p, a, _), _)| p == patient_id && a == alert_id).map(|(_, v)| v.clone()).collect())
    }

    async fn mark_delivered(&self, patient_id: &str, alert_id: &str, version: u64) -> Result<(), StoreError> {
        if let Some(step) = self.0.lock().expect("lock").steps.get_mut(&(patient_id.to_owned(), alert_id.to_owned(), version)) {
            step.1 = true;
        }
        Ok(())
    }

    async fn reschedule(&self, patient_id: &str, alert_id: &str, version: u64, at: Option<&str>) -> Result<(), StoreError> {
        let mut table = self.0.lock().expect("lock");
        if let Some((flow, due)) = table.flows.get_mut(&(patient_id.to_owned(), alert_id.to_owned())) {
            if flow.as_ref().map_or(0, |f| f.version) == version {
                *due = at.map(str::to_owned);
            }
        }
        Ok(())
    }

    async fn due(&self, now: &str, limit: i32) -> Result<Vec<Due>, StoreError> {
        let table = self.0.lock().expect("lock");
        let flows = table.flows.iter().filter_map(|((p, a), (_, at))| Some((at.clone()?, Due::Flow { patient_id: p.clone(), alert_id: a.clone() })));
        let sets = table.sets.iter().filter_map(|(p, (_, at))| Some((at.clone()?, Due::Overdue { patient_id: p.clone() })));
        let mut due: Vec<(String, Due)> = flows.chain(sets).filter(|(at, _)| at.as_str() <= now).collect();
        due.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(due.into_iter().take(usize::try_from(limit).unwrap_or(0)).map(|(_, d)| d).collect())
    }

    async fn last_set(&self, patient_id: &str) -> Result<Option<LastSet>, StoreError> {
        Ok(self.0.lock().expect("lock").sets.get(patient_id).map(|(set, _)| set.clone()))
    }

    async fn reschedule_set(&self, patient_id: &str, set_at: &str, at: Option<&str>) -> Result<(), StoreError> {
        if let Some((set, due)) = self.0.lock().expect("lock").sets.get_mut(patient_id) {
            if set.at == set_at {
                *due = at.map(str::to_owned);
            }
        }
        Ok(())
    }

    async fn deliveries(&self, patient_id: &str, alert_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let table = self.0.lock().expect("lock");
        Ok(table.deliveries.iter().filter(|((p, _), d)| p == patient_id && d.alert_id == alert_id).map(|(_, d)| d.clone()).collect())
    }

    async fn add_deliveries(&self, deliveries: &[Delivery]) -> Result<(), StoreError> {
        let mut table = self.0.lock().expect("lock");
        for d in deliveries {
            table.deliveries.entry((d.patient_id.clone(), d.delivery_id.clone())).or_insert_with(|| d.clone());
        }
        Ok(())
    }

    async fn put_link(&self, link: &AnswerLink) -> Result<(), StoreError> {
        self.0.lock().expect("lock").links.insert(link.token_hash.clone(), link.clone());
        Ok(())
    }

    async fn link(&self, token_hash: &str) -> Result<Option<AnswerLink>, StoreError> {
        Ok(self.0.lock().expect("lock").links.get(token_hash).cloned())
    }

    async fn use_link(&self, token_hash: &str, answer: Answer, at: &str) -> Result<bool, StoreError> {
        match self.0.lock().expect("lock").links.get_mut(token_hash) {
            Some(link) if link.used_at.is_none() => {
                link.used_at = Some(at.to_owned());
                link.answer = Some(answer);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn update_delivery(&self, delivery: &Delivery, read_attempts: u32) -> Result<bool, StoreError> {
        let mut table = self.0.lock().expect("lock");
        match table.deliveries.get_mut(&(delivery.patient_id.clone(), delivery.delivery_id.clone())) {
            Some(stored) if stored.attempts == read_attempts => {
                *stored = delivery.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// A notifier for unit tests: records what it sent, and refuses the first `failures` sends as
/// a provider would.
#[derive(Default)]
pub struct MemoryNotifier {
    pub sent: Mutex<Vec<(crate::care::Channel, String, String)>>,
    pub failures: std::sync::atomic::AtomicU32,
}

impl super::alerting::Notifier for MemoryNotifier {
    async fn send(&self, channel: crate::care::Channel, to: &str, _subject: &str, body: &str) -> Result<String, super::alerting::NotifyFailure> {
        use std::sync::atomic::Ordering;
        if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| f.checked_sub(1)).is_ok() {
            return Err(super::alerting::NotifyFailure("Throttling: rate exceeded".into()));
        }
        let mut sent = self.sent.lock().expect("lock");
        sent.push((channel, to.to_owned(), body.to_owned()));
        Ok(format!("msg-{}", sent.len()))
    }
}
