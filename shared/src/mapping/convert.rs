//! From normalized measurements to Observations, the connector's FHIR conversion stage
//! (`MeasurementFhirImportService` + `R4FhirImportService`): measurements are grouped, each
//! group's identities resolved, its template found by type, its observation groups made, and
//! each Observation created, or merged into the one with the same id already in the set.
//!
//! A group that cannot be converted (no template for its type, unknown device, a value that is
//! not a number...) is refused with its reason and the others go on: the caller keeps the
//! refusals where an operator finds them (the debugger prints them; connectors dead-letter them).

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};

use super::fhir_templates::FhirMapping;
use super::grouping::{measurement_groups, observation_groups, GroupingError, MeasurementGroup};
use super::identity::{resolve, IdentityError, IdentityMode, IdentityRegistry, MeasuredIdentity};
use super::measurement::Measurement;
use super::observation::{create, identifier, merge, replaces_a_reading, MappedObservation, ObservationError};

/// How identities are resolved (the connector's `ResourceIdentityOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityOptions {
    pub mode: IdentityMode,
    /// `DefaultDeviceIdentifierSystem`: the system devices are looked up and created under.
    pub device_system: Option<String>,
}

/// Observations by id, in the order they were first made.
#[derive(Debug, Clone, Default)]
pub struct ObservationSet {
    observations: Vec<MappedObservation>,
    by_id: HashMap<String, usize>,
    replaced: Vec<MappedObservation>,
}

impl ObservationSet {
    pub fn get(&self, id: &str) -> Option<&MappedObservation> {
        self.by_id.get(id).map(|&i| &self.observations[i])
    }

    /// Puts an Observation in, replacing the one with its id.
    pub fn put(&mut self, observation: MappedObservation) {
        match self.by_id.get(&observation.id) {
            Some(&i) => self.observations[i] = observation,
            None => {
                self.by_id.insert(observation.id.clone(), self.observations.len());
                self.observations.push(observation);
            }
        }
    }

    pub fn observations(&self) -> &[MappedObservation] {
        &self.observations
    }

    /// The Observations as they were before a merge replaced one of their values
    /// ([`Written::Replaced`]), oldest first.
    pub fn replaced(&self) -> &[MappedObservation] {
        &self.replaced
    }

    pub fn len(&self) -> usize {
        self.observations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.observations.is_empty()
    }
}

/// Where the Observations made by earlier batches are found, to merge into (the connector
/// searches its FHIR server by identifier; the platform reads its Observation store by id).
pub trait PriorObservations: Send + Sync {
    fn prior(&self, id: &str) -> impl Future<Output = Result<Option<MappedObservation>, String>> + Send;
}

/// No earlier batches: every Observation not in the set is new (the debugger).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPrior;

impl PriorObservations for NoPrior {
    async fn prior(&self, _: &str) -> Result<Option<MappedObservation>, String> {
        Ok(None)
    }
}

/// What became of an Observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    /// Merged and changed (now `amended`).
    Amended,
    /// Merged, nothing new (the connector skips the write).
    Unchanged,
    /// Merged, replacing a value it held with another reading's (two readings in one
    /// identifier's window, a second for instantaneous templates: the connector keeps the later).
    Replaced,
}

/// Why a group of measurements made no Observation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    #[error("No FHIR mapping template has typeName {0:?} (type names are matched ignoring case)")]
    TemplateNotFound(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Grouping(#[from] GroupingError),
    #[error(transparent)]
    Observation(#[from] ObservationError),
    #[error("the Observation store failed: {0}")]
    Store(String),
}

impl ConversionError {
    /// Whether trying again may succeed: a store or registry that failed to answer, as opposed
    /// to measurements that cannot be converted as they are.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Identity(IdentityError::Registry(_)))
    }
}

/// The outcome of one measurement group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOutcome {
    pub device_id: String,
    pub type_name: String,
    pub measurements: usize,
    /// The Observations written, by id, or why none was.
    pub result: Result<Vec<(String, Written)>, ConversionError>,
}

/// The stores a conversion reads: identities, and the Observations earlier batches made.
pub struct Sources<'a, R, P> {
    pub registry: &'a R,
    pub prior: &'a P,
}

// By hand: a derive would ask `R: Copy` and `P: Copy` of what is only borrowed.
impl<R, P> Clone for Sources<'_, R, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R, P> Copy for Sources<'_, R, P> {}

/// Converts a batch of measurements into `set`, merging with what it holds or, failing that,
/// with the prior Observation of the same id.
pub async fn convert<R: IdentityRegistry, P: PriorObservations>(
    mapping: &FhirMapping,
    measurements: &[Measurement],
    identity: &IdentityOptions,
    sources: Sources<'_, R, P>,
    issued: DateTime<Utc>,
    set: &mut ObservationSet,
) -> Result<Vec<GroupOutcome>, GroupingError> {
    let groups = measurement_groups(measurements)?;
    let mut outcomes = Vec::with_capacity(groups.len());
    for group in &groups {
        let result = convert_group(mapping, group, identity, sources, issued, set).await;
        outcomes.push(GroupOutcome {
            device_id: group.device_id.to_owned(),
            type_name: group.type_name.to_owned(),
            measurements: group.measurements.len(),
            result,
        });
    }
    Ok(outcomes)
}

async fn convert_group<R: IdentityRegistry, P: PriorObservations>(
    mapping: &FhirMapping,
    group: &MeasurementGroup<'_>,
    identity: &IdentityOptions,
    sources: Sources<'_, R, P>,
    issued: DateTime<Utc>,
    set: &mut ObservationSet,
) -> Result<Vec<(String, Written)>, ConversionError> {
    let measured = MeasuredIdentity { device_id: group.device_id, patient_id: group.patient_id, encounter_id: group.encounter_id };
    let ids = resolve(sources.registry, identity.mode, identity.device_system.as_deref(), measured).await?;
    let template = mapping.template(group.type_name).ok_or_else(|| ConversionError::TemplateNotFound(group.type_name.to_owned()))?;
    // All of a group's Observations are made before any is kept: a group is converted whole
    // or refused whole.
    let mut made = Vec::new();
    let mut replaced = Vec::new();
    for og in observation_groups(group, template.period_interval)? {
        let (_, id) = identifier(&og, &ids);
        let known = made.iter().rev().find(|(o, _): &&(MappedObservation, Written)| o.id == id).map(|(o, _)| o).or_else(|| set.get(&id)).cloned();
        let previous = match known {
            Some(o) => Some(o),
            None => sources.prior.prior(&id).await.map_err(ConversionError::Store)?,
        };
        let next = match previous {
            None => (create(template, &og, &ids, issued)?, Written::Created),
            Some(existing) => {
                let merged = merge(template, &og, &existing)?;
                let written = if merged == existing {
                    Written::Unchanged
                } else if replaces_a_reading(&existing, &merged) {
                    replaced.push(existing);
                    Written::Replaced
                } else {
                    Written::Amended
                };
                (merged, written)
            }
        };
        made.push(next);
    }
    set.replaced.extend(replaced);
    let mut written = Vec::with_capacity(made.len());
    for (observation, how) in made {
        written.push((observation.id.clone(), how));
        set.put(observation);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::identity::MemoryRegistry;
    use crate::mapping::measurement::MeasurementProperty;
    use serde_json::json;

    fn hr(time: &str, value: &str) -> Measurement {
        Measurement {
            type_name: "heartrate".into(),
            occurrence_time_utc: time.into(),
            ingestion_time_utc: None,
            device_id: "band-1".into(),
            patient_id: Some("mrn-1".into()),
            encounter_id: None,
            correlation_id: None,
            properties: vec![MeasurementProperty { name: "hr".into(), value: value.into() }],
        }
    }

    fn mapping() -> FhirMapping {
        FhirMapping::from_json(&json!({"templateType": "CollectionFhir", "template": [{"templateType": "CodeValueFhir", "template": {
            "typeName": "heartrate", "periodInterval": 60, "codes": [{"code": "8867-4", "system": "http://loinc.org"}],
            "value": {"valueName": "hr", "valueType": "SampledData", "defaultPeriod": 60000, "unit": "count/min"}}}]}))
        .unwrap()
    }

    #[tokio::test]
    async fn batches_merge_into_the_same_observation_and_replays_change_nothing() {
        let registry = MemoryRegistry::default();
        let options = IdentityOptions { mode: IdentityMode::Create, device_system: None };
        let now = Utc::now();
        let mut set = ObservationSet::default();
        let first = convert(&mapping(), &[hr("2019-01-01T10:00:00Z", "70")], &options, Sources { registry: &registry, prior: &NoPrior }, now, &mut set).await.unwrap();
        let second = convert(&mapping(), &[hr("2019-01-01T10:01:00Z", "71"), hr("2019-01-01T11:00:00Z", "90")], &options, Sources { registry: &registry, prior: &NoPrior }, now, &mut set).await.unwrap();
        assert!(matches!(&first[0].result, Ok(w) if w[0].1 == Written::Created));
        let written = second[0].result.as_ref().unwrap();
        assert_eq!(written.iter().map(|(_, w)| *w).collect::<Vec<_>>(), [Written::Amended, Written::Created], "same hour merged, next hour new");
        assert_eq!(set.len(), 2);
        let data = set.observations()[0].value_sampled_data.as_ref().unwrap().data.clone();
        assert!(data.starts_with("70 71 E"), "{data}");
        let replay = convert(&mapping(), &[hr("2019-01-01T10:01:00Z", "71")], &options, Sources { registry: &registry, prior: &NoPrior }, now, &mut set).await.unwrap();
        assert_eq!(replay[0].result.as_ref().unwrap()[0].1, Written::Unchanged, "at-least-once delivery creates nothing new");
        assert_eq!(set.len(), 2);
    }

    #[tokio::test]
    async fn a_group_that_cannot_be_converted_is_refused_with_its_reason_and_others_go_on() {
        let registry = MemoryRegistry::default();
        let options = IdentityOptions { mode: IdentityMode::Lookup, device_system: None };
        registry.register_device("dev-1", None, "band-1", Some("Patient/pat-1")).unwrap();
        let mut steps = hr("2019-01-01T10:00:00Z", "5");
        steps.type_name = "steps".into();
        let mut stranger = hr("2019-01-01T10:00:00Z", "5");
        stranger.device_id = "unknown".into();
        let mut set = ObservationSet::default();
        let outcomes = convert(&mapping(), &[hr("2019-01-01T10:00:00Z", "70"), steps, stranger], &options, Sources { registry: &registry, prior: &NoPrior }, Utc::now(), &mut set).await.unwrap();
        assert!(outcomes[0].result.is_ok());
        assert_eq!(outcomes[1].result, Err(ConversionError::TemplateNotFound("steps".into())));
        assert_eq!(outcomes[2].result, Err(ConversionError::Identity(IdentityError::DeviceNotFound("unknown".into()))));
        assert_eq!(set.len(), 1);
        assert_eq!(set.observations()[0].subject.reference, "Patient/pat-1", "Lookup: the device's patient, not the measurement's");
    }

    #[tokio::test]
    async fn the_end_to_end_conformance_case_passes_through_the_library() {
        use crate::mapping::content::DeviceMapping;
        use crate::mapping::measurement::wrap;
        let dir = crate::platform::reference_dir("conformance/iomt-fhir");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
        let expected: serde_json::Value = serde_json::from_str(&read("expected.json")).unwrap();
        let case = expected["end_to_end_cases"].as_array().unwrap().iter().find(|c| c["id"] == "validator_bp_sampleddata").unwrap();
        let device = DeviceMapping::parse(&read(case["device_mapping"].as_str().unwrap())).unwrap();
        let fhir = FhirMapping::parse(&read(case["fhir_mapping"].as_str().unwrap())).unwrap();
        let mut body = case["payload_inline"].clone();
        body["date"] = json!("2024-05-01T10:15:30Z");
        let measurements = device.normalize(&wrap(body)).unwrap();
        let want = &case["expected_measurements"][0];
        assert_eq!(measurements.len(), 1);
        let m = &measurements[0];
        assert_eq!((m.type_name.as_str(), m.device_id.as_str(), m.patient_id.as_deref()), (want["Type"].as_str().unwrap(), want["DeviceId"].as_str().unwrap(), want["PatientId"].as_str()));
        let props: Vec<[&str; 2]> = m.properties.iter().map(|p| [p.name.as_str(), p.value.as_str()]).collect();
        assert_eq!(props, [["systolic", "60"], ["diastolic", "80"]]);
        let options = IdentityOptions { mode: IdentityMode::Create, device_system: None };
        let mut set = ObservationSet::default();
        convert(&fhir, &measurements, &options, Sources { registry: &MemoryRegistry::default(), prior: &NoPrior }, Utc::now(), &mut set).await.unwrap();
        let o = &set.observations()[0];
        let expect = &case["expected_observation"];
        assert_eq!(o.code.text.as_deref(), expect["code.text"].as_str());
        for i in 0..2 {
            let want = &expect[format!("component[{i}]")];
            assert_eq!(o.component[i].code.text.as_deref(), want["code.text"].as_str(), "components in template order");
            let data = &o.component[i].value_sampled_data.as_ref().unwrap().data;
            assert!(data.split(' ').any(|t| Some(t) == want["valueSampledData.data contains"].as_str()));
        }
    }
}
