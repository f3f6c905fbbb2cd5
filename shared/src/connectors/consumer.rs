//! `connector-messages`: the consumer of the connectors' SQS FIFO queue. Each batch's messages
//! go through their connector's device mapping (normalization), its FHIR mapping (conversion,
//! merging into the Observations earlier batches made), identity resolution over the platform's
//! registries, the Observation store and alert evaluation.
//!
//! A message that cannot be filed as it is (no mapping, a template that matches nothing, an
//! unknown device...) is kept as a dead letter of its connector with its error type and raw
//! envelope, and counts as handled: it is never retried, so it never blocks the others. Only a
//! failure that may pass (a store that did not answer, an Observation changed by a concurrent
//! writer) is reported back as a batch item failure, with every later message of the same
//! message group, so that SQS delivers them again in their order while the other groups go on.
//!
//! Redelivery files nothing twice: Observation ids derive from the device, patient, type and
//! time window, a merge that adds nothing writes nothing, and dead letters are keyed by message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use serde_json::Value;

use super::errors::conversion_error_type;
use super::identity::PlatformIdentities;
use super::mappings::{MappingKind, MappingStore};
use super::{Connector, ConnectorStore};
use crate::clinical::AlertStore;
use crate::dead_letters::{DeadLetter, DeadLetterStore};
use crate::devices::DeviceRegistry;
use crate::mapping::content::DeviceMapping;
use crate::mapping::convert::{convert, IdentityOptions, ObservationSet, PriorObservations, Sources, Written};
use crate::mapping::fhir_templates::FhirMapping;
use crate::mapping::observation::MappedObservation;
use crate::ingest::{Filing, FilingDeps, MappedWrite};
use crate::observations::{ObservationStore, StoredObservation};
use crate::patients::{EncounterStore, PatientStore};
use crate::platform::batch::BatchFailures;
use crate::platform::metrics::{Counts, Metrics};
use crate::platform::time::{format_utc, parse_with_offset};
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// What the consumer needs.
pub struct ConsumerDeps<S, D, P, E, O, A, L, M> {
    /// Connectors and their mappings.
    pub store: S,
    /// The platform's filing service, whose device registry identities resolve in too.
    pub filing: FilingDeps<D, O, A>,
    pub patients: P,
    pub encounters: E,
    pub dead_letters: L,
    pub metrics: M,
}

impl<S: FromWiring, D: FromWiring, P: FromWiring, E: FromWiring, O: FromWiring, A: FromWiring, L: FromWiring, M: FromWiring> FromWiring
    for ConsumerDeps<S, D, P, E, O, A, L, M>
{
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self {
            store: w.build()?,
            filing: w.build()?,
            patients: w.build()?,
            encounters: w.build()?,
            dead_letters: w.build()?,
            metrics: w.build()?,
        })
    }
}

/// A connector with its mappings as loaded for one batch (a mapping that cannot be used says why).
struct Loaded {
    connector: Connector,
    device: Result<DeviceMapping, String>,
    fhir: Result<FhirMapping, String>,
}

async fn load<S: ConnectorStore + MappingStore>(store: &S, name: &str) -> Result<Option<Loaded>, StoreError> {
    let Some(connector) = store.get(name).await? else { return Ok(None) };
    let unusable = |errors: Vec<crate::mapping::templates::TemplateError>| {
        format!("the saved mapping does not load: {}", errors.iter().map(|e| e.message.trim_end()).collect::<Vec<_>>().join("; "))
    };
    let device = latest_mapping(store, name, MappingKind::Device).await?.and_then(|t| DeviceMapping::parse(&t).map_err(unusable));
    let fhir = latest_mapping(store, name, MappingKind::Fhir).await?.and_then(|t| FhirMapping::parse(&t).map_err(unusable));
    Ok(Some(Loaded { connector, device, fhir }))
}

/// The text of a connector's latest mapping of a kind, or why there is none.
async fn latest_mapping<S: MappingStore>(store: &S, name: &str, kind: MappingKind) -> Result<Result<String, String>, StoreError> {
    let kind_name = kind.as_str();
    Ok(store.mapping(name, kind, None).await?.map(|m| m.text).ok_or_else(|| format!("the connector has no {kind_name} mapping: PUT /connectors/{name}/mappings/{kind_name}")))
}

/// A connector's counts over one batch.
#[derive(Debug, Default)]
struct Tally {
    messages: u64,
    measurements: u64,
    observations: u64,
    errors: BTreeMap<&'static str, u64>,
}

/// The earlier Observations a conversion merges into, read from the store, with the content
/// each had: a replacement is written only over that content.
struct StorePrior<'a, O> {
    store: &'a O,
    read: Mutex<HashMap<String, String>>,
}

impl<O: ObservationStore> PriorObservations for StorePrior<'_, O> {
    async fn prior(&self, id: &str) -> Result<Option<MappedObservation>, String> {
        let Some(stored) = self.store.get(id).await.map_err(|e| e.to_string())? else { return Ok(None) };
        let observation: MappedObservation = serde_json::from_str(&stored.resource)
            .map_err(|e| format!("Observation {id} is stored but is not one a mapping made: {e}"))?;
        self.read.lock().map_err(|_| "lock poisoned".to_owned())?.insert(id.to_owned(), stored.content_hash);
        Ok(Some(observation))
    }
}

/// A refusal of part or all of a message.
struct Refusal {
    device: Option<String>,
    error_type: &'static str,
    reason: String,
    /// What to keep instead of the message (the Observation a later reading replaced).
    kept: Option<String>,
}

impl Refusal {
    fn whole(error_type: &'static str, reason: impl Into<String>) -> Self {
        Self { device: None, error_type, reason: reason.into(), kept: None }
    }

    fn of(device: &str, error_type: &'static str, reason: String) -> Self {
        Self { device: Some(device.to_owned()), error_type, reason, kept: None }
    }
}

/// The thing that published a message over MQTT (`connector-mqtt` names it; HTTPS messages
/// carry their connection instead).
fn publishing_thing(envelope: &Value) -> Option<&str> {
    let system = &envelope["SystemProperties"];
    system.get("x-vitalwire-connection").is_none().then(|| system["iothub-connection-device-id"].as_str()).flatten()
}

/// One message taken from the queue.
struct Message<'a> {
    raw: &'a str,
    /// `connector/<name>`, where its dead letters go.
    source: String,
    received_at: String,
}

impl<S, D, P, E, O, A, L, M> ConsumerDeps<S, D, P, E, O, A, L, M>
where
    S: ConnectorStore + MappingStore,
    D: DeviceRegistry,
    P: PatientStore,
    E: EncounterStore,
    O: ObservationStore,
    A: AlertStore,
    L: DeadLetterStore,
    M: Metrics,
{
    /// Handles one batch; the messages to deliver again.
    pub async fn handle(&self, event: SqsEvent) -> Result<SqsBatchResponse, Infallible> {
        let mut failures = BatchFailures::default();
        let mut connectors: HashMap<String, Option<Arc<Loaded>>> = HashMap::new();
        let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
        for record in &event.records {
            // A FIFO group stays in order: after one of its messages fails, the rest wait for it.
            if failures.waits(record) {
                continue;
            }
            let body = record.body.as_deref().unwrap_or_default();
            if let Err(e) = self.one_message(body, &mut connectors, &mut tallies).await {
                tracing::warn!(error = %e, message_id = record.message_id.as_deref().unwrap_or_default(), "connector message not filed; it will be delivered again");
                failures.fail(record);
            }
        }
        let counts: Vec<Counts> = tallies
            .iter()
            .flat_map(|(connector, t)| {
                let totals = Counts::of(
                    vec![("Connector", connector.clone())],
                    vec![("MessagesReceived", t.messages), ("Measurements", t.measurements), ("ObservationsWritten", t.observations), ("Errors", t.errors.values().sum())],
                );
                let by_type = t
                    .errors
                    .iter()
                    .map(move |(error_type, n)| Counts::of(vec![("Connector", connector.clone()), ("ErrorType", (*error_type).to_owned())], vec![("Errors", *n)]));
                std::iter::once(totals).chain(by_type)
            })
            .collect();
        self.metrics.record(&counts);
        Ok(failures.into_response())
    }

    /// Files one message; `Err` when it should be delivered again.
    async fn one_message(
        &self,
        raw: &str,
        connectors: &mut HashMap<String, Option<Arc<Loaded>>>,
        tallies: &mut BTreeMap<String, Tally>,
    ) -> Result<(), StoreError> {
        let envelope: Option<Value> = serde_json::from_str(raw).ok().filter(Value::is_object);
        let system = envelope.as_ref().map(|e| &e["SystemProperties"]);
        let received_at = system
            .and_then(|s| s["iothub-enqueuedtime"].as_str())
            .and_then(parse_with_offset)
            .map_or_else(|| format_utc(Utc::now()), format_utc);
        let (Some(envelope), Some(name)) = (envelope.as_ref(), system.and_then(|s| s["x-vitalwire-connector"].as_str())) else {
            let message = Message { raw, source: "connectors".into(), received_at };
            return self.keep(&message, vec![Refusal::whole("NOT_AN_ENVELOPE", "the queued message is not a connector envelope (Body, Properties, SystemProperties with x-vitalwire-connector)")]).await;
        };
        let message = Message { raw, source: super::http::dead_letter_source(name), received_at };
        let loaded = match connectors.get(name) {
            Some(found) => found.clone(),
            None => {
                let found = load(&self.store, name).await?.map(Arc::new);
                connectors.insert(name.to_owned(), found.clone());
                found
            }
        };
        let tally = tallies.entry(name.to_owned()).or_default();
        let Some(loaded) = loaded else {
            // Its dead letters stay readable by the operator even so (GET /admin/dead-letters).
            return self.keep(&message, vec![Refusal::whole("CONNECTOR_DELETED", format!("connector {name} was deleted after the message was received"))])
                .await
                .inspect(|()| tally.count_error("CONNECTOR_DELETED"));
        };
        tally.messages += 1;
        let refusals = self.file_message(envelope, &loaded, &message, tally).await?;
        for r in &refusals {
            tally.count_error(r.error_type);
        }
        self.keep(&message, refusals).await
    }

    /// Normalizes, converts and files one message; what of it was refused.
    async fn file_message(
        &self,
        envelope: &Value,
        loaded: &Loaded,
        message: &Message<'_>,
        tally: &mut Tally,
    ) -> Result<Vec<Refusal>, StoreError> {
        let device_mapping = match &loaded.device {
            Ok(m) => m,
            Err(why) => return Ok(vec![Refusal::whole("NO_DEVICE_MAPPING", why.clone())]),
        };
        let measurements = match device_mapping.normalize(envelope) {
            Ok(m) if m.is_empty() => {
                let tried: Vec<String> = device_mapping.trace(envelope).iter().map(|t| format!("template {} ({}) {}", t.index, t.type_name, t.type_match)).collect();
                return Ok(vec![Refusal::whole("NO_MEASUREMENT", format!("no device template's typeMatchExpression matched the message (tried: {})", tried.join("; ")))]);
            }
            Ok(m) => m,
            Err(e) => return Ok(vec![Refusal::whole("NORMALIZATION_FAILED", e.to_string())]),
        };
        tally.measurements += measurements.len() as u64;
        let mut refusals = Vec::new();
        // A thing (MQTT) acts only as itself, whatever device its message names.
        let measurements = match publishing_thing(envelope) {
            Some(thing) => {
                let (own, others): (Vec<_>, Vec<_>) = measurements.into_iter().partition(|m| m.device_id == thing);
                if !others.is_empty() {
                    let named: BTreeSet<&str> = others.iter().map(|m| m.device_id.as_str()).collect();
                    let named: Vec<&str> = named.into_iter().collect();
                    let reason = format!("thing {thing} published measurements of other devices ({}): a thing sends only its own", named.join(", "));
                    refusals.push(Refusal::of(thing, "FOREIGN_DEVICE", reason));
                }
                own
            }
            None => measurements,
        };
        let fhir = match &loaded.fhir {
            Ok(f) => f,
            Err(why) => return Ok(vec![Refusal::whole("NO_FHIR_MAPPING", why.clone())]),
        };
        let now = Utc::now();
        let at = format_utc(now);
        let registry = PlatformIdentities { devices: &self.filing.devices, patients: &self.patients, encounters: &self.encounters, creator: &message.source, at: &at };
        let prior = StorePrior { store: &self.filing.observations, read: Mutex::new(HashMap::new()) };
        let identity = IdentityOptions { mode: loaded.connector.identity_resolution_type.mode(), device_system: None };
        let mut set = ObservationSet::default();
        let outcomes = match convert(fhir, &measurements, &identity, Sources { registry: &registry, prior: &prior }, now, &mut set).await {
            Ok(o) => o,
            Err(e) => {
                refusals.push(Refusal::whole("CONVERSION_FAILED", e.to_string()));
                return Ok(refusals);
            }
        };
        // Each Observation is written once, as the set holds it after every group merged into
        // it, with its device's others.
        let mut by_device: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for outcome in &outcomes {
            let written = match &outcome.result {
                Ok(w) => w,
                Err(e) if e.is_transient() => return Err(StoreError::new("convert connector measurements", e.to_string())),
                Err(e) => {
                    let reason = format!("{} ({}): {e}", outcome.type_name, outcome.device_id);
                    refusals.push(Refusal::of(&outcome.device_id, conversion_error_type(e), reason));
                    continue;
                }
            };
            for (id, how) in written {
                let Some(o) = set.get(id).filter(|_| *how != Written::Unchanged) else { continue };
                let ids = by_device.entry(o.device.reference.trim_start_matches("Device/").to_owned()).or_default();
                if !ids.contains(&id.as_str()) {
                    ids.push(id);
                }
            }
        }
        let read = prior.read.lock().map_err(|_| StoreError::new("file connector observations", "lock poisoned"))?.clone();
        let mut filing = Filing::new(&self.filing);
        for (device_id, ids) in by_device {
            let mut writes = Vec::with_capacity(ids.len());
            for id in ids {
                let Some(observation) = set.get(id) else { continue };
                match StoredObservation::mapped(observation) {
                    Ok(stored) => writes.push(MappedWrite { stored, replaces: read.get(id).cloned() }),
                    Err(e) => refusals.push(Refusal::of(&device_id, "NOT_STORABLE", e.to_string())),
                }
            }
            match filing.file_mapped(&device_id, &writes).await? {
                Ok(written) => tally.observations += written as u64,
                Err(refusal) => {
                    refusals.push(Refusal::of(&device_id, "DEVICE_NOT_ACTIVE", refusal.to_string()));
                    continue;
                }
            }
            // As the connector does, the later of two readings in one window wins; the earlier
            // one is kept, as the Observation it was, where the operator finds it.
            for earlier in set.replaced().iter().filter(|o| o.device.reference.trim_start_matches("Device/") == device_id) {
                let reason = format!(
                    "Observation {} held another reading of the same type in the same window (its identifier has a resolution of one second); the later reading's value replaced it and the earlier Observation is kept here",
                    earlier.id
                );
                let kept = serde_json::to_string(earlier).map_err(|e| StoreError::new("keep a replaced reading", e))?;
                refusals.push(Refusal { kept: Some(kept), ..Refusal::of(&device_id, "VALUE_REPLACED", reason) });
            }
        }
        Ok(refusals)
    }

    /// Keeps a message's refusals as dead letters, one per device (the same device refused twice in
    /// one message is one record, with both reasons), and each replaced reading as its own.
    async fn keep(&self, message: &Message<'_>, refusals: Vec<Refusal>) -> Result<(), StoreError> {
        // By (device, what is kept instead of the message): the first error type, every reason.
        type Letters = BTreeMap<(Option<String>, Option<String>), (&'static str, Vec<String>)>;
        let mut letters = Letters::new();
        for r in refusals {
            letters.entry((r.device, r.kept)).or_insert((r.error_type, Vec::new())).1.push(r.reason);
        }
        for ((device, kept), (error_type, reasons)) in letters {
            let raw = kept.unwrap_or_else(|| message.raw.to_owned());
            let letter = DeadLetter::refused(&message.source, device.as_deref(), error_type, reasons.join("; "), raw, message.received_at.clone());
            self.dead_letters.record(&letter).await?;
            tracing::info!(source = %message.source, reason_code = error_type, "connector message refused");
        }
        Ok(())
    }
}

impl Tally {
    fn count_error(&mut self, error_type: &'static str) {
        *self.errors.entry(error_type).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::messages::{envelope, Sender};
    use crate::connectors::IdentityResolutionType;
    use crate::devices::{Device, DeviceStatus};
    use serde_json::json;

    type Deps = crate::connectors::memory::MemoryConsumer;

    const DEVICE_MAPPING: &str = r#"{"templateType": "CollectionContent", "template": [{"templateType": "JsonPathContent", "template": {
        "typeName": "heartrate", "typeMatchExpression": "$..[?(@heartrate)]", "deviceIdExpression": "$.deviceid",
        "patientIdExpression": "$.patientid", "timestampExpression": "$.measurementdatetime",
        "values": [{"required": true, "valueExpression": "$.heartrate", "valueName": "hr"}]}},
        {"templateType": "JsonPathContent", "template": {
        "typeName": "ecg", "typeMatchExpression": "$..[?(@ecg)]", "deviceIdExpression": "$.deviceid",
        "patientIdExpression": "$.patientid", "timestampExpression": "$.measurementdatetime",
        "values": [{"required": true, "valueExpression": "$.ecg", "valueName": "ecg"}]}}]}"#;

    const FHIR_MAPPING: &str = r#"{"templateType": "CollectionFhir", "template": [{"templateType": "CodeValueFhir", "template": {
        "typeName": "heartrate", "periodInterval": 0, "codes": [{"code": "8867-4", "system": "http://loinc.org", "display": "Heart rate"}],
        "value": {"valueName": "hr", "valueType": "Quantity", "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}}},
        {"templateType": "CodeValueFhir", "template": {
        "typeName": "ecg", "periodInterval": 60, "codes": [{"code": "131328", "system": "urn:oid:2.16.840.1.113883.6.24"}],
        "value": {"valueName": "ecg", "valueType": "SampledData", "defaultPeriod": 1000, "unit": "mV"}}}]}"#;

    fn deps(mode: IdentityResolutionType) -> Deps {
        crate::connectors::memory::consumer(mode, DEVICE_MAPPING, FHIR_MAPPING)
    }

    /// A queued message as the front door enqueues it: (message group, message id, device JSON).
    fn batch(messages: &[(&str, &str, Value)]) -> SqsEvent {
        let records: Vec<Value> = messages
            .iter()
            .map(|(group, id, body)| {
                let e = envelope("ward-7", &Sender::Connection { name: "gw-1", device: None }, body.clone(), serde_json::Map::new(), "2026-12-01T10:00:05.000Z", id);
                json!({"messageId": id, "body": e.to_string(), "attributes": {"MessageGroupId": group}, "messageAttributes": {}})
            })
            .collect();
        serde_json::from_value(json!({"Records": records})).unwrap()
    }

    fn hr(value: &str, time: &str) -> Value {
        json!({"heartrate": value, "deviceid": "acme-band-7", "patientid": "mrn-1", "measurementdatetime": time})
    }

    fn failures(r: &SqsBatchResponse) -> Vec<&str> {
        r.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect()
    }

    #[tokio::test]
    async fn a_poison_message_is_kept_with_its_reason_and_the_others_are_filed_once() {
        let deps = deps(IdentityResolutionType::Lookup);
        let event = batch(&[
            ("ward-7/gw-1", "m-1", hr("72", "2026-12-01T10:00:00Z")),
            ("ward-7/gw-1", "m-2", json!({"temperature": 37})),
            ("ward-7/gw-1", "m-3", hr("not a number", "2026-12-01T10:00:01Z")),
            ("ward-7/gw-1", "m-4", hr("74", "2026-12-01T10:00:02Z")),
        ]);
        let answer = deps.handle(event.clone()).await.unwrap();
        assert!(failures(&answer).is_empty(), "refused messages are handled, never retried");
        assert_eq!(deps.filing.observations.len(), 2);
        let letters = deps.dead_letters.all();
        let mut types: Vec<&str> = letters.iter().map(|l| l.reason_code.as_str()).collect();
        types.sort_unstable();
        assert_eq!(types, ["CONVERSION_FAILED", "NO_MEASUREMENT"]);
        assert!(letters.iter().all(|l| l.source == "connector/ward-7" && l.raw_payload.contains("\"Body\"")), "kept with the raw envelope");
        let not_a_number = letters.iter().find(|l| l.reason_code == "CONVERSION_FAILED").unwrap();
        assert_eq!(not_a_number.thing_name.as_deref(), Some("acme-band-7"));
        assert_eq!(deps.metrics.total("MessagesReceived", ("Connector", "ward-7")), 4);
        assert_eq!(deps.metrics.total("ObservationsWritten", ("Connector", "ward-7")), 2);
        assert_eq!(deps.metrics.total("Errors", ("ErrorType", "NO_MEASUREMENT")), 1);

        // The whole batch again (a visibility timeout that lapsed): nothing new anywhere.
        let again = deps.handle(event).await.unwrap();
        assert!(failures(&again).is_empty());
        assert_eq!((deps.filing.observations.len(), deps.dead_letters.len()), (2, 2));
        assert_eq!(deps.metrics.total("ObservationsWritten", ("Connector", "ward-7")), 2, "a redelivery writes nothing");
    }

    #[tokio::test]
    async fn a_reading_replaced_by_a_later_one_in_the_same_second_is_kept() {
        let deps = deps(IdentityResolutionType::Lookup);
        let same_second = |v: &str| hr(v, "2026-12-01T10:00:00Z");
        deps.handle(batch(&[("g", "m-1", same_second("72"))])).await.unwrap();
        deps.handle(batch(&[("g", "m-2", same_second("75"))])).await.unwrap();
        let stored = deps.filing.observations.for_device("acme-band-7", 10).await.unwrap();
        assert_eq!(stored.len(), 1, "one identifier for one second, as in the connector");
        let now: Value = serde_json::from_str(&stored[0].resource).unwrap();
        assert_eq!(now["valueQuantity"]["value"], 75, "the later value wins");
        let letters = deps.dead_letters.all();
        assert_eq!(letters.len(), 1);
        assert_eq!((letters[0].reason_code.as_str(), letters[0].thing_name.as_deref()), ("VALUE_REPLACED", Some("acme-band-7")));
        let earlier: Value = serde_json::from_str(&letters[0].raw_payload).unwrap();
        assert_eq!((earlier["id"].clone(), earlier["valueQuantity"]["value"].clone()), (now["id"].clone(), json!(72)), "the earlier reading, kept as it was");
        deps.handle(batch(&[("g", "m-2", same_second("75"))])).await.unwrap();
        assert_eq!(deps.dead_letters.len(), 1, "a redelivery replaces nothing");
    }

    #[tokio::test]
    async fn a_thing_files_only_its_own_measurements() {
        let deps = deps(IdentityResolutionType::Lookup);
        let from_thing = |id: &str, body: Value| {
            let e = envelope("ward-7", &Sender::Thing("acme-band-7"), body, serde_json::Map::new(), "2026-12-01T10:00:05.000Z", id);
            json!({"messageId": id, "body": e.to_string(), "attributes": {"MessageGroupId": "ward-7/acme-band-7"}})
        };
        let mut other = Device::registered("Acme", "other", "HR", "", "");
        other.status = DeviceStatus::Active;
        other.patient_id = Some("pat-9".into());
        deps.filing.devices.put(&other).await.unwrap();
        let own = hr("72", "2026-12-01T10:00:00Z");
        let forged = json!({"heartrate": "99", "deviceid": "acme-other", "measurementdatetime": "2026-12-01T10:00:01Z"});
        let event: SqsEvent = serde_json::from_value(json!({"Records": [from_thing("t-1", own), from_thing("t-2", forged)]})).unwrap();
        deps.handle(event).await.unwrap();
        assert_eq!(deps.filing.observations.len(), 1);
        assert!(deps.filing.observations.for_device("acme-other", 10).await.unwrap().is_empty(), "nothing filed as another device");
        let letters = deps.dead_letters.all();
        assert_eq!((letters.len(), letters[0].reason_code.as_str(), letters[0].thing_name.as_deref()), (1, "FOREIGN_DEVICE", Some("acme-band-7")));
    }

    #[tokio::test]
    async fn a_failure_that_may_pass_retries_its_message_and_the_rest_of_its_group_only() {
        let deps = deps(IdentityResolutionType::Lookup);
        deps.filing.observations.fail_next();
        let event = batch(&[
            ("ward-7/gw-1", "m-1", hr("72", "2026-12-01T10:00:00Z")),
            ("ward-7/gw-2", "m-2", hr("73", "2026-12-01T10:00:01Z")),
            ("ward-7/gw-1", "m-3", hr("74", "2026-12-01T10:00:02Z")),
        ]);
        let answer = deps.handle(event).await.unwrap();
        assert_eq!(failures(&answer), ["m-1", "m-3"], "m-3 waits for m-1, as its FIFO group must");
        assert_eq!(deps.filing.observations.len(), 1, "the other group went on");
        assert_eq!(deps.dead_letters.len(), 0, "a transient failure is not a refusal");
    }

    #[tokio::test]
    async fn sampled_data_windows_merge_across_batches_and_vital_signs_raise_alerts() {
        let deps = deps(IdentityResolutionType::Lookup);
        let ecg = |v: &str, t: &str| json!({"ecg": v, "deviceid": "acme-band-7", "measurementdatetime": t});
        deps.handle(batch(&[("g", "e-1", ecg("0.1", "2026-12-01T10:00:00Z"))])).await.unwrap();
        deps.handle(batch(&[("g", "e-2", ecg("0.3", "2026-12-01T10:00:02Z"))])).await.unwrap();
        assert_eq!(deps.filing.observations.len(), 1, "one window, one Observation");
        let stored = deps.filing.observations.for_device("acme-band-7", 10).await.unwrap();
        let o: Value = serde_json::from_str(&stored[0].resource).unwrap();
        assert_eq!(o["status"], "amended");
        let data = o["valueSampledData"]["data"].as_str().unwrap();
        assert!(data.starts_with("0.1 E 0.3 E"), "one slot a second over the hour's window, the missing ones E");
        assert_eq!(data.split(' ').count(), 3600);
        assert_eq!(o["subject"]["reference"], "Patient/pat-1");

        // A heart rate of 135/min scores 3 in NEWS2: an alert, like any other reading of it.
        deps.handle(batch(&[("g", "h-1", hr("135", "2026-12-01T10:00:03Z"))])).await.unwrap();
        assert_eq!(deps.filing.alerts.len(), 1);
        deps.handle(batch(&[("g", "h-1", hr("135", "2026-12-01T10:00:03Z"))])).await.unwrap();
        assert_eq!(deps.filing.alerts.len(), 1, "redelivered: not raised twice");
    }

    #[tokio::test]
    async fn create_mode_makes_the_patient_and_device_once_and_finds_them_after() {
        let deps = deps(IdentityResolutionType::Create);
        let new = |v: &str, t: &str| json!({"heartrate": v, "deviceid": "band-new", "patientid": "mrn-9", "measurementdatetime": t});
        for (i, body) in [new("70", "2026-12-01T10:00:00Z"), new("71", "2026-12-01T10:00:01Z")].into_iter().enumerate() {
            let answer = deps.handle(batch(&[("g", &i.to_string(), body)])).await.unwrap();
            assert!(answer.batch_item_failures.is_empty());
        }
        assert_eq!(deps.patients.0.lock().unwrap().len(), 1);
        assert_eq!(deps.filing.devices.list(10, None).await.unwrap().0.len(), 2, "the registered band and one created device");
        assert_eq!(deps.filing.observations.len(), 2);
        let without_patient = json!({"heartrate": "72", "deviceid": "band-other", "measurementdatetime": "2026-12-01T10:00:02Z"});
        deps.handle(batch(&[("g", "3", without_patient)])).await.unwrap();
        assert_eq!(deps.dead_letters.all()[0].reason_code, "PATIENT_ID_NOT_DEFINED");
    }

    #[tokio::test]
    async fn devices_an_operator_switched_off_file_nothing_and_registered_ones_are_activated() {
        let deps = deps(IdentityResolutionType::Lookup);
        let mut off = Device::registered("Acme", "off", "HR", "", "");
        off.status = DeviceStatus::Inactive;
        off.patient_id = Some("pat-2".into());
        let mut fresh = Device::registered("Acme", "fresh", "HR", "", "");
        fresh.patient_id = Some("pat-3".into());
        deps.filing.devices.put(&off).await.unwrap();
        deps.filing.devices.put(&fresh).await.unwrap();
        let from = |device: &str| json!({"heartrate": "70", "deviceid": device, "measurementdatetime": "2026-12-01T10:00:00Z"});
        deps.handle(batch(&[("g", "1", from("acme-off")), ("g", "2", from("acme-fresh")), ("g", "3", from("nobody"))])).await.unwrap();
        assert_eq!(deps.filing.observations.len(), 1);
        assert_eq!(deps.filing.devices.get("acme-fresh").await.unwrap().unwrap().status, DeviceStatus::Active);
        let mut types: Vec<String> = deps.dead_letters.all().into_iter().map(|l| l.reason_code).collect();
        types.sort_unstable();
        assert_eq!(types, ["DEVICE_NOT_ACTIVE", "DEVICE_NOT_FOUND"]);
    }

    #[tokio::test]
    async fn messages_of_a_deleted_connector_or_without_mappings_are_kept() {
        let deps = deps(IdentityResolutionType::Lookup);
        deps.store.mappings.lock().unwrap().retain(|(_, kind, _), _| *kind != "fhir");
        deps.handle(batch(&[("g", "1", hr("70", "2026-12-01T10:00:00Z"))])).await.unwrap();
        deps.store.connectors.lock().unwrap().clear();
        deps.handle(batch(&[("g", "2", hr("71", "2026-12-01T10:00:01Z"))])).await.unwrap();
        let not_an_envelope: SqsEvent = serde_json::from_value(json!({"Records": [{"messageId": "3", "body": "[1]", "attributes": {}}]})).unwrap();
        deps.handle(not_an_envelope).await.unwrap();
        let letters = deps.dead_letters.all();
        let mut kept: Vec<(&str, &str)> = letters.iter().map(|l| (l.source.as_str(), l.reason_code.as_str())).collect();
        kept.sort_unstable();
        assert_eq!(kept, [("connector/ward-7", "CONNECTOR_DELETED"), ("connector/ward-7", "NO_FHIR_MAPPING"), ("connectors", "NOT_AN_ENVELOPE")]);
        assert_eq!(deps.filing.observations.len(), 0);
    }
}
