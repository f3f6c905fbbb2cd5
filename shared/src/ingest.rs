//! The `fhir-ingest` function: a device measurement published to the Basic Ingest rule
//! `FHIRIngest` becomes a FHIR R4 Observation.
//!
//! The rule (SQL in `template.yaml`) passes the device payload plus `thingName` (`clientid()`),
//! `receivedAt` (`timestamp()`, epoch ms) and `traceId` (`traceid()`). The device is identified
//! by the connection's client id, which IoT Core ties to the certificate's thing: a device can
//! only ever file readings as itself.
//!
//! A message the platform refuses is kept as a dead letter and the invocation succeeds (retrying
//! cannot fix it); a storage failure fails the invocation so Lambda retries it and, after that,
//! keeps the event in the function's dead-letter queue.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::alerts::{AlertSettings, AlertStore};
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::{DeviceRegistry, DeviceStatus};
use crate::measurement::{self, PayloadError};
use crate::observations::{build_observation, ObservationContext, ObservationStore};
use crate::pipeline::Filed;
use crate::time::{format_utc, from_epoch_millis};
use crate::StoreError;

/// The dead-letter source name of this function.
pub const SOURCE: &str = "fhir-ingest";

/// What the handler needs.
pub struct IngestDeps<D, O, L, A> {
    pub devices: D,
    pub observations: O,
    pub dead_letters: L,
    /// Where the alerts evaluated after each filed measurement go.
    pub alerts: A,
    pub alert_settings: AlertSettings,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("the rule event has no `{0}`: check the FHIRIngest rule SQL")]
    RuleField(&'static str),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("device '{0}' is not registered")]
    UnknownDevice(String),
    #[error("device '{thing}' is {status}, not ACTIVE")]
    DeviceNotActive { thing: String, status: &'static str },
    #[error("device '{0}' may not name a patient other than its assigned one")]
    PatientNotAllowed(String),
    #[error("device '{0}' has no assigned patient and the message names none")]
    NoPatient(String),
    #[error("an observation with the same device, time and code but different content exists already")]
    ConflictingDuplicate,
}

impl Rejection {
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::RuleField(_) => "INVALID_RULE_EVENT",
            Rejection::Payload(e) => e.code(),
            Rejection::UnknownDevice(_) => "UNKNOWN_DEVICE",
            Rejection::DeviceNotActive { .. } => "DEVICE_NOT_ACTIVE",
            Rejection::PatientNotAllowed(_) => "PATIENT_NOT_ALLOWED",
            Rejection::NoPatient(_) => "NO_PATIENT",
            Rejection::ConflictingDuplicate => "CONFLICTING_DUPLICATE",
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

/// A failure that should fail the invocation (the event is retried or kept by Lambda).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not serialize the Observation: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// The fields the rule SQL adds to the device payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleFields {
    thing_name: Option<Value>,
    received_at: Option<Value>,
}

/// Handles one `FHIRIngest` rule event, given as the raw JSON the rule produced.
pub async fn handle<D, O, L, A>(event: &RawValue, deps: &IngestDeps<D, O, L, A>) -> Result<IngestOutcome, IngestError>
where
    D: DeviceRegistry,
    O: ObservationStore,
    L: DeadLetterStore,
    A: AlertStore,
{
    let now = Utc::now();
    let raw = event.get();
    let fields: RuleFields = match serde_json::from_str(raw) {
        Ok(f) => f,
        Err(e) => {
            let rejection = Rejection::Payload(PayloadError::NotJson(e.to_string()));
            return reject(deps, raw, None, now, rejection).await;
        }
    };
    let thing = match fields.thing_name {
        Some(Value::String(t)) if !t.is_empty() => t,
        _ => return reject(deps, raw, None, now, Rejection::RuleField("thingName")).await,
    };
    let Some(received_at) = fields.received_at.as_ref().and_then(Value::as_i64).and_then(from_epoch_millis) else {
        return reject(deps, raw, Some(&thing), now, Rejection::RuleField("receivedAt")).await;
    };
    match ingest(raw, &thing, received_at, now, deps).await? {
        Ok(outcome) => {
            if let IngestOutcome::Stored { observation_id } | IngestOutcome::Duplicate { observation_id } = &outcome {
                tracing::info!(thing_name = %thing, observation_id = %observation_id, outcome = outcome_name(&outcome), "measurement filed");
            }
            Ok(outcome)
        }
        Err(rejection) => reject(deps, raw, Some(&thing), received_at, rejection).await,
    }
}

async fn ingest<D, O, L, A>(
    raw: &str,
    thing: &str,
    received_at: DateTime<Utc>,
    now: DateTime<Utc>,
    deps: &IngestDeps<D, O, L, A>,
) -> Result<Result<IngestOutcome, Rejection>, IngestError>
where
    D: DeviceRegistry,
    O: ObservationStore,
    L: DeadLetterStore,
    A: AlertStore,
{
    let m = match measurement::parse(raw, received_at) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e.into())),
    };
    let Some(device) = deps.devices.get(thing).await? else {
        return Ok(Err(Rejection::UnknownDevice(thing.to_owned())));
    };
    if device.status != DeviceStatus::Active {
        return Ok(Err(Rejection::DeviceNotActive { thing: thing.to_owned(), status: device.status.as_str() }));
    }
    let patient = match (&m.patient_id, &device.patient_id) {
        (Some(named), _) if device.may_name_patient => named.clone(),
        (Some(named), Some(assigned)) if named == assigned => named.clone(),
        (Some(_), _) => return Ok(Err(Rejection::PatientNotAllowed(thing.to_owned()))),
        (None, Some(assigned)) => assigned.clone(),
        (None, None) => return Ok(Err(Rejection::NoPatient(thing.to_owned()))),
    };
    let received_text = format_utc(received_at);
    let (effective, effective_utc) = match &m.effective {
        Some(e) => (e.text.clone(), format_utc(e.at)),
        None => (received_text.clone(), received_text),
    };
    let issued = format_utc(now);
    let ctx = ObservationContext {
        thing_name: thing,
        patient_id: &patient,
        effective: &effective,
        effective_utc: &effective_utc,
        issued: &issued,
    };
    let observation = build_observation(&m, &ctx);
    let effective_at = m.effective.as_ref().map_or(received_at, |e| e.at);
    let outcome = match crate::pipeline::file(&deps.observations, &observation, m.code_key(), effective_utc).await? {
        Filed::Stored { id } => IngestOutcome::Stored { observation_id: id },
        Filed::Duplicate { id } => IngestOutcome::Duplicate { observation_id: id },
        Filed::Conflict { .. } => return Ok(Err(Rejection::ConflictingDuplicate)),
    };
    // Evaluated for a redelivery too: if the first delivery failed after filing, its alert is
    // raised now; an alert already raised is de-duplicated by the store.
    let (IngestOutcome::Stored { observation_id } | IngestOutcome::Duplicate { observation_id }) = &outcome else {
        return Ok(Ok(outcome));
    };
    let raised = crate::alerts::evaluate(&deps.observations, &deps.alerts, &deps.alert_settings, &patient, thing, observation_id, effective_at).await?;
    if !raised.is_empty() {
        tracing::info!(thing_name = %thing, alerts = raised.len(), "alerts raised");
    }
    Ok(Ok(outcome))
}

async fn reject<D, O, L, A>(
    deps: &IngestDeps<D, O, L, A>,
    raw: &str,
    thing: Option<&str>,
    received_at: DateTime<Utc>,
    rejection: Rejection,
) -> Result<IngestOutcome, IngestError>
where
    L: DeadLetterStore,
{
    let letter =
        DeadLetter::refused(SOURCE, thing, rejection.code(), rejection.to_string(), raw.to_owned(), format_utc(received_at));
    deps.dead_letters.record(&letter).await?;
    // The reason text may quote payload fields; log only its code.
    tracing::warn!(thing_name = thing.unwrap_or("-"), dead_letter_id = %letter.id, reason_code = rejection.code(), "measurement rejected");
    Ok(IngestOutcome::Rejected { dead_letter_id: letter.id, reason_code: letter.reason_code, reason: letter.reason })
}

fn outcome_name(outcome: &IngestOutcome) -> &'static str {
    match outcome {
        IngestOutcome::Stored { .. } => "stored",
        IngestOutcome::Duplicate { .. } => "duplicate",
        IngestOutcome::Rejected { .. } => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::Device;
    use crate::memory::{MemoryAlerts, MemoryDeadLetters, MemoryDevices, MemoryObservations};
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
            firmware: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn deps(devices: Vec<Device>) -> IngestDeps<MemoryDevices, MemoryObservations, MemoryDeadLetters, MemoryAlerts> {
        IngestDeps {
            devices: MemoryDevices::with(devices),
            observations: MemoryObservations::default(),
            dead_letters: MemoryDeadLetters::default(),
            alerts: MemoryAlerts::default(),
            alert_settings: AlertSettings::default(),
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

    async fn run(d: &IngestDeps<MemoryDevices, MemoryObservations, MemoryDeadLetters, MemoryAlerts>, e: &RawValue) -> IngestOutcome {
        handle(e, d).await.unwrap()
    }

    #[tokio::test]
    async fn an_abnormal_measurement_raises_one_alert_even_when_redelivered() {
        let d = deps(vec![device("cuff-1", DeviceStatus::Active, Some("pat-1"), false)]);
        run(&d, &event("cuff-1", json!({}))).await;
        assert_eq!(d.alerts.len(), 0, "72 bpm scores 0");
        let abnormal = event("cuff-1", json!({"value": 140, "effectiveDateTime": "2026-11-18T07:00:00Z"}));
        assert!(matches!(run(&d, &abnormal).await, IngestOutcome::Stored { .. }));
        assert_eq!(d.alerts.len(), 1, "heart rate 140 scores 3");
        assert!(matches!(run(&d, &abnormal).await, IngestOutcome::Duplicate { .. }));
        assert_eq!(d.alerts.len(), 1, "a redelivery raises nothing new");
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
        assert_eq!(d.observations.len(), 1);
        let stored = d.observations.get_sync(&observation_id).unwrap();
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
        assert_eq!(d.observations.len(), 1);
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
        assert_eq!(d.observations.len(), 0);
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
        assert_eq!(d.observations.get_sync(&observation_id).unwrap().patient_id, "pat-2");
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
        d.observations.fail_next();
        assert!(matches!(handle(&event("cuff-1", json!({})), &d).await, Err(IngestError::Store(_))));
        assert_eq!(d.dead_letters.len(), 0, "a transient failure is not the message's fault");
    }
}
