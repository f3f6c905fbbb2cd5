//! Clinical alerts raised after each filed reading set.
//!
//! **NEWS2**: the patient's latest value of each parameter within a window (60 minutes by
//! default, `ALERT_WINDOW_MINUTES`) before the reading is scored ([`news2`]); missing
//! parameters make the set partial (devices never report consciousness or oxygen therapy). An
//! alert is raised when one parameter scores 3 or the aggregate reaches 5, with the NEWS2
//! severity. **Glucose**: below `GLUCOSE_LOW_MG_DL` (70) or above `GLUCOSE_HIGH_MG_DL` (250).
//!
//! Alerts are de-duplicated per patient and kind while one of the same or higher severity is
//! open: an `OPEN#<kind>` marker item is written conditionally, so two readings arriving at
//! once cannot both raise. Raising is idempotent by alert id, which derives from the reading
//! set: a redelivered or retried reading raises nothing new, even after the first alert was
//! closed. The record keeps the contributing readings.

mod dynamodb;
pub mod alerting;
pub mod aws;
pub mod flow;
pub mod links;
pub mod http;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
pub mod news2;
pub mod scoring;
pub mod sets;

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

pub use dynamodb::DynamoAlertStore;

use self::news2::Severity;
use crate::fhir::vitals::VitalSign;
use crate::observations::{ObservationStore, StoredObservation};
use crate::platform::time::format_utc;
use crate::wiring::{FromWiring, Wiring, WiringError};
use crate::StoreError;

/// Settings of the evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlertSettings {
    pub window_minutes: i64,
    pub glucose_low_mg_dl: f64,
    pub glucose_high_mg_dl: f64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self { window_minutes: 60, glucose_low_mg_dl: 70.0, glucose_high_mg_dl: 250.0 }
    }
}

impl FromWiring for AlertSettings {
    /// `ALERT_WINDOW_MINUTES`, `GLUCOSE_LOW_MG_DL`, `GLUCOSE_HIGH_MG_DL`; defaults when unset.
    fn from_wiring(w: &Wiring) -> Result<Self, WiringError> {
        let d = Self::default();
        Ok(Self {
            window_minutes: w.settings.parsed("ALERT_WINDOW_MINUTES", d.window_minutes)?,
            glucose_low_mg_dl: w.settings.parsed("GLUCOSE_LOW_MG_DL", d.glucose_low_mg_dl)?,
            glucose_high_mg_dl: w.settings.parsed("GLUCOSE_HIGH_MG_DL", d.glucose_high_mg_dl)?,
        })
    }
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    News2,
    GlucoseLow,
    GlucoseHigh,
}

impl AlertKind {
    pub const ALL: [AlertKind; 3] = [AlertKind::News2, AlertKind::GlucoseLow, AlertKind::GlucoseHigh];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::News2 => "news2",
            Self::GlucoseLow => "glucose_low",
            Self::GlucoseHigh => "glucose_high",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// Whether a clinician has dealt with an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertStatus {
    Open,
    Closed,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Open, Self::Closed].into_iter().find(|s| s.as_str() == text)
    }
}

/// What a contributing reading measured (or a person recorded in an observation set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parameter {
    News2(news2::Parameter),
    Glucose,
    /// ACVPU, recorded by a clinician.
    Consciousness,
    /// Oxygen flow in L/min (0: room air).
    SupplementalOxygen,
    /// Not scored by NEWS2; makes a set's severity high.
    NurseConcern,
}

impl Parameter {
    /// The name, as the Polaris scoring engine names its inputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Parameter::News2(p) => p.as_str(),
            Parameter::Glucose => "glucose",
            Parameter::Consciousness => "consciousness_acvpu",
            Parameter::SupplementalOxygen => "o2_therapy",
            Parameter::NurseConcern => "nurse_concern",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "glucose" => Some(Parameter::Glucose),
            "consciousness_acvpu" => Some(Parameter::Consciousness),
            "o2_therapy" => Some(Parameter::SupplementalOxygen),
            "nurse_concern" => Some(Parameter::NurseConcern),
            other => news2::Parameter::parse(other).map(Parameter::News2),
        }
    }
}

/// A reading that contributed to an alert: its value as the device sent it, and its unit (the
/// UCUM code, or the device's text where there is none).
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub parameter: Parameter,
    pub observation_id: String,
    pub value: String,
    pub unit: String,
    pub effective_at: String,
    pub score: Option<u8>,
}

/// An alert record.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub alert_id: String,
    pub patient_id: String,
    pub device_id: String,
    pub kind: AlertKind,
    pub score: Option<u8>,
    pub severity: Severity,
    pub partial: bool,
    pub contributions: Vec<Contribution>,
    /// The effective time (UTC) of the reading set that raised it: orders a patient's alerts.
    pub set_at: String,
    pub raised_at: String,
    pub status: AlertStatus,
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
}

impl Alert {
    pub fn to_json(&self) -> Value {
        json!({
            "alertId": self.alert_id, "patientId": self.patient_id, "deviceId": self.device_id,
            "kind": self.kind.as_str(), "score": self.score, "severity": self.severity.as_str(),
            "partialSet": self.partial, "readingsAt": self.set_at, "raisedAt": self.raised_at,
            "status": self.status.as_str(), "closedAt": self.closed_at, "closedBy": self.closed_by,
            "contributingReadings": self.contributions.iter().map(|c| json!({
                "parameter": c.parameter.as_str(), "observationId": c.observation_id, "value": c.value,
                "unit": c.unit, "effectiveAt": c.effective_at, "score": c.score,
            })).collect::<Vec<_>>(),
        })
    }

    /// The record as [`Alert::to_json`] wrote it.
    pub fn from_json(v: &Value) -> Option<Self> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let contributions = v
            .get("contributingReadings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                Some(Contribution {
                    parameter: Parameter::parse(c["parameter"].as_str()?)?,
                    observation_id: c["observationId"].as_str()?.to_owned(),
                    value: c["value"].as_str()?.to_owned(),
                    unit: c["unit"].as_str().unwrap_or_default().to_owned(),
                    effective_at: c["effectiveAt"].as_str().unwrap_or_default().to_owned(),
                    score: c["score"].as_u64().and_then(|s| u8::try_from(s).ok()),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let raised_at = text("raisedAt").unwrap_or_default();
        Some(Alert {
            alert_id: text("alertId")?,
            patient_id: text("patientId")?,
            device_id: text("deviceId").unwrap_or_default(),
            kind: AlertKind::parse(v.get("kind")?.as_str()?)?,
            score: v.get("score").and_then(Value::as_u64).and_then(|s| u8::try_from(s).ok()),
            severity: Severity::parse(v.get("severity")?.as_str()?)?,
            partial: v.get("partialSet").and_then(Value::as_bool).unwrap_or(false),
            contributions,
            set_at: text("readingsAt").unwrap_or_else(|| raised_at.clone()),
            raised_at,
            status: text("status").as_deref().and_then(AlertStatus::parse).unwrap_or(AlertStatus::Open),
            closed_at: text("closedAt"),
            closed_by: text("closedBy"),
        })
    }

    /// How the alert ranks against another of its kind: an open one blocks new alerts of the
    /// same or lower rank.
    pub fn rank(&self) -> u8 {
        severity_rank(self.severity)
    }
}

/// Low 0, low-medium 1, medium 2, high 3.
pub fn severity_rank(s: Severity) -> u8 {
    match s {
        Severity::Low => 0,
        Severity::LowMedium => 1,
        Severity::Medium => 2,
        Severity::High => 3,
    }
}

/// A page of a patient's alerts, newest first, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertPage {
    pub items: Vec<Alert>,
    pub next: Option<String>,
}

/// A patient's newest value of one vital sign the alerts read, as filed: kept per patient and
/// vital sign, so that evaluating a reading reads one record rather than the patient's history.
#[derive(Debug, Clone, PartialEq)]
pub struct CurrentValue {
    /// The vital sign's `system|code`.
    pub code_key: String,
    pub observation_id: String,
    /// Empty for a value entered in an observation set.
    pub device_id: String,
    pub effective_at: String,
    /// The value's text as the device sent it (a JSON number).
    pub value: String,
    pub unit: String,
}

/// Where alerts are kept.
pub trait AlertStore: Send + Sync {
    /// Makes each value its patient's current one of its vital sign, unless a newer one is
    /// recorded (a condition per vital sign: concurrent readings never lose one another, and a
    /// reading arriving late does not replace a newer one); the patient's current values after
    /// the write (one round trip when every value is the newest).
    fn record_current(&self, patient_id: &str, values: &[CurrentValue]) -> impl Future<Output = Result<Vec<CurrentValue>, StoreError>> + Send;
    /// The patient's current value of each vital sign recorded.
    fn current(&self, patient_id: &str) -> impl Future<Output = Result<Vec<CurrentValue>, StoreError>> + Send;
    /// Records the alert unless this alert exists already, or an open one of its kind and the
    /// same or higher severity exists for the patient; true when it was raised.
    fn raise(&self, alert: &Alert) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// A page of the patient's alerts, newest first, after the cursor.
    fn for_patient(&self, patient_id: &str, limit: i32, after: Option<&str>) -> impl Future<Output = Result<AlertPage, StoreError>> + Send;
    /// Records the patient's latest NEWS2 set (at `at`, of `severity`) and when the next is due,
    /// unless a later set is recorded already (readings arrive out of order).
    fn record_set(&self, patient_id: &str, at: &str, severity: Severity, overall: u8, due_at: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The highest open alert of each kind the patient has (those the open markers stand for).
    fn open(&self, patient_id: &str) -> impl Future<Output = Result<Vec<Alert>, StoreError>> + Send;
    /// Closes an alert (a clinician dealt with it), so that new readings may raise its kind
    /// again; the alert as it is now, or `None` if the patient has no such alert.
    fn close(
        &self,
        patient_id: &str,
        alert_id: &str,
        closed_by: &str,
        at: &str,
    ) -> impl Future<Output = Result<Option<Alert>, StoreError>> + Send;
}

/// A quantity as stored: the number for scoring, its text and unit as the device sent them.
#[derive(Clone)]
struct MeasuredValue {
    number: f64,
    text: String,
    unit: String,
}

fn quantity(q: &Value) -> Option<MeasuredValue> {
    let value = q.get("value")?;
    let unit = q.get("code").and_then(Value::as_str).or(q.get("unit").and_then(Value::as_str)).unwrap_or("");
    Some(MeasuredValue { number: value.as_f64()?, text: value.to_string(), unit: unit.to_owned() })
}

/// The value of `vital` in a stored Observation (systolic pressure is a component of the
/// blood-pressure panel).
fn value_of(vital: VitalSign, resource: &Value) -> Option<MeasuredValue> {
    if vital == VitalSign::BloodPressurePanel {
        let systolic = VitalSign::SystolicBloodPressure.loinc();
        let component = resource["component"].as_array()?.iter().find(|c| c["code"]["coding"][0]["code"] == systolic)?;
        quantity(&component["valueQuantity"])
    } else {
        quantity(&resource["valueQuantity"])
    }
}

/// A vital sign's newest value in the window, and the Observation it came from.
#[derive(Clone)]
struct Latest {
    observation_id: String,
    /// Empty for a value entered in an observation set.
    device_id: String,
    effective_at: String,
    value: MeasuredValue,
}

/// The vital signs alerts read: those feeding a NEWS2 parameter, and glucose (in either unit).
fn alerting_vital(code_key: &str) -> Option<VitalSign> {
    VitalSign::ALL.into_iter().find(|v| (v.news2().is_some() || matches!(v, VitalSign::BloodGlucose | VitalSign::BloodGlucoseMolar)) && v.code_key() == code_key)
}

/// The values of the set just filed that alerts read, one per vital sign.
fn current_values(set: &ReadingSet<'_>) -> Vec<CurrentValue> {
    let mut values: Vec<CurrentValue> = Vec::new();
    for o in set.observations.iter().filter(|o| o.patient_id == set.patient_id) {
        let Some(vital) = alerting_vital(&o.code_key) else { continue };
        if values.iter().any(|v| v.code_key == o.code_key) {
            continue;
        }
        let Some(measured) = serde_json::from_str::<Value>(&o.resource).ok().and_then(|r| value_of(vital, &r)) else { continue };
        values.push(CurrentValue {
            code_key: o.code_key.clone(),
            observation_id: o.id.clone(),
            device_id: o.device_id.clone(),
            effective_at: o.effective_at.clone(),
            value: measured.text,
            unit: measured.unit,
        });
    }
    values
}

/// The patient's newest value of `vital` within the window, from the history: from the store,
/// and from the set just filed (the store's index may not show it yet). Only a reading older
/// than a current value needs this.
async fn latest<O: ObservationStore>(store: &O, set: &ReadingSet<'_>, vital: VitalSign, from: &str, to: &str) -> Result<Option<Latest>, StoreError> {
    let code_key = vital.code_key();
    let mut found = store.for_patient_code(set.patient_id, &code_key, from, to).await?;
    for o in set.observations.iter().filter(|o| o.code_key == code_key && o.patient_id == set.patient_id) {
        if (from..=to).contains(&o.effective_at.as_str()) && !found.iter().any(|f| f.id == o.id) {
            found.push(o.clone());
        }
    }
    found.sort_by(|a, b| a.effective_at.cmp(&b.effective_at));
    Ok(found.into_iter().rev().find_map(|o| latest_of_stored(vital, o)))
}

/// A stored Observation's value of `vital`.
fn latest_of_stored(vital: VitalSign, o: StoredObservation) -> Option<Latest> {
    let resource = serde_json::from_str::<Value>(&o.resource).ok()?;
    value_of(vital, &resource).map(|value| Latest { observation_id: o.id, device_id: o.device_id, effective_at: o.effective_at, value })
}

/// A current value as a window's value.
fn latest_of_current(c: &CurrentValue) -> Option<(VitalSign, Latest)> {
    let vital = alerting_vital(&c.code_key)?;
    let number = c.value.parse::<f64>().ok()?;
    let value = MeasuredValue { number, text: c.value.clone(), unit: c.unit.clone() };
    Some((vital, Latest { observation_id: c.observation_id.clone(), device_id: c.device_id.clone(), effective_at: c.effective_at.clone(), value }))
}

/// What was measured within the window: the newest value of each NEWS2 parameter (over every
/// vital sign that feeds it) and of glucose (in either unit).
struct Window {
    news2: Vec<(news2::Parameter, Latest)>,
    glucose: Option<(VitalSign, Latest)>,
}

impl Window {
    /// The window of the newest value of each vital sign.
    fn of(values: impl IntoIterator<Item = (VitalSign, Latest)>) -> Self {
        let mut news2: Vec<(news2::Parameter, Latest)> = Vec::new();
        let mut glucose: Option<(VitalSign, Latest)> = None;
        for (vital, latest) in values {
            if matches!(vital, VitalSign::BloodGlucose | VitalSign::BloodGlucoseMolar) {
                if glucose.as_ref().is_none_or(|(_, g)| g.effective_at < latest.effective_at) {
                    glucose = Some((vital, latest));
                }
                continue;
            }
            let Some(parameter) = vital.news2() else { continue };
            match news2.iter_mut().find(|(p, _)| *p == parameter) {
                Some(slot) if slot.1.effective_at < latest.effective_at => *slot = (parameter, latest),
                Some(_) => {}
                None => news2.push((parameter, latest)),
            }
        }
        news2.sort_by_key(|(p, _)| *p);
        Self { news2, glucose }
    }
}

/// The window from the patient's current values (one read, whatever their history), when the
/// set is at least as new as each of them; `None` for a reading that arrived after a newer
/// one, whose window only the history holds.
fn window_of_current(current: &[CurrentValue], from: &str, to: &str) -> Option<Window> {
    let alerting: Vec<(VitalSign, &CurrentValue)> = current.iter().filter_map(|c| alerting_vital(&c.code_key).map(|v| (v, c))).collect();
    if alerting.iter().any(|(_, c)| c.effective_at.as_str() > to) {
        return None;
    }
    Some(Window::of(alerting.into_iter().filter(|(_, c)| c.effective_at.as_str() >= from).filter_map(|(_, c)| latest_of_current(c))))
}

/// The window from the patient's history: a query per vital sign.
async fn window_of_history<O: ObservationStore>(observations: &O, set: &ReadingSet<'_>, from: &str, to: &str) -> Result<Window, StoreError> {
    let mut found = Vec::new();
    for vital in VitalSign::ALL.into_iter().filter(|v| alerting_vital(&v.code_key()).is_some()) {
        if let Some(latest) = latest(observations, set, vital, from, to).await? {
            found.push((vital, latest));
        }
    }
    Ok(Window::of(found))
}

/// Whether the set just filed measured a NEWS2 parameter: only such a set re-scores NEWS2
/// (a weight, or a battery level, does not raise again what a clinician closed).
fn measures_news2(set: &ReadingSet<'_>) -> bool {
    set.observations.iter().any(|o| VitalSign::ALL.iter().any(|v| v.news2().is_some() && v.code_key() == o.code_key))
}

/// Glucose in mg/dL, the unit of the thresholds (for the comparison only: the reading keeps
/// its unit). 1 mmol/L of glucose is 18.016 mg/dL.
fn glucose_mg_dl(vital: VitalSign, value: f64) -> f64 {
    if vital == VitalSign::BloodGlucoseMolar {
        value * 18.016
    } else {
        value
    }
}

/// A value in the chart's unit: temperature in °C (for scoring only; the stored Observation
/// keeps the device's unit).
fn scored_value(parameter: news2::Parameter, v: &MeasuredValue) -> f64 {
    if parameter == news2::Parameter::Temperature && v.unit == "[degF]" {
        (v.number - 32.0) * 5.0 / 9.0
    } else {
        v.number
    }
}

/// NEWS2 of the window's latest values; none when it holds no NEWS2 parameter.
fn news2_score(window: &Window) -> Option<news2::Score> {
    if window.news2.is_empty() {
        return None;
    }
    let mut set = news2::Observations::default();
    for (parameter, latest) in &window.news2 {
        parameter.set(&mut set, scored_value(*parameter, &latest.value));
    }
    Some(news2::score(&set))
}

/// The NEWS2 alert the window calls for, if any.
fn news2_alert(window: &Window) -> Option<(AlertKind, news2::Score, Vec<Contribution>)> {
    let score = news2_score(window)?;
    if score.highest_parameter() < 3 && score.overall < 5 {
        return None;
    }
    let contributions = window
        .news2
        .iter()
        .map(|(parameter, latest)| Contribution {
            parameter: Parameter::News2(*parameter),
            observation_id: latest.observation_id.clone(),
            value: latest.value.text.clone(),
            unit: latest.value.unit.clone(),
            effective_at: latest.effective_at.clone(),
            score: Some(parameter.score_in(&score)),
        })
        .collect();
    Some((AlertKind::News2, score, contributions))
}

/// The glucose alert of the reading just filed (at `at`), if its glucose is out of range.
fn glucose_alert(window: &Window, settings: &AlertSettings, at: &str) -> Option<(AlertKind, Severity, Contribution)> {
    // Only the reading just filed raises a glucose alert, not an older one in the window.
    let (vital, latest) = window.glucose.as_ref().filter(|(_, latest)| latest.effective_at == at)?;
    let mg_dl = glucose_mg_dl(*vital, latest.value.number);
    // Below 54 mg/dL is level-2 hypoglycaemia (ADA); above 400 mg/dL needs urgent review.
    let (kind, severity) = if mg_dl < settings.glucose_low_mg_dl {
        (AlertKind::GlucoseLow, if mg_dl < 54.0 { Severity::High } else { Severity::Medium })
    } else if mg_dl > settings.glucose_high_mg_dl {
        (AlertKind::GlucoseHigh, if mg_dl > 400.0 { Severity::High } else { Severity::Medium })
    } else {
        return None;
    };
    let contribution = Contribution {
        parameter: Parameter::Glucose,
        observation_id: latest.observation_id.clone(),
        value: latest.value.text.clone(),
        unit: latest.value.unit.clone(),
        effective_at: latest.effective_at.clone(),
        score: None,
    };
    Some((kind, severity, contribution))
}

/// The alert id of a kind raised by one reading set: the same set always gives the same id.
pub fn alert_id(patient: &str, kind: AlertKind, set_id: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(format!("{patient}/{kind}/{set_id}", kind = kind.as_str()).as_bytes())[..16])
}

/// The reading set an evaluation is about.
#[derive(Debug, Clone, Copy)]
pub struct ReadingSet<'a> {
    pub patient_id: &'a str,
    pub device_id: &'a str,
    /// The set's id (its grouping panel's, or its one Observation's).
    pub set_id: &'a str,
    /// When it was measured.
    pub at: DateTime<Utc>,
    /// Its Observations, as just filed.
    pub observations: &'a [StoredObservation],
}

/// Evaluates the patient's alerts after a reading set was filed; returns the alerts raised
/// (de-duplicated ones are not). The set's values become the patient's current ones, and the
/// window is read from those (a fixed number of reads per set, however long the patient's
/// history); only a set older than a current value reads the history of its window.
pub async fn evaluate<O: ObservationStore, A: AlertStore>(
    observations: &O,
    alerts: &A,
    settings: &AlertSettings,
    set: ReadingSet<'_>,
) -> Result<Vec<Alert>, StoreError> {
    let to = format_utc(set.at);
    let from = format_utc(set.at - Duration::minutes(settings.window_minutes));
    let own = current_values(&set);
    if own.is_empty() && !measures_news2(&set) {
        // A weight, a battery level: nothing alerts read, so nothing to record or score.
        return Ok(Vec::new());
    }
    let current = alerts.record_current(set.patient_id, &own).await?;
    let window = match window_of_current(&current, &from, &to) {
        Some(window) => window,
        None => window_of_history(observations, &set, &from, &to).await?,
    };
    if measures_news2(&set) {
        if let Some(score) = news2_score(&window) {
            record_set(alerts, &set, &score).await?;
        }
    }
    raise_all(alerts, candidates(&window, &set, settings, &format_utc(Utc::now()))).await
}

/// Records the set as the patient's latest NEWS2 set: a patient whose settings track sets gets
/// a grey alert when the next is overdue. The sweep first looks after the shortest interval
/// settings allow and then goes by the patient's own (ingestion does not read settings).
async fn record_set<A: AlertStore>(alerts: &A, set: &ReadingSet<'_>, score: &news2::Score) -> Result<(), StoreError> {
    let first_check = set.at + crate::care::MonitoringIntervals::SHORTEST;
    alerts.record_set(set.patient_id, &format_utc(set.at), score.severity, score.overall, &format_utc(first_check)).await
}

/// The alerts a set's window calls for (`now` is when they are raised).
fn candidates(window: &Window, set: &ReadingSet<'_>, settings: &AlertSettings, now: &str) -> Vec<Alert> {
    let to = format_utc(set.at);
    let alert = |kind: AlertKind, score: Option<u8>, severity: Severity, partial: bool, contributions: Vec<Contribution>| Alert {
        alert_id: alert_id(set.patient_id, kind, set.set_id),
        patient_id: set.patient_id.to_owned(),
        device_id: set.device_id.to_owned(),
        kind,
        score,
        severity,
        partial,
        contributions,
        set_at: to.clone(),
        raised_at: now.to_owned(),
        status: AlertStatus::Open,
        closed_at: None,
        closed_by: None,
    };
    let mut candidates = Vec::new();
    if let Some((kind, score, contributions)) = news2_alert(window).filter(|_| measures_news2(set)) {
        candidates.push(alert(kind, Some(score.overall), score.severity, score.partial, contributions));
    }
    if let Some((kind, severity, contribution)) = glucose_alert(window, settings, &to) {
        candidates.push(alert(kind, None, severity, false, vec![contribution]));
    }
    candidates
}

/// Raises each alert (the store de-duplicates); those raised.
async fn raise_all<A: AlertStore>(alerts: &A, candidates: Vec<Alert>) -> Result<Vec<Alert>, StoreError> {
    let mut raised = Vec::new();
    for alert in candidates {
        if alerts.raise(&alert).await? {
            // No values or patient details in the log line.
            tracing::info!(alert_id = %alert.alert_id, kind = alert.kind.as_str(), severity = alert.severity.as_str(), "alert raised");
            raised.push(alert);
        }
    }
    Ok(raised)
}

/// Evaluates one patient's alerts once for several reading sets filed together (a chunk of an
/// inbox file), with a fixed number of store calls whatever the number of sets: the patient's
/// current values read and written once, and, only when another reading is newer than the
/// earliest set (a late upload) or arrived meanwhile, one history query per vital sign for the
/// span of the sets. Each set is scored on its own window in time order, as [`evaluate`] would;
/// of the alerts they call for, the most severe of each kind is raised (the earliest of
/// equals): one alert per kind where reading by reading would have raised a lower one first and
/// then superseded it.
pub async fn evaluate_together<O: ObservationStore, A: AlertStore>(
    observations: &O,
    alerts: &A,
    settings: &AlertSettings,
    patient_id: &str,
    sets: &[ReadingSet<'_>],
) -> Result<Vec<Alert>, StoreError> {
    let mut sets: Vec<&ReadingSet<'_>> = sets.iter().filter(|s| s.patient_id == patient_id).collect();
    sets.sort_by_key(|s| s.at);
    let (Some(first), Some(last)) = (sets.first().copied(), sets.last().copied()) else { return Ok(Vec::new()) };
    let own: Vec<CurrentValue> = sets.iter().flat_map(|s| current_values(s)).collect();
    if own.is_empty() && !sets.iter().any(|s| measures_news2(s)) {
        return Ok(Vec::new());
    }
    let mut newest: Vec<CurrentValue> = Vec::new();
    for v in &own {
        match newest.iter_mut().find(|n| n.code_key == v.code_key) {
            Some(n) if n.effective_at < v.effective_at => *n = v.clone(),
            Some(_) => {}
            None => newest.push(v.clone()),
        }
    }
    let before = alerts.current(patient_id).await?;
    let after = alerts.record_current(patient_id, &newest).await?;
    let earliest = format_utc(first.at);
    let later_than_earliest = before.iter().any(|c| alerting_vital(&c.code_key).is_some() && c.effective_at > earliest);
    let meanwhile = after.iter().any(|c| !before.contains(c) && !own.iter().any(|o| o.observation_id == c.observation_id));
    let mut pool: Vec<(VitalSign, Latest)> = Vec::new();
    if later_than_earliest || meanwhile {
        let from = format_utc(first.at - Duration::minutes(settings.window_minutes));
        let to = format_utc(last.at);
        for vital in VitalSign::ALL.into_iter().filter(|v| alerting_vital(&v.code_key()).is_some()) {
            for o in observations.for_patient_code(patient_id, &vital.code_key(), &from, &to).await? {
                pool.extend(latest_of_stored(vital, o).map(|l| (vital, l)));
            }
        }
    } else {
        pool.extend(before.iter().filter_map(latest_of_current));
    }
    // The sets' own values (the history's index may not show them yet).
    for v in &own {
        if !pool.iter().any(|(_, l)| l.observation_id == v.observation_id) {
            pool.extend(latest_of_current(v));
        }
    }
    let now = format_utc(Utc::now());
    let mut chosen: Vec<Alert> = Vec::new();
    let mut latest_news2 = None;
    for set in sets {
        let (from, to) = (format_utc(set.at - Duration::minutes(settings.window_minutes)), format_utc(set.at));
        let window = Window::of(pool.iter().filter(|(_, l)| (from.as_str()..=to.as_str()).contains(&l.effective_at.as_str())).cloned());
        if measures_news2(set) {
            latest_news2 = news2_score(&window).map(|score| (set, score)).or(latest_news2);
        }
        for alert in candidates(&window, set, settings, &now) {
            match chosen.iter_mut().find(|c| c.kind == alert.kind) {
                Some(c) if alert.severity > c.severity => *c = alert,
                Some(_) => {}
                None => chosen.push(alert),
            }
        }
    }
    if let Some((set, score)) = latest_news2 {
        record_set(alerts, set, &score).await?;
    }
    raise_all(alerts, chosen).await
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryAlerts;
    use super::*;
    use crate::ingest::readings;
    use crate::observations::memory::MemoryObservations;
    use crate::observations::{Fingerprint, Inserted};

    /// An Observation store that counts the history queries made of it and, `lagging`, whose
    /// patient/code index has not caught up yet (DynamoDB's global indexes are eventually
    /// consistent): it finds nothing.
    #[derive(Default)]
    struct CountingQueries {
        store: MemoryObservations,
        queries: std::sync::atomic::AtomicUsize,
        lagging: bool,
    }

    impl CountingQueries {
        fn lagging() -> Self {
            Self { lagging: true, ..Self::default() }
        }
    }

    impl ObservationStore for CountingQueries {
        async fn insert_set(&self, set: &[StoredObservation]) -> Result<Inserted, StoreError> {
            self.store.insert_set(set).await
        }
        async fn insert_new_sets(&self, sets: &[&[StoredObservation]]) -> Result<bool, StoreError> {
            self.store.insert_new_sets(sets).await
        }
        async fn replace(&self, o: &StoredObservation, previous_hash: &str) -> Result<bool, StoreError> {
            self.store.replace(o, previous_hash).await
        }
        async fn get(&self, id: &str) -> Result<Option<StoredObservation>, StoreError> {
            self.store.get(id).await
        }
        async fn for_patient_code(&self, patient: &str, code: &str, from: &str, to: &str) -> Result<Vec<StoredObservation>, StoreError> {
            self.queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if self.lagging {
                return Ok(Vec::new());
            }
            self.store.for_patient_code(patient, code, from, to).await
        }
        async fn for_device(&self, device_id: &str, limit: i32) -> Result<Vec<StoredObservation>, StoreError> {
            self.store.for_device(device_id, limit).await
        }
        async fn search_page(&self, page: &crate::observations::SearchPage<'_>) -> Result<(Vec<StoredObservation>, bool), StoreError> {
            self.store.search_page(page).await
        }
        async fn count(&self, along: &crate::observations::Along, from: Option<&str>, to: Option<&str>) -> Result<usize, StoreError> {
            self.store.count(along, from, to).await
        }
    }

    /// Files a vitals-format reading for `P1` into the store; its set id and Observations.
    async fn file<O: ObservationStore>(store: &O, body: &str) -> (String, Vec<StoredObservation>, DateTime<Utc>) {
        let now = crate::platform::time::parse_with_offset("2026-11-22T12:00:00Z").unwrap();
        let reading = readings::parse(body, Some("dev-1"), now).unwrap().reading;
        let built = reading.observations("P1", "2026-11-22T12:00:00.000Z");
        let at = reading.timing.at();
        let stored: Vec<_> = built
            .iter()
            .map(|(o, key)| StoredObservation::new(o, key.clone(), format_utc(at), Fingerprint::WithTime).unwrap())
            .collect();
        store.insert_set(&stored).await.unwrap();
        (reading.set_id(&built), stored, at)
    }

    async fn evaluate_after<O: ObservationStore>(store: &O, alerts: &MemoryAlerts, body: &str) -> Vec<Alert> {
        let (set_id, stored, at) = file(store, body).await;
        let set = ReadingSet { patient_id: "P1", device_id: "dev-1", set_id: &set_id, at, observations: &stored };
        evaluate(store, alerts, &AlertSettings::default(), set).await.unwrap()
    }

    #[tokio::test]
    async fn sets_evaluated_together_raise_the_worst_alert_of_each_kind_with_a_fixed_number_of_calls() {
        let (store, alerts) = (CountingQueries::default(), MemoryAlerts::default());
        // Earlier: an SpO2 that every later set's window holds.
        evaluate_after(&store, &alerts, r#"{"timestamp": "2026-11-22T10:50:00Z", "oxygen_saturation": 91}"#).await;
        let queries_before = store.queries.load(std::sync::atomic::Ordering::Relaxed);
        let bodies = [
            r#"{"timestamp": "2026-11-22T11:00:00Z", "heart_rate": 95}"#,
            r#"{"timestamp": "2026-11-22T11:05:00Z", "heart_rate": 135, "respiratory_rate": 26}"#,
            r#"{"timestamp": "2026-11-22T11:10:00Z", "heart_rate": 80, "respiratory_rate": 16}"#,
            r#"{"timestamp": "2026-11-22T11:12:00Z", "glucose": 45}"#,
            r#"{"timestamp": "2026-11-22T11:15:00Z", "glucose": 60}"#,
        ];
        let mut filed = Vec::new();
        for body in bodies {
            filed.push(file(&store, body).await);
        }
        // Given out of order: evaluated in time order all the same.
        let sets: Vec<ReadingSet<'_>> = filed.iter().rev().map(|(id, stored, at)| ReadingSet { patient_id: "P1", device_id: "dev-1", set_id: id, at: *at, observations: stored }).collect();
        let raised = evaluate_together(&store, &alerts, &AlertSettings::default(), "P1", &sets).await.unwrap();
        assert_eq!(store.queries.load(std::sync::atomic::Ordering::Relaxed), queries_before, "the current values serve every window: no history read");
        let news2 = raised.iter().find(|a| a.kind == AlertKind::News2).expect("a NEWS2 alert");
        // 11:05: heart rate 135 (3), respiratory rate 26 (3), SpO2 91 (3) = 9: high, the worst.
        assert_eq!((news2.score, news2.severity, news2.set_at.as_str()), (Some(9), Severity::High, "2026-11-22T11:05:00.000Z"));
        assert_eq!(news2.alert_id, alert_id("P1", AlertKind::News2, &filed[1].0));
        let low = raised.iter().find(|a| a.kind == AlertKind::GlucoseLow).expect("a low glucose alert");
        assert_eq!((low.severity, low.set_at.as_str()), (Severity::High, "2026-11-22T11:12:00.000Z"), "45 mg/dL, not the milder 60 after it");
        assert_eq!(raised.len(), 2, "one alert per kind: {raised:?}");
        let last = alerting::FlowStore::last_set(&alerts, "P1").await.unwrap().unwrap();
        assert_eq!(last.at, "2026-11-22T11:10:00.000Z", "the latest NEWS2 set is the one kept");
        let current = alerts.current("P1").await.unwrap();
        let hr = current.iter().find(|c| c.code_key == VitalSign::HeartRate.code_key()).unwrap();
        assert_eq!((hr.value.as_str(), hr.effective_at.as_str()), ("80", "2026-11-22T11:10:00.000Z"), "the newest value is current");
        // The same sets again (a chunk run twice) raise nothing new.
        assert!(evaluate_together(&store, &alerts, &AlertSettings::default(), "P1", &sets).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn sets_older_than_a_current_value_read_the_history_once_per_vital_sign() {
        let (store, alerts) = (CountingQueries::default(), MemoryAlerts::default());
        evaluate_after(&store, &alerts, r#"{"timestamp": "2026-11-22T11:30:00Z", "heart_rate": 70}"#).await;
        // A late upload of an hour before: its windows are not in the current values.
        let (id, stored, at) = file(&store, r#"{"timestamp": "2026-11-22T10:30:00Z", "heart_rate": 140, "respiratory_rate": 26}"#).await;
        let (id2, stored2, at2) = file(&store, r#"{"timestamp": "2026-11-22T10:35:00Z", "heart_rate": 72}"#).await;
        let before = store.queries.load(std::sync::atomic::Ordering::Relaxed);
        let sets = [
            ReadingSet { patient_id: "P1", device_id: "dev-1", set_id: &id, at, observations: &stored },
            ReadingSet { patient_id: "P1", device_id: "dev-1", set_id: &id2, at: at2, observations: &stored2 },
        ];
        let raised = evaluate_together(&store, &alerts, &AlertSettings::default(), "P1", &sets).await.unwrap();
        let per_set = store.queries.load(std::sync::atomic::Ordering::Relaxed) - before;
        assert!(per_set > 0 && per_set <= VitalSign::ALL.len(), "one query per vital sign for both sets: {per_set}");
        assert_eq!(raised.len(), 1);
        assert_eq!((raised[0].score, raised[0].set_at.as_str()), (Some(6), "2026-11-22T10:30:00.000Z"));
        let current = alerts.current("P1").await.unwrap();
        assert_eq!(current.iter().find(|c| c.code_key == VitalSign::HeartRate.code_key()).unwrap().value, "70", "the newer value stays current");
    }

    #[tokio::test]
    async fn a_news2_alert_is_raised_once_and_not_again_after_it_was_closed() {
        let (store, alerts) = (MemoryObservations::default(), MemoryAlerts::default());
        let body = r#"{"timestamp": "2026-11-22T11:00:00Z", "heart_rate": 140, "respiratory_rate": 16}"#;
        let raised = evaluate_after(&store, &alerts, body).await;
        assert_eq!(raised.len(), 1);
        let last = alerting::FlowStore::last_set(&alerts, "P1").await.unwrap().unwrap();
        assert_eq!((last.at.as_str(), last.severity, last.overall), ("2026-11-22T11:00:00.000Z", Severity::LowMedium, 3), "the latest NEWS2 set is kept for the overdue check");
        let alert = &raised[0];
        assert_eq!((alert.kind, alert.severity, alert.score, alert.partial), (AlertKind::News2, Severity::LowMedium, Some(3), true));
        let hr = alert.contributions.iter().find(|c| c.parameter == Parameter::News2(news2::Parameter::HeartRate)).unwrap();
        assert_eq!((hr.value.as_str(), hr.score), ("140", Some(3)));
        assert!(evaluate_after(&store, &alerts, body).await.is_empty(), "a redelivered reading raises nothing");
        alerts.close("P1", &alert.alert_id, "nurse", "2026-11-22T11:30:00.000Z").await.unwrap();
        assert!(evaluate_after(&store, &alerts, body).await.is_empty(), "nor does it after the alert was closed");
        assert_eq!(alerts.len(), 1);
        // A weight taken later does not re-score the closed NEWS2 alert.
        let weight = r#"{"timestamp": "2026-11-22T11:10:00Z", "weight": 70, "weight_unit": "kg"}"#;
        assert!(evaluate_after(&store, &alerts, weight).await.is_empty());
        // A new vital sign does, on the window's latest values.
        let rr = r#"{"timestamp": "2026-11-22T11:20:00Z", "respiratory_rate": 26}"#;
        let raised = evaluate_after(&store, &alerts, rr).await;
        assert_eq!(raised.len(), 1, "heart rate 140 and respiratory rate 26 score 3 each");
        assert_eq!(raised[0].score, Some(6));
    }

    #[tokio::test]
    async fn a_set_re_published_later_without_a_device_time_does_not_raise_its_closed_alert_again() {
        let (store, alerts) = (MemoryObservations::default(), MemoryAlerts::default());
        let body = r#"{"timestamp": "2026-11-22T11:00:00Z", "heart_rate": 140}"#;
        let (set_id, stored, at) = file(&store, body).await;
        let set = |at| ReadingSet { patient_id: "P1", device_id: "dev-1", set_id: &set_id, at, observations: &stored };
        let raised = evaluate(&store, &alerts, &AlertSettings::default(), set(at)).await.unwrap();
        alerts.close("P1", &raised[0].alert_id, "nurse", "2026-11-22T11:01:00.000Z").await.unwrap();
        // The same message (same set id) received again three minutes later: another readings
        // time, the same alert.
        let again = evaluate(&store, &alerts, &AlertSettings::default(), set(at + Duration::minutes(3))).await.unwrap();
        assert!(again.is_empty());
        assert_eq!(alerts.len(), 1, "one record per alert id");
    }

    #[tokio::test]
    async fn the_reading_just_filed_counts_even_before_the_index_shows_it() {
        let (store, alerts) = (CountingQueries::lagging(), MemoryAlerts::default());
        let raised = evaluate_after(&store, &alerts, r#"{"timestamp": "2026-11-22T11:00:00Z", "glucose": 45}"#).await;
        assert_eq!(raised.len(), 1, "glucose 45 mg/dL");
        assert_eq!((raised[0].kind, raised[0].severity), (AlertKind::GlucoseLow, Severity::High));
        let raised = evaluate_after(&store, &alerts, r#"{"timestamp": "2026-11-22T11:01:00Z", "heart_rate": 30}"#).await;
        assert_eq!(raised.first().map(|a| a.kind), Some(AlertKind::News2), "heart rate 30 scores 3");
    }

    #[tokio::test]
    async fn readings_in_order_are_scored_from_current_values_without_reading_history() {
        let (store, alerts) = (CountingQueries::default(), MemoryAlerts::default());
        let queries = || store.queries.load(std::sync::atomic::Ordering::Relaxed);
        evaluate_after(&store, &alerts, r#"{"timestamp": "2026-11-22T11:00:00Z", "heart_rate": 140}"#).await;
        let raised = evaluate_after(&store, &alerts, r#"{"timestamp": "2026-11-22T11:10:00Z", "respiratory_rate": 26}"#).await;
        assert_eq!(raised.first().and_then(|a| a.score), Some(6), "heart rate 140 (current) and respiratory rate 26 score 3 each");
        for minute in 11..40 {
            evaluate_after(&store, &alerts, &format!(r#"{{"timestamp": "2026-11-22T11:{minute}:00Z", "heart_rate": 80}}"#)).await;
        }
        assert!(evaluate_after(&store, &alerts, r#"{"timestamp": "2026-11-22T11:40:00Z", "weight": 70, "weight_unit": "kg"}"#).await.is_empty());
        assert_eq!(queries(), 0, "no history query, however many readings the patient has");
        let current = alerts.current("P1").await.unwrap();
        assert_eq!(current.iter().map(|c| (c.value.as_str(), c.effective_at.as_str())).collect::<Vec<_>>(), [("80", "2026-11-22T11:39:00.000Z"), ("26", "2026-11-22T11:10:00.000Z")]);

        // A reading that arrives after a newer one: it stays out of the current values and is
        // scored on its own window, from the history (the open alert closed, so it may raise).
        alerts.close("P1", &raised[0].alert_id, "nurse", "2026-11-22T11:41:00.000Z").await.unwrap();
        let late = evaluate_after(&store, &alerts, r#"{"timestamp": "2026-11-22T11:05:00Z", "heart_rate": 150, "respiratory_rate": 26}"#).await;
        assert!(queries() > 0, "the late reading read its window's history");
        assert_eq!(late.first().and_then(|a| a.score), Some(6), "its own values, not the newer heart rate 80");
        assert_eq!(alerts.current("P1").await.unwrap()[0].value, "80", "the newer value stays current");
    }

    #[test]
    fn glucose_thresholds_hold_in_either_unit_without_changing_the_reading() {
        assert!((glucose_mg_dl(VitalSign::BloodGlucoseMolar, 3.0) - 54.048).abs() < 1e-9);
        assert_eq!(glucose_mg_dl(VitalSign::BloodGlucose, 95.0), 95.0);
        let window = |vital: VitalSign, value: f64| Window {
            news2: Vec::new(),
            glucose: Some((
                vital,
                Latest {
                    observation_id: "g".into(),
                    device_id: "d".into(),
                    effective_at: "t".into(),
                    value: MeasuredValue { number: value, text: value.to_string(), unit: "mmol/L".into() },
                },
            )),
        };
        let low = glucose_alert(&window(VitalSign::BloodGlucoseMolar, 3.5), &AlertSettings::default(), "t").unwrap();
        assert_eq!((low.0, low.1, low.2.value.as_str(), low.2.unit.as_str()), (AlertKind::GlucoseLow, Severity::Medium, "3.5", "mmol/L"));
        assert!(glucose_alert(&window(VitalSign::BloodGlucoseMolar, 5.5), &AlertSettings::default(), "t").is_none());
        let high = glucose_alert(&window(VitalSign::BloodGlucoseMolar, 25.0), &AlertSettings::default(), "t").unwrap();
        assert_eq!((high.0, high.1), (AlertKind::GlucoseHigh, Severity::High), "25 mmol/L is 450 mg/dL");
    }
}
