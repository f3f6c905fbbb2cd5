//! Care teams: the people and places the platform knows, and who looks after whom (issue 13,
//! in progress). Clinicians (doctors, nurses) belong to locations (clinics, wards); a location
//! has an EMS contact; each patient has a care team (doctors, nurses, a location) and clinical
//! settings (the SpO2 scale a clinician prescribed, escalation timeouts, how to be told and
//! when not to be, which never holds back an emergency).
//!
//! A clinician's id is their subject in the staff pool (their token's `sub`), so a token names
//! the clinician record it stands for.

pub mod http;
#[cfg(any(test, feature = "memory"))]
pub mod memory;
mod dynamodb;

use std::future::Future;

use chrono::{DateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

pub use dynamodb::DynamoCareStore;

use crate::access::{Principal, Role};
use crate::clinical::news2::Severity;
use crate::StoreError;

/// What a clinician is, for whom an alert escalates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClinicianRole {
    Doctor,
    Nurse,
}

/// A doctor or nurse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Clinician {
    #[serde(default)]
    pub clinician_id: String,
    pub name: String,
    pub role: ClinicianRole,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// E.164 (`+447700900123`), for SMS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The locations they work at.
    #[serde(default)]
    pub location_ids: Vec<String>,
}

/// What a location is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocationKind {
    Clinic,
    Ward,
}

/// Who emergency services are for a location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contact {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// A clinic or ward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    #[serde(default)]
    pub location_id: String,
    pub name: String,
    pub kind: LocationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ems: Option<Contact>,
}

/// Who looks after a patient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CareTeam {
    #[serde(default)]
    pub patient_id: String,
    #[serde(default)]
    pub doctors: Vec<String>,
    #[serde(default)]
    pub nurses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
}

impl CareTeam {
    /// Whether `clinician` looks after the patient: named in the team, or working at its location.
    pub fn includes(&self, clinician: &Clinician) -> bool {
        self.doctors.contains(&clinician.clinician_id)
            || self.nurses.contains(&clinician.clinician_id)
            || self.location_id.as_ref().is_some_and(|l| clinician.location_ids.contains(l))
    }

    /// Everyone named in it.
    pub fn members(&self) -> impl Iterator<Item = &String> {
        self.doctors.iter().chain(&self.nurses)
    }
}

/// How a person is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Email,
}

/// Hours in which only emergencies are sent (local to `timezone`; `start` after `end` spans
/// midnight).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub timezone: IanaZone,
}

impl QuietHours {
    /// Whether `at` falls inside them.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = self.timezone.local_time(at);
        if self.start <= self.end {
            local >= self.start && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

/// A time zone of the IANA tz database, by its name (`Europe/London`). Offsets (`+01:00`) and
/// POSIX rules are refused: a fixed offset is an hour out half the year where clocks change.
#[derive(Clone, PartialEq, Eq)]
pub struct IanaZone(jiff::tz::TimeZone);

impl IanaZone {
    /// The zone of this name (any case), or why there is none.
    pub fn named(name: &str) -> Result<Self, String> {
        match jiff::tz::TimeZone::get(name) {
            Ok(zone) if !zone.is_unknown() && zone.iana_name().is_some() => Ok(Self(zone)),
            _ => Err(format!("{name} is not a time zone of the IANA tz database (e.g. Europe/London)")),
        }
    }

    /// The zone's name as the database spells it.
    pub fn name(&self) -> &str {
        self.0.iana_name().unwrap_or("UTC")
    }

    /// The wall-clock time in this zone at `at`.
    pub fn local_time(&self, at: DateTime<Utc>) -> NaiveTime {
        // jiff's years run from -9999 to 9999, chrono's further; an instant outside those years
        // is no reading's, and reads as midnight rather than a panic.
        let Ok(instant) = jiff::Timestamp::new(at.timestamp(), at.timestamp_subsec_nanos() as i32) else {
            return NaiveTime::MIN;
        };
        let time = self.0.to_datetime(instant).time();
        NaiveTime::from_hms_nano_opt(time.hour() as u32, time.minute() as u32, time.second() as u32, time.subsec_nanosecond() as u32).unwrap_or(NaiveTime::MIN)
    }
}

impl std::fmt::Debug for IanaZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for IanaZone {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for IanaZone {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::named(&name).map_err(serde::de::Error::custom)
    }
}

/// Minutes the patient has to answer before an alert escalates, by severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EscalationTimeouts {
    pub low_medium: u32,
    pub medium: u32,
    pub high: u32,
}

impl Default for EscalationTimeouts {
    /// 15 minutes each (the default).
    fn default() -> Self {
        Self { low_medium: 15, medium: 15, high: 15 }
    }
}

impl EscalationTimeouts {
    pub fn for_severity(&self, severity: Severity) -> u32 {
        match severity {
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::LowMedium | Severity::Low => self.low_medium,
        }
    }
}

/// Hours from one NEWS2 set to the next, by the set's severity (`zero`: aggregate 0), 0.25 to
/// 168 each. The RCP NEWS2 chart's minimum monitoring frequencies for wards are 12 h at 0, 4–6 h
/// at 1–4, 1 h for a single 3 or 5–6, and continuous at 7 or more; a remote-monitoring team
/// sets what it expects of its patients' devices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MonitoringIntervals {
    pub zero: f64,
    pub low: f64,
    pub low_medium: f64,
    pub medium: f64,
    pub high: f64,
}

impl MonitoringIntervals {
    /// The shortest interval settings allow.
    pub const SHORTEST: chrono::Duration = chrono::Duration::minutes(15);

    /// The interval after a set of `severity` and aggregate `overall`.
    pub fn interval(&self, severity: Severity, overall: u8) -> chrono::Duration {
        let hours = match severity {
            Severity::Low if overall == 0 => self.zero,
            Severity::Low => self.low,
            Severity::LowMedium => self.low_medium,
            Severity::Medium => self.medium,
            Severity::High => self.high,
        };
        chrono::Duration::seconds((hours * 3600.0).round() as i64)
    }

    fn check(&self) -> Result<(), CareRefusal> {
        let shortest = Self::SHORTEST.num_minutes() as f64 / 60.0;
        if [self.zero, self.low, self.low_medium, self.medium, self.high].iter().any(|h| !(shortest..=168.0).contains(h)) {
            return Err(invalid("monitoring", "each interval must be 0.25 to 168 hours"));
        }
        Ok(())
    }
}

/// The SpO2 scale a clinician prescribed (scale 2: hypercapnic respiratory failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spo2Prescription {
    /// 1 or 2.
    pub scale: u8,
    /// Set by the platform: who prescribed it, and when.
    #[serde(default)]
    pub prescribed_by: String,
    #[serde(default)]
    pub prescribed_at: String,
}

/// A patient's clinical settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClinicalSettings {
    #[serde(default)]
    pub patient_id: String,
    /// None: scale 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2: Option<Spo2Prescription>,
    #[serde(default)]
    pub escalation_timeouts: EscalationTimeouts,
    /// How the patient is told besides the app (to `phone` and `email`); none: only in the app.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// The patient's number for SMS (E.164).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_hours: Option<QuietHours>,
    /// Whether SMS and email may name the readings (otherwise they only say to open the app).
    #[serde(default)]
    pub values_in_notifications: bool,
    /// Hours between the NEWS2 sets the patient is expected to send; when set, the team gets a
    /// grey alert when the next set is overdue (a device stopped reporting). None: not tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringIntervals>,
}

impl ClinicalSettings {
    /// Whether a notification of `severity` may go out at `at`: quiet hours hold back all but
    /// emergencies (high severity).
    pub fn may_notify(&self, severity: Severity, at: DateTime<Utc>) -> bool {
        severity == Severity::High || !self.quiet_hours.as_ref().is_some_and(|q| q.contains(at))
    }
}

/// Why a care-team change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CareRefusal {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("no clinician {0}")]
    UnknownClinician(String),
    #[error("no location {0}")]
    UnknownLocation(String),
    #[error("{0} is a {1}, not a {2}")]
    WrongRole(String, &'static str, &'static str),
}

fn invalid(field: &'static str, message: impl Into<String>) -> CareRefusal {
    CareRefusal::Invalid { field, message: message.into() }
}

/// An id in a path: 1–128 of letters, digits, `-`, `_`, `.`, `:`, `@`.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
}

/// Checks a phone number (E.164) and an email address where given.
fn check_contact(phone: Option<&String>, email: Option<&String>) -> Result<(), CareRefusal> {
    if phone.is_some_and(|p| !(p.starts_with('+') && p.len() >= 8 && p[1..].bytes().all(|b| b.is_ascii_digit()))) {
        return Err(invalid("phone", "must be E.164, e.g. +447700900123"));
    }
    if email.is_some_and(|e| !e.contains('@')) {
        return Err(invalid("email", "must be an email address"));
    }
    Ok(())
}

impl Clinician {
    pub fn check(&self) -> Result<(), CareRefusal> {
        if self.name.trim().is_empty() {
            return Err(invalid("name", "must not be empty"));
        }
        check_contact(self.phone.as_ref(), self.email.as_ref())?;
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.location_ids.iter().find(|l| !seen.insert(*l)) {
            return Err(invalid("locationIds", format!("{twice} is listed twice")));
        }
        Ok(())
    }
}

impl ClinicalSettings {
    pub fn check(&self) -> Result<(), CareRefusal> {
        if self.spo2.as_ref().is_some_and(|s| s.scale != 1 && s.scale != 2) {
            return Err(invalid("spo2.scale", "must be 1 or 2"));
        }
        check_contact(self.phone.as_ref(), self.email.as_ref())?;
        if let Some(m) = &self.monitoring {
            m.check()?;
        }
        for (channel, address, field) in [(Channel::Sms, &self.phone, "phone"), (Channel::Email, &self.email, "email")] {
            if self.channels.contains(&channel) && address.is_none() {
                return Err(invalid("channels", format!("{} needs the patient's {field}", if channel == Channel::Sms { "sms" } else { "email" })));
            }
        }
        let t = self.escalation_timeouts;
        if [t.low_medium, t.medium, t.high].iter().any(|m| !(1..=1440).contains(m)) {
            return Err(invalid("escalationTimeouts", "each must be 1 to 1440 minutes"));
        }
        Ok(())
    }
}

/// Where care teams are kept.
pub trait CareStore: Send + Sync {
    fn clinician(&self, clinician_id: &str) -> impl Future<Output = Result<Option<Clinician>, StoreError>> + Send;
    /// Writes a clinician and their location memberships (the old ones replaced).
    fn put_clinician(&self, clinician: &Clinician, previous: Option<&Clinician>) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn clinicians(&self) -> impl Future<Output = Result<Vec<Clinician>, StoreError>> + Send;
    fn location(&self, location_id: &str) -> impl Future<Output = Result<Option<Location>, StoreError>> + Send;
    fn put_location(&self, location: &Location) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn locations(&self) -> impl Future<Output = Result<Vec<Location>, StoreError>> + Send;
    /// The clinicians who work at a location.
    fn members(&self, location_id: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    fn care_team(&self, patient_id: &str) -> impl Future<Output = Result<Option<CareTeam>, StoreError>> + Send;
    /// Writes a team and the reverse index of who it names (the previous team's entries gone).
    fn put_care_team(&self, team: &CareTeam) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The patients whose team names the clinician.
    fn patients_of(&self, clinician_id: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// The patients whose team has the location.
    fn patients_at(&self, location_id: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    fn settings(&self, patient_id: &str) -> impl Future<Output = Result<Option<ClinicalSettings>, StoreError>> + Send;
    fn put_settings(&self, settings: &ClinicalSettings) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Whether `who` may read a patient's data (Observations, documents, alerts, settings): an
/// admin; the patient; a clinician of the patient's care team (named, or at its location).
pub async fn may_read<S: CareStore>(care: &S, who: &Principal, patient_id: &str) -> Result<bool, StoreError> {
    ReadScope::new(care, who.clone()).allows(patient_id).await
}

/// [`may_read`] for the patients of one answer: the clinician's record is read once, each
/// patient's team once.
pub struct ReadScope<'a, S> {
    care: &'a S,
    who: Principal,
    /// The caller's clinician record, once read (None inside: they have none).
    clinician: Option<Option<Clinician>>,
    known: std::collections::HashMap<String, bool>,
}

impl<'a, S: CareStore> ReadScope<'a, S> {
    pub fn new(care: &'a S, who: Principal) -> Self {
        Self { care, who, clinician: None, known: std::collections::HashMap::new() }
    }

    /// Who is reading.
    pub fn who(&self) -> &Principal {
        &self.who
    }

    pub async fn allows(&mut self, patient_id: &str) -> Result<bool, StoreError> {
        if let Some(known) = self.known.get(patient_id) {
            return Ok(*known);
        }
        let allowed = match self.who.role {
            Role::Admin => true,
            Role::Patient => self.who.patient_id.as_deref() == Some(patient_id),
            Role::Clinician => {
                if self.clinician.is_none() {
                    self.clinician = Some(self.care.clinician(&self.who.subject).await?);
                }
                match self.clinician.as_ref().and_then(Option::as_ref) {
                    Some(clinician) => self.care.care_team(patient_id).await?.is_some_and(|team| team.includes(clinician)),
                    None => false,
                }
            }
        };
        self.known.insert(patient_id.to_owned(), allowed);
        Ok(allowed)
    }
}

/// Every patient a clinician looks after (named in the team, or at one of their locations), in
/// id order; none without a clinician record.
pub async fn patients_in_care<S: CareStore>(care: &S, clinician_id: &str) -> Result<Option<Vec<String>>, StoreError> {
    let Some(clinician) = care.clinician(clinician_id).await? else { return Ok(None) };
    let mut patients: std::collections::BTreeSet<String> = care.patients_of(clinician_id).await?.into_iter().collect();
    for location in &clinician.location_ids {
        patients.extend(care.patients_at(location).await?);
    }
    Ok(Some(patients.into_iter().collect()))
}

/// The first of `locations` the platform does not know.
pub async fn unknown_location<'a, S: CareStore>(store: &S, locations: impl IntoIterator<Item = &'a String>) -> Result<Option<&'a String>, StoreError> {
    for location in locations {
        if store.location(location).await?.is_none() {
            return Ok(Some(location));
        }
    }
    Ok(None)
}

/// Checks a care team against what the platform knows: its doctors are doctors, its nurses
/// nurses, its location exists (the outer error: the store failed).
pub async fn check_team<S: CareStore>(store: &S, team: &CareTeam) -> Result<Result<(), CareRefusal>, StoreError> {
    for (ids, role) in [(&team.doctors, ClinicianRole::Doctor), (&team.nurses, ClinicianRole::Nurse)] {
        for id in ids {
            let Some(clinician) = store.clinician(id).await? else { return Ok(Err(CareRefusal::UnknownClinician(id.clone()))) };
            if clinician.role != role {
                let name = |r: ClinicianRole| if r == ClinicianRole::Doctor { "doctor" } else { "nurse" };
                return Ok(Err(CareRefusal::WrongRole(id.clone(), name(clinician.role), name(role))));
            }
        }
    }
    Ok(match unknown_location(store, &team.location_id).await? {
        Some(location) => Err(CareRefusal::UnknownLocation(location.clone())),
        None => Ok(()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn quiet_hours_span_midnight_in_the_patients_zone_and_never_hold_back_an_emergency() {
        let settings = ClinicalSettings {
            quiet_hours: Some(QuietHours { start: NaiveTime::from_hms_opt(22, 0, 0).unwrap(), end: NaiveTime::from_hms_opt(7, 0, 0).unwrap(), timezone: IanaZone::named("Europe/London").unwrap() }),
            ..ClinicalSettings::default()
        };
        // 22:30 BST is 21:30 UTC in summer.
        assert!(!settings.may_notify(Severity::Medium, at("2026-07-01T21:30:00Z")));
        assert!(settings.may_notify(Severity::Medium, at("2026-07-01T20:30:00Z")));
        assert!(!settings.may_notify(Severity::LowMedium, at("2026-12-01T06:59:00Z")));
        assert!(settings.may_notify(Severity::LowMedium, at("2026-12-01T07:00:00Z")));
        assert!(settings.may_notify(Severity::High, at("2026-07-01T21:30:00Z")), "an emergency goes out anyway");
    }

    #[test]
    fn a_zone_is_an_iana_name_kept_as_the_database_spells_it_and_follows_its_clock_changes() {
        let new_york: IanaZone = serde_json::from_value(serde_json::json!("america/new_york")).unwrap();
        assert_eq!(serde_json::to_value(&new_york).unwrap(), serde_json::json!("America/New_York"));
        // Clocks went forward at 02:00 local on 2026-03-08 (07:00 UTC).
        assert_eq!(new_york.local_time(at("2026-03-08T06:59:30Z")), NaiveTime::from_hms_opt(1, 59, 30).unwrap());
        assert_eq!(new_york.local_time(at("2026-03-08T07:00:00Z")), NaiveTime::from_hms_opt(3, 0, 0).unwrap());
        assert_eq!(IanaZone::named("Asia/Kolkata").unwrap().local_time(at("2026-01-01T00:00:00.25Z")), NaiveTime::from_hms_milli_opt(5, 30, 0, 250).unwrap());
        for refused in ["Mars/Olympus", "+01:00", "EST5EDT,M3.2.0,M11.1.0", "Etc/Unknown", ""] {
            let error = serde_json::from_value::<IanaZone>(serde_json::json!(refused)).unwrap_err().to_string();
            assert!(error.contains("is not a time zone of the IANA tz database"), "{refused}: {error}");
        }
    }

    #[test]
    fn a_clinician_looks_after_a_patient_by_name_or_by_location() {
        let nurse = Clinician { clinician_id: "n-1".into(), name: "N".into(), role: ClinicianRole::Nurse, email: None, phone: None, location_ids: vec!["ward-7".into()] };
        let team = CareTeam { patient_id: "p".into(), doctors: vec!["d-1".into()], nurses: vec![], location_id: Some("ward-7".into()) };
        assert!(team.includes(&nurse));
        assert!(!CareTeam { location_id: Some("ward-8".into()), ..team.clone() }.includes(&nurse));
        assert!(CareTeam { nurses: vec!["n-1".into()], location_id: None, ..team }.includes(&nurse));
        assert_eq!(Clinician { phone: Some("07700 900123".into()), ..nurse.clone() }.check(), Err(invalid("phone", "must be E.164, e.g. +447700900123")));
        assert_eq!(Clinician { location_ids: vec!["w".into(), "w".into()], ..nurse.clone() }.check(), Err(invalid("locationIds", "w is listed twice")));
        assert_eq!(ClinicalSettings { escalation_timeouts: EscalationTimeouts { low_medium: 0, medium: 15, high: 15 }, ..Default::default() }.check().map_err(|e| e.to_string()), Err("escalationTimeouts: each must be 1 to 1440 minutes".into()));
    }
}
