//! The `fhir-ingest` function: a device measurement published to the Basic Ingest rule
//! `FHIRIngest` becomes a FHIR R4 Observation, through the filing service.
//!
//! The rule (SQL in `template.yaml`) passes the device payload plus `thingName` (`clientid()`),
//! `receivedAt` (`timestamp()`, epoch ms) and `traceId` (`traceid()`). The device is identified
//! by the connection's client id, which IoT Core ties to the certificate's thing: a device can
//! only ever file readings as itself.
//!
//! A message the platform refuses is kept as a dead letter and the invocation succeeds (retrying
//! cannot fix it); a storage failure fails the invocation so Lambda retries it and, after that,
//! keeps the event in the function's dead-letter queue.
//!
//! With the template's `IngestPath=queue` the rule sends its events to an SQS queue instead, and
//! `fhir-ingest-queue` files them in batches ([`handle_queued`]) with the same code.

use std::convert::Infallible;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::measurement::{self, PayloadError};
use super::{Delivery, Filing, FilingDeps, Reading, Refusal, Timing};
use crate::clinical::AlertStore;
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::DeviceRegistry;
use crate::observations::ObservationStore;
use crate::platform::batch::BatchFailures;
use crate::platform::time::{format_utc, from_epoch_millis};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// The dead-letter source name of this function.
pub const SOURCE: &str = "fhir-ingest";

/// What the handler needs.
pub struct IngestDeps<D, O, A, L> {
    pub filing: FilingDeps<D, O, A>,
    pub dead_letters: L,
}

impl<D: FromWiring, O: FromWiring, A: FromWiring, L: FromWiring> FromWiring for IngestDeps<D, O, A, L> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { filing: w.build()?, dead_letters: w.build()? })
    }
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("the rule event has no `{0}`: check the FHIRIngest rule SQL")]
    RuleField(&'static str),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    Filing(#[from] Refusal),
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::RuleField(_) => "INVALID_RULE_EVENT",
            Rejection::Payload(e) => e.code(),
            Rejection::Filing(r) => r.code(),
        }
    }
}

/// What the handler did with a message (the invocation's result).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum IngestOutcome {
    /// A new Observation was stored.
    Stored { observation_id: String },
    /// The same message was processed before; nothing was written.
    Duplicate { observation_id: String },
    /// Refused and kept as a dead letter.
    Rejected { dead_letter_id: String, reason_code: String, reason: String },
}

/// The fields the rule SQL adds to the device payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFields {
    thing_name: Option<Value>,
    received_at: Option<Value>,
    trace_id: Option<Value>,
}

/// The rule's fields, checked: who sent it, when it arrived, and the delivery's trace id.
struct RuleEvent {
    thing: String,
    received_at: DateTime<Utc>,
    trace_id: Option<String>,
}

fn rule_event(raw: &str) -> Result<RuleEvent, (Option<String>, Rejection)> {
    let fields: RuleFields =
        serde_json::from_str(raw).map_err(|e| (None, Rejection::Payload(PayloadError::NotJson(e.to_string()))))?;
    let thing = match fields.thing_name {
        Some(Value::String(t)) if !t.is_empty() => t,
        _ => return Err((None, Rejection::RuleField("thingName"))),
    };
    let Some(received_at) = fields.received_at.as_ref().and_then(Value::as_i64).and_then(from_epoch_millis) else {
        return Err((Some(thing), Rejection::RuleField("receivedAt")));
    };
    let trace_id = fields.trace_id.as_ref().and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_owned);
    Ok(RuleEvent { thing, received_at, trace_id })
}

/// The reading of a valid payload: timed by the device, or by its arrival and delivery id.
fn reading(raw: &str, rule: &RuleEvent) -> Result<Reading, Rejection> {
    let payload = measurement::parse(raw, rule.received_at)?;
    let timing = match payload.effective {
        Some(e) => Timing::Device(e),
        None => {
            let delivery = match (payload.message_id, &rule.trace_id) {
                (Some(id), _) => Delivery::Message(id),
                (None, Some(trace)) => Delivery::Trace(trace.clone()),
                (None, None) => return Err(Rejection::RuleField("traceId")),
            };
            Timing::Received { at: rule.received_at, delivery }
        }
    };
    Ok(Reading {
        device_id: rule.thing.clone(),
        named_patient: payload.patient_id,
        timing,
        measurements: vec![payload.measurement],
        blood_pressure: None,
        grouped: false,
        device_status: Vec::new(),
    })
}

/// Handles one `FHIRIngest` rule event, given as the raw JSON the rule produced.
pub async fn handle<D, O, A, L>(event: &RawValue, deps: &IngestDeps<D, O, A, L>) -> Result<IngestOutcome, StoreError>
where
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
{
    file_message(&mut Filing::new(&deps.filing), event.get(), deps).await
}

/// Handles a batch of `FHIRIngest` rule events queued by the rule's SQS action (the template's
/// `IngestPath=queue`): each message is filed as [`handle`] files one, by one filing for the
/// batch (each device read once, the counts one metric line). A refused message is a dead
/// letter and counts as handled; only a message whose storage failed is reported back, alone,
/// to be delivered again: the others are done and never re-run.
pub async fn handle_queued<D, O, A, L>(event: SqsEvent, deps: &IngestDeps<D, O, A, L>) -> Result<SqsBatchResponse, Infallible>
where
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
{
    let mut filing = Filing::new(&deps.filing);
    let mut failures = BatchFailures::default();
    for record in &event.records {
        if failures.waits(record) {
            continue;
        }
        let body = record.body.as_deref().unwrap_or_default();
        if let Err(e) = file_message(&mut filing, body, deps).await {
            tracing::warn!(error = %e, message_id = record.message_id.as_deref().unwrap_or_default(), "queued measurement not filed; it will be delivered again");
            failures.fail(record);
        }
    }
    Ok(failures.into_response())
}

/// Files one rule event (`raw`): stored, a duplicate, or refused and kept as a dead letter.
async fn file_message<D, O, A, L>(filing: &mut Filing<'_, D, O, A>, raw: &str, deps: &IngestDeps<D, O, A, L>) -> Result<IngestOutcome, StoreError>
where
    D: DeviceRegistry,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
{
    let rule = match rule_event(raw) {
        Ok(rule) => rule,
        Err((thing, rejection)) => return reject(deps, raw, thing.as_deref(), Utc::now(), rejection).await,
    };
    let reading = match reading(raw, &rule) {
        Ok(r) => r,
        Err(rejection) => return reject(deps, raw, Some(&rule.thing), rule.received_at, rejection).await,
    };
    match filing.file(&reading).await? {
        Ok(filed) => {
            let outcome = if filed.duplicate { "duplicate" } else { "stored" };
            tracing::info!(thing_name = %rule.thing, observation_id = %filed.set_id, outcome, alerts = filed.alerts_raised, "measurement filed");
            Ok(if filed.duplicate {
                IngestOutcome::Duplicate { observation_id: filed.set_id }
            } else {
                IngestOutcome::Stored { observation_id: filed.set_id }
            })
        }
        Err(refusal) => reject(deps, raw, Some(&rule.thing), rule.received_at, refusal.into()).await,
    }
}

async fn reject<D, O, A, L: DeadLetterStore>(
    deps: &IngestDeps<D, O, A, L>,
    raw: &str,
    thing: Option<&str>,
    received_at: DateTime<Utc>,
    rejection: Rejection,
) -> Result<IngestOutcome, StoreError> {
    let letter = DeadLetter::refused(SOURCE, thing, rejection.code(), rejection.to_string(), raw.to_owned(), format_utc(received_at));
    deps.dead_letters.record(&letter).await?;
    // The reason text may quote payload fields; log only its code.
    tracing::warn!(thing_name = thing.unwrap_or("-"), dead_letter_id = %letter.id, reason_code = rejection.code(), "measurement rejected");
    Ok(IngestOutcome::Rejected { dead_letter_id: letter.id, reason_code: letter.reason_code, reason: letter.reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::memory::MemoryAlerts;
    use crate::clinical::AlertSettings;
    use crate::dead_letters::memory::MemoryDeadLetters;
    use crate::devices::memory::MemoryDevices;
    use crate::devices::{Device, DeviceStatus};
    use crate::observations::memory::MemoryObservations;
    use serde_json::json;

    fn device(thing: &str, status: DeviceStatus, patient: Option<&str>, may_name: bool) -> Device {
        Device {
            thing_name: thing.into(),
            serial_number: "SN1".into(),
            manufacturer: "Acme".into(),
            model: "BP-1".into(),
            display_name: "cuff".into(),
            patient_id: patient.map(Into::into),
            may_name_patient: may_name,
            status,
            certificate_id: None,
            certificate_bound_at: None,
            firmware: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    type Deps = IngestDeps<MemoryDevices, MemoryObservations, MemoryAlerts, MemoryDeadLetters>;

    fn deps(devices: Vec<Device>) -> Deps {
        IngestDeps {
            filing: FilingDeps {
                devices: MemoryDevices::with(devices),
                observations: MemoryObservations::default(),
                alerts: MemoryAlerts::default(),
                alert_settings: AlertSettings::default(),
                metrics: Default::default(),
            },
            dead_letters: MemoryDeadLetters::default(),
        }
    }

    fn event(thing: &str, extra: Value) -> Box<RawValue> {
        let mut v = json!({
            "value": 72, "unit": "bpm",
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "thingName": thing, "receivedAt": 1_795_000_000_000_i64, "traceId": "t-1"
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        RawValue::from_string(v.to_string()).unwrap()
    }

    async fn run(d: &Deps, e: &RawValue) -> IngestOutcome {
        handle(e, d).await.unwrap()
    }

    #[tokio::test]
    async fn an_abnormal_measurement_raises_one_alert_even_when_redelivered() {
        let d = deps(vec![device("cuff-1", DeviceStatus::Active, Some("pat-1"), false)]);
        run(&d, &event("cuff-1", json!({}))).await;
        assert_eq!(d.filing.alerts.len(), 0, "72 bpm scores 0");
        let abnormal = event("cuff-1", json!({"value": 140, "effectiveDateTime": "2026-11-18T07:00:00Z"}));
        assert!(matches!(run(&d, &abnormal).await, IngestOutcome::Stored { .. }));
        assert_eq!(d.filing.alerts.len(), 1, "heart rate 140 scores 3");
        assert!(matches!(run(&d, &abnormal).await, IngestOutcome::Duplicate { .. }));
        assert_eq!(d.filing.alerts.len(), 1, "a redelivery raises nothing new");
    }

    fn queued(id: &str, body: &RawValue) -> aws_lambda_events::sqs::SqsMessage {
        let mut message = aws_lambda_events::sqs::SqsMessage::default();
        message.message_id = Some(id.into());
        message.body = Some(body.get().to_owned());
        message
    }

    #[tokio::test]
    async fn a_queued_batch_reports_only_the_message_whose_storage_failed() {
        let d = deps(vec![device("cuff-1", DeviceStatus::Active, Some("pat-1"), false)]);
        let at = |minute: u32| json!({"effectiveDateTime": format!("2026-11-18T07:{minute:02}:00Z")});
        let not_json = RawValue::from_string("\"not an object\"".into()).unwrap();
        let batch = |ids: &[&str]| {
            let mut event = SqsEvent::default();
            event.records = ids
                .iter()
                .map(|id| match *id {
                    "bad" => queued(id, &not_json),
                    minute => queued(id, &self::event("cuff-1", at(minute.parse().unwrap()))),
                })
                .collect();
            event
        };
        d.filing.observations.fail_next();
        let answer = handle_queued(batch(&["1", "bad", "2", "3"]), &d).await.unwrap();
        let reported: Vec<_> = answer.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(reported, ["1"], "the refused message is a dead letter, not a failure; the others are filed");
        assert_eq!((d.filing.observations.len(), d.dead_letters.len()), (2, 1));
        // SQS delivers message 1 again, and the rest of the batch too if the answer was lost:
        // only message 1 is new.
        let again = handle_queued(batch(&["1", "2", "3"]), &d).await.unwrap();
        assert!(again.batch_item_failures.is_empty());
        assert_eq!(d.filing.observations.len(), 3);
    }

    fn rejected_code(outcome: &IngestOutcome) -> &str {
        match outcome {
            IngestOutcome::Rejected { reason_code, .. } => reason_code,
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn stores_once_and_recognises_redelivery() {
        let d = deps(vec![device("cuff-1", DeviceStatus::Active, Some("pat-1"), false)]);
        let e = event("cuff-1", json!({}));
        let IngestOutcome::Stored { observation_id } = run(&d, &e).await else { panic!("not stored") };
        assert_eq!(run(&d, &e).await, IngestOutcome::Duplicate { observation_id: observation_id.clone() });
        assert_eq!(d.filing.observations.len(), 1);
        let stored = d.filing.observations.get_sync(&observation_id).unwrap();
        assert_eq!(stored.patient_id, "pat-1");
        assert_eq!(stored.device_id, "cuff-1");
        assert_eq!(stored.code_key, "http://loinc.org|8867-4");
    }

    #[tokio::test]
    async fn a_different_value_under_the_same_key_is_a_conflict_not_an_overwrite() {
        let d = deps(vec![device("cuff-1", DeviceStatus::Active, Some("pat-1"), false)]);
        run(&d, &event("cuff-1", json!({}))).await;
        let outcome = run(&d, &event("cuff-1", json!({"value": 73}))).await;
        assert_eq!(rejected_code(&outcome), "CONFLICTING_DUPLICATE");
        assert_eq!(d.filing.observations.len(), 1);
        assert_eq!(d.dead_letters.len(), 1);
    }

    #[tokio::test]
    async fn unknown_and_inactive_devices_are_dead_lettered() {
        let d = deps(vec![
            device("off", DeviceStatus::Inactive, Some("p"), false),
            device("blocked", DeviceStatus::Blocked, Some("p"), false),
        ]);
        assert_eq!(rejected_code(&run(&d, &event("ghost", json!({}))).await), "UNKNOWN_DEVICE");
        assert_eq!(rejected_code(&run(&d, &event("off", json!({}))).await), "DEVICE_NOT_ACTIVE");
        let outcome = run(&d, &event("blocked", json!({}))).await;
        assert!(matches!(&outcome, IngestOutcome::Rejected { reason, .. } if reason == "device 'blocked' is BLOCKED, not ACTIVE"));
        assert_eq!(d.filing.observations.len(), 0);
        assert_eq!(d.dead_letters.len(), 3);
    }

    #[tokio::test]
    async fn patient_comes_from_the_device_unless_it_may_name_one() {
        let d = deps(vec![
            device("home", DeviceStatus::Active, Some("pat-1"), false),
            device("clinic", DeviceStatus::Active, None, true),
            device("unassigned", DeviceStatus::Active, None, false),
        ]);
        let named = json!({"patientId": "pat-2"});
        assert_eq!(rejected_code(&run(&d, &event("home", named.clone())).await), "PATIENT_NOT_ALLOWED");
        assert!(matches!(run(&d, &event("home", json!({"patientId": "pat-1"}))).await, IngestOutcome::Stored { .. }));
        let IngestOutcome::Stored { observation_id } = run(&d, &event("clinic", named)).await else { panic!() };
        assert_eq!(d.filing.observations.get_sync(&observation_id).unwrap().patient_id, "pat-2");
        assert_eq!(rejected_code(&run(&d, &event("clinic", json!({}))).await), "NO_PATIENT");
        assert_eq!(rejected_code(&run(&d, &event("unassigned", json!({}))).await), "NO_PATIENT");
    }

    #[tokio::test]
    async fn broken_rule_events_and_payloads_are_dead_lettered_once() {
        let d = deps(vec![device("cuff-1", DeviceStatus::Active, Some("pat-1"), false)]);
        let no_thing = RawValue::from_string(json!({"value": 1, "receivedAt": 1}).to_string()).unwrap();
        assert_eq!(rejected_code(&run(&d, &no_thing).await), "INVALID_RULE_EVENT");
        let bad_value = event("cuff-1", json!({"value": "seventy"}));
        assert_eq!(rejected_code(&run(&d, &bad_value).await), "INVALID_VALUE");
        run(&d, &bad_value).await;
        assert_eq!(d.dead_letters.len(), 2, "a redelivered bad message keeps one dead letter");
        let kept = d.dead_letters.all();
        assert!(kept.iter().any(|l| l.raw_payload == bad_value.get() && l.thing_name.as_deref() == Some("cuff-1")));
    }

    #[tokio::test]
    async fn store_failures_fail_the_invocation() {
        let d = deps(vec![device("cuff-1", DeviceStatus::Active, Some("pat-1"), false)]);
        d.filing.observations.fail_next();
        assert!(handle(&event("cuff-1", json!({})), &d).await.is_err());
        assert_eq!(d.dead_letters.len(), 0, "a transient failure is not the message's fault");
    }
}
