//! Patients the platform keeps records of. Most patients are only an id an operator assigns to
//! a device; a connector in `Create` mode makes a patient record from the patient identifier
//! its messages carry (the IoMT connector creates a FHIR Patient), so that the next message
//! finds the same patient, and two workers creating it at once converge on one record.
//!
//! Encounters (a stay, a visit) are registered by an operator for a patient, under the
//! identifier devices send (`POST /admin/patients/{patientId}/encounters`), so that a connector
//! in `LookupWithEncounter` mode ties each measurement to its encounter.

mod dynamodb;
pub mod http;
#[cfg(any(test, feature = "memory"))]
pub mod memory;

use std::future::Future;

pub use dynamodb::{DynamoEncounterStore, DynamoPatientStore};

use crate::StoreError;

/// A patient record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    /// The FHIR Patient id: for a created patient, derived from its identifier.
    pub id: String,
    /// The identifier value it was created from (a medical record number, say).
    pub identifier: String,
    /// What created it, e.g. `connector/ward-7`.
    pub created_by: String,
    pub created_at: String,
}

/// The patient store port.
pub trait PatientStore: Send + Sync {
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Patient>, StoreError>> + Send;
    /// Creates the patient unless its id is taken; false when it is (the existing one stays).
    fn create(&self, patient: &Patient) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// An encounter's state (FHIR `Encounter.status`, the values a registered one may have).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncounterStatus {
    Planned,
    InProgress,
    Finished,
    Cancelled,
}

impl EncounterStatus {
    pub const ALL: [Self; 4] = [Self::Planned, Self::InProgress, Self::Finished, Self::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::InProgress => "in-progress",
            Self::Finished => "finished",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// An encounter record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encounter {
    /// The FHIR Encounter id, derived from its identifier (`hash_id("", identifier)`, as the
    /// connector's ids are), so a device's encounter id finds it.
    pub id: String,
    pub identifier: String,
    pub patient_id: String,
    pub status: EncounterStatus,
    pub created_at: String,
}

/// The encounter store port.
pub trait EncounterStore: Send + Sync {
    fn get(&self, id: &str) -> impl Future<Output = Result<Option<Encounter>, StoreError>> + Send;
    /// Creates the encounter unless its id is taken; false when it is.
    fn create(&self, encounter: &Encounter) -> impl Future<Output = Result<bool, StoreError>> + Send;
}
