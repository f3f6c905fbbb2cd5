//! Observations: what a device measured as FHIR R4 Observations, and where they are kept.
//!
//! Ids are deterministic: an Observation's natural key is (device, what identifies the reading,
//! code), and its id derives from that key, so a redelivered reading maps to the same id and a
//! write-once store tells a redelivery from a different reading under the same key. A reading
//! is identified by the device's time; without one, by the device's message id, or else by the
//! time of receipt and the delivery's trace id. A reading that names its patient (a shared
//! clinic device) has the patient in its key too: two patients measured at one instant are two
//! readings.

mod dynamodb;
pub mod http;
#[cfg(any(test, feature = "memory"))]
pub mod memory;

use std::borrow::Cow;
use std::future::Future;
use std::sync::LazyLock;

use sha2::Digest;

pub use dynamodb::DynamoObservationStore;

use crate::fhir::vitals::{Category, VitalSign, LOINC, OBSERVATION_CATEGORY, UCUM, VITAL_SIGNS_PROFILE};
use crate::fhir::json::RecordedMembers;
use crate::fhir::{CodeableConcept, Coding, Decimal, Identifier, Meta, Observation, ObservationComponent, Quantity, Reference, Text};
use crate::StoreError;

/// The identifier system of the platform's deterministic observation keys.
pub const IDENTIFIER_SYSTEM: &str = "urn:vitalwire:observation";

/// The tag system saying where a reading came from (`device`, as opposed to manual entry).
pub const DATA_SOURCE_SYSTEM: &str = "urn:vitalwire:data-source";

/// IEEE 11073-10101, the nomenclature of personal health devices: the code system the HL7
/// Personal Health Device IG codes a device's own state in (its battery).
pub const MDC_SYSTEM: &str = "urn:iso:std:iso:11073:10101";

/// MDC 67996, `MDC_ATTR_VAL_BATT_CHARGE`: the battery's charge, in percent.
pub const MDC_BATTERY_CHARGE: &str = "67996";

/// One measured value: a vital sign the platform knows, or a code of the device maker's own.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub value: Decimal,
    /// The unit as the device sent it.
    pub unit: String,
    /// The codings as sent (plus 2708-6 where a pulse-oximetry code came alone, as US Core wants);
    /// shared when they are a vital sign's standard coding.
    pub coding: Cow<'static, [Coding]>,
    /// The vital sign, when the platform knows the LOINC code.
    pub vital: Option<VitalSign>,
    /// The UCUM code of `unit`, when it could be identified.
    pub ucum: Option<&'static str>,
}

impl Measurement {
    /// A vital sign with its LOINC coding, in a unit of that vital sign.
    pub fn vital(vital: VitalSign, value: Decimal, unit: &str, ucum: &'static str) -> Self {
        Self {
            value,
            unit: unit.to_owned(),
            coding: Cow::Borrowed(vital.standard_coding()),
            vital: Some(vital),
            ucum: Some(ucum),
        }
    }

    /// A device's battery charge in percent (MDC 67996), the value's text as the device sent it.
    pub fn battery_charge(value: Decimal) -> Self {
        static BATTERY_CHARGE: [Coding; 1] = [Coding::fixed(MDC_SYSTEM, MDC_BATTERY_CHARGE, Some("MDC_ATTR_VAL_BATT_CHARGE"))];
        Self {
            value,
            unit: "%".to_owned(),
            coding: Cow::Borrowed(&BATTERY_CHARGE),
            vital: None,
            ucum: Some("%"),
        }
    }

    /// `system|code` of the measurement's primary coding: the vital sign's LOINC code if known,
    /// else the first coding. Keys storage and idempotency.
    pub fn code_key(&self) -> String {
        match self.vital {
            Some(v) => v.code_key(),
            None => {
                let c = &self.coding[0];
                format!("{}|{}", c.system.as_deref().unwrap_or(""), c.code.as_deref().unwrap_or(""))
            }
        }
    }
}

/// Who an Observation is about and when, decided by the filing service.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub thing_name: &'a str,
    pub patient_id: &'a str,
    /// `effectiveDateTime` as the device sent it, or the time the platform received it.
    pub effective: &'a str,
    /// What identifies the reading among the device's: its UTC time (`time::format_utc`), or
    /// `message:<id>`, or `<receipt time>#<trace id>`.
    pub identity: &'a str,
    /// Whether the reading named its patient, who is then part of the key.
    pub named_patient: bool,
    pub issued: &'a str,
}

impl Subject<'_> {
    /// The natural key of one code measured for this subject.
    pub fn natural_key(&self, code_key: &str) -> String {
        let patient = self.named_patient.then_some(self.patient_id);
        natural_key(self.thing_name, self.identity, code_key, patient)
    }
}

/// The natural key of a measurement: one device measures one thing in one reading once (for
/// one patient, when the reading names them).
pub fn natural_key(thing_name: &str, identity: &str, code_key: &str, named_patient: Option<&str>) -> String {
    match named_patient {
        None => [thing_name, "/", identity, "/", code_key].concat(),
        Some(p) => [thing_name, "/", identity, "/", code_key, "/patient/", p].concat(),
    }
}

/// The Observation id derived from its natural key, so a redelivered message maps to the same id.
pub fn observation_id(natural_key: &str) -> String {
    hex::encode(&sha256(natural_key.as_bytes()).as_ref()[..16])
}

/// SHA-256 by the `sha2` crate, which uses the CPU's SHA extensions (x86's SHA-NI, Arm's SHA2)
/// where there are some. Its intrinsics are only inlined when the crate is optimized for speed
/// (`opt-level = 3`, Cargo.toml): so built, it takes half of aws-lc's time for an id's key and
/// two thirds for a fingerprint, whose digests are short enough that aws-lc's fixed cost per
/// digest (about 90 ns) was most of theirs.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// What an Observation records, for its fingerprint: the code, subject, device, value(s),
/// performer, members and sources, and, for [`Fingerprint::WithTime`], the effective time. What
/// it leaves out the platform derives from these (`meta`, `category`, `status`, `identifier`:
/// the code and the key) or from when it filed the reading (`issued`). The fingerprint is the
/// SHA-256 of its serde JSON, read from the resource's JSON (debug builds check the two agree).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Recorded<'a> {
    code: &'a CodeableConcept,
    subject: &'a Reference,
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<&'a Reference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effective_date_time: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    performer: &'a [Reference],
    #[serde(skip_serializing_if = "Option::is_none")]
    value_quantity: Option<&'a Quantity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_codeable_concept: Option<&'a CodeableConcept>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_string: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    interpretation: &'a [CodeableConcept],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    component: &'a [ObservationComponent],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    has_member: &'a [Reference],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    derived_from: &'a [Reference],
}

impl Recorded<'_> {
    fn of(obs: &Observation, fingerprint: Fingerprint) -> Recorded<'_> {
        Recorded {
            code: &obs.code,
            subject: &obs.subject,
            device: obs.device.as_ref(),
            effective_date_time: (fingerprint == Fingerprint::WithTime).then_some(obs.effective_date_time.as_str()),
            performer: &obs.performer,
            value_quantity: obs.value_quantity.as_ref(),
            value_codeable_concept: obs.value_codeable_concept.as_ref(),
            value_string: obs.value_string.as_deref(),
            interpretation: &obs.interpretation,
            component: &obs.component,
            has_member: &obs.has_member,
            derived_from: &obs.derived_from,
        }
    }
}

/// The fingerprint of what an Observation records: `<scheme>:<SHA-256 of [`Recorded`]'s JSON>`,
/// the scheme naming what it covers (`2t` with the effective time, `2r` without). About a third
/// of the whole resource's bytes, so it costs a third of hashing the resource. Fingerprints of
/// the first scheme (64 hex digits, the whole JSON with `issued` blanked) are still stored; see
/// [`same_content`].
///
/// [`Recorded`]'s JSON is the resource's own members in the same order, so it is hashed from
/// the resource's JSON, `json`, rather than written a second time.
fn recorded_fingerprint(json: &[u8], members: &RecordedMembers, fingerprint: Fingerprint) -> String {
    let with_time = fingerprint == Fingerprint::WithTime;
    let after_issued = &json[members.after_issued.clone()];
    let parts: [&[u8]; 7] = [
        b"{",
        &json[members.measured.clone()],
        if with_time { b"," } else { b"" },
        if with_time { &json[members.effective.clone()] } else { b"" },
        if after_issued.is_empty() { b"" } else { b"," },
        after_issued,
        b"}",
    ];
    let mut digest = sha2::Sha256::new();
    for part in parts {
        digest.update(part);
    }
    let mut hex = [0u8; 64];
    // A 32-byte digest always fits 64 hex digits.
    let _ = hex::encode_to_slice(digest.finalize(), &mut hex);
    let mut hash = String::with_capacity(67);
    hash.push_str(fingerprint.scheme());
    hash.push(':');
    // Hex digits are ASCII: always UTF-8 (pushed char by char, they cost 2% of the hot path).
    hash.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    hash
}

/// The Observation's JSON and its fingerprint. The JSON is written by [`fhir::json`](crate::fhir::json)
/// (the bytes serde_json would write; debug builds check), into a buffer sized for a typical
/// one (a heart rate is 963 bytes) rather than one grown from empty by copying.
fn json_and_fingerprint(obs: &Observation, fingerprint: Fingerprint) -> Result<(String, String), serde_json::Error> {
    let mut json = String::with_capacity(1536);
    let members = crate::fhir::json::observation(&mut json, obs)?;
    debug_assert_eq!(Some(&json), serde_json::to_string(obs).ok().as_ref(), "the Observation's JSON differs from serde_json's");
    let hash = recorded_fingerprint(json.as_bytes(), &members, fingerprint);
    debug_assert_eq!(
        Some(hash.as_str()),
        serde_json::to_vec(&Recorded::of(obs, fingerprint)).ok().map(|recorded| [fingerprint.scheme(), ":", &hex::encode(sha256(&recorded))].concat()).as_deref(),
        "the fingerprint is not of the recorded members' JSON"
    );
    Ok((json, hash))
}

/// Whether a new Observation records what a stored one under its id does: the same reading
/// delivered again. A stored fingerprint of the first scheme (written before the scheme was
/// named) is compared with the new Observation's taken by that scheme, from its JSON.
pub fn same_content(new: &StoredObservation, stored: &StoredObservation) -> bool {
    if new.content_hash == stored.content_hash {
        return true;
    }
    let first_scheme = stored.content_hash.len() == 64 && !stored.content_hash.contains(':');
    let Some(fingerprint) = Fingerprint::of_scheme(&new.content_hash) else { return false };
    first_scheme
        && serde_json::from_str::<Observation>(&new.resource)
            .ok()
            .and_then(|obs| StoredObservation::whole_json_fingerprint(&obs, fingerprint).ok())
            .is_some_and(|hash| hash == stored.content_hash)
}

/// `meta` of an Observation a device measured: its profiles and the `device` data-source tag.
fn device_sourced(profile: Cow<'static, [Text]>) -> Meta {
    /// The tag, shared by every Observation a device measured rather than built for each.
    static DEVICE: [Coding; 1] = [Coding::fixed(DATA_SOURCE_SYSTEM, "device", Some("Measured by a device"))];
    Meta { profile, tag: Cow::Borrowed(&DEVICE) }
}

/// The profiles an Observation of `vital` claims: FHIR's vital-signs profile and the vital
/// sign's own; none for a code that is not a vital sign. Made once per vital sign and shared.
fn profiles(vital: Option<VitalSign>) -> Cow<'static, [Text]> {
    static BY_VITAL_SIGN: LazyLock<Vec<Vec<Text>>> = LazyLock::new(|| {
        VitalSign::ALL
            .iter()
            .map(|v| match v.category() {
                Category::VitalSigns => std::iter::once(VITAL_SIGNS_PROFILE).chain(v.profile()).map(Text::from).collect(),
                _ => Vec::new(),
            })
            .collect()
    });
    match vital {
        Some(v) => Cow::Borrowed(&BY_VITAL_SIGN[v.index()]),
        None => Cow::Borrowed(&[]),
    }
}

/// The category of an Observation of `vital`; none for a code that is not a vital sign. Made
/// once per category and shared.
fn category(vital: Option<VitalSign>) -> Cow<'static, [CodeableConcept]> {
    fn of(c: Category) -> Vec<CodeableConcept> {
        vec![CodeableConcept { coding: vec![Coding::fixed(OBSERVATION_CATEGORY, c.code(), Some(c.display()))].into(), text: None }]
    }
    static VITAL_SIGNS: LazyLock<Vec<CodeableConcept>> = LazyLock::new(|| of(Category::VitalSigns));
    static LABORATORY: LazyLock<Vec<CodeableConcept>> = LazyLock::new(|| of(Category::Laboratory));
    match vital.map(VitalSign::category) {
        Some(Category::VitalSigns) => Cow::Borrowed(&VITAL_SIGNS),
        Some(Category::Laboratory) => Cow::Borrowed(&LABORATORY),
        None => Cow::Borrowed(&[]),
    }
}

/// An Observation of `code` for the subject, keyed by `code_key`, with no value yet.
pub(crate) fn skeleton(subject: &Subject<'_>, code_key: &str, vital: Option<VitalSign>, code: CodeableConcept) -> Observation {
    let key = subject.natural_key(code_key);
    Observation {
        resource_type: "Observation".into(),
        id: observation_id(&key),
        meta: Some(device_sourced(profiles(vital))),
        identifier: vec![Identifier { system: IDENTIFIER_SYSTEM.into(), value: key }],
        status: "final".into(),
        category: category(vital),
        code,
        subject: Reference::to("Patient", subject.patient_id),
        device: Some(Reference::to("Device", subject.thing_name)),
        effective_date_time: subject.effective.to_owned(),
        issued: subject.issued.to_owned(),
        performer: Vec::new(),
        value_quantity: None,
        value_codeable_concept: None,
        value_string: None,
        interpretation: Vec::new(),
        component: Vec::new(),
        has_member: Vec::new(),
        derived_from: Vec::new(),
    }
}

/// The FHIR R4 Observation of one measured value.
pub fn measured(m: &Measurement, subject: &Subject<'_>) -> Observation {
    measured_as(m, &m.code_key(), subject)
}

/// [`measured`], for a caller that has the measurement's [`Measurement::code_key`] already.
pub fn measured_as(m: &Measurement, code_key: &str, subject: &Subject<'_>) -> Observation {
    // The first display, shared rather than copied when it is the platform's own text.
    let text = m.coding.iter().find_map(|c| c.display.clone()).or_else(|| m.vital.map(|v| Text::from(v.display())));
    let mut o = skeleton(subject, code_key, m.vital, CodeableConcept { coding: m.coding.clone(), text });
    o.value_quantity = Some(Quantity {
        value: m.value.clone(),
        unit: m.unit.clone(),
        system: m.ucum.map(|_| UCUM.into()),
        code: m.ucum.map(Text::from),
    });
    o
}

/// The 85354-9 blood-pressure panel with its systolic and diastolic components, in mmHg.
pub fn blood_pressure(systolic: &Decimal, diastolic: &Decimal, subject: &Subject<'_>) -> Observation {
    let mut o = panel(VitalSign::BloodPressurePanel, subject);
    o.component = [(VitalSign::SystolicBloodPressure, systolic), (VitalSign::DiastolicBloodPressure, diastolic)]
        .into_iter()
        .map(|(vital, value)| {
            ObservationComponent::quantity(
                CodeableConcept { coding: Cow::Borrowed(vital.standard_coding()), text: None },
                Quantity { value: value.clone(), unit: "mmHg".into(), system: Some(UCUM.into()), code: Some("mm[Hg]".into()) },
            )
        })
        .collect();
    o
}

/// The 85353-1 vital-signs panel that groups a reading's Observations (by their ids).
pub fn vital_signs_panel<'m>(members: impl IntoIterator<Item = &'m str>, subject: &Subject<'_>) -> Observation {
    let mut o = panel(VitalSign::VitalSignsPanel, subject);
    o.has_member = members.into_iter().map(|id| Reference::to("Observation", id)).collect();
    o
}

fn panel(vital: VitalSign, subject: &Subject<'_>) -> Observation {
    let code = CodeableConcept { coding: Cow::Borrowed(vital.standard_coding()), text: Some(vital.display().into()) };
    skeleton(subject, &vital.code_key(), Some(vital), code)
}

/// An Observation as stored, with the attributes it is found by.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObservation {
    pub id: String,
    pub patient_id: String,
    pub device_id: String,
    /// `system|code` of the primary coding.
    pub code_key: String,
    /// UTC effective time, `time::format_utc`.
    pub effective_at: String,
    /// Fingerprint of what was measured (not of when it was filed), to tell a redelivery from a
    /// conflicting message with the same key.
    pub content_hash: String,
    /// The FHIR JSON, exactly as built.
    pub resource: String,
}

/// What an Observation's fingerprint covers besides what was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fingerprint {
    /// Its effective time is the device's: part of what was measured.
    WithTime,
    /// Its effective time is only when the platform received it (no device time): a re-publish
    /// of the same message, received later, is the same reading.
    WithoutTime,
}

impl Fingerprint {
    fn scheme(self) -> &'static str {
        match self {
            Fingerprint::WithTime => "2t",
            Fingerprint::WithoutTime => "2r",
        }
    }

    fn of_scheme(hash: &str) -> Option<Self> {
        [Fingerprint::WithTime, Fingerprint::WithoutTime].into_iter().find(|f| hash.strip_prefix(f.scheme()).is_some_and(|rest| rest.starts_with(':')))
    }
}

impl StoredObservation {
    /// Wraps an Observation a connector's mapping made: found by its first LOINC coding (its
    /// first coding without one) and the start of its period; fingerprinted whole but for
    /// `issued`, which a merge changes and a replay does not.
    pub fn mapped(obs: &crate::mapping::observation::MappedObservation) -> Result<Self, MappedStorageError> {
        let codings = &obs.code.coding;
        let primary = codings.iter().find(|c| c.system.as_deref() == Some(LOINC)).or(codings.first()).ok_or(MappedStorageError::NoCoding)?;
        let code_key = format!("{}|{}", primary.system.as_deref().unwrap_or(""), primary.code.as_deref().unwrap_or(""));
        let start = crate::platform::time::parse_with_offset(&obs.effective_period.start).ok_or_else(|| MappedStorageError::Period(obs.effective_period.start.clone()))?;
        let mut unissued = obs.clone();
        unissued.issued.clear();
        let content = serde_json::to_vec(&unissued).map_err(|e| MappedStorageError::Json(e.to_string()))?;
        Ok(Self {
            id: obs.id.clone(),
            patient_id: obs.subject.reference.trim_start_matches("Patient/").to_owned(),
            device_id: obs.device.reference.trim_start_matches("Device/").to_owned(),
            code_key,
            effective_at: crate::platform::time::format_utc(start),
            content_hash: hex::encode(sha256(&content)),
            resource: serde_json::to_string(obs).map_err(|e| MappedStorageError::Json(e.to_string()))?,
        })
    }

    /// Wraps a built Observation for storage: serialized, and fingerprinted by what it records.
    pub fn new(obs: &Observation, code_key: String, effective_at: String, fingerprint: Fingerprint) -> Result<Self, serde_json::Error> {
        let (resource, content_hash) = json_and_fingerprint(obs, fingerprint)?;
        // Ids have no `/` (FHIR's id grammar): the prefix is there once or not at all.
        let id_of = |reference: &str, prefix: &str| reference.strip_prefix(prefix).unwrap_or(reference).to_owned();
        Ok(Self {
            id: obs.id.clone(),
            patient_id: id_of(&obs.subject.reference, "Patient/"),
            device_id: obs.device.as_ref().map(|d| id_of(&d.reference, "Device/")).unwrap_or_default(),
            code_key,
            effective_at,
            content_hash,
            resource,
        })
    }

    /// The first scheme's fingerprint: a copy with `issued` (and, without time, the effective
    /// time) cleared, serialized whole and hashed.
    fn whole_json_fingerprint(obs: &Observation, fingerprint: Fingerprint) -> Result<String, serde_json::Error> {
        let mut unissued = obs.clone();
        unissued.issued.clear();
        if fingerprint == Fingerprint::WithoutTime {
            unissued.effective_date_time.clear();
        }
        Ok(hex::encode(sha256(&serde_json::to_vec(&unissued)?)))
    }
}

/// Why a mapped Observation cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappedStorageError {
    #[error("the Observation has no code coding to be found by: give the FHIR template's `codes` a code")]
    NoCoding,
    #[error("the Observation's period starts at {0:?}, which is not a date-time with an offset")]
    Period(String),
    #[error("the Observation could not be written as JSON: {0}")]
    Json(String),
}

/// What writing a reading's Observations did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Written (all of them, or the ones an earlier partial write had not).
    New,
    /// Every one exists already with the same content: a redelivery; nothing written.
    Duplicate,
    /// One exists with different content: another reading holds the key; nothing written.
    Conflict,
}

/// Tells, from the Observations of a set that exist already, what writing the set means.
pub fn judge(set: &[StoredObservation], existing: &[StoredObservation]) -> Inserted {
    let differs = existing.iter().any(|e| set.iter().any(|o| o.id == e.id && !same_content(o, e)));
    if differs {
        Inserted::Conflict
    } else if existing.len() == set.len() {
        Inserted::Duplicate
    } else {
        Inserted::New
    }
}

/// The observation store port.
/// The most Observations written in one request (DynamoDB's limit on a transaction's items).
pub const MAX_WRITTEN_TOGETHER: usize = 100;

pub trait ObservationStore: Send + Sync {
    /// Writes a reading's Observations, all or none, each only where its id is free: a set
    /// that exists with the same content is a [`Inserted::Duplicate`], one whose key holds
    /// different content a [`Inserted::Conflict`], and neither writes anything. (A set only
    /// partly there, from an interrupted write, gets the rest.)
    fn insert_set(&self, set: &[StoredObservation]) -> impl Future<Output = Result<Inserted, StoreError>> + Send;

    /// Writes several readings' Observations (at most [`MAX_WRITTEN_TOGETHER`], ids distinct)
    /// in one request, all or none, only if none of their ids is taken: true when written;
    /// false, writing nothing, when one is (then each set goes through [`Self::insert_set`],
    /// which tells a duplicate from a conflict).
    fn insert_new_sets(&self, sets: &[&[StoredObservation]]) -> impl Future<Output = Result<bool, StoreError>> + Send;

    fn get(&self, id: &str) -> impl Future<Output = Result<Option<StoredObservation>, StoreError>> + Send;

    /// Replaces an Observation if it still has the content `previous_hash` (one merged from a
    /// later batch, as a connector amends a SampledData window); false when it changed in the
    /// meantime (or is gone), and nothing is written: the caller merges again.
    fn replace(&self, observation: &StoredObservation, previous_hash: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A patient's observations of one code, oldest first, with `from <= effective_at <= to`.
    fn for_patient_code(
        &self,
        patient_id: &str,
        code_key: &str,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<Vec<StoredObservation>, StoreError>> + Send;

    /// A device's most recent observations, newest first.
    fn for_device(&self, device_id: &str, limit: i32) -> impl Future<Output = Result<Vec<StoredObservation>, StoreError>> + Send;

    /// One page of a search along an index, in effective-time order (newest first when asked),
    /// with `from <= effective_at <= to`, strictly after `after`: at most `limit`
    /// Observations, and whether the index may hold more.
    fn search_page(&self, page: &SearchPage<'_>) -> impl Future<Output = Result<(Vec<StoredObservation>, bool), StoreError>> + Send;

    /// How many Observations a search along an index finds with `from <= effective_at <= to`.
    fn count(&self, along: &Along, from: Option<&str>, to: Option<&str>) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// An index a search runs along, with the value it is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Along {
    /// A patient's Observations (`byPatient`).
    Patient(String),
    /// A patient's Observations of one code (`byPatientCode`): `code_key` is `system|code`.
    PatientCode { patient: String, code_key: String },
    /// A device's Observations (`byDevice`).
    Device(String),
}

/// Where a search stopped: the last Observation it went past, in its index's order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Position {
    #[serde(rename = "t")]
    pub effective_at: String,
    #[serde(rename = "i")]
    pub id: String,
}

impl Position {
    pub fn of(o: &StoredObservation) -> Self {
        Self { effective_at: o.effective_at.clone(), id: o.id.clone() }
    }
}

/// One page of a search along an index.
#[derive(Debug, Clone)]
pub struct SearchPage<'a> {
    pub along: &'a Along,
    /// Inclusive bounds on `effective_at` (`time::format_utc`).
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub newest_first: bool,
    pub after: Option<&'a Position>,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Subject<'static> {
        Subject {
            thing_name: "cuff-1",
            patient_id: "pat-1",
            effective: "2026-11-22T10:00:00.000Z",
            identity: "2026-11-22T10:00:00.000Z",
            named_patient: false,
            issued: "2026-11-22T10:00:01.000Z",
        }
    }

    fn vital(v: VitalSign, value: &str, unit: &str) -> Measurement {
        let ucum = v.unit_for(unit).unwrap().ucum;
        Measurement::vital(v, Decimal::parse(value).unwrap(), unit, ucum)
    }

    #[test]
    fn a_vital_sign_gets_category_profiles_and_ucum() {
        let obs = measured(&vital(VitalSign::BodyTemperature, "36.60", "C"), &subject());
        assert_eq!(obs.status, "final");
        assert_eq!(obs.category[0].coding[0].code.as_deref(), Some("vital-signs"));
        assert_eq!(
            *obs.meta.unwrap().profile,
            ["http://hl7.org/fhir/StructureDefinition/vitalsigns", "http://hl7.org/fhir/StructureDefinition/bodytemp"]
        );
        let q = obs.value_quantity.unwrap();
        assert_eq!((q.value.as_str(), q.unit.as_str()), ("36.60", "C"), "value and unit as sent");
        assert_eq!((q.system.as_deref(), q.code.as_deref()), (Some(UCUM), Some("Cel")));
        assert_eq!(obs.subject.reference, "Patient/pat-1");
        assert_eq!(obs.device.unwrap().reference, "Device/cuff-1");
    }

    #[test]
    fn the_fingerprint_covers_what_was_recorded_and_names_its_scheme() {
        let aws_lc = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"a reading");
        assert_eq!(sha256(b"a reading").as_slice(), aws_lc.as_ref(), "stored fingerprints stay valid");
        let obs = measured(&vital(VitalSign::HeartRate, "72", "bpm"), &subject());
        let fingerprint = |o: &Observation, f| StoredObservation::new(o, "k".into(), "t".into(), f).unwrap().content_hash;
        let with_time = fingerprint(&obs, Fingerprint::WithTime);
        assert!(with_time.starts_with("2t:") && with_time.len() == 67, "{with_time}");
        assert!(fingerprint(&obs, Fingerprint::WithoutTime).starts_with("2r:"));
        let later = Observation { issued: "2026-11-22T11:00:00.000Z".into(), ..obs.clone() };
        assert_eq!(with_time, fingerprint(&later, Fingerprint::WithTime), "issued is not what was measured");
        let moved = Observation { effective_date_time: "2026-11-22T10:05:00.000Z".into(), ..obs.clone() };
        assert_ne!(with_time, fingerprint(&moved, Fingerprint::WithTime));
        assert_eq!(fingerprint(&obs, Fingerprint::WithoutTime), fingerprint(&moved, Fingerprint::WithoutTime));
        // Everything a reading records changes it: the value's text, its unit, the code, the
        // patient, the device, the members of a panel.
        let mut changed = Vec::new();
        let mut o = obs.clone();
        o.value_quantity.as_mut().unwrap().value = Decimal::parse("72.0").unwrap();
        changed.push(o);
        let mut o = obs.clone();
        o.value_quantity.as_mut().unwrap().unit = "/min".into();
        changed.push(o);
        let mut o = obs.clone();
        o.code.coding.to_mut()[0].code = Some("8889-8".into());
        changed.push(o);
        changed.push(Observation { subject: Reference::to("Patient", "pat-2"), ..obs.clone() });
        changed.push(Observation { device: Some(Reference::to("Device", "cuff-2")), ..obs.clone() });
        changed.push(Observation { has_member: vec![Reference::to("Observation", "x")], ..obs.clone() });
        for o in changed {
            assert_ne!(with_time, fingerprint(&o, Fingerprint::WithTime), "{:?}", o);
        }
    }

    #[test]
    fn a_fingerprint_of_the_first_scheme_still_tells_a_repeat_from_a_conflict() {
        for fingerprint in [Fingerprint::WithTime, Fingerprint::WithoutTime] {
            let obs = measured(&vital(VitalSign::BodyTemperature, "36.60", "C"), &subject());
            let new = StoredObservation::new(&obs, "k".into(), "t".into(), fingerprint).unwrap();
            // As an earlier version stored it: issued at another time, fingerprinted whole.
            let earlier = Observation { issued: "2026-11-22T09:00:00.000Z".into(), ..obs.clone() };
            let stored = StoredObservation {
                content_hash: StoredObservation::whole_json_fingerprint(&earlier, fingerprint).unwrap(),
                resource: serde_json::to_string(&earlier).unwrap(),
                ..new.clone()
            };
            assert_eq!(stored.content_hash.len(), 64);
            assert!(same_content(&new, &stored), "{fingerprint:?}");
            assert_eq!(judge(std::slice::from_ref(&new), std::slice::from_ref(&stored)), Inserted::Duplicate);
            let mut other = obs.clone();
            other.value_quantity.as_mut().unwrap().value = Decimal::parse("36.7").unwrap();
            let other = StoredObservation::new(&other, "k".into(), "t".into(), fingerprint).unwrap();
            assert!(!same_content(&other, &stored));
            assert_eq!(judge(&[other], &[stored]), Inserted::Conflict);
        }
    }

    #[test]
    fn glucose_is_laboratory_without_vital_signs_profile() {
        let obs = measured(&vital(VitalSign::BloodGlucose, "95", "mg/dL"), &subject());
        assert_eq!(obs.category[0].coding[0].code.as_deref(), Some("laboratory"));
        let meta = obs.meta.expect("meta");
        assert!(meta.profile.is_empty(), "no vital-signs profile");
        assert_eq!(meta.tag[0].code.as_deref(), Some("device"), "marked as device-sourced");
    }

    #[test]
    fn a_manufacturer_code_has_no_category_and_keeps_its_coding() {
        let m = Measurement {
            value: Decimal::parse("100").unwrap(),
            unit: "%".into(),
            coding: vec![Coding::new("http://lifeomic.com/fhir/devices", "9750d5e5", Some("Battery Percentage"))].into(),
            vital: None,
            ucum: Some("%"),
        };
        let obs = measured(&m, &subject());
        assert!(obs.category.is_empty());
        assert!(obs.meta.expect("meta").profile.is_empty());
        assert_eq!(obs.code.coding[0].system.as_deref(), Some("http://lifeomic.com/fhir/devices"));
        assert_eq!(obs.code.text.as_deref(), Some("Battery Percentage"));
        assert_eq!(m.code_key(), "http://lifeomic.com/fhir/devices|9750d5e5");
    }

    #[test]
    fn ids_are_deterministic_per_device_time_code_and_delivery() {
        let hr = vital(VitalSign::HeartRate, "72", "bpm");
        let a = measured(&hr, &subject());
        let again = measured(&hr, &subject());
        let other_code = measured(&vital(VitalSign::RespiratoryRate, "72", "/min"), &subject());
        assert_eq!(a.id, again.id);
        assert_ne!(a.id, other_code.id);
        assert!(crate::fhir::is_valid_id(&a.id));
        assert_eq!(a.identifier[0].value, "cuff-1/2026-11-22T10:00:00.000Z/http://loinc.org|8867-4");
        assert_eq!(observation_id(&a.identifier[0].value), a.id);
        let first = Subject { identity: "2026-11-22T10:00:00.000Z#trace-1", ..subject() };
        let second = Subject { identity: "2026-11-22T10:00:00.000Z#trace-2", ..subject() };
        assert_ne!(measured(&hr, &first).id, measured(&hr, &second).id, "two deliveries without a device time are two readings");
        assert_eq!(measured(&hr, &first).id, measured(&hr, &first).id);
        let for_two = |patient| Subject { patient_id: patient, named_patient: true, ..subject() };
        assert_ne!(measured(&hr, &for_two("p1")).id, measured(&hr, &for_two("p2")).id, "two patients measured at one instant");
        assert_eq!(measured(&hr, &for_two("p1")).identifier[0].value, "cuff-1/2026-11-22T10:00:00.000Z/http://loinc.org|8867-4/patient/p1");
    }

    #[test]
    fn the_content_hash_ignores_issued_but_not_the_value() {
        let obs = measured(&vital(VitalSign::HeartRate, "72", "bpm"), &subject());
        let mut reissued = obs.clone();
        reissued.issued = "2026-11-22T11:00:00.000Z".into();
        let mut other_value = obs.clone();
        other_value.value_quantity.as_mut().unwrap().value = Decimal::parse("73").unwrap();
        let hash = |o: &Observation| StoredObservation::new(o, "k".into(), "t".into(), Fingerprint::WithTime).unwrap().content_hash;
        assert_eq!(hash(&obs), hash(&reissued));
        assert_ne!(hash(&obs), hash(&other_value));
    }

    #[test]
    fn panels_carry_components_and_members() {
        let s = subject();
        let bp = blood_pressure(&Decimal::parse("120").unwrap(), &Decimal::parse("80").unwrap(), &s);
        assert!(bp.value_quantity.is_none());
        assert_eq!(bp.component.len(), 2);
        assert_eq!(bp.component[0].value_quantity.as_ref().unwrap().code.as_deref(), Some("mm[Hg]"));
        let hr = measured(&vital(VitalSign::HeartRate, "72", "bpm"), &s);
        let group = vital_signs_panel([hr.id.as_str(), bp.id.as_str()], &s);
        assert_eq!(group.has_member, [Reference::to("Observation", &hr.id), Reference::to("Observation", &bp.id)]);
        assert_eq!(group.meta.unwrap().profile[1], "http://hl7.org/fhir/StructureDefinition/vitalspanel");
    }
}
