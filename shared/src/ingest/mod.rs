//! The filing service: the one way a reading is admitted, filed and scored, whichever way it
//! came (the `FHIRIngest` rule, the vitals REST API, the S3 inbox, and the connectors next).
//!
//! Connectors are the exception to the parsers: their mappings make the Observations, and
//! [`Filing::file_mapped`] admits the device, writes them (new, or merged over what is stored)
//! and scores them the same way.
//!
//! Each way in has its own parser ([`measurement`] for the device payload of seed 000,
//! [`readings`] for the vitals format of seed 002), which checks every field, including that a
//! vital sign's value is physiologically plausible and that its time is neither in the future
//! nor years in the past, and yields a [`Reading`]. [`Filing::file`] then:
//!
//! 1. admits the device ([`crate::devices::admit`]: ACTIVE, and for which patient),
//! 2. builds the reading's FHIR Observations ([`crate::observations`]),
//! 3. writes each once (a conditional write keyed by device, time and code: a redelivered
//!    reading is a no-op, a different reading under the same key a [`Refusal::Conflict`]),
//! 4. evaluates the patient's alerts ([`crate::clinical`]).
//!
//! It answers [`Filed`] or a [`Refusal`]; each way in maps a refusal once: `fhir-ingest` to a
//! dead letter, the vitals API to its HTTP error body (and a dead letter), the inbox to its
//! report (and a dead letter).

pub mod http;
pub mod inbox;
pub mod measurement;
pub mod readings;
pub mod rule;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::clinical::{self, AlertSettings, AlertStore};
use crate::devices::{self, AdmissionRefusal, Device, DeviceRegistry};
use crate::fhir::{Decimal, Observation};
use crate::fhir::vitals::VitalSign;
use crate::observations::{self, Fingerprint, Inserted, Measurement, ObservationStore, StoredObservation, Subject};
use crate::platform::metrics::{MetricSink, Metrics as _, Tally};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// How far ahead of the platform's clock a device's own timestamp may be.
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);

/// How far back a device's own timestamp may be: five years. An older reading is a clock that
/// reset (to 1970, or to 2000 as many real-time clocks do), not a device catching up after
/// being offline.
pub const MAX_READING_AGE: Duration = Duration::days(5 * 365);

/// When the device says it measured, as sent and as a UTC instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub text: String,
    pub at: DateTime<Utc>,
}

/// What is wrong with a device's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeProblem {
    #[error("is more than 5 minutes after the time the platform received it")]
    Future,
    #[error("is more than 5 years before the time the platform received it (is the device's clock set?)")]
    TooOld,
}

/// Checks a device's timestamp against the time the platform received the reading.
pub fn check_time(at: DateTime<Utc>, received: DateTime<Utc>) -> Result<(), TimeProblem> {
    if at > received + MAX_CLOCK_SKEW {
        Err(TimeProblem::Future)
    } else if at < received - MAX_READING_AGE {
        Err(TimeProblem::TooOld)
    } else {
        Ok(())
    }
}

/// What identifies a delivery that carries no device time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The device's own id of the message: a re-publish of it is the same reading.
    Message(String),
    /// The IoT rule's `traceid()`, which Lambda's retries of one event repeat; each publish has
    /// its own, so a re-publish without a message id is a second reading.
    Trace(String),
}

/// When a reading was measured, and so what makes two deliveries of it the same.
#[derive(Debug, Clone, PartialEq)]
pub enum Timing {
    /// The device's own time: a reading is the same as another of the same device, time and code.
    Device(Effective),
    /// No device time: the time of receipt, and what identifies the delivery, so that two
    /// readings received in the same millisecond stay two readings.
    Received { at: DateTime<Utc>, delivery: Delivery },
}

impl Timing {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Timing::Device(e) => e.at,
            Timing::Received { at, .. } => *at,
        }
    }

    /// What identifies the reading among the device's, for its Observations' keys.
    /// `received` is [`format_utc`] of the receipt time, which the caller has already written.
    fn identity(&self, received: &str) -> String {
        match self {
            Timing::Device(e) => format_utc(e.at),
            Timing::Received { delivery: Delivery::Message(id), .. } => ["message:", id].concat(),
            Timing::Received { delivery: Delivery::Trace(trace), .. } => [received, "#", trace].concat(),
        }
    }
}

/// A validated reading: one or more measurements taken by one device at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device_id: String,
    /// The patient the reading names, if any (only some devices may: see [`devices::admit`]).
    pub named_patient: Option<String>,
    pub timing: Timing,
    pub measurements: Vec<Measurement>,
    /// Systolic and diastolic, in mmHg.
    pub blood_pressure: Option<(Decimal, Decimal)>,
    /// Whether the Observations are grouped by an 85353-1 vital-signs panel (a vitals-API reading).
    pub grouped: bool,
    /// What the device reported of itself with the reading (its battery charge): filed as
    /// Observations beside the measurements, at the same time, but not members of the
    /// vital-signs panel, and not read by alerts (they are not vital signs).
    pub device_status: Vec<Measurement>,
}

impl Reading {
    /// The reading's FHIR Observations for `patient`, each with its code key: one per
    /// measurement, the blood-pressure panel, one per device status, and the grouping panel
    /// (of the measurements and the blood-pressure panel) last when grouped.
    pub fn observations(&self, patient: &str, issued: &str) -> Vec<(Observation, String)> {
        let effective = match &self.timing {
            Timing::Device(e) => e.text.clone(),
            Timing::Received { at, .. } => format_utc(*at),
        };
        let identity = self.timing.identity(&effective);
        let subject = Subject {
            thing_name: &self.device_id,
            patient_id: patient,
            effective: &effective,
            identity: &identity,
            named_patient: self.named_patient.is_some(),
            issued,
        };
        let keyed = |m: &Measurement| {
            let code_key = m.code_key();
            (observations::measured_as(m, &code_key, &subject), code_key)
        };
        let mut built: Vec<(Observation, String)> = Vec::with_capacity(self.measurements.len() + self.device_status.len() + 2);
        built.extend(self.measurements.iter().map(keyed));
        if let Some((systolic, diastolic)) = &self.blood_pressure {
            built.push((observations::blood_pressure(systolic, diastolic, &subject), VitalSign::BloodPressurePanel.code_key()));
        }
        let measured = built.len();
        built.extend(self.device_status.iter().map(keyed));
        if self.grouped {
            let group = observations::vital_signs_panel(built[..measured].iter().map(|(o, _)| o.id.as_str()), &subject);
            built.push((group, VitalSign::VitalSignsPanel.code_key()));
        }
        built
    }

    /// The id of the reading set: its grouping panel's, or its first Observation's.
    pub fn set_id(&self, observations: &[(Observation, String)]) -> String {
        let set = if self.grouped { observations.last() } else { observations.first() };
        set.map(|(o, _)| o.id.clone()).unwrap_or_default()
    }
}

/// What filing a reading did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filed {
    /// The reading set's id (its grouping panel's, or its one Observation's).
    pub set_id: String,
    pub patient_id: String,
    /// Every Observation was filed before: a redelivered reading.
    pub duplicate: bool,
    /// How many alerts the reading raised.
    pub alerts_raised: usize,
}

/// Why a valid reading was not filed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Admission(#[from] AdmissionRefusal),
    #[error("a different reading of {device} at {at} is already filed for the same measurement")]
    Conflict { device: String, at: String },
}

impl Refusal {
    /// The reading's key holds a different reading already.
    fn conflict(reading: &Reading) -> Self {
        let at = match &reading.timing {
            Timing::Device(e) => e.text.clone(),
            Timing::Received { at, .. } => format_utc(*at),
        };
        Refusal::Conflict { device: reading.device_id.clone(), at }
    }

    /// A stable machine-readable code for the reason.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Admission(a) => a.code(),
            Refusal::Conflict { .. } => "CONFLICTING_DUPLICATE",
        }
    }
}

/// What filing needs.
pub struct FilingDeps<D, O, A> {
    pub devices: D,
    pub observations: O,
    /// Where the alerts evaluated after each filed reading go.
    pub alerts: A,
    pub alert_settings: AlertSettings,
    /// Where each [`Filing`]'s counts go when it ends.
    pub metrics: MetricSink,
}

impl<D: FromWiring, O: FromWiring, A: FromWiring> FromWiring for FilingDeps<D, O, A> {
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        Ok(Self { devices: w.build()?, observations: w.build()?, alerts: w.build()?, alert_settings: w.build()?, metrics: w.build()? })
    }
}

/// An Observation a connector's mappings made, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedWrite {
    pub stored: StoredObservation,
    /// The content hash of the stored Observation it was merged into; `None` for a new one.
    pub replaces: Option<String>,
}

/// Files readings: one per request, file or batch, so that each device's record is read once.
///
/// It counts what it did (`ReadingsFiled`, `DuplicateReadings`, `AlertsRaised` by `Severity`)
/// and records the counts once, when it is dropped at the end of its request, file or batch.
pub struct Filing<'a, D, O, A> {
    deps: &'a FilingDeps<D, O, A>,
    devices: HashMap<String, Option<Device>>,
    tally: Tally,
}

impl<D, O, A> Drop for Filing<'_, D, O, A> {
    fn drop(&mut self) {
        self.deps.metrics.record(&self.tally.take());
    }
}

impl<'a, D: DeviceRegistry, O: ObservationStore, A: AlertStore> Filing<'a, D, O, A> {
    pub fn new(deps: &'a FilingDeps<D, O, A>) -> Self {
        Self { deps, devices: HashMap::new(), tally: Tally::default() }
    }

    fn count_alerts(&mut self, raised: &[clinical::Alert]) {
        for alert in raised {
            self.tally.add(&[("Severity", alert.severity.as_str())], "AlertsRaised", 1);
        }
    }

    async fn device(&mut self, thing: &str) -> Result<Option<Device>, StoreError> {
        if let Some(found) = self.devices.get(thing) {
            return Ok(found.clone());
        }
        let found = self.deps.devices.get(thing).await?;
        self.devices.insert(thing.to_owned(), found.clone());
        Ok(found)
    }

    /// Whether the device may file readings at all (a batch asks once, before its readings).
    pub async fn admit_device(&mut self, thing: &str) -> Result<Result<(), Refusal>, StoreError> {
        let device = self.device(thing).await?;
        Ok(devices::admit_device(device, thing).map(|_| ()).map_err(Refusal::from))
    }

    /// Files the Observations a connector's mappings made for one device: the device admitted as
    /// [`devices::admit_device`] does, except that a REGISTERED device becomes ACTIVE (the
    /// connection key it sent with is its credential, as an API key is); each Observation
    /// written where its id is free, or over the content it was merged from; the patients'
    /// alerts evaluated. `Err` also when an Observation changed since it was read: another
    /// worker wrote it, and the caller merges again. How many were written.
    pub async fn file_mapped(&mut self, device_id: &str, writes: &[MappedWrite]) -> Result<Result<usize, Refusal>, StoreError> {
        const OP: &str = "file connector observations";
        let mut device = self.device(device_id).await?;
        if let Some(d) = device.as_ref().filter(|d| d.status == devices::DeviceStatus::Registered) {
            let now = format_utc(Utc::now());
            device = self.deps.devices.activate_registered(&d.thing_name, &now).await?;
            self.devices.insert(device_id.to_owned(), device.clone());
        }
        if let Err(refusal) = devices::admit_device(device, device_id) {
            return Ok(Err(refusal.into()));
        }
        for w in writes {
            let written = match &w.replaces {
                Some(previous) => self.deps.observations.replace(&w.stored, previous).await?,
                None => self.deps.observations.insert_set(std::slice::from_ref(&w.stored)).await? != Inserted::Conflict,
            };
            if !written {
                return Err(StoreError::new(OP, format!("Observation {} changed while it was merged", w.stored.id)));
            }
        }
        let mut by_patient: std::collections::BTreeMap<&str, Vec<StoredObservation>> = std::collections::BTreeMap::new();
        for w in writes {
            by_patient.entry(w.stored.patient_id.as_str()).or_default().push(w.stored.clone());
        }
        for (patient_id, observations) in &by_patient {
            let Some(latest) = observations.iter().max_by(|a, b| a.effective_at.cmp(&b.effective_at)) else { continue };
            let Some(at) = crate::platform::time::parse_with_offset(&latest.effective_at) else { continue };
            let set = clinical::ReadingSet { patient_id, device_id, set_id: &latest.id, at, observations };
            let raised = clinical::evaluate(&self.deps.observations, &self.deps.alerts, &self.deps.alert_settings, set).await?;
            self.count_alerts(&raised);
        }
        Ok(Ok(writes.len()))
    }

    /// Admits a reading and builds its Observations.
    async fn prepare(&mut self, reading: &Reading) -> Result<Result<Prepared, Refusal>, StoreError> {
        let device = self.device(&reading.device_id).await?;
        let admitted = match devices::admit(device, &reading.device_id, reading.named_patient.as_deref()) {
            Ok(a) => a,
            Err(refusal) => return Ok(Err(refusal.into())),
        };
        let issued = format_utc(Utc::now());
        let effective_utc = format_utc(reading.timing.at());
        let built = reading.observations(&admitted.patient_id, &issued);
        let fingerprint = match reading.timing {
            Timing::Device(_) => Fingerprint::WithTime,
            Timing::Received { .. } => Fingerprint::WithoutTime,
        };
        let stored = built
            .iter()
            .map(|(o, code_key)| StoredObservation::new(o, code_key.clone(), effective_utc.clone(), fingerprint))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::new("serialize observation", e))?;
        Ok(Ok(Prepared { set_id: reading.set_id(&built), patient_id: admitted.patient_id, stored }))
    }

    /// Counts a reading filed.
    fn count_filed(&mut self, duplicate: bool) {
        self.tally.add(&[], if duplicate { "DuplicateReadings" } else { "ReadingsFiled" }, 1);
    }

    /// Admits, files and scores one reading. `Err` is a storage failure (retry); `Ok(Err)` a
    /// refusal the reading's sender must hear of.
    pub async fn file(&mut self, reading: &Reading) -> Result<Result<Filed, Refusal>, StoreError> {
        let prepared = match self.prepare(reading).await? {
            Ok(p) => p,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let duplicate = match self.deps.observations.insert_set(&prepared.stored).await? {
            Inserted::New => false,
            Inserted::Duplicate => true,
            Inserted::Conflict => return Ok(Err(Refusal::conflict(reading))),
        };
        // Evaluated for a redelivery too: if the first delivery failed after filing, its alert is
        // raised now; an alert already raised is not raised again.
        let raised = clinical::evaluate(&self.deps.observations, &self.deps.alerts, &self.deps.alert_settings, prepared.set_of(reading)).await?;
        self.count_alerts(&raised);
        self.count_filed(duplicate);
        Ok(Ok(Filed { set_id: prepared.set_id, patient_id: prepared.patient_id, duplicate, alerts_raised: raised.len() }))
    }

    /// Files readings together (a chunk of an inbox file), each as [`Self::file`] would, in
    /// fewer requests: readings whose Observations are all new are written
    /// [`observations::MAX_WRITTEN_TOGETHER`] Observations at a time, in one all-or-none request
    /// each, a few requests at once; a reading naming an id an earlier one of the chunk names,
    /// and every reading of a request a condition stopped (some were filed before: a retried
    /// chunk), go one at a time in the chunk's order, which tells a duplicate from a conflict
    /// as [`Self::file`] does. Then each patient's alerts are evaluated once for all their sets
    /// ([`clinical::evaluate_together`]). The result of each reading, in order.
    pub async fn file_together(&mut self, readings: &[Reading]) -> Result<Vec<Result<Filed, Refusal>>, StoreError> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        let mut prepared = Vec::with_capacity(readings.len());
        for reading in readings {
            prepared.push(self.prepare(reading).await?);
        }
        let (groups, mut alone) = write_groups(&prepared);
        let observations = &self.deps.observations;
        let prepared_ref = &prepared;
        // Futures made first, then run a few at a time (a closure making them inside the
        // stream would not be `Send` for every lifetime, which the Lambda runtime needs).
        let mut writes = Vec::with_capacity(groups.len());
        for (g, members) in groups.iter().enumerate() {
            let sets: Vec<&[StoredObservation]> = members.iter().filter_map(|&i| prepared_ref[i].as_ref().ok()).map(|p| p.stored.as_slice()).collect();
            writes.push(async move { observations.insert_new_sets(&sets).await.map(|all_new| (g, all_new)) });
        }
        let written: Vec<(usize, bool)> = futures_util::stream::iter(writes).buffer_unordered(WRITES_AT_ONCE).try_collect().await?;
        // Per reading: filed (and whether as a duplicate), or refused as a conflict.
        let mut filed: Vec<Option<Result<bool, Refusal>>> = vec![None; readings.len()];
        for (g, all_new) in written {
            for &i in &groups[g] {
                if all_new {
                    filed[i] = Some(Ok(false));
                } else {
                    alone.push(i);
                }
            }
        }
        alone.sort_unstable();
        for i in alone {
            let Ok(p) = &prepared[i] else { continue };
            filed[i] = Some(match observations.insert_set(&p.stored).await? {
                Inserted::New => Ok(false),
                Inserted::Duplicate => Ok(true),
                Inserted::Conflict => Err(Refusal::conflict(&readings[i])),
            });
        }
        let mut by_patient: std::collections::BTreeMap<&str, Vec<clinical::ReadingSet<'_>>> = std::collections::BTreeMap::new();
        for (i, p) in prepared.iter().enumerate() {
            if let (Ok(p), Some(Ok(_))) = (p, &filed[i]) {
                by_patient.entry(p.patient_id.as_str()).or_default().push(p.set_of(&readings[i]));
            }
        }
        let deps = self.deps;
        let evaluations: Vec<_> = by_patient
            .iter()
            .map(|(patient, sets)| clinical::evaluate_together(&deps.observations, &deps.alerts, &deps.alert_settings, patient, sets))
            .collect();
        let raised: Vec<Vec<clinical::Alert>> = futures_util::stream::iter(evaluations).buffer_unordered(EVALUATIONS_AT_ONCE).try_collect().await?;
        let raised: Vec<clinical::Alert> = raised.into_iter().flatten().collect();
        self.count_alerts(&raised);
        let mut results = Vec::with_capacity(readings.len());
        for (p, filed) in prepared.into_iter().zip(filed) {
            results.push(match (p, filed) {
                (Err(refusal), _) => Err(refusal),
                (Ok(_), Some(Err(refusal))) => Err(refusal),
                (Ok(p), Some(Ok(duplicate))) => {
                    self.count_filed(duplicate);
                    let alerts_raised = raised.iter().filter(|a| a.patient_id == p.patient_id && a.alert_id == clinical::alert_id(&p.patient_id, a.kind, &p.set_id)).count();
                    Ok(Filed { set_id: p.set_id, patient_id: p.patient_id, duplicate, alerts_raised })
                }
                (Ok(_), None) => return Err(StoreError::new("file readings", "a reading was neither written nor refused")),
            });
        }
        Ok(results)
    }
}

/// How many of a chunk's write requests are in flight at once.
const WRITES_AT_ONCE: usize = 4;
/// How many patients' alerts are evaluated at once.
const EVALUATIONS_AT_ONCE: usize = 4;

/// A reading admitted and built, ready to be written.
struct Prepared {
    set_id: String,
    patient_id: String,
    stored: Vec<StoredObservation>,
}

impl Prepared {
    fn set_of<'r>(&'r self, reading: &'r Reading) -> clinical::ReadingSet<'r> {
        clinical::ReadingSet {
            patient_id: &self.patient_id,
            device_id: &reading.device_id,
            set_id: &self.set_id,
            at: reading.timing.at(),
            observations: &self.stored,
        }
    }
}

/// The readings (by index) written together, request by request, and those to write one at a
/// time: one naming an id an earlier reading of the chunk names (a transaction may not name an
/// item twice, and the earlier one must be written first to judge the later), or too large.
fn write_groups(prepared: &[Result<Prepared, Refusal>]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let max = observations::MAX_WRITTEN_TOGETHER;
    let mut seen = std::collections::HashSet::new();
    let (mut groups, mut alone): (Vec<Vec<usize>>, Vec<usize>) = (Vec::new(), Vec::new());
    let mut size = 0;
    for (i, p) in prepared.iter().enumerate() {
        let Ok(p) = p else { continue };
        if p.stored.len() > max || p.stored.iter().any(|o| seen.contains(o.id.as_str())) {
            alone.push(i);
            continue;
        }
        seen.extend(p.stored.iter().map(|o| o.id.as_str()));
        if groups.is_empty() || size + p.stored.len() > max {
            groups.push(Vec::new());
            size = 0;
        }
        size += p.stored.len();
        if let Some(group) = groups.last_mut() {
            group.push(i);
        }
    }
    (groups, alone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::memory::MemoryAlerts;
    use crate::devices::memory::MemoryDevices;
    use crate::devices::DeviceStatus;
    use crate::observations::memory::MemoryObservations;

    fn deps(status: DeviceStatus) -> FilingDeps<MemoryDevices, MemoryObservations, MemoryAlerts> {
        let mut d = Device::registered("Acme", "1", "BP", "", "");
        d.status = status;
        d.patient_id = Some("pat-1".into());
        FilingDeps {
            devices: MemoryDevices::with(vec![d]),
            observations: MemoryObservations::default(),
            alerts: MemoryAlerts::default(),
            alert_settings: AlertSettings::default(),
            metrics: MetricSink::discard(),
        }
    }

    fn heart_rate(value: &str, timing: Timing) -> Reading {
        Reading {
            device_id: "acme-1".into(),
            named_patient: None,
            timing,
            measurements: vec![Measurement::vital(VitalSign::HeartRate, Decimal::parse(value).unwrap(), "bpm", "/min")],
            blood_pressure: None,
            grouped: false,
            device_status: Vec::new(),
        }
    }

    fn at(text: &str) -> Timing {
        Timing::Device(Effective { text: text.into(), at: crate::platform::time::parse_with_offset(text).unwrap() })
    }

    #[tokio::test]
    async fn a_reading_is_filed_once_and_a_different_one_under_its_key_is_refused() {
        let mut deps = deps(DeviceStatus::Active);
        let metrics = std::sync::Arc::new(crate::platform::metrics::MemoryMetrics::default());
        deps.metrics = MetricSink::new("fhir-ingest", metrics.clone());
        let mut filing = Filing::new(&deps);
        let first = filing.file(&heart_rate("72", at("2026-11-22T10:00:00Z"))).await.unwrap().unwrap();
        assert!(!first.duplicate);
        assert_eq!(first.patient_id, "pat-1");
        let again = filing.file(&heart_rate("72", at("2026-11-22T10:00:00Z"))).await.unwrap().unwrap();
        assert!(again.duplicate);
        assert_eq!(again.set_id, first.set_id);
        let refused = filing.file(&heart_rate("73", at("2026-11-22T10:00:00Z"))).await.unwrap().unwrap_err();
        assert_eq!(refused.code(), "CONFLICTING_DUPLICATE");
        assert_eq!(deps.observations.len(), 1);
        assert_eq!(metrics.sum("ReadingsFiled"), 0, "counts are recorded when the filing ends");
        drop(filing);
        assert_eq!((metrics.sum("ReadingsFiled"), metrics.sum("DuplicateReadings")), (1, 1));
        assert_eq!(metrics.total("ReadingsFiled", ("Service", "fhir-ingest")), 1);
    }

    #[tokio::test]
    async fn readings_without_a_device_time_are_told_apart_by_their_delivery() {
        let deps = deps(DeviceStatus::Active);
        let mut filing = Filing::new(&deps);
        let received = crate::platform::time::parse_with_offset("2026-11-22T10:00:00.123Z").unwrap();
        for (i, value) in ["70", "71", "72", "73", "74"].iter().enumerate() {
            let timing = Timing::Received { at: received, delivery: Delivery::Trace(format!("trace-{i}")) };
            assert!(!filing.file(&heart_rate(value, timing)).await.unwrap().unwrap().duplicate);
        }
        assert_eq!(deps.observations.len(), 5, "five readings in one millisecond are five readings");
        let retried = Timing::Received { at: received, delivery: Delivery::Trace("trace-2".into()) };
        assert!(filing.file(&heart_rate("72", retried)).await.unwrap().unwrap().duplicate, "a Lambda retry repeats the trace id");
        assert_eq!(deps.observations.len(), 5);
        // A device's message id makes a re-publish, received later, the same reading.
        let message = |at| Timing::Received { at, delivery: Delivery::Message("m-1".into()) };
        assert!(!filing.file(&heart_rate("80", message(received))).await.unwrap().unwrap().duplicate);
        let later = received + Duration::seconds(3);
        assert!(filing.file(&heart_rate("80", message(later))).await.unwrap().unwrap().duplicate, "a re-publish of message m-1");
        assert_eq!(deps.observations.len(), 6);
    }

    #[tokio::test]
    async fn a_reading_that_conflicts_in_part_writes_nothing() {
        let deps = deps(DeviceStatus::Active);
        let mut filing = Filing::new(&deps);
        let parse = |text: &str| super::readings::parse(text, None, crate::platform::time::parse_with_offset("2026-11-22T10:01:00Z").unwrap()).unwrap().reading;
        let first = parse(r#"{"device_id": "acme-1", "timestamp": "2026-11-22T10:00:00Z", "heart_rate": 72}"#);
        filing.file(&first).await.unwrap().unwrap();
        assert_eq!(deps.observations.len(), 2, "the heart rate and its grouping panel");
        // The same time, the same heart rate, and an SpO2: the grouping panel differs.
        let second = parse(r#"{"device_id": "acme-1", "timestamp": "2026-11-22T10:00:00Z", "heart_rate": 72, "oxygen_saturation": 97}"#);
        assert_eq!(filing.file(&second).await.unwrap().unwrap_err().code(), "CONFLICTING_DUPLICATE");
        assert_eq!(deps.observations.len(), 2, "the SpO2 was not filed outside its reading");
    }

    #[tokio::test]
    async fn readings_filed_together_are_judged_as_one_by_one_and_written_in_few_requests() {
        let deps = deps(DeviceStatus::Active);
        let at_minute = |m: u32| at(&format!("2026-11-22T{:02}:{:02}:00Z", 8 + m / 60, m % 60));
        // 120 distinct readings (more than one request's 100 Observations), a repeat of the
        // third, and a different reading under the fifth's key.
        let mut readings: Vec<Reading> = (0..120).map(|i| heart_rate(&format!("{}", 60 + i % 40), at_minute(i))).collect();
        readings.push(readings[2].clone());
        readings.push(heart_rate("150", readings[4].timing.clone()));
        let mut filing = Filing::new(&deps);
        let results = filing.file_together(&readings).await.unwrap();
        assert_eq!(results.len(), 122);
        assert!(results[..120].iter().all(|r| matches!(r, Ok(f) if !f.duplicate)));
        assert!(matches!(&results[120], Ok(f) if f.duplicate && f.set_id == results[2].as_ref().unwrap().set_id), "{:?}", results[120]);
        assert_eq!(results[121].as_ref().unwrap_err().code(), "CONFLICTING_DUPLICATE");
        assert_eq!(deps.observations.len(), 120);
        // The same chunk again (a run that died before it saved): every reading a duplicate, none
        // written twice, the conflict still refused.
        let again = filing.file_together(&readings).await.unwrap();
        assert!(again[..121].iter().all(|r| matches!(r, Ok(f) if f.duplicate)));
        assert_eq!(again[121].as_ref().unwrap_err().code(), "CONFLICTING_DUPLICATE");
        assert_eq!(deps.observations.len(), 120);
        // A refused device in the chunk refuses its readings only.
        let mut stranger = heart_rate("70", at_minute(1));
        stranger.device_id = "nobody".into();
        let mixed = filing.file_together(&[stranger, heart_rate("71", at("2026-11-22T11:00:00Z"))]).await.unwrap();
        assert_eq!(mixed[0].as_ref().unwrap_err().code(), "UNKNOWN_DEVICE");
        assert!(mixed[1].is_ok());
    }

    #[test]
    fn a_chunk_is_written_in_requests_of_at_most_100_observations_and_repeated_ids_wait() {
        let prepared = |ids: &[&str]| -> Result<Prepared, Refusal> {
            let stored = ids
                .iter()
                .map(|id| StoredObservation {
                    id: (*id).into(),
                    patient_id: "p".into(),
                    device_id: "d".into(),
                    code_key: "k".into(),
                    effective_at: "t".into(),
                    content_hash: "h".into(),
                    resource: "{}".into(),
                })
                .collect();
            Ok(Prepared { set_id: ids[0].into(), patient_id: "p".into(), stored })
        };
        let mut chunk: Vec<Result<Prepared, Refusal>> = (0..60).map(|i| prepared(&[&format!("a{i}"), &format!("b{i}")])).collect();
        chunk.push(prepared(&["a3", "b3"]));
        chunk.push(Err(Refusal::Conflict { device: "d".into(), at: "t".into() }));
        let (groups, alone) = write_groups(&chunk);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [50, 10], "two Observations a reading, 100 a request");
        assert_eq!(alone, [60], "the repeat of reading 3 waits for it; the refused reading is not written");
    }

    #[tokio::test]
    async fn only_an_active_device_files() {
        for status in [DeviceStatus::Registered, DeviceStatus::Inactive, DeviceStatus::Blocked] {
            let deps = deps(status);
            let refused = Filing::new(&deps).file(&heart_rate("72", at("2026-11-22T10:00:00Z"))).await.unwrap().unwrap_err();
            assert_eq!(refused.code(), "DEVICE_NOT_ACTIVE", "{status:?}");
            assert_eq!(deps.observations.len(), 0);
        }
    }

    #[tokio::test]
    async fn mapped_observations_activate_a_registered_device_and_replace_only_what_they_merged() {
        let deps = deps(DeviceStatus::Registered);
        let stored = |value: &str| StoredObservation {
            id: "o-1".into(),
            patient_id: "pat-1".into(),
            device_id: "acme-1".into(),
            code_key: "http://loinc.org|8867-4".into(),
            effective_at: "2026-11-22T10:00:00.000Z".into(),
            content_hash: format!("hash-{value}"),
            resource: format!(r#"{{"valueQuantity": {{"value": {value}}}}}"#),
        };
        let new = MappedWrite { stored: stored("70"), replaces: None };
        assert_eq!(Filing::new(&deps).file_mapped("acme-1", &[new]).await.unwrap(), Ok(1));
        assert_eq!(deps.devices.get("acme-1").await.unwrap().unwrap().status, DeviceStatus::Active, "the connection key is its credential");
        let stale = MappedWrite { stored: stored("72"), replaces: Some("hash-71".into()) };
        assert!(Filing::new(&deps).file_mapped("acme-1", &[stale]).await.is_err(), "merged over content that is no longer there: merge again");
        let merged = MappedWrite { stored: stored("71"), replaces: Some("hash-70".into()) };
        assert_eq!(Filing::new(&deps).file_mapped("acme-1", &[merged]).await.unwrap(), Ok(1));
        assert_eq!(deps.observations.get_sync("o-1").unwrap().content_hash, "hash-71");
        let blocked = self::deps(DeviceStatus::Blocked);
        let refused = Filing::new(&blocked).file_mapped("acme-1", &[MappedWrite { stored: stored("70"), replaces: None }]).await.unwrap().unwrap_err();
        assert_eq!(refused.code(), "DEVICE_NOT_ACTIVE");
        assert!(blocked.observations.is_empty());
    }

    #[test]
    fn timestamps_may_be_neither_ahead_nor_years_behind() {
        let received = crate::platform::time::parse_with_offset("2026-11-22T10:00:00Z").unwrap();
        assert_eq!(check_time(received + Duration::minutes(5), received), Ok(()));
        assert_eq!(check_time(received + Duration::seconds(301), received), Err(TimeProblem::Future));
        assert_eq!(check_time(received - Duration::days(5 * 365), received), Ok(()));
        assert_eq!(check_time(received - Duration::days(5 * 365 + 1), received), Err(TimeProblem::TooOld));
        let rtc_reset = crate::platform::time::parse_with_offset("2000-01-01T00:00:00Z").unwrap();
        assert_eq!(check_time(rtc_reset, received), Err(TimeProblem::TooOld), "a real-time clock reset to 2000");
        let epoch = crate::platform::time::parse_with_offset("1970-01-01T00:00:00Z").unwrap();
        assert_eq!(check_time(epoch, received), Err(TimeProblem::TooOld), "a device clock reset to 1970");
    }
}
