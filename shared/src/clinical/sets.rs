//! Observation sets: what a clinician (or the patient) records by hand to complete a NEWS2 set
//! that devices cannot: consciousness (ACVPU), supplemental oxygen (flow in L/min and the
//! delivery device), the SpO2 scale, a nurse's concern, and any of the five vital signs.
//!
//! The body takes the Polaris scoring engine's field names (`time`, `respiratory_rate`,
//! `oxygen_saturation`, `spo2_scale`, `o2_therapy`, `o2_therapy_mask`,
//! `systolic_blood_pressure`, `heart_rate`, `consciousness_acvpu`, `temperature` in °C,
//! `nurse_concern`), plus `diastolic_blood_pressure`; the engine's `config` comes from the
//! patient's settings instead. A parameter the set leaves out is taken from the patient's
//! newest reading (a device's, or an earlier set's) within the alert window before `time`; the combined set is scored as
//! the engine scores it ([`super::scoring`]), with the patient's prescribed SpO2 scale unless
//! a clinician names one.
//!
//! Each value becomes one FHIR R4 Observation, kept as entered (the text of each number, no
//! conversion), with the person who took it as `performer` and no `device`. The NEWS2 total is
//! one more Observation, shaped as UK Core's EarlyWarningTotalScore: SNOMED CT
//! 1104051000000101, category `survey`, UCUM `{ScoreOf}`, one component per sub-score (the SpO2
//! sub-score's code says which scale was used), `derivedFrom` every Observation it scored, and
//! the severity as `interpretation`. The codes and their sources are in
//! `docs/clinical/observation-sets-research.md`. Patients may report only vital signs and
//! oxygen; consciousness, the SpO2 scale and a concern are a clinician's.
//!
//! Ids are deterministic (performer, time, code, patient), so a retried submission writes
//! nothing; a different set under the same key is a conflict, never merged.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};

use super::news2::{self, Consciousness, Severity};
use super::scoring::{EngineScore, EngineSet, Intervals};
use super::{Alert, AlertKind, AlertStatus, AlertStore, Contribution, Parameter};
use crate::care::{ClinicalSettings, MonitoringIntervals};
use crate::fhir::vitals::{VitalSign, OBSERVATION_CATEGORY, UCUM};
use crate::fhir::{CodeableConcept, Coding, Decimal, Identifier, Meta, Observation, ObservationComponent, Quantity, Reference};
use crate::ingest::readings::{FieldError, Fields};
use crate::observations::{self, Fingerprint, Measurement, ObservationStore, StoredObservation, Subject, DATA_SOURCE_SYSTEM};
use crate::platform::time::format_utc;
use crate::StoreError;

pub const SNOMED: &str = "http://snomed.info/sct";
/// The identifier every Observation of a set carries: the set's id.
pub const SET_IDENTIFIER_SYSTEM: &str = "urn:vitalwire:observation-set";
/// Vitalwire's codes for what no standard codes (a nurse's concern, the oxygen delivery device,
/// a score's severity).
pub const VITALWIRE_NEWS2: &str = "urn:vitalwire:news2";
/// SNOMED CT: Royal College of Physicians NEWS2 total score (UK Core EarlyWarningTotalScore).
const NEWS2_TOTAL_SCORE: &str = "1104051000000101";
const DATA_ABSENT_REASON: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";

/// Every field a set may carry.
const SET_FIELDS: &[&str] = &[
    "time",
    "respiratory_rate",
    "oxygen_saturation",
    "spo2_scale",
    "o2_therapy",
    "o2_therapy_mask",
    "systolic_blood_pressure",
    "diastolic_blood_pressure",
    "heart_rate",
    "consciousness_acvpu",
    "temperature",
    "nurse_concern",
];

/// What only a clinician records: an assessment, a prescription, a concern.
const CLINICIAN_ONLY: &[&str] = &["consciousness_acvpu", "spo2_scale", "nurse_concern"];

/// The vital signs of a set: (field, vital sign, the unit they are entered in, NEWS2 parameter).
const SET_VITALS: &[(&str, VitalSign, &str, news2::Parameter)] = &[
    ("respiratory_rate", VitalSign::RespiratoryRate, "breaths/min", news2::Parameter::RespiratoryRate),
    ("oxygen_saturation", VitalSign::OxygenSaturation, "%", news2::Parameter::OxygenSaturation),
    ("heart_rate", VitalSign::HeartRate, "beats/min", news2::Parameter::HeartRate),
    ("temperature", VitalSign::BodyTemperature, "°C", news2::Parameter::Temperature),
];

/// Oxygen flows a delivery device can give, L/min (high-flow nasal oxygen reaches 60).
const OXYGEN_FLOW_RANGE: (f64, f64) = (0.0, 70.0);

/// Who took a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Performer {
    Clinician(String),
    Patient(String),
}

impl Performer {
    pub fn reference(&self) -> Reference {
        match self {
            Performer::Clinician(id) => Reference::to("Practitioner", id),
            Performer::Patient(id) => Reference::to("Patient", id),
        }
    }
}

/// Supplemental oxygen as entered: the flow (0: room air) and the delivery device.
#[derive(Debug, Clone, PartialEq)]
pub struct Oxygen {
    pub flow: Decimal,
    pub mask: Option<String>,
}

/// A set as entered.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationSet {
    pub at: DateTime<Utc>,
    /// `time` as the caller wrote it.
    pub time_text: String,
    /// Respiratory rate, SpO2, heart rate, temperature: those given.
    pub vitals: Vec<(news2::Parameter, Measurement)>,
    /// Systolic and, if taken, diastolic pressure (mmHg).
    pub blood_pressure: Option<(Decimal, Option<Decimal>)>,
    pub spo2_scale: Option<u8>,
    pub oxygen: Option<Oxygen>,
    pub consciousness: Option<Consciousness>,
    pub nurse_concern: Option<String>,
}

impl ObservationSet {
    /// The value entered for a measured NEWS2 parameter (systolic from the blood pressure).
    fn entered(&self, parameter: news2::Parameter) -> Option<&Decimal> {
        match parameter {
            news2::Parameter::SystolicBloodPressure => self.blood_pressure.as_ref().map(|(systolic, _)| systolic),
            p => self.vitals.iter().find(|(q, _)| *q == p).map(|(_, m)| &m.value),
        }
    }

    /// The SpO2 scale it is scored on: the one a clinician named, else the patient's prescribed
    /// one, else scale 1.
    fn spo2_scale(&self, settings: &ClinicalSettings) -> u8 {
        self.spo2_scale.or(settings.spo2.as_ref().map(|s| s.scale)).unwrap_or(1)
    }
}

/// Why a set is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetRefusal {
    /// Every problem, each with its field.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error("{0} is recorded by a clinician, not by the patient")]
    ClinicianOnly(&'static str),
}

/// A text field of at most `max` characters, not blank.
fn text(f: &mut Fields<'_>, field: &str, max: usize) -> Option<String> {
    match f.map.get(field).cloned() {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(t)) if !t.trim().is_empty() && t.chars().count() <= max => Some(t),
        Some(_) => {
            f.problem(field, format!("must be text of 1 to {max} characters"));
            None
        }
    }
}

/// Checks a set's text: every problem at once, with its field.
pub fn parse(body: &str, performer: &Performer, now: DateTime<Utc>) -> Result<ObservationSet, SetRefusal> {
    let mut f = Fields::of(body, "an observation set", SET_FIELDS).map_err(SetRefusal::Invalid)?;
    if let Performer::Patient(_) = performer {
        if let Some(field) = CLINICIAN_ONLY.iter().find(|field| f.given(field)) {
            return Err(SetRefusal::ClinicianOnly(field));
        }
    }
    let time = f.time("time", now);
    let mut vitals = Vec::new();
    for &(field, vital, unit, parameter) in SET_VITALS {
        if let Some((value, ucum)) = f.vital(field, vital, unit) {
            vitals.push((parameter, Measurement::vital(vital, value, unit, ucum)));
        }
    }
    let systolic = f.vital("systolic_blood_pressure", VitalSign::SystolicBloodPressure, "mmHg").map(|(v, _)| v);
    let diastolic = f.vital("diastolic_blood_pressure", VitalSign::DiastolicBloodPressure, "mmHg").map(|(v, _)| v);
    let blood_pressure = match (systolic, diastolic) {
        (Some(s), Some(d)) if s.as_f64() <= d.as_f64() => {
            f.problem("systolic_blood_pressure", "must be above diastolic_blood_pressure");
            None
        }
        (Some(s), d) => Some((s, d)),
        (None, Some(_)) if !f.given("systolic_blood_pressure") => {
            f.problem("diastolic_blood_pressure", "needs systolic_blood_pressure, which NEWS2 scores");
            None
        }
        _ => None,
    };
    let spo2_scale = match f.decimal("spo2_scale").as_ref().map(Decimal::as_str) {
        None => None,
        Some("1") => Some(1),
        Some("2") => Some(2),
        Some(_) => {
            f.problem("spo2_scale", "must be 1 or 2");
            None
        }
    };
    let flow = f.decimal("o2_therapy").filter(|flow| {
        let ok = (OXYGEN_FLOW_RANGE.0..=OXYGEN_FLOW_RANGE.1).contains(&flow.as_f64());
        if !ok {
            f.problem("o2_therapy", format!("is the oxygen flow in L/min: {} to {}", OXYGEN_FLOW_RANGE.0, OXYGEN_FLOW_RANGE.1));
        }
        ok
    });
    let mask = text(&mut f, "o2_therapy_mask", 100);
    if mask.is_some() && !f.given("o2_therapy") {
        f.problem("o2_therapy_mask", "given without o2_therapy (the flow in L/min, 0 for room air)");
    }
    let oxygen = flow.map(|flow| Oxygen { flow, mask });
    let consciousness = text(&mut f, "consciousness_acvpu", 20).and_then(|c| {
        let parsed = Consciousness::parse(&c);
        if parsed.is_none() {
            f.problem("consciousness_acvpu", "must be A, C, V, P or U (or alert, confusion, voice, pain, unresponsive)");
        }
        parsed
    });
    let nurse_concern = text(&mut f, "nurse_concern", 500);
    let recorded = SET_FIELDS.iter().filter(|field| **field != "time").any(|field| f.given(field));
    if !recorded {
        f.problem("body", "the set records nothing: give at least one value");
    }
    match time {
        Some(time) if f.errors.is_empty() => Ok(ObservationSet {
            at: time.at,
            time_text: time.text,
            vitals,
            blood_pressure,
            spo2_scale,
            oxygen,
            consciousness,
            nurse_concern,
        }),
        _ => Err(SetRefusal::Invalid(f.errors)),
    }
}

/// A reading that completes a set: the patient's newest of a parameter the set left out, within
/// the alert window before it (a device's, or an earlier set's).
#[derive(Debug, Clone, PartialEq)]
pub struct EarlierReading {
    pub parameter: news2::Parameter,
    pub observation_id: String,
    /// The device that measured it; empty for a value entered in an earlier set.
    pub device_id: String,
    pub effective_at: String,
    /// The number in the chart's unit (°C for temperature), for scoring only.
    pub scored: f64,
    pub text: String,
    pub unit: String,
}

impl EarlierReading {
    fn new(parameter: news2::Parameter, latest: super::Latest) -> Self {
        let scored = super::scored_value(parameter, &latest.value);
        let super::Latest { observation_id, device_id, effective_at, value } = latest;
        Self { parameter, observation_id, device_id, effective_at, scored, text: value.text, unit: value.unit }
    }
}

/// The engine's monitoring intervals: the patient's, or the RCP chart's minimum frequencies for
/// a ward (12 h at 0, 4 h at 1–4, 1 h for a single 3 or 5–6; continuous at 7 or more, which
/// here means the shortest interval settings allow).
pub fn intervals(settings: &ClinicalSettings) -> Intervals {
    let shortest = MonitoringIntervals::SHORTEST.num_minutes() as f64 / 60.0;
    let m = settings.monitoring.unwrap_or(MonitoringIntervals { zero: 12.0, low: 4.0, low_medium: 1.0, medium: 1.0, high: shortest });
    Intervals { zero: m.zero, low: m.low, low_medium: m.low_medium, medium: m.medium, high: m.high }
}

/// A set filed: its Observations (the score last), what it scored, and the alert it calls for.
#[derive(Debug, Clone)]
pub struct FiledSet {
    pub set_id: String,
    pub observations: Vec<StoredObservation>,
    pub earlier: Vec<EarlierReading>,
    pub score: EngineScore,
    pub severity: Severity,
    pub alert: Option<Alert>,
}

/// What the set scores, once combined with the earlier readings of the parameters it left out.
pub fn engine_set(set: &ObservationSet, earlier: &[EarlierReading], settings: &ClinicalSettings) -> EngineSet {
    let value = |p: news2::Parameter| set.entered(p).map(Decimal::as_f64).or_else(|| earlier.iter().find(|d| d.parameter == p).map(|d| d.scored));
    EngineSet {
        time: set.at,
        respiratory_rate: value(news2::Parameter::RespiratoryRate),
        heart_rate: value(news2::Parameter::HeartRate),
        oxygen_saturation: value(news2::Parameter::OxygenSaturation),
        spo2_scale: Some(f64::from(set.spo2_scale(settings))),
        o2_therapy: set.oxygen.as_ref().map(|o| o.flow.as_f64()),
        o2_therapy_mask: set.oxygen.as_ref().and_then(|o| o.mask.clone()),
        systolic_blood_pressure: value(news2::Parameter::SystolicBloodPressure),
        consciousness: set.consciousness,
        temperature: value(news2::Parameter::Temperature),
        nurse_concern: set.nurse_concern.clone(),
        intervals: intervals(settings),
    }
}

/// The parameters a set takes from earlier readings: the measured ones it left out.
pub fn missing_parameters(set: &ObservationSet) -> Vec<news2::Parameter> {
    news2::Parameter::MEASURED.into_iter().filter(|p| set.entered(*p).is_none()).collect()
}

fn concept(system: &str, code: &str, display: &str) -> CodeableConcept {
    CodeableConcept { coding: vec![Coding::new(system, code, Some(display))].into(), text: Some(display.to_owned().into()) }
}

fn category(code: &str, display: &str) -> Cow<'static, [CodeableConcept]> {
    vec![CodeableConcept { coding: vec![Coding::new(OBSERVATION_CATEGORY, code, Some(display))].into(), text: None }].into()
}

fn score_quantity(score: u8) -> Quantity {
    Quantity { value: Decimal::whole(score.into()), unit: "ScoreOf".into(), system: Some(UCUM.into()), code: Some("{ScoreOf}".into()) }
}

/// (SNOMED CT code, display) of an ACVPU answer (UK Core ACVPU value set).
fn acvpu_answer(c: Consciousness) -> (&'static str, &'static str) {
    match c {
        Consciousness::Alert => ("248234008", "Mentally alert"),
        Consciousness::Confusion => ("130987000", "Acute confusion"),
        Consciousness::Voice => ("300202002", "Responds to voice"),
        Consciousness::Pain => ("450847001", "Responds to pain"),
        Consciousness::Unresponsive => ("422768004", "Unresponsive"),
    }
}

/// A parameter's NEWS2 sub-score in the engine's answer, and its SNOMED CT code and display
/// (the SpO2 one per scale); none for what NEWS2 does not score (a nurse's concern).
fn sub_score(score: &EngineScore, parameter: Parameter, scale: u8) -> Option<(u8, &'static str, String)> {
    use news2::Parameter as P;
    let (value, code, what) = match parameter {
        Parameter::News2(P::RespiratoryRate) => (score.respiratory_rate_score, "1104301000000104", "respiration rate score"),
        Parameter::News2(P::OxygenSaturation) if scale == 2 => (score.oxygen_saturation_score, "1104321000000108", "oxygen saturation scale 2 score"),
        Parameter::News2(P::OxygenSaturation) => (score.oxygen_saturation_score, "1104311000000102", "oxygen saturation scale 1 score"),
        Parameter::SupplementalOxygen => (score.o2_therapy_score, "1104331000000105", "air or oxygen score"),
        Parameter::News2(P::SystolicBloodPressure) => (score.blood_pressure_score, "1104341000000101", "systolic blood pressure score"),
        Parameter::News2(P::HeartRate) => (score.heart_rate_score, "1104351000000103", "pulse score"),
        Parameter::Consciousness => (score.consciousness_score, "1104361000000100", "consciousness score"),
        Parameter::News2(P::Temperature) => (score.temperature_score, "1104371000000107", "temperature score"),
        Parameter::NurseConcern | Parameter::Glucose => return None,
    };
    Some((value, code, format!("Royal College of Physicians NEWS2 (National Early Warning Score 2) - {what}")))
}

/// Builds a set's Observations.
struct Builder<'a> {
    subject: Subject<'a>,
    performer: Reference,
    set_id: String,
}

impl Builder<'_> {
    /// Makes an Observation built for a device's reading one a person entered: no device, the
    /// `manual` data-source tag, the performer, and the set's identifier.
    fn entered(&self, mut o: Observation) -> Observation {
        o.device = None;
        let profile = o.meta.take().map(|m| m.profile).unwrap_or_default();
        o.meta = Some(Meta { profile, tag: vec![Coding::new(DATA_SOURCE_SYSTEM, "manual", Some("Entered by a person"))].into() });
        o.performer = vec![self.performer.clone()];
        o.identifier.push(Identifier { system: SET_IDENTIFIER_SYSTEM.into(), value: self.set_id.clone() });
        o
    }

    /// An Observation of a code outside the vital signs, with its category and no value yet.
    fn coded(&self, system: &str, code: &str, display: &str, category_code: (&str, &str)) -> Observation {
        let mut o = self.entered(observations::skeleton(&self.subject, &format!("{system}|{code}"), None, concept(system, code, display)));
        o.category = category(category_code.0, category_code.1);
        o
    }
}

fn stored(o: &Observation, code_key: String, at: &str) -> Result<StoredObservation, serde_json::Error> {
    StoredObservation::new(o, code_key, at.to_owned(), Fingerprint::WithTime)
}

/// The set's Observations as entered, each with the NEWS2 parameter it scores as (by the
/// engine's name), and the score Observation last; and the engine's answer.
pub fn build(
    patient_id: &str,
    performer: &Performer,
    set: &ObservationSet,
    earlier: &[EarlierReading],
    settings: &ClinicalSettings,
    issued: DateTime<Utc>,
) -> Result<FiledSet, serde_json::Error> {
    let performer_ref = performer.reference();
    let thing = format!("observation-set:{}", performer_ref.reference);
    let identity = format_utc(set.at);
    let issued = format_utc(issued);
    let subject = Subject { thing_name: &thing, patient_id, effective: &set.time_text, identity: &identity, named_patient: true, issued: &issued };
    // The set is named by its score Observation.
    let score_key = format!("{SNOMED}|{NEWS2_TOTAL_SCORE}");
    let set_id = observations::observation_id(&subject.natural_key(&score_key));
    let b = Builder { subject: subject.clone(), performer: performer_ref, set_id: set_id.clone() };
    let at = identity.as_str();

    // (what it measured, the Observation, its value and unit as entered)
    let mut entered: Vec<(Parameter, StoredObservation, String, String)> = Vec::new();
    for (parameter, m) in &set.vitals {
        let o = b.entered(observations::measured(m, &b.subject));
        entered.push((Parameter::News2(*parameter), stored(&o, m.code_key(), at)?, m.value.as_str().to_owned(), m.unit.clone()));
    }
    if let Some((systolic, diastolic)) = &set.blood_pressure {
        let placeholder = diastolic.clone().unwrap_or_else(|| Decimal::whole(0));
        let mut o = b.entered(observations::blood_pressure(systolic, &placeholder, &b.subject));
        if diastolic.is_none() {
            // Not taken: the panel says so rather than holding a number nobody measured.
            let component = &mut o.component[1];
            component.value_quantity = None;
            component.data_absent_reason = Some(concept(DATA_ABSENT_REASON, "not-performed", "Not Performed"));
        }
        entered.push((Parameter::News2(news2::Parameter::SystolicBloodPressure), stored(&o, VitalSign::BloodPressurePanel.code_key(), at)?, systolic.as_str().to_owned(), "mmHg".into()));
    }
    if let Some(oxygen) = &set.oxygen {
        // UK Core InspiredOxygen: on oxygen (with its flow) or breathing room air.
        let (code, display) = if oxygen.flow.as_f64() > 0.0 { ("371825009", "Patient on oxygen") } else { ("722742002", "Breathing room air") };
        let mut o = b.coded(SNOMED, code, display, ("therapy", "Therapy"));
        o.value_quantity = Some(Quantity { value: oxygen.flow.clone(), unit: "L/min".into(), system: Some(UCUM.into()), code: Some("L/min".into()) });
        if let Some(mask) = &oxygen.mask {
            o.component.push(ObservationComponent {
                code: concept(VITALWIRE_NEWS2, "oxygen-delivery-device", "Oxygen delivery device"),
                value_quantity: None,
                value_codeable_concept: Some(CodeableConcept { coding: Cow::Borrowed(&[]), text: Some(mask.clone().into()) }),
                data_absent_reason: None,
            });
        }
        entered.push((Parameter::SupplementalOxygen, stored(&o, format!("{SNOMED}|{code}"), at)?, oxygen.flow.as_str().to_owned(), "L/min".into()));
    }
    if let Some(c) = set.consciousness {
        let mut o = b.coded(SNOMED, "1104441000000107", "Alert Confusion Voice Pain Unresponsive scale score", ("survey", "Survey"));
        let (code, display) = acvpu_answer(c);
        o.value_codeable_concept = Some(concept(SNOMED, code, display));
        entered.push((Parameter::Consciousness, stored(&o, format!("{SNOMED}|1104441000000107"), at)?, display.to_owned(), String::new()));
    }
    if let Some(concern) = &set.nurse_concern {
        let mut o = b.coded(VITALWIRE_NEWS2, "nurse-concern", "Nurse concern", ("exam", "Exam"));
        o.value_string = Some(concern.clone());
        entered.push((Parameter::NurseConcern, stored(&o, format!("{VITALWIRE_NEWS2}|nurse-concern"), at)?, concern.clone(), String::new()));
    }

    let score = super::scoring::score(&engine_set(set, earlier, settings));
    let severity = Severity::parse(score.overall_severity).unwrap_or(Severity::High);
    let scale = set.spo2_scale(settings);

    // The score: UK Core EarlyWarningTotalScore.
    let mut total = b.coded(SNOMED, NEWS2_TOTAL_SCORE, "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score", ("survey", "Survey"));
    total.value_quantity = Some(score_quantity(score.overall_score));
    let scored = entered.iter().map(|(parameter, ..)| *parameter).chain(earlier.iter().map(|d| Parameter::News2(d.parameter)));
    total.component = scored
        .filter_map(|parameter| sub_score(&score, parameter, scale))
        .map(|(value, code, display)| ObservationComponent::quantity(concept(SNOMED, code, &display), score_quantity(value)))
        .collect();
    total.derived_from = entered.iter().map(|(_, o, ..)| Reference::to("Observation", &o.id)).chain(earlier.iter().map(|d| Reference::to("Observation", &d.observation_id))).collect();
    let partial = if score.partial_set { ", partial set" } else { "" };
    total.interpretation = vec![CodeableConcept {
        coding: vec![Coding::new(VITALWIRE_NEWS2, score.overall_severity, Some(&format!("NEWS2 {} risk", score.overall_severity)))].into(),
        text: Some(format!("NEWS2 {} ({}{partial}); {}; next set due {}", score.overall_score_display, score.overall_severity, score.monitoring_instruction, score.time_next_obs_set_due).into()),
    }];
    let mut total_stored = stored(&total, score_key, at)?;
    // A retried submission is the same set even if a device reading arrived since: the score
    // is fingerprinted by what was entered, so the first score stands and a retry writes
    // nothing; a different set under this key is still a conflict.
    let mut fingerprint = Sha256::new();
    for (_, o, ..) in &entered {
        fingerprint.update(o.content_hash.as_bytes());
    }
    total_stored.content_hash = hex::encode(fingerprint.finalize());

    let contributions: Vec<Contribution> = entered
        .iter()
        .map(|(parameter, o, value, unit)| (*parameter, &o.id, &o.effective_at, value, unit))
        .chain(earlier.iter().map(|d| (Parameter::News2(d.parameter), &d.observation_id, &d.effective_at, &d.text, &d.unit)))
        .map(|(parameter, id, effective_at, value, unit)| Contribution {
            parameter,
            observation_id: id.clone(),
            value: value.clone(),
            unit: unit.clone(),
            effective_at: effective_at.clone(),
            score: sub_score(&score, parameter, scale).map(|(value, ..)| value),
        })
        .collect();
    // As on device readings: one parameter scoring 3, an aggregate of 5, or a nurse's concern.
    let alert = (severity != Severity::Low).then(|| Alert {
        alert_id: super::alert_id(patient_id, AlertKind::News2, &set_id),
        patient_id: patient_id.to_owned(),
        device_id: String::new(),
        kind: AlertKind::News2,
        score: Some(score.overall_score),
        severity,
        partial: score.partial_set,
        contributions,
        set_at: identity.clone(),
        raised_at: issued.clone(),
        status: AlertStatus::Open,
        closed_at: None,
        closed_by: None,
    });
    let mut observations: Vec<StoredObservation> = entered.into_iter().map(|(_, o, ..)| o).collect();
    observations.push(total_stored);
    Ok(FiledSet { set_id, observations, earlier: earlier.to_vec(), score, severity, alert })
}

/// When the sweep first looks whether the patient's next set is overdue: after the shortest
/// interval settings allow, then by the patient's own intervals (as for device readings).
pub fn first_overdue_check(set: &ObservationSet) -> DateTime<Utc> {
    set.at + MonitoringIntervals::SHORTEST
}

/// The patient's newest readings (a device's, or an earlier set's) within `window_minutes`
/// before the set, of the parameters it left out: from the patient's current values, or, for a
/// set older than one of them, from the history.
pub async fn earlier_readings<O: ObservationStore, A: AlertStore>(
    observations: &O,
    alerts: &A,
    patient_id: &str,
    set: &ObservationSet,
    window_minutes: i64,
) -> Result<Vec<EarlierReading>, StoreError> {
    let missing = missing_parameters(set);
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let reading = super::ReadingSet { patient_id, device_id: "", set_id: "", at: set.at, observations: &[] };
    let (from, to) = (format_utc(set.at - Duration::minutes(window_minutes)), format_utc(set.at));
    let window = match super::window_of_current(&alerts.current(patient_id).await?, &from, &to) {
        Some(window) => window,
        None => super::window_of_history(observations, &reading, &from, &to).await?,
    };
    Ok(window.news2.into_iter().filter(|(p, _)| missing.contains(p)).map(|(p, latest)| EarlierReading::new(p, latest)).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::care::Spo2Prescription;
    use crate::observations::memory::MemoryObservations;
    use crate::observations::Inserted;
    use crate::platform::time::parse_with_offset;

    fn now() -> DateTime<Utc> {
        parse_with_offset("2026-12-05T10:05:00Z").unwrap()
    }

    fn nurse() -> Performer {
        Performer::Clinician("n-1".into())
    }

    fn parsed(body: Value) -> ObservationSet {
        parse(&body.to_string(), &nurse(), now()).unwrap()
    }

    fn problems(body: &str, performer: &Performer) -> Vec<(String, String)> {
        match parse(body, performer, now()) {
            Err(SetRefusal::Invalid(p)) => p.into_iter().map(|e| (e.field, e.reason)).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn resource(o: &StoredObservation) -> Value {
        serde_json::from_str(&o.resource).unwrap()
    }

    fn filed(body: Value, earlier: &[EarlierReading], settings: &ClinicalSettings) -> FiledSet {
        build("P1", &nurse(), &parsed(body), earlier, settings, now()).unwrap()
    }

    #[test]
    fn every_problem_of_a_set_is_named_with_its_field() {
        let found = problems(
            r#"{"time": "yesterday", "heart_rate": "fast", "respiratory_rate": 200, "spo2_scale": 3, "o2_therapy_mask": "Venturi", "consciousness_acvpu": "drowsy", "diastolic_blood_pressure": 80, "bmi": 20}"#,
            &nurse(),
        );
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["bmi", "time", "respiratory_rate", "heart_rate", "diastolic_blood_pressure", "spo2_scale", "o2_therapy_mask", "consciousness_acvpu"], "{found:?}");
        assert!(found[2].1.contains("200 breaths/min is outside the physiological range"), "{found:?}");
        let empty = problems(r#"{"time": "2026-12-05T10:00:00Z"}"#, &nurse());
        assert_eq!(empty, [("body".to_owned(), "the set records nothing: give at least one value".to_owned())]);
        let future = problems(r#"{"time": "2026-12-05T11:00:00Z", "heart_rate": 70}"#, &nurse());
        assert_eq!(future[0].0, "time", "an hour after now");
        let flow = problems(r#"{"time": "2026-12-05T10:00:00Z", "o2_therapy": -1}"#, &nurse());
        assert_eq!(flow[0].0, "o2_therapy");
        let pressure = problems(r#"{"time": "2026-12-05T10:00:00Z", "systolic_blood_pressure": 80, "diastolic_blood_pressure": 90}"#, &nurse());
        assert_eq!(pressure[0].0, "systolic_blood_pressure");
    }

    #[test]
    fn a_patient_reports_vital_signs_and_oxygen_but_not_a_clinicians_fields() {
        let patient = Performer::Patient("P1".into());
        let own = r#"{"time": "2026-12-05T10:00:00Z", "heart_rate": 70, "o2_therapy": 2, "o2_therapy_mask": "Nasal cannula"}"#;
        assert!(parse(own, &patient, now()).is_ok());
        for field in ["consciousness_acvpu", "spo2_scale", "nurse_concern"] {
            let body = json!({"time": "2026-12-05T10:00:00Z", "heart_rate": 70, field: if field == "spo2_scale" { json!(2) } else { json!("A") }});
            assert_eq!(parse(&body.to_string(), &patient, now()), Err(SetRefusal::ClinicianOnly(CLINICIAN_ONLY.iter().find(|f| **f == field).unwrap())));
        }
    }

    #[test]
    fn each_value_is_filed_as_entered_and_the_score_as_uk_cores_total_score() {
        // As text: a JSON value would drop the trailing zero the nurse wrote.
        let body = r#"{"time": "2026-12-05T10:00:00+00:00", "respiratory_rate": 22, "oxygen_saturation": 95.0, "heart_rate": 115, "temperature": 38.50,
                       "systolic_blood_pressure": 105, "o2_therapy": 2, "o2_therapy_mask": "Nasal cannula", "consciousness_acvpu": "A"}"#;
        let set = build("P1", &nurse(), &parse(body, &nurse(), now()).unwrap(), &[], &ClinicalSettings::default(), now()).unwrap();
        // The engine's README example without the concern: 2+1+2+1+2+0+1.
        assert_eq!((set.score.overall_score, set.score.overall_severity, set.score.partial_set), (9, "high", false));
        assert_eq!(set.observations.len(), 8, "seven values and the score");
        let by_code = |code: &str| set.observations.iter().find(|o| o.code_key.ends_with(code)).map(resource).unwrap();
        let temperature = by_code("|8310-5");
        assert_eq!(temperature["valueQuantity"], json!({"value": 38.5, "unit": "°C", "system": UCUM, "code": "Cel"}));
        let stored = set.observations.iter().find(|o| o.code_key.ends_with("|8310-5")).unwrap();
        assert!(stored.resource.contains(r#""value":38.50,"#), "the text as entered: {}", stored.resource);
        assert_eq!(temperature["performer"], json!([{"reference": "Practitioner/n-1"}]));
        assert!(temperature.get("device").is_none());
        assert_eq!(temperature["meta"]["tag"][0]["code"], "manual");
        assert_eq!(temperature["effectiveDateTime"], "2026-12-05T10:00:00+00:00");
        assert_eq!(temperature["identifier"][1], json!({"system": SET_IDENTIFIER_SYSTEM, "value": set.set_id}));
        let oxygen = by_code("|371825009");
        assert_eq!((oxygen["category"][0]["coding"][0]["code"].as_str(), oxygen["valueQuantity"]["code"].as_str()), (Some("therapy"), Some("L/min")));
        assert_eq!(oxygen["component"][0]["valueCodeableConcept"]["text"], "Nasal cannula");
        let acvpu = by_code("|1104441000000107");
        assert_eq!(acvpu["valueCodeableConcept"]["coding"][0]["code"], "248234008");
        let bp = by_code("|85354-9");
        assert_eq!(bp["component"][1]["dataAbsentReason"]["coding"][0]["code"], "not-performed", "no diastolic taken");
        assert!(bp["component"][1].get("valueQuantity").is_none());

        let total = resource(set.observations.last().unwrap());
        assert_eq!(total["id"], set.set_id);
        assert_eq!(total["code"]["coding"][0]["code"], "1104051000000101");
        assert_eq!(total["category"][0]["coding"][0]["code"], "survey");
        assert_eq!(total["valueQuantity"], json!({"value": 9, "unit": "ScoreOf", "system": UCUM, "code": "{ScoreOf}"}));
        let components: Vec<(&str, u64)> = total["component"].as_array().unwrap().iter().map(|c| (c["code"]["coding"][0]["code"].as_str().unwrap(), c["valueQuantity"]["value"].as_u64().unwrap())).collect();
        assert_eq!(components.len(), 7);
        assert!(components.contains(&("1104311000000102", 1)), "SpO2 95 on scale 1 scores 1: {components:?}");
        assert!(components.contains(&("1104331000000105", 2)), "on oxygen");
        let derived: Vec<&str> = total["derivedFrom"].as_array().unwrap().iter().map(|r| r["reference"].as_str().unwrap()).collect();
        assert_eq!(derived.len(), 7);
        assert!(set.observations[..7].iter().all(|o| derived.contains(&format!("Observation/{}", o.id).as_str())));
        assert_eq!(total["interpretation"][0]["coding"][0]["code"], "high");
        let alert = set.alert.unwrap();
        assert_eq!((alert.severity, alert.score, alert.kind), (Severity::High, Some(9), AlertKind::News2));
        assert!(alert.contributions.iter().any(|c| c.parameter == Parameter::SupplementalOxygen && c.value == "2" && c.score == Some(2)));
    }

    #[test]
    fn a_nurse_concern_alone_raises_a_high_alert_displayed_with_c() {
        let set = filed(json!({"time": "2026-12-05T10:00:00Z", "heart_rate": 70, "nurse_concern": "Pallor"}), &[], &ClinicalSettings::default());
        assert_eq!((set.score.overall_score_display.as_str(), set.score.overall_severity), ("0C", "high"));
        let alert = set.alert.unwrap();
        assert_eq!(alert.severity, Severity::High);
        assert!(alert.contributions.iter().any(|c| c.parameter == Parameter::NurseConcern && c.value == "Pallor"));
        let calm = filed(json!({"time": "2026-12-05T10:00:00Z", "heart_rate": 70}), &[], &ClinicalSettings::default());
        assert!(calm.alert.is_none(), "NEWS2 0 calls for no alert");
        assert!(calm.score.partial_set);
    }

    #[test]
    fn the_prescribed_scale_applies_unless_the_clinician_names_one() {
        let scale_2 = ClinicalSettings { spo2: Some(Spo2Prescription { scale: 2, prescribed_by: "d-1".into(), prescribed_at: String::new() }), ..ClinicalSettings::default() };
        let set = filed(json!({"time": "2026-12-05T10:00:00Z", "oxygen_saturation": 89}), &[], &scale_2);
        assert_eq!(set.score.oxygen_saturation_score, 0, "89 % is on target on scale 2");
        let total = resource(set.observations.last().unwrap());
        assert_eq!(total["component"][0]["code"]["coding"][0]["code"], "1104321000000108", "the scale 2 sub-score");
        let named = filed(json!({"time": "2026-12-05T10:00:00Z", "oxygen_saturation": 89, "spo2_scale": 1}), &[], &scale_2);
        assert_eq!(named.score.oxygen_saturation_score, 3);
    }

    #[tokio::test]
    async fn what_the_set_leaves_out_comes_from_the_patients_newest_readings_in_the_window() {
        let (store, alerts) = (MemoryObservations::default(), crate::clinical::memory::MemoryAlerts::default());
        // A device's readings, filed (and made current) as ingestion does: heart rate 135
        // (10 min before) and an older 60 (70 min before, outside the window), then respiratory
        // rate 30 after the set (not before it).
        let device = |at: &str, body: &str| crate::ingest::readings::parse(&format!(r#"{{"timestamp": "{at}", {body}}}"#), Some("cuff-1"), now()).unwrap().reading;
        let set = parsed(json!({"time": "2026-12-05T10:00:00Z", "consciousness_acvpu": "A", "temperature": 37.0}));
        let heart_rate_135 = || [(news2::Parameter::HeartRate, "135".to_owned(), "cuff-1".to_owned())];
        let found = |earlier: &[EarlierReading]| earlier.iter().map(|e| (e.parameter, e.text.clone(), e.device_id.clone())).collect::<Vec<_>>();
        for (at, body) in [("2026-12-05T08:50:00Z", r#""heart_rate": 60"#), ("2026-12-05T09:50:00Z", r#""heart_rate": 135"#), ("2026-12-05T10:01:00Z", r#""respiratory_rate": 30"#)] {
            let reading = device(at, body);
            let built = reading.observations("P1", "2026-12-05T10:02:00.000Z");
            let stored: Vec<_> = built.iter().map(|(o, key)| StoredObservation::new(o, key.clone(), format_utc(reading.timing.at()), Fingerprint::WithTime).unwrap()).collect();
            store.insert_set(&stored).await.unwrap();
            let as_set = crate::clinical::ReadingSet { patient_id: "P1", device_id: "cuff-1", set_id: "s", at: reading.timing.at(), observations: &stored };
            alerts.record_current("P1", &crate::clinical::current_values(&as_set)).await.unwrap();
            if at == "2026-12-05T09:50:00Z" {
                // Nothing is newer than the set yet: the current values answer.
                assert_eq!(found(&earlier_readings(&store, &alerts, "P1", &set, 60).await.unwrap()), heart_rate_135());
            }
        }
        // The respiratory rate is newer than the set: its window comes from the history.
        let earlier = earlier_readings(&store, &alerts, "P1", &set, 60).await.unwrap();
        assert_eq!(found(&earlier), heart_rate_135());
        let filed = build("P1", &nurse(), &set, &earlier, &ClinicalSettings::default(), now()).unwrap();
        assert_eq!(filed.score.heart_rate_score, 3);
        assert_eq!(filed.score.overall_severity, "low-medium");
        let total = resource(filed.observations.last().unwrap());
        assert!(total["derivedFrom"].as_array().unwrap().contains(&json!({"reference": format!("Observation/{}", earlier[0].observation_id)})));
        let alert = filed.alert.unwrap();
        assert!(alert.contributions.iter().any(|c| c.observation_id == earlier[0].observation_id && c.value == "135"));

        // A retry after another reading arrived is the same set; another set under its key is not.
        assert_eq!(store.insert_set(&filed.observations).await.unwrap(), Inserted::New);
        let rescored = build("P1", &nurse(), &set, &[], &ClinicalSettings::default(), now() + Duration::minutes(1)).unwrap();
        assert_eq!(store.insert_set(&rescored.observations).await.unwrap(), Inserted::Duplicate, "the score is keyed by what was entered");
        let other = build("P1", &nurse(), &parsed(json!({"time": "2026-12-05T10:00:00Z", "consciousness_acvpu": "V", "temperature": 37.0})), &[], &ClinicalSettings::default(), now()).unwrap();
        assert_eq!(store.insert_set(&other.observations).await.unwrap(), Inserted::Conflict, "a different set is never merged");
        let by_another = build("P1", &Performer::Clinician("n-2".into()), &set, &[], &ClinicalSettings::default(), now()).unwrap();
        assert_ne!(by_another.set_id, filed.set_id, "two nurses' sets at one time are two sets");
        assert!(store.for_device("", 10).await.unwrap().is_empty(), "entered values are on no device's index");
    }
}
