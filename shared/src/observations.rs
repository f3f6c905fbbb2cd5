//! Observations: building FHIR R4 Observations from measurements, and where they are kept.

mod dynamodb;

use std::future::Future;

use sha2::{Digest, Sha256};

pub use dynamodb::DynamoObservationStore;

use crate::fhir::{CodeableConcept, Coding, Identifier, Meta, Observation, Quantity, Reference};
use crate::measurement::Measurement;
use crate::vitals::{self, Category, OBSERVATION_CATEGORY, UCUM, VITAL_SIGNS_PROFILE};
use crate::StoreError;

/// The identifier system of the platform's deterministic observation keys.
pub const IDENTIFIER_SYSTEM: &str = "urn:vitalwire:observation";

/// Who and when an Observation is about, decided by the handler.
#[derive(Debug, Clone)]
pub struct ObservationContext<'a> {
    pub thing_name: &'a str,
    pub patient_id: &'a str,
    /// `effectiveDateTime` as the device sent it, or the time the platform received it.
    pub effective: &'a str,
    /// The effective time in UTC (`time::format_utc`), for keys and sorting.
    pub effective_utc: &'a str,
    pub issued: &'a str,
}

/// The natural key of a measurement: one device measures one thing at one instant once.
pub fn natural_key(thing_name: &str, effective_utc: &str, code_key: &str) -> String {
    format!("{thing_name}/{effective_utc}/{code_key}")
}

/// The Observation id derived from its natural key, so a redelivered message maps to the same id.
pub fn observation_id(natural_key: &str) -> String {
    let digest = Sha256::digest(natural_key.as_bytes());
    hex::encode(&digest[..16])
}

/// Builds the FHIR R4 Observation for a validated measurement.
pub fn build_observation(m: &Measurement, ctx: &ObservationContext<'_>) -> Observation {
    let key = natural_key(ctx.thing_name, ctx.effective_utc, &m.code_key());
    let category = m.known.map(|k| k.category);
    let profile = match (category, m.known.and_then(|k| k.profile)) {
        (Some(Category::VitalSigns), profile) => {
            let mut profiles = vec![VITAL_SIGNS_PROFILE.to_owned()];
            profiles.extend(profile.map(vitals::profile_url));
            profiles
        }
        _ => Vec::new(),
    };
    let meta = Some(device_sourced(profile));
    let text = m.coding.iter().find_map(|c| c.display.clone()).or_else(|| m.known.map(|k| k.display.to_owned()));
    Observation {
        resource_type: "Observation".to_owned(),
        id: observation_id(&key),
        meta,
        identifier: vec![Identifier { system: IDENTIFIER_SYSTEM.to_owned(), value: key }],
        status: "final".to_owned(),
        category: category
            .map(|c| CodeableConcept {
                coding: vec![Coding::new(OBSERVATION_CATEGORY, c.code(), Some(c.display()))],
                text: None,
            })
            .into_iter()
            .collect(),
        code: CodeableConcept { coding: m.coding.clone(), text },
        subject: Reference::to("Patient", ctx.patient_id),
        device: Some(Reference::to("Device", ctx.thing_name)),
        effective_date_time: ctx.effective.to_owned(),
        issued: ctx.issued.to_owned(),
        value_quantity: Some(Quantity {
            value: m.value.clone(),
            unit: m.unit.clone(),
            system: m.ucum.map(|_| UCUM.to_owned()),
            code: m.ucum.map(str::to_owned),
        }),
        component: Vec::new(),
        has_member: Vec::new(),
    }
}

/// The tag system saying where a reading came from (`device`, as opposed to manual entry).
pub const DATA_SOURCE_SYSTEM: &str = "urn:vitalwire:data-source";

/// `meta` of an Observation a device measured: its profiles and the `device` data-source tag.
pub fn device_sourced(profile: Vec<String>) -> Meta {
    Meta { profile, tag: vec![Coding::new(DATA_SOURCE_SYSTEM, "device", Some("Measured by a device"))] }
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

impl StoredObservation {
    /// Wraps a built Observation for storage.
    pub fn new(obs: &Observation, code_key: String, effective_at: String) -> Result<Self, serde_json::Error> {
        let mut unissued = obs.clone();
        unissued.issued.clear();
        let content = serde_json::to_vec(&unissued)?;
        Ok(Self {
            id: obs.id.clone(),
            patient_id: obs.subject.reference.trim_start_matches("Patient/").to_owned(),
            device_id: obs.device.as_ref().map(|d| d.reference.trim_start_matches("Device/").to_owned()).unwrap_or_default(),
            code_key,
            effective_at,
            content_hash: hex::encode(Sha256::digest(&content)),
            resource: serde_json::to_string(obs)?,
        })
    }
}

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// An observation with this id exists already; its content hash.
    AlreadyExists { content_hash: String },
}

/// The observation store port.
pub trait ObservationStore: Send + Sync {
    /// Writes the observation unless one with its id exists (a conditional write).
    fn insert(&self, obs: &StoredObservation) -> impl Future<Output = Result<Inserted, StoreError>> + Send;

    fn get(&self, id: &str) -> impl Future<Output = Result<Option<StoredObservation>, StoreError>> + Send;

    /// A patient's observations of one code, oldest first, with `from <= effective_at <= to`.
    fn for_patient_code(
        &self,
        patient_id: &str,
        code_key: &str,
        from: &str,
        to: &str,
    ) -> impl Future<Output = Result<Vec<StoredObservation>, StoreError>> + Send;

    /// A device's most recent observations, newest first.
    fn for_device(
        &self,
        device_id: &str,
        limit: i32,
    ) -> impl Future<Output = Result<Vec<StoredObservation>, StoreError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurement;
    use crate::time::parse_with_offset;

    fn build(payload: &str) -> Observation {
        let received = parse_with_offset("2026-11-22T10:00:00Z").unwrap();
        let m = measurement::parse(payload, received).unwrap();
        let ctx = ObservationContext {
            thing_name: "cuff-1",
            patient_id: "pat-1",
            effective: "2026-11-22T10:00:00.000Z",
            effective_utc: "2026-11-22T10:00:00.000Z",
            issued: "2026-11-22T10:00:01.000Z",
        };
        build_observation(&m, &ctx)
    }

    fn loinc(code: &str, value: &str, unit: &str) -> String {
        format!(r#"{{"value":{value},"unit":"{unit}","coding":[{{"system":"http://loinc.org","code":"{code}"}}]}}"#)
    }

    #[test]
    fn a_vital_sign_gets_category_profiles_and_ucum() {
        let obs = build(&loinc("8310-5", "\"36.60\"", "C"));
        assert_eq!(obs.status, "final");
        assert_eq!(obs.category[0].coding[0].code.as_deref(), Some("vital-signs"));
        assert_eq!(
            obs.meta.unwrap().profile,
            ["http://hl7.org/fhir/StructureDefinition/vitalsigns", "http://hl7.org/fhir/StructureDefinition/bodytemp"]
        );
        let q = obs.value_quantity.unwrap();
        assert_eq!((q.value.as_str(), q.unit.as_str()), ("36.60", "C"), "value and unit as sent");
        assert_eq!((q.system.as_deref(), q.code.as_deref()), (Some(UCUM), Some("Cel")));
        assert_eq!(obs.subject.reference, "Patient/pat-1");
        assert_eq!(obs.device.unwrap().reference, "Device/cuff-1");
        assert_eq!(obs.code.text.as_deref(), Some("Body temperature"), "falls back to the catalogue display");
    }

    #[test]
    fn glucose_is_laboratory_without_vital_signs_profile() {
        let obs = build(&loinc("2339-0", "95", "mg/dL"));
        assert_eq!(obs.category[0].coding[0].code.as_deref(), Some("laboratory"));
        let meta = obs.meta.expect("meta");
        assert!(meta.profile.is_empty(), "no vital-signs profile");
        assert_eq!(meta.tag[0].code.as_deref(), Some("device"), "marked as device-sourced");
    }

    #[test]
    fn a_manufacturer_code_has_no_category_and_keeps_its_coding() {
        let obs = build(
            r#"{"value":"100","unit":"%","coding":[{"system":"http://lifeomic.com/fhir/devices","code":"9750d5e5","display":"Battery Percentage"}]}"#,
        );
        assert!(obs.category.is_empty());
        assert!(obs.meta.expect("meta").profile.is_empty());
        assert_eq!(obs.code.coding[0].system.as_deref(), Some("http://lifeomic.com/fhir/devices"));
        assert_eq!(obs.code.text.as_deref(), Some("Battery Percentage"));
    }

    #[test]
    fn ids_are_deterministic_per_device_time_and_code() {
        let a = build(&loinc("8867-4", "72", "bpm"));
        let again = build(&loinc("8867-4", "72", "bpm"));
        let other_code = build(&loinc("9279-1", "72", "/min"));
        assert_eq!(a.id, again.id);
        assert_ne!(a.id, other_code.id);
        assert!(crate::fhir::is_valid_id(&a.id));
        assert_eq!(a.identifier[0].value, "cuff-1/2026-11-22T10:00:00.000Z/http://loinc.org|8867-4");
        assert_eq!(observation_id(&a.identifier[0].value), a.id);
    }

    #[test]
    fn the_content_hash_ignores_issued_but_not_the_value() {
        let obs = build(&loinc("8867-4", "72", "bpm"));
        let mut reissued = obs.clone();
        reissued.issued = "2026-11-22T11:00:00.000Z".into();
        let mut other_value = obs.clone();
        other_value.value_quantity.as_mut().unwrap().value = crate::fhir::Decimal::parse("73").unwrap();
        let hash = |o: &Observation| StoredObservation::new(o, "k".into(), "t".into()).unwrap().content_hash;
        assert_eq!(hash(&obs), hash(&reissued));
        assert_ne!(hash(&obs), hash(&other_value));
    }
}
